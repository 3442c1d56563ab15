/*
 * echod: the seed's style of network program. It does not look for a
 * socket: its argdata names it,
 *
 *	argdata:
 *	  listener: !socket { bind: 127.0.0.1:12345 }
 *	  greeting: "hello"       (optional)
 *
 * It enters capability mode at once (the listener is all it needs), then
 * accepts one connection at a time, writes the greeting line, and echoes
 * what it receives until the peer closes. After "count" connections (an
 * int in argdata; default: forever) it exits 0.
 */
#include <argdata.h>
#include <program.h>
#include <sys/capsicum.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
program_main(const argdata_t *ad)
{
	int lfd = -1;
	long count = -1;
	const char *greeting = NULL;
	argdata_map_iterator_t it;
	const argdata_t *key, *value;

	argdata_map_iterate(ad, &it);
	while (argdata_map_get(&it, &key, &value)) {
		const char *k;
		if (argdata_get_str_c(key, &k) == 0) {
			if (strcmp(k, "listener") == 0)
				argdata_get_fd(value, &lfd);
			else if (strcmp(k, "greeting") == 0)
				argdata_get_str_c(value, &greeting);
			else if (strcmp(k, "count") == 0)
				argdata_get_int(value, &count);
		}
		argdata_map_next(&it);
	}
	if (lfd < 0) {
		fprintf(stderr, "echod: argdata has no listener: !socket\n");
		exit(2);
	}
	if (cap_enter() != 0) {
		perror("echod: cap_enter");
		exit(1);
	}
	for (long n = 0; count < 0 || n < count; n++) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			perror("echod: accept");
			exit(1);
		}
		if (greeting) {
			send(fd, greeting, strlen(greeting), 0);
			send(fd, "\n", 1, 0);
		}
		char buf[4096];
		ssize_t r;
		while ((r = recv(fd, buf, sizeof buf, 0)) > 0) {
			for (ssize_t off = 0; off < r;) {
				ssize_t w = send(fd, buf + off, (size_t)(r - off), 0);
				if (w <= 0)
					break;
				off += w;
			}
		}
		close(fd);
	}
	exit(0);
}
