/*
 * cat [FILE ...]: copies each FILE ("-" or none: stdin) to stdout, like cat(1).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define	READ_ERROR	(-1)
#define	WRITE_ERROR	(-2)

static char buf[64 * 1024];

/* Returns 0, READ_ERROR or WRITE_ERROR, with errno set. */
static int
copy(int fd)
{
	ssize_t n, off, w;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (off = 0; off < n; off += w) {
			if ((w = write(STDOUT_FILENO, buf + off, n - off)) < 0)
				return (WRITE_ERROR);
		}
	}
	return (n < 0 ? READ_ERROR : 0);
}

int
main(int argc, char *argv[])
{
	const char *path;
	int fd, i, error, status;

	status = 0;
	for (i = 1; i < argc || i == 1; i++) {
		path = i < argc ? argv[i] : "-";
		if (strcmp(path, "-") == 0) {
			fd = STDIN_FILENO;
			path = "stdin";
		} else if ((fd = open(path, O_RDONLY)) < 0) {
			fprintf(stderr, "cat: %s: %s\n", path, strerror(errno));
			status = 1;
			continue;
		}
		error = copy(fd);
		if (error == WRITE_ERROR) {
			/* Nothing more can reach stdout; stop. */
			fprintf(stderr, "cat: stdout: %s\n", strerror(errno));
			return (1);
		}
		if (error == READ_ERROR) {
			fprintf(stderr, "cat: %s: %s\n", path, strerror(errno));
			status = 1;
		}
		if (fd != STDIN_FILENO)
			close(fd);
	}
	return (status);
}
