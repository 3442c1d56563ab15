/*
 * Casper's system.net client (FreeBSD's cap_net(3)) for capsa guests: the
 * connections and name lookups a program in capability mode still needs,
 * under limits that only narrow.
 *
 * With WITH_CASPER defined (or HAVE_CASPER), the calls below send libcasper
 * requests over a channel from cap_service_open(chan, "system.net"); link
 * with libcapsa.a.  The lookups (cap_getaddrinfo, cap_getnameinfo,
 * cap_gethostbyname, cap_gethostbyname2, cap_gethostbyaddr) are the same
 * calls as <casper/cap_dns.h>'s, with the same requests, so this header takes
 * them from there; on a system.net channel a lookup outside the limits fails
 * with EAI_SYSTEM and errno ENOTCAPABLE (getaddrinfo, getnameinfo), or NULL
 * with h_errno NO_RECOVERY and errno ENOTCAPABLE (gethostby*).
 *
 * cap_connect(chan, s, name, namelen) and cap_bind(chan, s, addr, addrlen):
 * the host opens the socket, as the service in FreeBSD does, and the reply
 * carries it as a descriptor.  WASI preview1 has no socket(2), so `s` is
 * where the socket goes: -1 for a new descriptor, which is returned (>= 0);
 * an open descriptor number to have it replaced (fd_renumber, as FreeBSD's
 * dup2 of the reply's descriptor onto s), and 0 is returned.  -1 with errno
 * on failure: ENOTCAPABLE outside the limits (nothing was sent), else the
 * connect's or bind's own errno (ECONNREFUSED, EADDRINUSE, ...).  A
 * connected socket has CAP_RECV, CAP_SEND, CAP_SHUTDOWN, CAP_EVENT...; what
 * cap_bind gives is already listening (WASI has no listen(2)): CAP_ACCEPT
 * and CAP_EVENT, and what it accepts gets the connected socket's rights.
 *
 * Limits: cap_net_limit_init(chan, mode) with CAPNET_* modes, then any of
 * the cap_net_limit_*() adders, then cap_net_limit() (which consumes the
 * handle; cap_net_free() drops it unused).  As in FreeBSD, the mode is
 * required every time, and every address, family and host must be allowed
 * by the channel's current limits, else ENOTCAPABLE.  capsa's additions:
 * cap_net_limit_connect_name(limit, host, serv) allows connecting to the
 * addresses that this channel's name2addr returned for `host`, at port
 * `serv` (NULL: any port); a NULL host in cap_net_limit_name2addr means any
 * host (the service's "*").
 *
 * Without WITH_CASPER ("mock mode", FreeBSD's fallback): wasi-libc has no
 * connect(2), bind(2) or resolver, so cap_connect and cap_bind fail with
 * ENOSYS, the lookups fail as in <casper/cap_dns.h>'s mock, and the limit
 * calls succeed and enforce nothing.
 */

#ifndef _CAP_NET_H_
#define _CAP_NET_H_

#ifdef HAVE_CASPER
#ifndef WITH_CASPER
#define WITH_CASPER
#endif
#endif

#include <sys/types.h>
#include <sys/socket.h>

#include <stdint.h>
#include <stdlib.h>

#include <libcasper.h>
#include <casper/cap_dns.h>

#define	CAPNET_ADDR2NAME		(0x01)
#define	CAPNET_NAME2ADDR		(0x02)
#define	CAPNET_DEPRECATED_ADDR2NAME	(0x04)
#define	CAPNET_DEPRECATED_NAME2ADDR	(0x08)
#define	CAPNET_CONNECT			(0x10)
#define	CAPNET_BIND			(0x20)
#define	CAPNET_CONNECTDNS		(0x40)

typedef struct cap_net_limit cap_net_limit_t;

#ifdef WITH_CASPER

#ifdef __cplusplus
extern "C" {
#endif

int cap_bind(cap_channel_t *chan, int s, const struct sockaddr *addr,
    socklen_t addrlen);
int cap_connect(cap_channel_t *chan, int s, const struct sockaddr *name,
    socklen_t namelen);

cap_net_limit_t *cap_net_limit_init(cap_channel_t *chan, uint64_t mode);
int cap_net_limit(cap_net_limit_t *limit);
void cap_net_free(cap_net_limit_t *limit);

cap_net_limit_t *cap_net_limit_addr2name_family(cap_net_limit_t *limit,
    int *family, size_t size);
cap_net_limit_t *cap_net_limit_addr2name(cap_net_limit_t *limit,
    const struct sockaddr *sa, socklen_t salen);
cap_net_limit_t *cap_net_limit_name2addr_family(cap_net_limit_t *limit,
    int *family, size_t size);
cap_net_limit_t *cap_net_limit_name2addr(cap_net_limit_t *limit,
    const char *name, const char *serv);
cap_net_limit_t *cap_net_limit_connect(cap_net_limit_t *limit,
    const struct sockaddr *sa, socklen_t salen);
cap_net_limit_t *cap_net_limit_bind(cap_net_limit_t *limit,
    const struct sockaddr *sa, socklen_t salen);
/* capsa's extension: addresses name2addr returned for host, at port serv. */
cap_net_limit_t *cap_net_limit_connect_name(cap_net_limit_t *limit,
    const char *host, const char *serv);

#ifdef __cplusplus
}
#endif

#else /* !WITH_CASPER */

#include <errno.h>

struct cap_net_limit {
	int cnl_unused;
};

static inline int
cap_bind(cap_channel_t *chan, int s, const struct sockaddr *addr,
    socklen_t addrlen)
{

	(void)chan, (void)s, (void)addr, (void)addrlen;
	errno = ENOSYS;
	return (-1);
}

static inline int
cap_connect(cap_channel_t *chan, int s, const struct sockaddr *name,
    socklen_t namelen)
{

	(void)chan, (void)s, (void)name, (void)namelen;
	errno = ENOSYS;
	return (-1);
}

static inline cap_net_limit_t *
cap_net_limit_init(cap_channel_t *chan, uint64_t mode)
{

	(void)chan, (void)mode;
	return ((cap_net_limit_t *)calloc(1, sizeof(cap_net_limit_t)));
}

static inline int
cap_net_limit(cap_net_limit_t *limit)
{

	free(limit);
	return (0);
}

static inline void
cap_net_free(cap_net_limit_t *limit)
{

	free(limit);
}

static inline cap_net_limit_t *
cap_net_limit_addr2name_family(cap_net_limit_t *limit, int *family,
    size_t size)
{

	(void)family, (void)size;
	return (limit);
}

static inline cap_net_limit_t *
cap_net_limit_addr2name(cap_net_limit_t *limit, const struct sockaddr *sa,
    socklen_t salen)
{

	(void)sa, (void)salen;
	return (limit);
}

static inline cap_net_limit_t *
cap_net_limit_name2addr_family(cap_net_limit_t *limit, int *family,
    size_t size)
{

	(void)family, (void)size;
	return (limit);
}

static inline cap_net_limit_t *
cap_net_limit_name2addr(cap_net_limit_t *limit, const char *name,
    const char *serv)
{

	(void)name, (void)serv;
	return (limit);
}

static inline cap_net_limit_t *
cap_net_limit_connect(cap_net_limit_t *limit, const struct sockaddr *sa,
    socklen_t salen)
{

	(void)sa, (void)salen;
	return (limit);
}

static inline cap_net_limit_t *
cap_net_limit_bind(cap_net_limit_t *limit, const struct sockaddr *sa,
    socklen_t salen)
{

	(void)sa, (void)salen;
	return (limit);
}

static inline cap_net_limit_t *
cap_net_limit_connect_name(cap_net_limit_t *limit, const char *host,
    const char *serv)
{

	(void)host, (void)serv;
	return (limit);
}

#endif /* WITH_CASPER */

#endif /* !_CAP_NET_H_ */
