/*
 * Casper's system.fileargs client (FreeBSD's cap_fileargs(3)) for capsa
 * guests: open the files named on the command line after cap_enter().
 *
 *	fa = fileargs_init(argc, argv, O_RDONLY, 0, &rights, FA_OPEN);
 *	cap_enter();
 *	fd = fileargs_open(fa, argv[i]);
 *
 * fileargs_init() opens a system.fileargs channel (cap_init() +
 * cap_service_open(), so it must come before cap_enter()) and limits it, once
 * and for good, to the listed names, the open flags and mode, the rights
 * every opened descriptor gets (cap_rights_limit) and the operations
 * (FA_OPEN, FA_LSTAT, FA_REALPATH).  Anything else fails with ENOTCAPABLE.
 * With argc == 0 every call fails with ENOTCAPABLE.  Flags are the guest's
 * own (wasi-libc's O_*); paths are resolved in the guest's filesystem.
 *
 * Without WITH_CASPER (or HAVE_CASPER), "mock mode" as on FreeBSD:
 * fileargs_open is open(name, flags, mode), fileargs_fopen fopen,
 * fileargs_lstat lstat, and nothing is enforced; fileargs_realpath is a stub
 * that fails with NULL and errno ENOSYS, since wasi-libc has no realpath().
 */

#ifndef _FILEARGS_H_
#define _FILEARGS_H_

#ifdef HAVE_CASPER
#ifndef WITH_CASPER
#define WITH_CASPER
#endif
#endif

#include <sys/types.h>
#include <sys/capsicum.h>
#include <sys/nv.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <libcasper.h>

#define	FA_OPEN		1
#define	FA_LSTAT	2
#define	FA_REALPATH	4

#ifdef WITH_CASPER

struct fileargs;
typedef struct fileargs fileargs_t;

#ifdef __cplusplus
extern "C" {
#endif

fileargs_t *fileargs_init(int argc, char *argv[], int flags, mode_t mode,
    cap_rights_t *rightsp, int operations);
fileargs_t *fileargs_cinit(cap_channel_t *cas, int argc, char *argv[],
    int flags, mode_t mode, cap_rights_t *rightsp, int operations);
fileargs_t *fileargs_initnv(nvlist_t *limits);
fileargs_t *fileargs_cinitnv(cap_channel_t *cas, nvlist_t *limits);
int fileargs_lstat(fileargs_t *fa, const char *name, struct stat *sb);
int fileargs_open(fileargs_t *fa, const char *name);
char *fileargs_realpath(fileargs_t *fa, const char *pathname,
    char *reserved_path);
void fileargs_free(fileargs_t *fa);
FILE *fileargs_fopen(fileargs_t *fa, const char *name, const char *mode);

fileargs_t *fileargs_wrap(cap_channel_t *chan, int fdflags);
cap_channel_t *fileargs_unwrap(fileargs_t *fa, int *fdflags);

#ifdef __cplusplus
}
#endif

#else /* !WITH_CASPER */

#include <errno.h>

typedef struct fileargs {
	int	fa_flags;
	mode_t	fa_mode;
} fileargs_t;

static inline fileargs_t *
fileargs_init(int argc, char *argv[], int flags, mode_t mode,
    cap_rights_t *rightsp, int operations)
{
	fileargs_t *fa;

	(void)argc, (void)argv, (void)rightsp, (void)operations;
	fa = (fileargs_t *)malloc(sizeof(*fa));
	if (fa != NULL) {
		fa->fa_flags = flags;
		fa->fa_mode = mode;
	}
	return (fa);
}

static inline fileargs_t *
fileargs_cinit(cap_channel_t *cas, int argc, char *argv[], int flags,
    mode_t mode, cap_rights_t *rightsp, int operations)
{

	(void)cas;
	return (fileargs_init(argc, argv, flags, mode, rightsp, operations));
}

static inline fileargs_t *
fileargs_initnv(nvlist_t *limits)
{
	fileargs_t *fa;
	int flags;
	mode_t mode;

	flags = nvlist_exists_number(limits, "flags") ?
	    (int)nvlist_get_number(limits, "flags") : 0;
	mode = nvlist_exists_number(limits, "mode") ?
	    (mode_t)nvlist_get_number(limits, "mode") : 0;
	fa = fileargs_init(0, NULL, flags, mode, NULL, 0);
	nvlist_destroy(limits);
	return (fa);
}

static inline fileargs_t *
fileargs_cinitnv(cap_channel_t *cas, nvlist_t *limits)
{

	(void)cas;
	return (fileargs_initnv(limits));
}

static inline int
fileargs_lstat(fileargs_t *fa, const char *name, struct stat *sb)
{

	(void)fa;
	return (lstat(name, sb));
}

static inline int
fileargs_open(fileargs_t *fa, const char *name)
{

	return (open(name, fa->fa_flags, fa->fa_mode));
}

/* wasi-libc declares realpath() but has none: a stub. */
static inline char *
fileargs_realpath(fileargs_t *fa, const char *pathname, char *reserved_path)
{

	(void)fa, (void)pathname, (void)reserved_path;
	errno = ENOSYS;
	return (NULL);
}

static inline FILE *
fileargs_fopen(fileargs_t *fa, const char *name, const char *mode)
{

	(void)fa;
	return (fopen(name, mode));
}

static inline void
fileargs_free(fileargs_t *fa)
{

	free(fa);
}

static inline fileargs_t *
fileargs_wrap(cap_channel_t *chan, int fdflags)
{

	cap_close(chan);
	return (fileargs_init(0, NULL, fdflags, 0, NULL, 0));
}

static inline cap_channel_t *
fileargs_unwrap(fileargs_t *fa, int *fdflags)
{

	if (fdflags != NULL)
		*fdflags = fa->fa_flags;
	fileargs_free(fa);
	return (cap_init());
}

#endif /* WITH_CASPER */

#endif /* !_FILEARGS_H_ */
