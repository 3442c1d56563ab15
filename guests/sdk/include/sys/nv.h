/*
 * FreeBSD's libnv name/value lists for capsa guests (wasm32-wasi): the API
 * of FreeBSD's <sys/nv.h> with its names, signatures and semantics, and its
 * binary format, which is what Casper channels carry (docs/abi.md).
 *
 * Link with libcapsa.a.  Semantics kept from libnv:
 *
 *  - Names are unique by name whatever the type (case-insensitively with
 *    NV_FLAG_IGNORE_CASE), unless the list was created with
 *    NV_FLAG_NO_UNIQUE.  A second add of a name sets the list's error to
 *    EEXIST.  Once a list has an error every further add is ignored (a move
 *    still consumes its value), and nvlist_pack() fails with that error.
 *    Adding to a NULL list (a failed nvlist_create()) is a no-op.
 *  - nvlist_get_*(), nvlist_take_*() and nvlist_free_*() of a name that is
 *    not there (with that type) abort the program after printing
 *    "nvlist_get_TYPE: missing NAME" to stderr; check with nvlist_exists_*()
 *    first when the list comes from elsewhere.
 *  - nvlist_add_*() copy their arguments; nvlist_move_*() take ownership
 *    (and free it if the add fails); nvlist_take_*() remove the pair and hand
 *    its value to the caller, who frees it (free(), nvlist_destroy(), close()).
 *  - nvlist_unpack(buf, size, flags) fails with EILSEQ unless the packed
 *    list's flags equal `flags`, and with EINVAL for any malformed input.
 *
 * The binary format is libnv's (sys/contrib/libnv/nvlist.c, bsd_nvpair.c),
 * little-endian (NV_FLAG_BIG_ENDIAN input is also read):
 *
 *   list header, 19 bytes: u8 magic 0x6c, u8 version 0, u8 flags,
 *     u64 descriptors (those packed after this header),
 *     u64 size (bytes after this header to the end of the whole buffer,
 *     for nested headers too)
 *   pair, 19 bytes + name + data: u8 type, u16 namesize (with the NUL),
 *     u64 datasize, u64 nitems, the name and its NUL, then the data
 *   NV_TYPE_NVLIST: datasize as FreeBSD's nvlist_size() of the child, which
 *     counts the child's header and pairs and then every pair that follows
 *     in the enclosing lists (19 for an empty child: the walk never starts);
 *     then the child's header and pairs, then a pair of type 255
 *     (NVLIST_UP), name "", datasize 0, nitems 0.  Readers, libnv's and
 *     this one, only check it is nonzero and within the buffer
 *   NV_TYPE_NVLIST_ARRAY: datasize 0, nitems N; then per element its
 *     header, its pairs and a pair of type 254 (NVLIST_ARRAY_NEXT), name "",
 *     datasize 0, nitems 0
 *
 * capsa differences, all forced by WASI or chosen for robustness:
 *
 *  - Descriptors.  There is no SCM_RIGHTS: a descriptor is packed as the fd
 *    number itself (i64; -1 in arrays for "none"), and nvlist_pack() packs
 *    lists holding descriptors instead of failing with EOPNOTSUPP.  The host
 *    installs the fds named in a Casper reply before the guest unpacks it.
 *    WASI has no dup(), so nvlist_add_descriptor() (which checks the fd is
 *    open, EBADF otherwise) and nvlist_clone() refer to the caller's fd
 *    instead of duplicating it, and never close it.  Descriptors a list owns
 *    (nvlist_move_descriptor*(), Casper replies) are closed by
 *    nvlist_destroy() and nvlist_free_*(); nvlist_take_descriptor*() hands
 *    them to the caller.  nvlist_unpack() owns none: its numbers come from
 *    the buffer, and nothing is closed on its behalf.  The "descriptors"
 *    header field is written as libnv counts it and ignored on input.
 *  - nvlist_unpack() is stricter than libnv where libnv's laxness is
 *    accidental: version must be 0, every nested list must be closed by its
 *    own sentinel (UP for a nested list, ARRAY_NEXT for an array element)
 *    with namesize 1, datasize 0 and nitems 0, bool array items must be 0
 *    or 1, nested headers may not switch byte order, and nesting deeper than
 *    NV_NEST_MAX lists is refused (EINVAL), so hostile input cannot exhaust
 *    the stack.  Lists built in memory are not limited.
 *  - nvlist_size() is the packed size of the list as a root list.
 *  - Not provided: nvlist_send/recv/xfer (use <libcasper.h>),
 *    nvlist_get_parent/get_array_next/in_array/get_pararr,
 *    nvlist_free_binary_array (declared but never defined by FreeBSD).
 */

#ifndef _NV_H_
#define _NV_H_

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef _NVLIST_T_DECLARED
#define _NVLIST_T_DECLARED
struct nvlist;

typedef struct nvlist nvlist_t;
#endif

#define NV_NAME_MAX		2048

#define NV_TYPE_NONE		0

#define NV_TYPE_NULL		1
#define NV_TYPE_BOOL		2
#define NV_TYPE_NUMBER		3
#define NV_TYPE_STRING		4
#define NV_TYPE_NVLIST		5
#define NV_TYPE_DESCRIPTOR	6
#define NV_TYPE_BINARY		7
#define NV_TYPE_BOOL_ARRAY	8
#define NV_TYPE_NUMBER_ARRAY	9
#define NV_TYPE_STRING_ARRAY	10
#define NV_TYPE_NVLIST_ARRAY	11
#define NV_TYPE_DESCRIPTOR_ARRAY	12

/* Perform case-insensitive lookups of provided names. */
#define NV_FLAG_IGNORE_CASE	0x01
/* Names don't have to be unique. */
#define NV_FLAG_NO_UNIQUE	0x02

/* capsa: nvlist_unpack() refuses lists nested deeper than this. */
#define NV_NEST_MAX		64

#ifdef __cplusplus
extern "C" {
#endif

nvlist_t	*nvlist_create(int flags);
void		 nvlist_destroy(nvlist_t *nvl);
int		 nvlist_error(const nvlist_t *nvl);
bool		 nvlist_empty(const nvlist_t *nvl);
int		 nvlist_flags(const nvlist_t *nvl);
void		 nvlist_set_error(nvlist_t *nvl, int error);

nvlist_t	*nvlist_clone(const nvlist_t *nvl);

void		 nvlist_dump(const nvlist_t *nvl, int fd);
void		 nvlist_fdump(const nvlist_t *nvl, FILE *fp);

size_t		 nvlist_size(const nvlist_t *nvl);
void		*nvlist_pack(const nvlist_t *nvl, size_t *sizep);
nvlist_t	*nvlist_unpack(const void *buf, size_t size, int flags);

const char	*nvlist_next(const nvlist_t *nvl, int *typep, void **cookiep);

bool nvlist_exists(const nvlist_t *nvl, const char *name);
bool nvlist_exists_type(const nvlist_t *nvl, const char *name, int type);

bool nvlist_exists_null(const nvlist_t *nvl, const char *name);
bool nvlist_exists_bool(const nvlist_t *nvl, const char *name);
bool nvlist_exists_number(const nvlist_t *nvl, const char *name);
bool nvlist_exists_string(const nvlist_t *nvl, const char *name);
bool nvlist_exists_nvlist(const nvlist_t *nvl, const char *name);
bool nvlist_exists_binary(const nvlist_t *nvl, const char *name);
bool nvlist_exists_bool_array(const nvlist_t *nvl, const char *name);
bool nvlist_exists_number_array(const nvlist_t *nvl, const char *name);
bool nvlist_exists_string_array(const nvlist_t *nvl, const char *name);
bool nvlist_exists_nvlist_array(const nvlist_t *nvl, const char *name);
bool nvlist_exists_descriptor(const nvlist_t *nvl, const char *name);
bool nvlist_exists_descriptor_array(const nvlist_t *nvl, const char *name);

void nvlist_add_null(nvlist_t *nvl, const char *name);
void nvlist_add_bool(nvlist_t *nvl, const char *name, bool value);
void nvlist_add_number(nvlist_t *nvl, const char *name, uint64_t value);
void nvlist_add_string(nvlist_t *nvl, const char *name, const char *value);
void nvlist_add_stringf(nvlist_t *nvl, const char *name, const char *valuefmt, ...)
    __attribute__((__format__(__printf__, 3, 4)));
void nvlist_add_stringv(nvlist_t *nvl, const char *name, const char *valuefmt, va_list valueap)
    __attribute__((__format__(__printf__, 3, 0)));
void nvlist_add_nvlist(nvlist_t *nvl, const char *name, const nvlist_t *value);
void nvlist_add_binary(nvlist_t *nvl, const char *name, const void *value, size_t size);
void nvlist_add_bool_array(nvlist_t *nvl, const char *name, const bool *value, size_t nitems);
void nvlist_add_number_array(nvlist_t *nvl, const char *name, const uint64_t *value, size_t nitems);
void nvlist_add_string_array(nvlist_t *nvl, const char *name, const char * const *value, size_t nitems);
void nvlist_add_nvlist_array(nvlist_t *nvl, const char *name, const nvlist_t * const *value, size_t nitems);
void nvlist_add_descriptor(nvlist_t *nvl, const char *name, int value);
void nvlist_add_descriptor_array(nvlist_t *nvl, const char *name, const int *value, size_t nitems);

void nvlist_append_bool_array(nvlist_t *nvl, const char *name, const bool value);
void nvlist_append_number_array(nvlist_t *nvl, const char *name, const uint64_t value);
void nvlist_append_string_array(nvlist_t *nvl, const char *name, const char * const value);
void nvlist_append_nvlist_array(nvlist_t *nvl, const char *name, const nvlist_t * const value);
void nvlist_append_descriptor_array(nvlist_t *nvl, const char *name, int value);

void nvlist_move_string(nvlist_t *nvl, const char *name, char *value);
void nvlist_move_nvlist(nvlist_t *nvl, const char *name, nvlist_t *value);
void nvlist_move_binary(nvlist_t *nvl, const char *name, void *value, size_t size);
void nvlist_move_bool_array(nvlist_t *nvl, const char *name, bool *value, size_t nitems);
void nvlist_move_string_array(nvlist_t *nvl, const char *name, char **value, size_t nitems);
void nvlist_move_nvlist_array(nvlist_t *nvl, const char *name, nvlist_t **value, size_t nitems);
void nvlist_move_number_array(nvlist_t *nvl, const char *name, uint64_t *value, size_t nitems);
void nvlist_move_descriptor(nvlist_t *nvl, const char *name, int value);
void nvlist_move_descriptor_array(nvlist_t *nvl, const char *name, int *value, size_t nitems);

bool			 nvlist_get_bool(const nvlist_t *nvl, const char *name);
uint64_t		 nvlist_get_number(const nvlist_t *nvl, const char *name);
const char		*nvlist_get_string(const nvlist_t *nvl, const char *name);
const nvlist_t		*nvlist_get_nvlist(const nvlist_t *nvl, const char *name);
const void		*nvlist_get_binary(const nvlist_t *nvl, const char *name, size_t *sizep);
const bool		*nvlist_get_bool_array(const nvlist_t *nvl, const char *name, size_t *nitemsp);
const uint64_t		*nvlist_get_number_array(const nvlist_t *nvl, const char *name, size_t *nitemsp);
const char * const	*nvlist_get_string_array(const nvlist_t *nvl, const char *name, size_t *nitemsp);
const nvlist_t * const	*nvlist_get_nvlist_array(const nvlist_t *nvl, const char *name, size_t *nitemsp);
int			 nvlist_get_descriptor(const nvlist_t *nvl, const char *name);
const int		*nvlist_get_descriptor_array(const nvlist_t *nvl, const char *name, size_t *nitemsp);

bool		  nvlist_take_bool(nvlist_t *nvl, const char *name);
uint64_t	  nvlist_take_number(nvlist_t *nvl, const char *name);
char		 *nvlist_take_string(nvlist_t *nvl, const char *name);
nvlist_t	 *nvlist_take_nvlist(nvlist_t *nvl, const char *name);
void		 *nvlist_take_binary(nvlist_t *nvl, const char *name, size_t *sizep);
bool		 *nvlist_take_bool_array(nvlist_t *nvl, const char *name, size_t *nitemsp);
uint64_t	 *nvlist_take_number_array(nvlist_t *nvl, const char *name, size_t *nitemsp);
char		**nvlist_take_string_array(nvlist_t *nvl, const char *name, size_t *nitemsp);
nvlist_t	**nvlist_take_nvlist_array(nvlist_t *nvl, const char *name, size_t *nitemsp);
int		  nvlist_take_descriptor(nvlist_t *nvl, const char *name);
int		 *nvlist_take_descriptor_array(nvlist_t *nvl, const char *name, size_t *nitemsp);

void nvlist_free(nvlist_t *nvl, const char *name);
void nvlist_free_type(nvlist_t *nvl, const char *name, int type);

void nvlist_free_null(nvlist_t *nvl, const char *name);
void nvlist_free_bool(nvlist_t *nvl, const char *name);
void nvlist_free_number(nvlist_t *nvl, const char *name);
void nvlist_free_string(nvlist_t *nvl, const char *name);
void nvlist_free_nvlist(nvlist_t *nvl, const char *name);
void nvlist_free_binary(nvlist_t *nvl, const char *name);
void nvlist_free_bool_array(nvlist_t *nvl, const char *name);
void nvlist_free_number_array(nvlist_t *nvl, const char *name);
void nvlist_free_string_array(nvlist_t *nvl, const char *name);
void nvlist_free_nvlist_array(nvlist_t *nvl, const char *name);
void nvlist_free_descriptor(nvlist_t *nvl, const char *name);
void nvlist_free_descriptor_array(nvlist_t *nvl, const char *name);

/*
 * capsa: nvlist_unpack() whose result owns the descriptors it names when
 * ownfds is true (closing them when destroyed).  For libcasper, whose
 * replies carry fds the host has just installed; not for other input.
 */
nvlist_t *__capsa_nvlist_unpack(const void *buf, size_t size, int flags, bool ownfds);

/*
 * capsa: called with the function's name ("nvlist_get_string") and the
 * missing name; prints "FUNC: missing NAME" to stderr and aborts.  It is a
 * weak symbol: a program may define its own, which must not return.
 */
void __capsa_nvlist_missing(const char *func, const char *name)
    __attribute__((__noreturn__));

#ifdef __cplusplus
}
#endif

#endif /* !_NV_H_ */
