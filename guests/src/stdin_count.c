/*
 * stdin_count: reads stdin to its end in 64 KiB reads and prints how many
 * bytes came.  Measures how fast the host hands a guest its input.
 */

#include <stdio.h>
#include <unistd.h>

static char buf[64 * 1024];

int
main(void)
{
	long long total;
	ssize_t n;

	total = 0;
	while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0)
		total += n;
	if (n < 0) {
		perror("stdin_count: read");
		return (1);
	}
	printf("%lld\n", total);
	return (0);
}
