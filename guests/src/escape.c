/*
 * escape: tries the known ways out of a capsa sandbox and prints one line per
 * attempt, "NAME: ok" (maybe followed by " (detail)") or
 * "NAME: errno=N (message)", for tests to match.  N is the host's WASI errno,
 * e.g. 76 for ENOTCAPABLE.
 *
 * Run it with a directory granted at /data that holds notes.txt and,
 * optionally, a symlink link-out pointing outside it.  Where the grant allows
 * it, it creates link-abs, link-rel and escape-created in /data and
 * overwrites the first byte of notes.txt with "x".  Always exits 0: the
 * verdict is in the output.
 */

#include <sys/capsicum.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

static void
report(const char *name, int rc)
{

	if (rc >= 0)
		printf("%s: ok\n", name);
	else
		printf("%s: errno=%d (%s)\n", name, errno, strerror(errno));
}

/* Raw WASI calls return their errno instead of setting it. */
static int
wasi(__wasi_errno_t error)
{

	if (error == 0)
		return (0);
	errno = error;
	return (-1);
}

/*
 * read(), write() and lseek() go to WASI directly: wasi-libc turns
 * ENOTCAPABLE into EBADF or ESPIPE there, hiding the host's answer.
 */
static int
raw_read(int fd)
{
	char c;
	__wasi_iovec_t iov = { (uint8_t *)&c, 1 };
	__wasi_size_t n;

	return (wasi(__wasi_fd_read(fd, &iov, 1, &n)));
}

static int
raw_write(int fd)
{
	__wasi_ciovec_t iov = { (const uint8_t *)"x", 1 };
	__wasi_size_t n;

	return (wasi(__wasi_fd_write(fd, &iov, 1, &n)));
}

static int
raw_seek(int fd)
{
	__wasi_filesize_t off;

	return (wasi(__wasi_fd_seek(fd, 0, __WASI_WHENCE_SET, &off)));
}

static void
try_open(const char *name, const char *path, int flags)
{
	int fd;

	fd = open(path, flags, 0644);
	report(name, fd);
	if (fd >= 0)
		close(fd);
}

/* Unlike open(), openat() hands the path to the host as it is. */
static void
try_openat(const char *name, int dirfd, const char *path, int flags)
{
	int fd;

	fd = openat(dirfd, path, flags, 0644);
	report(name, fd);
	if (fd >= 0)
		close(fd);
}

static void
try_symlink(const char *name, const char *target, const char *path)
{

	/* A link left by an earlier run would make this fail with EEXIST. */
	(void)unlink(path);
	report(name, symlink(target, path));
}

/* The preopened descriptor named `want`, or -1 with errno set. */
static int
preopen(const char *want)
{
	__wasi_prestat_t ps;
	char name[256];
	size_t len;
	int fd;

	for (fd = 3; __wasi_fd_prestat_get(fd, &ps) == 0; fd++) {
		len = ps.u.dir.pr_name_len;
		if (ps.tag != __WASI_PREOPENTYPE_DIR || len >= sizeof(name))
			continue;
		if (__wasi_fd_prestat_dir_name(fd, (uint8_t *)name, len) != 0)
			continue;
		/* Some hosts count a trailing NUL or slash in the name. */
		while (len > 1 && (name[len - 1] == '\0' || name[len - 1] == '/'))
			len--;
		name[len] = '\0';
		if (strcmp(name, want) == 0)
			return (fd);
	}
	errno = ENOENT;
	return (-1);
}

static void
paths(int data)
{

	try_open("open-abs", "/etc/passwd", O_RDONLY);
	try_open("open-dotdot", "/data/../etc/passwd", O_RDONLY);
	try_open("open-dotdot2", "/data/../../etc/passwd", O_RDONLY);
	try_openat("openat-abs", data, "/etc/passwd", O_RDONLY);
	try_openat("openat-dotdot", data, "../etc/passwd", O_RDONLY);
}

static void
symlinks(void)
{

	try_symlink("symlink-abs-create", "/etc/passwd", "/data/link-abs");
	try_open("symlink-abs-open", "/data/link-abs", O_RDONLY);
	try_symlink("symlink-rel-create", "../../etc/passwd", "/data/link-rel");
	try_open("symlink-rel-open", "/data/link-rel", O_RDONLY);
	try_open("link-out-open", "/data/link-out", O_RDONLY);
}

static void
writes(void)
{
	int fd, rc;

	/* Either step may be the one refused; both mean no write got through. */
	rc = fd = open("/data/notes.txt", O_WRONLY);
	if (fd >= 0) {
		rc = raw_write(fd);
		close(fd);
	}
	report("write-readonly", rc);
	try_open("create-file", "/data/escape-created", O_WRONLY | O_CREAT);
}

static void
rights(void)
{
	__wasi_fdstat_t before;
	cap_rights_t r;
	struct stat sb;
	int fd;

	fd = open("/data/notes.txt", O_RDONLY);
	report("open-notes", fd);
	if (fd < 0)
		return;
	report("fdstat-get", wasi(__wasi_fd_fdstat_get(fd, &before)));

	cap_rights_init(&r, CAP_READ);
	report("limit-read", cap_rights_limit(fd, &r));
	report("read-limited", raw_read(fd));
	report("fstat-limited", fstat(fd, &sb));
	report("seek-limited", raw_seek(fd));

	cap_rights_init(&r, CAP_READ, CAP_WRITE);
	report("widen-limit", cap_rights_limit(fd, &r));
	/* The SDK refuses the above itself; this asks the host directly. */
	report("widen-raw", wasi(__wasi_fd_fdstat_set_rights(fd,
	    before.fs_rights_base, before.fs_rights_inheriting)));
	if (cap_rights_get(fd, &r) == 0)
		printf("rights-after-widen: ok (0x%llx)\n",
		    (unsigned long long)r.cr_rights[0]);
	else
		report("rights-after-widen", -1);
	close(fd);
}

/* Rights belong to the descriptor, not to the number it sits at. */
static void
renumber(int data)
{
	cap_rights_t r;
	int d1, d2;

	d1 = openat(data, ".", O_RDONLY | O_DIRECTORY);
	d2 = openat(data, ".", O_RDONLY | O_DIRECTORY);
	if (d1 < 0 || d2 < 0) {
		report("renumber-setup", -1);
		return;
	}
	cap_rights_init(&r, CAP_FSTAT);
	report("renumber-limit", cap_rights_limit(d1, &r));
	report("renumber", wasi(__wasi_fd_renumber(d1, d2)));
	try_openat("renumber-open-through", d2, "notes.txt", O_RDONLY);
	close(d2);
}

static void
capmode(int data)
{
	unsigned int mode;
	__wasi_prestat_t ps;

	if (cap_getmode(&mode) == 0)
		printf("getmode-before: ok (mode=%u)\n", mode);
	else
		report("getmode-before", -1);
	report("cap_enter", cap_enter());
	if (cap_getmode(&mode) == 0)
		printf("getmode-after: ok (mode=%u)\n", mode);
	else
		report("getmode-after", -1);
	try_open("enter-open-preopen", "/data/notes.txt", O_RDONLY);
	try_open("enter-open-abs", "/etc/passwd", O_RDONLY);
	try_openat("enter-openat-dotdot", data, "../etc/passwd", O_RDONLY);
	report("enter-prestat", wasi(__wasi_fd_prestat_get(data, &ps)));
}

/*
 * Last, since it replaces the preopen: a read-only file renumbered over it
 * must not become a way to look names up.
 */
static void
renumber_preopen(int data)
{
	cap_rights_t r;
	int fd;

	fd = open("/data/notes.txt", O_RDONLY);
	if (fd < 0) {
		report("renumber-preopen-setup", -1);
		return;
	}
	cap_rights_init(&r, CAP_READ);
	(void)cap_rights_limit(fd, &r);
	report("renumber-preopen", wasi(__wasi_fd_renumber(fd, data)));
	try_open("renumber-preopen-open", "/data/notes.txt", O_RDONLY);
}

int
main(void)
{
	int data;

	/* Line by line, so a host that kills us still leaves what we saw. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	data = preopen("/data");
	report("preopen-data", data);
	paths(data);
	symlinks();
	writes();
	rights();
	renumber(data);
	capmode(data);
	renumber_preopen(data);
	return (0);
}
