/*
 * Casper's system.fileargs client: FreeBSD's
 * lib/libcasper/services/cap_fileargs client half (with operations, 2021),
 * speaking the same requests and reading the same replies.
 *
 * Limits, set once (NV_FLAG_NO_UNIQUE): {flags: number (open flags),
 *   operations: number (FA_*), [cap_rights: binary cap_rights_t],
 *   [mode: number, with O_CREAT], NAME: null for every allowed name}
 * Requests (NV_FLAG_NO_UNIQUE): {cmd: "open" | "lstat" | "realpath",
 *   name: string}
 * Replies:
 *   open      {error, cmd: "open" | "cache", fd: descriptor, ...}
 *   lstat     {error, cmd: "lstat" | "cache", stat: binary, ...}
 *   realpath  {error, realpath: string}
 *   With cmd "cache" the reply also carries, for names the service opened
 *   ahead, NAME: {[fd: descriptor], [stat: binary]}; they are kept and
 *   handed out by later calls for those names without asking again.
 * "stat" is the guest's struct stat (wasi-libc's layout, 144 bytes) or,
 * capsa's allowance, a WASI __wasi_filestat_t (64 bytes) converted here as
 * wasi-libc's fstat() would.
 */

#ifndef WITH_CASPER
#define WITH_CASPER
#endif

#include <sys/types.h>
#include <sys/capsicum.h>
#include <sys/nv.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

#include <libcasper.h>
#include <casper/cap_fileargs.h>

#include "casper_impl.h"

#define	FILEARGS_MAGIC	0xFA00FA00

struct fileargs {
	uint32_t	 fa_magic;
	nvlist_t	*fa_cache;	/* NAME: {fd, stat} the service sent ahead */
	cap_channel_t	*fa_chann;	/* NULL: no names, nothing allowed */
	int		 fa_fdflags;
};

/* Copies a "stat" binary into *sb; EPROTO for a size of neither layout. */
static int
stat_unpack(const void *buf, size_t size, struct stat *sb)
{
	__wasi_filestat_t fs;

	if (size == sizeof(*sb)) {
		memcpy(sb, buf, size);
		return (0);
	}
	if (size != sizeof(fs))
		return (EPROTO);
	memcpy(&fs, buf, sizeof(fs));
	memset(sb, 0, sizeof(*sb));
	sb->st_dev = fs.dev;
	sb->st_ino = fs.ino;
	sb->st_nlink = fs.nlink;
	sb->st_size = (off_t)fs.size;
	sb->st_atim.tv_sec = (time_t)(fs.atim / 1000000000);
	sb->st_atim.tv_nsec = (long)(fs.atim % 1000000000);
	sb->st_mtim.tv_sec = (time_t)(fs.mtim / 1000000000);
	sb->st_mtim.tv_nsec = (long)(fs.mtim % 1000000000);
	sb->st_ctim.tv_sec = (time_t)(fs.ctim / 1000000000);
	sb->st_ctim.tv_nsec = (long)(fs.ctim % 1000000000);
	switch (fs.filetype) {
	case __WASI_FILETYPE_BLOCK_DEVICE:
		sb->st_mode = S_IFBLK;
		break;
	case __WASI_FILETYPE_CHARACTER_DEVICE:
		sb->st_mode = S_IFCHR;
		break;
	case __WASI_FILETYPE_DIRECTORY:
		sb->st_mode = S_IFDIR;
		break;
	case __WASI_FILETYPE_REGULAR_FILE:
		sb->st_mode = S_IFREG;
		break;
	case __WASI_FILETYPE_SOCKET_DGRAM:
	case __WASI_FILETYPE_SOCKET_STREAM:
		sb->st_mode = S_IFSOCK;
		break;
	case __WASI_FILETYPE_SYMBOLIC_LINK:
		sb->st_mode = S_IFLNK;
		break;
	default:
		break;
	}
	return (0);
}

static int
fileargs_get_lstat_cache(fileargs_t *fa, const char *name, struct stat *sb)
{
	const nvlist_t *nvl;
	const void *buf;
	size_t size;

	if (fa->fa_cache == NULL || !nvlist_exists_nvlist(fa->fa_cache, name))
		return (-1);
	nvl = nvlist_get_nvlist(fa->fa_cache, name);
	if (!nvlist_exists_binary(nvl, "stat"))
		return (-1);
	buf = nvlist_get_binary(nvl, "stat", &size);
	if (stat_unpack(buf, size, sb) != 0)
		return (-1);
	return (0);
}

static int
fileargs_get_fd_cache(fileargs_t *fa, const char *name)
{
	nvlist_t *tnvl;
	int fd;

	if (fa->fa_cache == NULL || (fa->fa_fdflags & O_CREAT) != 0)
		return (-1);
	if (!nvlist_exists_nvlist(fa->fa_cache, name))
		return (-1);
	/* A cached descriptor is handed out once. */
	tnvl = nvlist_take_nvlist(fa->fa_cache, name);
	fd = -1;
	if (nvlist_exists_descriptor(tnvl, "fd"))
		fd = nvlist_take_descriptor(tnvl, "fd");
	nvlist_destroy(tnvl);
	/* FreeBSD sets FD_CLOEXEC from the flags here; WASI has no exec. */
	return (fd);
}

/* Keeps a "cache" reply (its descriptors close when it is destroyed). */
static void
fileargs_set_cache(fileargs_t *fa, nvlist_t *nvl)
{

	if (fa->fa_cache != NULL)
		nvlist_destroy(fa->fa_cache);
	fa->fa_cache = nvl;
}

/* Sends {cmd, name}; the reply, or NULL with errno. */
static nvlist_t *
fileargs_fetch(fileargs_t *fa, const char *name, const char *cmd)
{
	nvlist_t *nvl;
	int error;

	nvl = nvlist_create(NV_FLAG_NO_UNIQUE);
	nvlist_add_string(nvl, "cmd", cmd);
	nvlist_add_string(nvl, "name", name);
	nvl = cap_xfer_nvlist(fa->fa_chann, nvl);
	if (nvl == NULL)
		return (NULL);
	error = casper_reply_error(nvl);
	if (error != 0) {
		nvlist_destroy(nvl);
		errno = error;
		return (NULL);
	}
	return (nvl);
}

/* True if the reply says "cache" (and drops its "cmd"). */
static bool
fileargs_take_cmd_cache(nvlist_t *nvl)
{
	char *cmd;
	bool cache;

	if (!nvlist_exists_string(nvl, "cmd"))
		return (false);
	cmd = nvlist_take_string(nvl, "cmd");
	cache = cmd != NULL && strcmp(cmd, "cache") == 0;
	free(cmd);
	return (cache);
}

static nvlist_t *
fileargs_create_limit(int argc, const char * const *argv, int flags,
    mode_t mode, cap_rights_t *rightsp, int operations)
{
	nvlist_t *limits;
	int i;

	limits = nvlist_create(NV_FLAG_NO_UNIQUE);
	if (limits == NULL)
		return (NULL);
	nvlist_add_number(limits, "flags", (uint64_t)flags);
	nvlist_add_number(limits, "operations", (uint64_t)operations);
	if (rightsp != NULL)
		nvlist_add_binary(limits, "cap_rights", rightsp,
		    sizeof(*rightsp));
	if ((flags & O_CREAT) != 0)
		nvlist_add_number(limits, "mode", (uint64_t)mode);
	for (i = 0; i < argc; i++) {
		if (strlen(argv[i]) >= PATH_MAX) {
			nvlist_destroy(limits);
			errno = ENAMETOOLONG;
			return (NULL);
		}
		nvlist_add_null(limits, argv[i]);
	}
	return (limits);
}

static fileargs_t *
fileargs_create(cap_channel_t *chan, int fdflags)
{
	fileargs_t *fa;

	fa = malloc(sizeof(*fa));
	if (fa != NULL) {
		fa->fa_cache = NULL;
		fa->fa_chann = chan;
		fa->fa_fdflags = fdflags;
		fa->fa_magic = FILEARGS_MAGIC;
	}
	return (fa);
}

fileargs_t *
fileargs_init(int argc, char *argv[], int flags, mode_t mode,
    cap_rights_t *rightsp, int operations)
{
	nvlist_t *limits;

	if (argc <= 0 || argv == NULL)
		return (fileargs_create(NULL, 0));
	limits = fileargs_create_limit(argc, (const char * const *)argv, flags,
	    mode, rightsp, operations);
	if (limits == NULL)
		return (NULL);
	return (fileargs_initnv(limits));
}

fileargs_t *
fileargs_cinit(cap_channel_t *cas, int argc, char *argv[], int flags,
    mode_t mode, cap_rights_t *rightsp, int operations)
{
	nvlist_t *limits;

	if (argc <= 0 || argv == NULL)
		return (fileargs_create(NULL, 0));
	limits = fileargs_create_limit(argc, (const char * const *)argv, flags,
	    mode, rightsp, operations);
	if (limits == NULL)
		return (NULL);
	return (fileargs_cinitnv(cas, limits));
}

fileargs_t *
fileargs_initnv(nvlist_t *limits)
{
	cap_channel_t *cas;
	fileargs_t *fa;
	int serrno;

	if (limits == NULL)
		return (fileargs_create(NULL, 0));
	cas = cap_init();
	if (cas == NULL) {
		nvlist_destroy(limits);
		return (NULL);
	}
	fa = fileargs_cinitnv(cas, limits);
	serrno = errno;
	cap_close(cas);
	errno = serrno;
	return (fa);
}

fileargs_t *
fileargs_cinitnv(cap_channel_t *cas, nvlist_t *limits)
{
	cap_channel_t *chann;
	fileargs_t *fa;
	int flags, serrno;

	if (limits == NULL)
		return (fileargs_create(NULL, 0));
	if (cas == NULL || !nvlist_exists_number(limits, "flags") ||
	    !nvlist_exists_number(limits, "operations")) {
		nvlist_destroy(limits);
		errno = EINVAL;
		return (NULL);
	}
	chann = cap_service_open(cas, "system.fileargs");
	if (chann == NULL) {
		nvlist_destroy(limits);
		return (NULL);
	}
	flags = (int)nvlist_get_number(limits, "flags");
	/* cap_limit_set() consumes the limits. */
	if (cap_limit_set(chann, limits) < 0)
		goto fail;
	fa = fileargs_create(chann, flags);
	if (fa == NULL)
		goto fail;
	return (fa);
fail:
	serrno = errno;
	cap_close(chann);
	errno = serrno;
	return (NULL);
}

int
fileargs_open(fileargs_t *fa, const char *name)
{
	nvlist_t *nvl;
	int fd;

	if (fa == NULL || fa->fa_magic != FILEARGS_MAGIC || name == NULL) {
		errno = EINVAL;
		return (-1);
	}
	if (fa->fa_chann == NULL) {
		errno = ENOTCAPABLE;
		return (-1);
	}
	fd = fileargs_get_fd_cache(fa, name);
	if (fd != -1)
		return (fd);

	nvl = fileargs_fetch(fa, name, "open");
	if (nvl == NULL)
		return (-1);
	if (!nvlist_exists_descriptor(nvl, "fd")) {
		nvlist_destroy(nvl);
		errno = EPROTO;
		return (-1);
	}
	fd = nvlist_take_descriptor(nvl, "fd");
	if (fileargs_take_cmd_cache(nvl))
		fileargs_set_cache(fa, nvl);
	else
		nvlist_destroy(nvl);
	return (fd);
}

FILE *
fileargs_fopen(fileargs_t *fa, const char *name, const char *mode)
{
	FILE *fp;
	int fd, serrno;

	if ((fd = fileargs_open(fa, name)) < 0)
		return (NULL);
	if ((fp = fdopen(fd, mode)) == NULL) {
		serrno = errno;
		close(fd);
		errno = serrno;
	}
	return (fp);
}

int
fileargs_lstat(fileargs_t *fa, const char *name, struct stat *sb)
{
	const void *buf;
	nvlist_t *nvl;
	size_t size;
	int error;

	if (fa == NULL || fa->fa_magic != FILEARGS_MAGIC || name == NULL) {
		errno = EINVAL;
		return (-1);
	}
	if (sb == NULL) {
		errno = EFAULT;
		return (-1);
	}
	if (fa->fa_chann == NULL) {
		errno = ENOTCAPABLE;
		return (-1);
	}
	if (fileargs_get_lstat_cache(fa, name, sb) != -1)
		return (0);

	nvl = fileargs_fetch(fa, name, "lstat");
	if (nvl == NULL)
		return (-1);
	error = EPROTO;
	if (nvlist_exists_binary(nvl, "stat")) {
		buf = nvlist_get_binary(nvl, "stat", &size);
		error = stat_unpack(buf, size, sb);
	}
	if (error != 0) {
		nvlist_destroy(nvl);
		errno = error;
		return (-1);
	}
	if (fileargs_take_cmd_cache(nvl))
		fileargs_set_cache(fa, nvl);
	else
		nvlist_destroy(nvl);
	return (0);
}

char *
fileargs_realpath(fileargs_t *fa, const char *pathname, char *reserved_path)
{
	const char *path;
	nvlist_t *nvl;
	char *ret;

	if (fa == NULL || fa->fa_magic != FILEARGS_MAGIC || pathname == NULL) {
		errno = EINVAL;
		return (NULL);
	}
	if (fa->fa_chann == NULL) {
		errno = ENOTCAPABLE;
		return (NULL);
	}
	nvl = fileargs_fetch(fa, pathname, "realpath");
	if (nvl == NULL)
		return (NULL);
	if (!nvlist_exists_string(nvl, "realpath")) {
		nvlist_destroy(nvl);
		errno = EPROTO;
		return (NULL);
	}
	path = nvlist_get_string(nvl, "realpath");
	if (reserved_path != NULL) {
		/* realpath(3): reserved_path holds PATH_MAX bytes. */
		if (strlcpy(reserved_path, path, PATH_MAX) >= PATH_MAX) {
			nvlist_destroy(nvl);
			errno = ENAMETOOLONG;
			return (NULL);
		}
		ret = reserved_path;
	} else if ((ret = strdup(path)) == NULL) {
		nvlist_destroy(nvl);
		errno = ENOMEM;
		return (NULL);
	}
	nvlist_destroy(nvl);
	return (ret);
}

void
fileargs_free(fileargs_t *fa)
{

	if (fa == NULL || fa->fa_magic != FILEARGS_MAGIC)
		return;
	if (fa->fa_cache != NULL)
		nvlist_destroy(fa->fa_cache);
	if (fa->fa_chann != NULL)
		cap_close(fa->fa_chann);
	explicit_bzero(&fa->fa_magic, sizeof(fa->fa_magic));
	free(fa);
}

cap_channel_t *
fileargs_unwrap(fileargs_t *fa, int *flags)
{
	cap_channel_t *chan;

	if (fa == NULL || fa->fa_magic != FILEARGS_MAGIC)
		return (NULL);
	chan = fa->fa_chann;
	if (flags != NULL)
		*flags = fa->fa_fdflags;
	if (fa->fa_cache != NULL)
		nvlist_destroy(fa->fa_cache);
	explicit_bzero(&fa->fa_magic, sizeof(fa->fa_magic));
	free(fa);
	return (chan);
}

fileargs_t *
fileargs_wrap(cap_channel_t *chan, int fdflags)
{

	if (chan == NULL)
		return (NULL);
	return (fileargs_create(chan, fdflags));
}
