/*
 * bench_files [DIR [COUNT [FILES]]]: COUNT times (default 20000) opens, reads
 * and closes DIR/f(i % FILES) (default /data, 100 files), then prints the
 * bytes read: a measure of path_open and per-descriptor bookkeeping.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	static char buf[64 * 1024];
	const char *dir;
	char path[1024];
	long count, files, i;
	long long total;
	ssize_t n;
	int fd;

	dir = argc > 1 ? argv[1] : "/data";
	count = argc > 2 ? atol(argv[2]) : 20000;
	files = argc > 3 ? atol(argv[3]) : 100;
	if (files < 1)
		files = 1;

	total = 0;
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/f%ld", dir, i % files);
		if ((fd = open(path, O_RDONLY)) < 0) {
			fprintf(stderr, "bench_files: %s: %s\n", path,
			    strerror(errno));
			return (1);
		}
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			total += n;
		if (n < 0) {
			fprintf(stderr, "bench_files: %s: %s\n", path,
			    strerror(errno));
			return (1);
		}
		close(fd);
	}
	printf("%lld\n", total);
	return (0);
}
