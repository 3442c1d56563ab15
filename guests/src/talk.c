/*
 * The Casper example of the BSDCan 2016 talk and the Casper issue, as written there, in a main().
 * It builds unmodified against guests/sdk: that is the point of this file.
 */
#include <sys/capsicum.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <libcasper.h>
#include <casper/cap_dns.h>

int
main(int argc, char *argv[])
{
	struct in_addr addr;

	inet_pton(AF_INET, argc > 1 ? argv[1] : "127.0.0.1", &addr);

	cap_channel_t *capcas = cap_init();
	cap_channel_t *capdns = cap_service_open(capcas, "system.dns");
	cap_close(capcas);
	const char *types[] = { "ADDR2NAME" };
	int families[] = { AF_INET, AF_INET6 };
	cap_dns_type_limit(capdns, types, 1);
	cap_dns_family_limit(capdns, families, 2);
	cap_enter();
	struct hostent *hp = cap_gethostbyaddr(capdns, &addr, 4, AF_INET);   // allowed
	/* cap_gethostbyname(capdns, "example.org") now fails: NAME2ADDR was limited away */

	printf("%s\n", hp != NULL ? hp->h_name : "(not found)");
	printf("gethostbyname: %s\n", cap_gethostbyname(capdns, "example.org") == NULL ? "refused" : "allowed");
	return (0);
}
