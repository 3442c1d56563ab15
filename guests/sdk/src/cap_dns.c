/*
 * Casper's system.dns client: FreeBSD's lib/libcasper/services/cap_dns
 * client half, speaking the same requests and reading the same replies.
 *
 *   gethostbyname  {cmd, family: number, name: string}
 *   gethostbyaddr  {cmd, addr: binary, family: number}
 *     reply {error, name, addrtype, length, naliases, alias%u...,
 *            naddrs, addr%u... (binary, length bytes each)}
 *   getaddrinfo    {cmd, [hostname], [servname], [hints.ai_flags,
 *                   hints.ai_family, hints.ai_socktype, hints.ai_protocol]}
 *     reply {error, res%u: {ai_flags, ai_family, ai_socktype, ai_protocol,
 *            ai_addr: binary, [ai_canonname]}...}
 *   getnameinfo    {cmd, hostlen, servlen, sa: binary, flags}
 *     reply {error, [host], [serv]}
 *
 * Limits: flat "type%u" strings, "family%u" numbers and capsa's "host%u"
 * strings; each cap_dns_*_limit replaces only its own prefix.
 */

#ifndef WITH_CASPER
#define WITH_CASPER
#endif

#include <sys/nv.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libcasper.h>
#include <casper/cap_dns.h>

#include "casper_impl.h"

/*
 * An "error" as getaddrinfo/getnameinfo return it: system.net refuses with
 * ENOTCAPABLE, which is no EAI_* code, so it becomes EAI_SYSTEM with errno
 * set (FreeBSD's cap_net(3)); system.dns answers EAI_* codes themselves.
 */
static int
eai_of(int error)
{

	if (error != ENOTCAPABLE)
		return (error);
	errno = ENOTCAPABLE;
	return (EAI_SYSTEM);
}

/* The static result of the gethostby* calls, as in libc. */
static struct hostent hent;

/*
 * capsa's addition: a call outside the channel's limits answers FreeBSD's
 * code (NO_RECOVERY, EAI 3) plus a "refused" string; errno then says
 * ENOTCAPABLE, so that a refusal reads apart from a server failure.
 */
static void
refusal_errno(const nvlist_t *nvl)
{

	if (nvlist_exists_string(nvl, "refused"))
		errno = ENOTCAPABLE;
}

static void
hostent_free(struct hostent *hp)
{
	unsigned int i;

	free(hp->h_name);
	hp->h_name = NULL;
	if (hp->h_aliases != NULL) {
		for (i = 0; hp->h_aliases[i] != NULL; i++)
			free(hp->h_aliases[i]);
		free(hp->h_aliases);
		hp->h_aliases = NULL;
	}
	if (hp->h_addr_list != NULL) {
		for (i = 0; hp->h_addr_list[i] != NULL; i++)
			free(hp->h_addr_list[i]);
		free(hp->h_addr_list);
		hp->h_addr_list = NULL;
	}
}

/* Counts above this are a faulty reply, not a host. */
#define	HOSTENT_MAX_ITEMS	4096

static struct hostent *
hostent_unpack(const nvlist_t *nvl, struct hostent *hp)
{
	char key[32];
	const char *str;
	const void *addr;
	size_t addrlen;
	uint64_t n, length;
	unsigned int i;

	hostent_free(hp);

	if (!nvlist_exists_string(nvl, "name") ||
	    !nvlist_exists_number(nvl, "addrtype") ||
	    !nvlist_exists_number(nvl, "length") ||
	    !nvlist_exists_number(nvl, "naliases") ||
	    !nvlist_exists_number(nvl, "naddrs"))
		goto fail;
	length = nvlist_get_number(nvl, "length");
	if (length == 0 || length > 64)
		goto fail;
	hp->h_name = strdup(nvlist_get_string(nvl, "name"));
	if (hp->h_name == NULL)
		goto fail;
	hp->h_addrtype = (int)nvlist_get_number(nvl, "addrtype");
	hp->h_length = (int)length;

	n = nvlist_get_number(nvl, "naliases");
	if (n > HOSTENT_MAX_ITEMS)
		goto fail;
	hp->h_aliases = calloc(n + 1, sizeof(hp->h_aliases[0]));
	if (hp->h_aliases == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "alias%u", i);
		if (!nvlist_exists_string(nvl, key))
			goto fail;
		str = nvlist_get_string(nvl, key);
		if ((hp->h_aliases[i] = strdup(str)) == NULL)
			goto fail;
	}

	n = nvlist_get_number(nvl, "naddrs");
	if (n > HOSTENT_MAX_ITEMS)
		goto fail;
	hp->h_addr_list = calloc(n + 1, sizeof(hp->h_addr_list[0]));
	if (hp->h_addr_list == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "addr%u", i);
		if (!nvlist_exists_binary(nvl, key))
			goto fail;
		addr = nvlist_get_binary(nvl, key, &addrlen);
		if (addrlen != length)
			goto fail;
		if ((hp->h_addr_list[i] = malloc(addrlen)) == NULL)
			goto fail;
		memcpy(hp->h_addr_list[i], addr, addrlen);
	}
	return (hp);
fail:
	hostent_free(hp);
	h_errno = NO_RECOVERY;
	return (NULL);
}

/* Sends a gethostby* request; the hostent, or NULL with h_errno set. */
static struct hostent *
hostent_xfer(cap_channel_t *chan, nvlist_t *nvl)
{
	struct hostent *hp;
	int error;

	nvl = cap_xfer_nvlist(chan, nvl);
	if (nvl == NULL) {
		h_errno = NO_RECOVERY;
		return (NULL);
	}
	/* The service's h_errno (NO_RECOVERY when not allowed). */
	error = nvlist_exists_number(nvl, "error") ?
	    (int)nvlist_get_number(nvl, "error") : NO_RECOVERY;
	if (error == ENOTCAPABLE) {
		/* system.net's refusal: an errno, not an h_errno. */
		errno = ENOTCAPABLE;
		error = NO_RECOVERY;
	}
	if (error != 0) {
		h_errno = error;
		refusal_errno(nvl);
		nvlist_destroy(nvl);
		return (NULL);
	}
	hp = hostent_unpack(nvl, &hent);
	nvlist_destroy(nvl);
	return (hp);
}

struct hostent *
cap_gethostbyname(cap_channel_t *chan, const char *name)
{

	return (cap_gethostbyname2(chan, name, AF_INET));
}

struct hostent *
cap_gethostbyname2(cap_channel_t *chan, const char *name, int af)
{
	nvlist_t *nvl;

	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "cmd", "gethostbyname");
	nvlist_add_number(nvl, "family", (uint64_t)af);
	nvlist_add_string(nvl, "name", name);
	return (hostent_xfer(chan, nvl));
}

struct hostent *
cap_gethostbyaddr(cap_channel_t *chan, const void *addr, socklen_t len,
    int af)
{
	nvlist_t *nvl;

	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "cmd", "gethostbyaddr");
	nvlist_add_binary(nvl, "addr", addr, (size_t)len);
	nvlist_add_number(nvl, "family", (uint64_t)af);
	return (hostent_xfer(chan, nvl));
}

/* One entry of a getaddrinfo reply: the struct and its address in one block. */
static struct addrinfo *
addrinfo_unpack(const nvlist_t *nvl)
{
	struct addrinfo *ai;
	const void *addr;
	size_t addrlen;

	if (!nvlist_exists_binary(nvl, "ai_addr") ||
	    !nvlist_exists_number(nvl, "ai_flags") ||
	    !nvlist_exists_number(nvl, "ai_family") ||
	    !nvlist_exists_number(nvl, "ai_socktype") ||
	    !nvlist_exists_number(nvl, "ai_protocol"))
		return (NULL);
	addr = nvlist_get_binary(nvl, "ai_addr", &addrlen);
	if (addrlen > sizeof(struct sockaddr_storage))
		return (NULL);
	ai = calloc(1, sizeof(*ai) + addrlen);
	if (ai == NULL)
		return (NULL);
	ai->ai_flags = (int)nvlist_get_number(nvl, "ai_flags");
	ai->ai_family = (int)nvlist_get_number(nvl, "ai_family");
	ai->ai_socktype = (int)nvlist_get_number(nvl, "ai_socktype");
	ai->ai_protocol = (int)nvlist_get_number(nvl, "ai_protocol");
	ai->ai_addrlen = (socklen_t)addrlen;
	ai->ai_addr = (struct sockaddr *)(void *)(ai + 1);
	memcpy(ai->ai_addr, addr, addrlen);
	if (nvlist_exists_string(nvl, "ai_canonname")) {
		ai->ai_canonname =
		    strdup(nvlist_get_string(nvl, "ai_canonname"));
		if (ai->ai_canonname == NULL) {
			free(ai);
			return (NULL);
		}
	}
	ai->ai_next = NULL;
	return (ai);
}

int
cap_getaddrinfo(cap_channel_t *chan, const char *hostname,
    const char *servname, const struct addrinfo *hints, struct addrinfo **res)
{
	struct addrinfo *first, *last, *cur;
	char key[32];
	nvlist_t *nvl;
	unsigned int i;
	int error;

	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "cmd", "getaddrinfo");
	if (hostname != NULL)
		nvlist_add_string(nvl, "hostname", hostname);
	if (servname != NULL)
		nvlist_add_string(nvl, "servname", servname);
	if (hints != NULL) {
		nvlist_add_number(nvl, "hints.ai_flags",
		    (uint64_t)hints->ai_flags);
		nvlist_add_number(nvl, "hints.ai_family",
		    (uint64_t)hints->ai_family);
		nvlist_add_number(nvl, "hints.ai_socktype",
		    (uint64_t)hints->ai_socktype);
		nvlist_add_number(nvl, "hints.ai_protocol",
		    (uint64_t)hints->ai_protocol);
	}
	nvl = cap_xfer_nvlist(chan, nvl);
	if (nvl == NULL)
		return (EAI_MEMORY);
	if (!nvlist_exists_number(nvl, "error")) {
		nvlist_destroy(nvl);
		return (EAI_FAIL);
	}
	error = (int)nvlist_get_number(nvl, "error");
	if (error != 0) {
		refusal_errno(nvl);
		nvlist_destroy(nvl);
		return (eai_of(error));
	}

	first = last = NULL;
	for (i = 0; ; i++) {
		snprintf(key, sizeof(key), "res%u", i);
		if (!nvlist_exists_nvlist(nvl, key))
			break;
		cur = addrinfo_unpack(nvlist_get_nvlist(nvl, key));
		if (cur == NULL) {
			nvlist_destroy(nvl);
			freeaddrinfo(first);
			return (EAI_MEMORY);
		}
		if (last != NULL)
			last->ai_next = cur;
		else
			first = cur;
		last = cur;
	}
	nvlist_destroy(nvl);
	*res = first;
	return (0);
}

int
cap_getnameinfo(cap_channel_t *chan, const struct sockaddr *sa,
    socklen_t salen, char *host, size_t hostlen, char *serv, size_t servlen,
    int flags)
{
	nvlist_t *nvl;
	int error;

	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "cmd", "getnameinfo");
	nvlist_add_number(nvl, "hostlen", (uint64_t)hostlen);
	nvlist_add_number(nvl, "servlen", (uint64_t)servlen);
	nvlist_add_binary(nvl, "sa", sa, (size_t)salen);
	nvlist_add_number(nvl, "flags", (uint64_t)flags);
	nvl = cap_xfer_nvlist(chan, nvl);
	if (nvl == NULL)
		return (EAI_MEMORY);
	if (!nvlist_exists_number(nvl, "error")) {
		nvlist_destroy(nvl);
		return (EAI_FAIL);
	}
	error = (int)nvlist_get_number(nvl, "error");
	if (error != 0) {
		refusal_errno(nvl);
		nvlist_destroy(nvl);
		return (eai_of(error));
	}
	/* FreeBSD copies hostlen + 1 bytes here; the buffer holds hostlen. */
	if (host != NULL && hostlen > 0 && nvlist_exists_string(nvl, "host"))
		strlcpy(host, nvlist_get_string(nvl, "host"), hostlen);
	if (serv != NULL && servlen > 0 && nvlist_exists_string(nvl, "serv"))
		strlcpy(serv, nvlist_get_string(nvl, "serv"), servlen);
	nvlist_destroy(nvl);
	return (0);
}

/* Drops every pair whose name starts with prefix. */
static void
limit_remove(nvlist_t *limits, const char *prefix)
{
	const char *name;
	size_t prefixlen;
	void *cookie;

	prefixlen = strlen(prefix);
again:
	cookie = NULL;
	while ((name = nvlist_next(limits, NULL, &cookie)) != NULL) {
		if (strncmp(name, prefix, prefixlen) == 0) {
			nvlist_free(limits, name);
			goto again;
		}
	}
}

/* The current limits without prefix's keys; NULL with errno on failure. */
static nvlist_t *
limit_edit(cap_channel_t *chan, const char *prefix)
{
	nvlist_t *limits;

	if (cap_limit_get(chan, &limits) < 0)
		return (NULL);
	if (limits == NULL)
		limits = nvlist_create(0);
	else
		limit_remove(limits, prefix);
	return (limits);
}

int
cap_dns_type_limit(cap_channel_t *chan, const char * const *types,
    size_t ntypes)
{
	nvlist_t *limits;
	char key[32];
	size_t i;

	if ((limits = limit_edit(chan, "type")) == NULL)
		return (-1);
	for (i = 0; i < ntypes; i++) {
		snprintf(key, sizeof(key), "type%zu", i);
		nvlist_add_string(limits, key, types[i]);
	}
	return (cap_limit_set(chan, limits));
}

int
cap_dns_family_limit(cap_channel_t *chan, const int *families,
    size_t nfamilies)
{
	nvlist_t *limits;
	char key[32];
	size_t i;

	if ((limits = limit_edit(chan, "family")) == NULL)
		return (-1);
	for (i = 0; i < nfamilies; i++) {
		snprintf(key, sizeof(key), "family%zu", i);
		nvlist_add_number(limits, key, (uint64_t)families[i]);
	}
	return (cap_limit_set(chan, limits));
}

int
cap_dns_host_limit(cap_channel_t *chan, const char * const *hosts,
    size_t nhosts)
{
	nvlist_t *limits;
	char key[32];
	size_t i;

	if ((limits = limit_edit(chan, "host")) == NULL)
		return (-1);
	for (i = 0; i < nhosts; i++) {
		snprintf(key, sizeof(key), "host%zu", i);
		nvlist_add_string(limits, key, hosts[i]);
	}
	return (cap_limit_set(chan, limits));
}
