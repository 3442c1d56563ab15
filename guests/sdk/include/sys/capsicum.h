/*
 * FreeBSD's Capsicum API for capsa guests (wasm32-wasi).
 *
 * A capability right here is a WASI preview1 rights bit: the bits and the
 * composite rights below mirror src/wasi/rights.ts, and a test checks that
 * they agree.  Rights FreeBSD has but WASI lacks (CAP_IOCTL, CAP_MMAP, ...)
 * are not defined, so code using them fails to compile rather than
 * silently asking for nothing.
 *
 * Link with libcapsa.a.  cap_enter() and cap_getmode() call host imports of
 * module "capsicum"; a program that uses them runs only under capsa.
 */

#ifndef _SYS_CAPSICUM_H_
#define _SYS_CAPSICUM_H_

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef ENOTCAPABLE
#define ENOTCAPABLE	76	/* wasi-libc's value: descriptor lacks a right */
#endif
#ifndef ECAPMODE
#define ECAPMODE	94	/* FreeBSD's value: not permitted in capability mode */
#endif

#define CAP_RIGHTS_VERSION	0

/* Word 0 holds the WASI rights bits; word 1 stays 0 (FreeBSD's layout). */
typedef struct cap_rights {
	uint64_t	cr_rights[CAP_RIGHTS_VERSION + 2];
} cap_rights_t;

/* Single rights: bit N of WASI `rights` is RIGHTS_TABLE[N] in src/wasi/rights.ts. */
#define CAP_FDATASYNC		((uint64_t)0x0000000000000001ULL)	/* fd_datasync */
#define CAP_READ		((uint64_t)0x0000000000000002ULL)	/* fd_read */
#define CAP_SEEK_SET		((uint64_t)0x0000000000000004ULL)	/* fd_seek */
#define CAP_FCNTL		((uint64_t)0x0000000000000008ULL)	/* fd_fdstat_set_flags */
#define CAP_FSYNC		((uint64_t)0x0000000000000010ULL)	/* fd_sync */
#define CAP_SEEK_TELL		((uint64_t)0x0000000000000020ULL)	/* fd_tell */
#define CAP_WRITE		((uint64_t)0x0000000000000040ULL)	/* fd_write */
#define CAP_FADVISE		((uint64_t)0x0000000000000080ULL)	/* fd_advise */
#define CAP_FALLOCATE		((uint64_t)0x0000000000000100ULL)	/* fd_allocate */
#define CAP_MKDIRAT		((uint64_t)0x0000000000000200ULL)	/* path_create_directory */
#define CAP_CREATE		((uint64_t)0x0000000000000400ULL)	/* path_create_file */
#define CAP_LINKAT_SOURCE	((uint64_t)0x0000000000000800ULL)	/* path_link_source */
#define CAP_LINKAT_TARGET	((uint64_t)0x0000000000001000ULL)	/* path_link_target */
#define CAP_LOOKUP		((uint64_t)0x0000000000002000ULL)	/* path_open */
#define CAP_READDIR		((uint64_t)0x0000000000004000ULL)	/* fd_readdir */
#define CAP_READLINKAT		((uint64_t)0x0000000000008000ULL)	/* path_readlink */
#define CAP_RENAMEAT_SOURCE	((uint64_t)0x0000000000010000ULL)	/* path_rename_source */
#define CAP_RENAMEAT_TARGET	((uint64_t)0x0000000000020000ULL)	/* path_rename_target */
#define CAP_FSTATAT		((uint64_t)0x0000000000040000ULL)	/* path_filestat_get */
#define CAP_FTRUNCATEAT		((uint64_t)0x0000000000080000ULL)	/* path_filestat_set_size */
#define CAP_FUTIMESAT		((uint64_t)0x0000000000100000ULL)	/* path_filestat_set_times */
#define CAP_FSTAT		((uint64_t)0x0000000000200000ULL)	/* fd_filestat_get */
#define CAP_FTRUNCATE		((uint64_t)0x0000000000400000ULL)	/* fd_filestat_set_size */
#define CAP_FUTIMES		((uint64_t)0x0000000000800000ULL)	/* fd_filestat_set_times */
#define CAP_SYMLINKAT		((uint64_t)0x0000000001000000ULL)	/* path_symlink */
#define CAP_RMDIRAT		((uint64_t)0x0000000002000000ULL)	/* path_remove_directory */
#define CAP_UNLINKFILEAT	((uint64_t)0x0000000004000000ULL)	/* path_unlink_file */
#define CAP_EVENT		((uint64_t)0x0000000008000000ULL)	/* poll_fd_readwrite */
#define CAP_SHUTDOWN		((uint64_t)0x0000000010000000ULL)	/* sock_shutdown */
#define CAP_ACCEPT		((uint64_t)0x0000000020000000ULL)	/* sock_accept */
/* Bits WASI leaves undefined: capsa's process calls (<sys/procdesc.h>, <capsa/spawn.h>). */
#define CAP_FEXECVE		((uint64_t)0x0000000040000000ULL)	/* capsicum.pdspawn */
#define CAP_PDGETPID		((uint64_t)0x0000000080000000ULL)	/* capsicum.pdgetpid */
#define CAP_PDWAIT		((uint64_t)0x0000000100000000ULL)	/* capsicum.pdwait */
#define CAP_PDKILL		((uint64_t)0x0000000200000000ULL)	/* capsicum.pdkill */

/* Composite rights: COMPOSITE_RIGHTS in src/wasi/rights.ts. */
#define CAP_SEEK		((uint64_t)0x0000000000000024ULL)	/* SEEK_SET|SEEK_TELL */
#define CAP_PREAD		((uint64_t)0x0000000000000026ULL)	/* SEEK|READ */
#define CAP_PWRITE		((uint64_t)0x0000000000000064ULL)	/* SEEK|WRITE */
#define CAP_UNLINKAT		((uint64_t)0x0000000006002000ULL)	/* RMDIRAT|UNLINKFILEAT|LOOKUP */
#define CAP_RECV		((uint64_t)0x0000000000000002ULL)	/* READ */
#define CAP_SEND		((uint64_t)0x0000000000000040ULL)	/* WRITE */
#define CAP_SOCK_CLIENT		((uint64_t)0x0000000010000042ULL)	/* READ|WRITE|SHUTDOWN */
#define CAP_SOCK_SERVER		((uint64_t)0x0000000030000042ULL)	/* SOCK_CLIENT|ACCEPT */
#define CAP_POLL_EVENT		((uint64_t)0x0000000008000000ULL)	/* EVENT */
#define CAP_ALL			((uint64_t)0x00000003ffffffffULL)	/* all 34 bits */

/*
 * The variadic calls end their list with 0, as FreeBSD's do; no right is 0.
 * Arguments must be uint64_t, which every CAP_* above is.
 */
#define cap_rights_init(...)	__cap_rights_init(CAP_RIGHTS_VERSION, __VA_ARGS__, 0ULL)
#define cap_rights_set(...)	__cap_rights_set(__VA_ARGS__, 0ULL)
#define cap_rights_clear(...)	__cap_rights_clear(__VA_ARGS__, 0ULL)
#define cap_rights_is_set(...)	__cap_rights_is_set(__VA_ARGS__, 0ULL)

#ifdef __cplusplus
extern "C" {
#endif

/** Sets *rights to exactly the listed rights; use cap_rights_init(). */
cap_rights_t *__cap_rights_init(int version, cap_rights_t *rights, ...);
/** Adds the listed rights to *rights; use cap_rights_set(). */
cap_rights_t *__cap_rights_set(cap_rights_t *rights, ...);
/** Removes the listed rights from *rights; use cap_rights_clear(). */
cap_rights_t *__cap_rights_clear(cap_rights_t *rights, ...);
/** True if every listed right is in *rights; use cap_rights_is_set(). */
bool __cap_rights_is_set(const cap_rights_t *rights, ...);

/** True if *rights holds only defined rights in the expected layout. */
bool cap_rights_is_valid(const cap_rights_t *rights);
/** Adds every right in *src to *dst; returns dst. */
cap_rights_t *cap_rights_merge(cap_rights_t *dst, const cap_rights_t *src);
/** Removes every right in *src from *dst; returns dst. */
cap_rights_t *cap_rights_remove(cap_rights_t *dst, const cap_rights_t *src);
/** True if *big holds every right in *little. */
bool cap_rights_contains(const cap_rights_t *big, const cap_rights_t *little);

/** Narrows fd's rights to *rights; 0, or -1 with errno (ENOTCAPABLE if that would widen them). */
int cap_rights_limit(int fd, const cap_rights_t *rights);
/** Stores fd's current rights in *rights; 0, or -1 with errno. */
int cap_rights_get(int fd, cap_rights_t *rights);

/** Enters capability mode for good; 0, or -1 with errno. */
int cap_enter(void);
/** Stores 1 in *modep if in capability mode, else 0; 0, or -1 with errno. */
int cap_getmode(unsigned int *modep);
/** True if the program is in capability mode. */
bool cap_sandboxed(void);

#ifdef __cplusplus
}
#endif

#endif /* !_SYS_CAPSICUM_H_ */
