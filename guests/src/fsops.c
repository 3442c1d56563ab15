/*
 * fsops OP A [B] ...: changes names in the granted tree, one operation after
 * another, for tests of what a guest may leave behind on a host mount:
 *
 *	mkdir PATH	symlink TARGET PATH	link FROM TO	rename FROM TO
 *
 * Paths are guest paths (e.g. /d/u/l).  Prints one line per operation,
 * "OP ARGS: ok" or "OP ARGS: errno=N (message)", N being the host's WASI
 * errno (76 is ENOTCAPABLE), and exits 0: the verdict is in the output.
 * An unknown operation or a missing argument exits 2.
 */

#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	const char *op, *a, *b;
	int i, rc;

	for (i = 1; i < argc; i += strcmp(op, "mkdir") == 0 ? 2 : 3) {
		op = argv[i];
		if (i + 1 >= argc || (strcmp(op, "mkdir") != 0 && i + 2 >= argc)) {
			fprintf(stderr, "fsops: %s: missing argument\n", op);
			return (2);
		}
		a = argv[i + 1];
		b = strcmp(op, "mkdir") == 0 ? "" : argv[i + 2];
		if (strcmp(op, "mkdir") == 0)
			rc = mkdir(a, 0755);
		else if (strcmp(op, "symlink") == 0)
			rc = symlink(a, b);
		else if (strcmp(op, "link") == 0)
			rc = link(a, b);
		else if (strcmp(op, "rename") == 0)
			rc = rename(a, b);
		else {
			fprintf(stderr, "fsops: unknown operation %s\n", op);
			return (2);
		}
		if (rc == 0)
			printf("%s %s%s%s: ok\n", op, a, *b ? " " : "", b);
		else
			printf("%s %s%s%s: errno=%d (%s)\n", op, a, *b ? " " : "",
			    b, errno, strerror(errno));
	}
	return (0);
}
