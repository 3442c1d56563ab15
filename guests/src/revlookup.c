/*
 * revlookup [ADDRESS]: the reverse lookup from the BSDCan 2016 talk
 * "Capsicum and Casper", through Casper's system.dns.
 *
 * Opens system.dns, drops the Casper channel, limits the service to reverse
 * lookups (ADDR2NAME) of AF_INET and AF_INET6 addresses, enters capability
 * mode, and prints the name of ADDRESS (default 127.0.0.1):
 *
 *	127.0.0.1: localhost
 *
 * It then shows the limit at work: a forward lookup of that name (or of
 * "localhost") is refused by the service, with NO_RECOVERY and (capsa's
 * addition) errno ENOTCAPABLE:
 *
 *	gethostbyname(localhost): refused: h_errno=3 (Unknown server error), errno=76 (Capabilities insufficient)
 *
 * Exits 0 if the reverse lookup succeeded and the forward one was refused,
 * 1 otherwise.  Built without WITH_CASPER it calls the libc mock, which has
 * no resolver in wasi-libc, so both lookups fail.
 */

#include <sys/capsicum.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libcasper.h>
#include <casper/cap_dns.h>

static void
die(const char *what)
{

	fprintf(stderr, "revlookup: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A failed lookup's word: "refused" when the service's limits refused it. */
static const char *
outcome(void)
{

	return (errno == ENOTCAPABLE ? "refused" : "failed");
}

int
main(int argc, char *argv[])
{
	cap_channel_t *capcas, *capdns;
	const char *types[1];
	int families[2];
	union {
		struct in_addr	v4;
		struct in6_addr	v6;
	} addr;
	struct hostent *hp;
	const char *addrstr;
	char *name;
	socklen_t len;
	int af, status;

	if (argc > 2) {
		fprintf(stderr, "usage: revlookup [address]\n");
		return (1);
	}
	addrstr = argc > 1 ? argv[1] : "127.0.0.1";
	if (inet_pton(AF_INET, addrstr, &addr.v4) == 1) {
		af = AF_INET;
		len = sizeof(addr.v4);
	} else if (inet_pton(AF_INET6, addrstr, &addr.v6) == 1) {
		af = AF_INET6;
		len = sizeof(addr.v6);
	} else {
		fprintf(stderr, "revlookup: %s: not an IPv4 or IPv6 address\n",
		    addrstr);
		return (1);
	}

	/* Open system.dns; the Casper channel itself is no longer needed. */
	capcas = cap_init();
	if (capcas == NULL)
		die("unable to contact Casper");
	capdns = cap_service_open(capcas, "system.dns");
	cap_close(capcas);
	if (capdns == NULL)
		die("unable to open system.dns");

	/* Limit system.dns to reverse DNS lookups of IPv4 and IPv6. */
	types[0] = "ADDR2NAME";
	if (cap_dns_type_limit(capdns, types, 1) < 0)
		die("unable to limit access to system.dns service");
	families[0] = AF_INET;
	families[1] = AF_INET6;
	if (cap_dns_family_limit(capdns, families, 2) < 0)
		die("unable to limit access to system.dns service");

	if (cap_enter() < 0)
		die("unable to enter capability mode");

	status = 0;
	errno = 0;
	hp = cap_gethostbyaddr(capdns, &addr, len, af);
	if (hp == NULL) {
		printf("%s: reverse lookup %s: h_errno=%d (%s)\n", addrstr,
		    outcome(), h_errno, hstrerror(h_errno));
		status = 1;
		name = strdup("localhost");
	} else {
		printf("%s: %s\n", addrstr, hp->h_name);
		name = strdup(hp->h_name);
	}
	if (name == NULL)
		die("strdup");

	/* The service now refuses forward lookups. */
	h_errno = 0;
	errno = 0;
	hp = cap_gethostbyname(capdns, name);
	if (hp == NULL) {
		printf("gethostbyname(%s): %s: h_errno=%d (%s), errno=%d (%s)\n",
		    name, outcome(), h_errno, hstrerror(h_errno), errno,
		    errno != 0 ? strerror(errno) : "none");
	} else {
		printf("gethostbyname(%s): not refused: %s\n", name,
		    hp->h_name);
		status = 1;
	}

	free(name);
	cap_close(capdns);
	return (status);
}
