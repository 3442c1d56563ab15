/*
 * <netdb.h> for capsa guests: what Casper's system.dns client needs.
 *
 * wasi-libc (preview1) ships no <netdb.h>, so this header gives the minimal
 * subset cap_dns.h needs.  (It does not defer to another <netdb.h> with
 * #include_next: Debian's clang searches the host's /usr/include after the
 * WASI sysroot, and would find glibc's.)
 *
 * Types follow musl (wasi-libc's base): struct addrinfo has ai_addr before
 * ai_canonname.  The EAI_*, AI_* and NI_* values are FreeBSD's, because the
 * API is FreeBSD's libcasper: system.dns returns its "error" number to
 * cap_getaddrinfo()/cap_getnameinfo() callers verbatim, so the host service
 * and these constants must agree, and FreeBSD's numbering is the one both
 * sides mirror.  Address families (AF_INET 1, AF_INET6 2) and socket types
 * are wasi-libc's, from <sys/socket.h>.
 *
 * Link with libcapsa.a for h_errno, freeaddrinfo(), gai_strerror() and
 * hstrerror().  There is no gethostbyname(), getaddrinfo(), ...: a guest
 * resolves names only through system.dns (cap_dns.h).
 */

#ifndef _CAPSA_NETDB_H_
#define _CAPSA_NETDB_H_

#include <sys/socket.h>		/* socklen_t, struct sockaddr, AF_* */
#include <netinet/in.h>

struct hostent {
	char	 *h_name;	/* official name of host */
	char	**h_aliases;	/* alias list, NULL-terminated */
	int	  h_addrtype;	/* host address type (AF_*) */
	int	  h_length;	/* length of each address */
	char	**h_addr_list;	/* addresses, NULL-terminated */
};
#define	h_addr	h_addr_list[0]	/* the first address */

struct addrinfo {
	int		 ai_flags;	/* AI_* */
	int		 ai_family;	/* AF_* */
	int		 ai_socktype;	/* SOCK_* */
	int		 ai_protocol;	/* IPPROTO_* */
	socklen_t	 ai_addrlen;	/* length of ai_addr */
	struct sockaddr	*ai_addr;	/* binary address */
	char		*ai_canonname;	/* canonical name for hostname */
	struct addrinfo	*ai_next;	/* next structure in the list */
};

/* h_errno values (the same on FreeBSD, musl and glibc). */
#define	NETDB_INTERNAL	-1	/* see errno */
#define	NETDB_SUCCESS	0	/* no problem */
#define	HOST_NOT_FOUND	1	/* authoritative answer: host not found */
#define	TRY_AGAIN	2	/* non-authoritative: host not found, or SERVERFAIL */
#define	NO_RECOVERY	3	/* non-recoverable error; Casper's "not allowed" */
#define	NO_DATA		4	/* valid name, no data record of the requested type */
#define	NO_ADDRESS	NO_DATA

/* getaddrinfo()/getnameinfo() errors: FreeBSD's values. */
#define	EAI_ADDRFAMILY	 1	/* address family for hostname not supported */
#define	EAI_AGAIN	 2	/* temporary failure in name resolution */
#define	EAI_BADFLAGS	 3	/* invalid value for ai_flags */
#define	EAI_FAIL	 4	/* non-recoverable failure in name resolution */
#define	EAI_FAMILY	 5	/* ai_family not supported */
#define	EAI_MEMORY	 6	/* memory allocation failure */
#define	EAI_NODATA	 7	/* no address associated with hostname */
#define	EAI_NONAME	 8	/* hostname or servname not provided, or not known */
#define	EAI_SERVICE	 9	/* servname not supported for ai_socktype */
#define	EAI_SOCKTYPE	10	/* ai_socktype not supported */
#define	EAI_SYSTEM	11	/* system error returned in errno */
#define	EAI_BADHINTS	12	/* invalid value for hints */
#define	EAI_PROTOCOL	13	/* resolved protocol is unknown */
#define	EAI_OVERFLOW	14	/* argument buffer overflow */
#define	EAI_MAX		15

/* ai_flags: FreeBSD's values. */
#define	AI_PASSIVE	0x00000001	/* get address to use bind() */
#define	AI_CANONNAME	0x00000002	/* fill ai_canonname */
#define	AI_NUMERICHOST	0x00000004	/* prevent host name resolution */
#define	AI_NUMERICSERV	0x00000008	/* prevent service name resolution */
#define	AI_ALL		0x00000100	/* IPv6 and IPv4-mapped (with AI_V4MAPPED) */
#define	AI_V4MAPPED_CFG	0x00000200	/* accept IPv4-mapped if kernel supports */
#define	AI_ADDRCONFIG	0x00000400	/* only if any address is assigned */
#define	AI_V4MAPPED	0x00000800	/* accept IPv4-mapped IPv6 address */
#define	AI_DEFAULT	(AI_V4MAPPED_CFG | AI_ADDRCONFIG)

/* getnameinfo(): FreeBSD's values. */
#define	NI_MAXHOST	1025
#define	NI_MAXSERV	32
#define	NI_NOFQDN	0x00000001
#define	NI_NUMERICHOST	0x00000002
#define	NI_NAMEREQD	0x00000004
#define	NI_NUMERICSERV	0x00000008
#define	NI_DGRAM	0x00000010
#define	NI_NUMERICSCOPE	0x00000020

#ifdef __cplusplus
extern "C" {
#endif

/* The error of the last gethostby* call (cap_gethostby* set it). */
extern int h_errno;

/* Frees a list from cap_getaddrinfo(): each entry, its ai_canonname. */
void freeaddrinfo(struct addrinfo *ai);
/* A message for an EAI_* code. */
const char *gai_strerror(int ecode);
/* A message for an h_errno value. */
const char *hstrerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* !_CAPSA_NETDB_H_ */
