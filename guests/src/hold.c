/*
 * hold ADDRESS PORT: a client that stops reading, for the tests of
 * sockets under limits.
 *
 * Connects to ADDRESS:PORT (IPv4) through Casper's system.net after
 * cap_enter, sends one request line, prints "connected" and then never
 * reads: whatever the peer sends stays in the buffers between them, which
 * must stay bounded.  It holds the connection until its run ends (a wall
 * limit, a cancel, its executor's death).  Exits 1 if it cannot connect
 * ("Capabilities insufficient" for an address outside its limits).
 */

#include <sys/capsicum.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libcasper.h>
#include <casper/cap_net.h>

static void
die(const char *what)
{

	fprintf(stderr, "hold: %s: %s\n", what, strerror(errno));
	exit(1);
}

int
main(int argc, char *argv[])
{
	static const char line[] = "GET /flood HTTP/1.0\r\n\r\n";
	cap_channel_t *capcas, *capnet;
	struct sockaddr_in sin;
	int s;

	if (argc != 3) {
		fprintf(stderr, "usage: hold ADDRESS PORT\n");
		return (1);
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1) {
		fprintf(stderr, "hold: %s is not an IPv4 address\n", argv[1]);
		return (1);
	}

	capcas = cap_init();
	if (capcas == NULL)
		die("unable to contact Casper");
	capnet = cap_service_open(capcas, "system.net");
	if (capnet == NULL)
		die("unable to open system.net");
	cap_close(capcas);
	if (cap_enter() < 0)
		die("cap_enter");

	s = cap_connect(capnet, -1, (struct sockaddr *)&sin, sizeof(sin));
	if (s < 0)
		die("connect");
	if (write(s, line, sizeof(line) - 1) < 0)
		die("send");
	printf("connected\n");
	fflush(stdout);
	for (;;)
		sleep(1);
}
