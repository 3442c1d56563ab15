/*
 * Casper's system.dns client (FreeBSD's cap_dns(3)) for capsa guests.
 *
 * With WITH_CASPER defined (or HAVE_CASPER), the calls below send libcasper
 * requests over a channel from cap_service_open(chan, "system.dns"), exactly
 * as FreeBSD's libcap_dns does; link with libcapsa.a.  Without it they map
 * to libc, as FreeBSD's header does ("mock mode"), except that wasi-libc has
 * no resolver: there each lookup is a stub that fails (gethostby*: NULL with
 * h_errno NO_RECOVERY; getaddrinfo/getnameinfo: EAI_SYSTEM) with errno
 * ENOSYS, and the limit calls succeed and enforce nothing.
 *
 * Limits narrow only (the service's limit function decides):
 *   cap_dns_type_limit(chan, types, n)      "type%u" strings: "NAME2ADDR"
 *       (gethostbyname*, getaddrinfo) and/or "ADDR2NAME" (gethostbyaddr,
 *       getnameinfo); FreeBSD's legacy "NAME"/"ADDR" are accepted too;
 *   cap_dns_family_limit(chan, families, n) "family%u" numbers (AF_INET,
 *       AF_INET6: wasi-libc's values, 1 and 2).  With any family limit,
 *       AF_UNSPEC lookups (getaddrinfo without hints) are refused;
 *   cap_dns_host_limit(chan, hosts, n)      capsa's extension, not FreeBSD's:
 *       "host%u" strings, the host names forward lookups may ask for.
 * Each replaces its own keys and keeps the others (limit_get, edit,
 * limit_set).  A refused lookup fails with NO_RECOVERY (3), in h_errno for
 * gethostby*, as the return value of cap_getaddrinfo/cap_getnameinfo (where
 * 3 is numerically EAI_BADFLAGS, as on FreeBSD).
 */

#ifndef _CAP_DNS_H_
#define _CAP_DNS_H_

#ifdef HAVE_CASPER
#ifndef WITH_CASPER
#define WITH_CASPER
#endif
#endif

#include <sys/types.h>
#include <sys/socket.h>		/* socklen_t */
#include <stddef.h>

#include <netdb.h>
#include <libcasper.h>

struct addrinfo;
struct hostent;
struct sockaddr;

#ifdef WITH_CASPER

#ifdef __cplusplus
extern "C" {
#endif

struct hostent *cap_gethostbyname(cap_channel_t *chan, const char *name);
struct hostent *cap_gethostbyname2(cap_channel_t *chan, const char *name,
    int af);
struct hostent *cap_gethostbyaddr(cap_channel_t *chan, const void *addr,
    socklen_t len, int af);

int cap_getaddrinfo(cap_channel_t *chan, const char *hostname,
    const char *servname, const struct addrinfo *hints, struct addrinfo **res);
int cap_getnameinfo(cap_channel_t *chan, const struct sockaddr *sa,
    socklen_t salen, char *host, size_t hostlen, char *serv, size_t servlen,
    int flags);

int cap_dns_type_limit(cap_channel_t *chan, const char * const *types,
    size_t ntypes);
int cap_dns_family_limit(cap_channel_t *chan, const int *families,
    size_t nfamilies);
/* capsa's extension: the host names forward lookups may resolve. */
int cap_dns_host_limit(cap_channel_t *chan, const char * const *hosts,
    size_t nhosts);

#ifdef __cplusplus
}
#endif

#else /* !WITH_CASPER */

#include <errno.h>

/* No resolver in libc: mock lookups fail (see the top of this file). */
static inline struct hostent *
__capsa_dns_stub_hostent(void)
{

	h_errno = NO_RECOVERY;
	errno = ENOSYS;
	return (NULL);
}

static inline int
__capsa_dns_stub_eai(void)
{

	errno = ENOSYS;
	return (EAI_SYSTEM);
}

static inline struct hostent *
cap_gethostbyname(cap_channel_t *chan, const char *name)
{

	(void)chan, (void)name;
	return (__capsa_dns_stub_hostent());
}

static inline struct hostent *
cap_gethostbyname2(cap_channel_t *chan, const char *name, int af)
{

	(void)chan, (void)name, (void)af;
	return (__capsa_dns_stub_hostent());
}

static inline struct hostent *
cap_gethostbyaddr(cap_channel_t *chan, const void *addr, socklen_t len,
    int af)
{

	(void)chan, (void)addr, (void)len, (void)af;
	return (__capsa_dns_stub_hostent());
}

static inline int
cap_getaddrinfo(cap_channel_t *chan, const char *hostname,
    const char *servname, const struct addrinfo *hints, struct addrinfo **res)
{

	(void)chan, (void)hostname, (void)servname, (void)hints, (void)res;
	return (__capsa_dns_stub_eai());
}

static inline int
cap_getnameinfo(cap_channel_t *chan, const struct sockaddr *sa,
    socklen_t salen, char *host, size_t hostlen, char *serv, size_t servlen,
    int flags)
{

	(void)chan, (void)sa, (void)salen, (void)host, (void)hostlen;
	(void)serv, (void)servlen, (void)flags;
	return (__capsa_dns_stub_eai());
}

static inline int
cap_dns_type_limit(cap_channel_t *chan, const char * const *types,
    size_t ntypes)
{

	(void)chan, (void)types, (void)ntypes;
	return (0);
}

static inline int
cap_dns_family_limit(cap_channel_t *chan, const int *families,
    size_t nfamilies)
{

	(void)chan, (void)families, (void)nfamilies;
	return (0);
}

static inline int
cap_dns_host_limit(cap_channel_t *chan, const char * const *hosts,
    size_t nhosts)
{

	(void)chan, (void)hosts, (void)nhosts;
	return (0);
}

#endif /* WITH_CASPER */

#endif /* !_CAP_DNS_H_ */
