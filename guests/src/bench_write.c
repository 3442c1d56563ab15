/*
 * bench_write [MIB]: writes MIB MiB (default 64) to stdout in 4 KiB write()
 * calls, so the host sees one fd_write per 4 KiB: a measure of per-call cost.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define	CHUNK	4096

int
main(int argc, char *argv[])
{
	static char buf[CHUNK];
	long long i, n;

	n = (argc > 1 ? atoll(argv[1]) : 64) * (1024 * 1024 / CHUNK);
	memset(buf, 'x', sizeof(buf));
	for (i = 0; i < n; i++) {
		if (write(STDOUT_FILENO, buf, sizeof(buf)) != sizeof(buf)) {
			perror("bench_write: write");
			return (1);
		}
	}
	return (0);
}
