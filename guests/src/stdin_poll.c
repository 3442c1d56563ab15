/*
 * stdin_poll: says whether stdin is readable without waiting, then waits
 * for it with poll(2) and copies what comes to stdout up to its end.  Each
 * step is one line, flushed, so that a host can watch them.
 */

#include <poll.h>
#include <stdio.h>
#include <unistd.h>

int
main(void)
{
	struct pollfd p;
	char buf[4096];
	ssize_t n;
	int r;

	p.fd = STDIN_FILENO;
	p.events = POLLIN;
	p.revents = 0;
	r = poll(&p, 1, 0);
	printf("now: %d\n", r);
	fflush(stdout);
	p.revents = 0;
	r = poll(&p, 1, -1);
	printf("waited: %d %s\n", r, (p.revents & POLLIN) ? "POLLIN" : "-");
	fflush(stdout);
	while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0) {
		fwrite(buf, 1, (size_t)n, stdout);
		fflush(stdout);
	}
	printf("%s\n", n == 0 ? "eof" : "error");
	return (0);
}
