/*
 * Casper's system.net client: cap_connect, cap_bind and the limits of
 * FreeBSD's cap_net(3).  The lookups are cap_dns.c's (same requests).
 *
 *   connect  {cmd, saddr: binary}   reply {error, s: descriptor}
 *   bind     {cmd, saddr: binary}   reply {error, s: descriptor}
 *
 * No socket travels with the request (WASI has no socket(2)): the service
 * makes it, connected or listening.
 *
 * Limits, as cap_net_limit() sends them:
 *   mode       number (CAPNET_*), always
 *   connect    {sockaddr: NO_UNIQUE {"sockaddr": binary...},
 *               hosts: NO_UNIQUE {host: serv...}}     (hosts: capsa's)
 *   bind       {sockaddr: NO_UNIQUE {"sockaddr": binary...}}
 *   name2addr  {family: number array, hosts: NO_UNIQUE {host: serv...}}
 *   addr2name  {family: number array, sockaddr: NO_UNIQUE {...}}
 * A category with nothing added is left out ("absent = all"); host "*" and
 * serv "" are wildcards.
 */

#ifndef WITH_CASPER
#define WITH_CASPER
#endif

#include <sys/nv.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <wasi/api.h>

#include <libcasper.h>
#include <casper/cap_net.h>

#include "casper_impl.h"

struct cap_net_limit {
	cap_channel_t	*cnl_chan;
	uint64_t	 cnl_mode;
	nvlist_t	*cnl_connect;
	nvlist_t	*cnl_bind;
	nvlist_t	*cnl_name2addr;
	nvlist_t	*cnl_addr2name;
};

/* Sends a connect or bind request; the socket goes where `s` says. */
static int
socket_request(cap_channel_t *chan, const char *cmd, int s,
    const struct sockaddr *sa, socklen_t salen)
{
	nvlist_t *nvl;
	int error, fd;

	if (sa == NULL) {
		errno = EINVAL;
		return (-1);
	}
	nvl = nvlist_create(channel_nvlist_flags(chan));
	nvlist_add_string(nvl, "cmd", cmd);
	nvlist_add_binary(nvl, "saddr", sa, (size_t)salen);
	nvl = cap_xfer_nvlist(chan, nvl);
	if (nvl == NULL)
		return (-1);
	error = casper_reply_error(nvl);
	if (error == 0 && !nvlist_exists_descriptor(nvl, "s"))
		error = EPROTO;
	if (error != 0) {
		nvlist_destroy(nvl);
		errno = error;
		return (-1);
	}
	fd = nvlist_take_descriptor(nvl, "s");
	nvlist_destroy(nvl);
	if (s < 0)
		return (fd);
	if (fd != s) {
		error = __wasi_fd_renumber((__wasi_fd_t)fd, (__wasi_fd_t)s);
		if (error != 0) {
			(void)close(fd);
			errno = error;
			return (-1);
		}
	}
	return (0);
}

int
cap_connect(cap_channel_t *chan, int s, const struct sockaddr *name,
    socklen_t namelen)
{

	return (socket_request(chan, "connect", s, name, namelen));
}

int
cap_bind(cap_channel_t *chan, int s, const struct sockaddr *addr,
    socklen_t addrlen)
{

	return (socket_request(chan, "bind", s, addr, addrlen));
}

cap_net_limit_t *
cap_net_limit_init(cap_channel_t *chan, uint64_t mode)
{
	cap_net_limit_t *limit;

	limit = calloc(1, sizeof(*limit));
	if (limit == NULL)
		return (NULL);
	limit->cnl_chan = chan;
	limit->cnl_mode = mode;
	limit->cnl_connect = nvlist_create(0);
	limit->cnl_bind = nvlist_create(0);
	limit->cnl_name2addr = nvlist_create(0);
	limit->cnl_addr2name = nvlist_create(0);
	return (limit);
}

void
cap_net_free(cap_net_limit_t *limit)
{

	if (limit == NULL)
		return;
	nvlist_destroy(limit->cnl_connect);
	nvlist_destroy(limit->cnl_bind);
	nvlist_destroy(limit->cnl_name2addr);
	nvlist_destroy(limit->cnl_addr2name);
	free(limit);
}

/* Moves a category into the limits, or drops it when nothing was added. */
static void
category_move(nvlist_t *limits, const char *name, nvlist_t *category)
{

	if (nvlist_empty(category))
		nvlist_destroy(category);
	else
		nvlist_move_nvlist(limits, name, category);
}

int
cap_net_limit(cap_net_limit_t *limit)
{
	cap_channel_t *chan;
	nvlist_t *limits;

	if (limit == NULL) {
		errno = ENOMEM;
		return (-1);
	}
	limits = nvlist_create(0);
	nvlist_add_number(limits, "mode", limit->cnl_mode);
	category_move(limits, "connect", limit->cnl_connect);
	category_move(limits, "bind", limit->cnl_bind);
	category_move(limits, "name2addr", limit->cnl_name2addr);
	category_move(limits, "addr2name", limit->cnl_addr2name);
	chan = limit->cnl_chan;
	free(limit);
	return (cap_limit_set(chan, limits));
}

/* The NO_UNIQUE sub-list `name` of a category, created on first use. */
static nvlist_t *
sublist_take(nvlist_t *category, const char *name)
{

	if (nvlist_exists_nvlist(category, name))
		return (nvlist_take_nvlist(category, name));
	return (nvlist_create(NV_FLAG_NO_UNIQUE));
}

static void
add_sockaddr(nvlist_t *category, const struct sockaddr *sa, socklen_t salen)
{
	nvlist_t *list;

	list = sublist_take(category, "sockaddr");
	nvlist_add_binary(list, "sockaddr", sa, (size_t)salen);
	nvlist_move_nvlist(category, "sockaddr", list);
}

static void
add_host(nvlist_t *category, const char *host, const char *serv)
{
	nvlist_t *list;

	list = sublist_take(category, "hosts");
	nvlist_add_string(list, host != NULL ? host : "*",
	    serv != NULL ? serv : "");
	nvlist_move_nvlist(category, "hosts", list);
}

static void
add_families(nvlist_t *category, const int *family, size_t size)
{
	size_t i;

	for (i = 0; i < size; i++) {
		if (nvlist_exists_number_array(category, "family"))
			nvlist_append_number_array(category, "family",
			    (uint64_t)family[i]);
		else {
			uint64_t first = (uint64_t)family[i];

			nvlist_add_number_array(category, "family", &first, 1);
		}
	}
}

cap_net_limit_t *
cap_net_limit_addr2name_family(cap_net_limit_t *limit, int *family,
    size_t size)
{

	add_families(limit->cnl_addr2name, family, size);
	return (limit);
}

cap_net_limit_t *
cap_net_limit_addr2name(cap_net_limit_t *limit, const struct sockaddr *sa,
    socklen_t salen)
{

	add_sockaddr(limit->cnl_addr2name, sa, salen);
	return (limit);
}

cap_net_limit_t *
cap_net_limit_name2addr_family(cap_net_limit_t *limit, int *family,
    size_t size)
{

	add_families(limit->cnl_name2addr, family, size);
	return (limit);
}

cap_net_limit_t *
cap_net_limit_name2addr(cap_net_limit_t *limit, const char *name,
    const char *serv)
{

	add_host(limit->cnl_name2addr, name, serv);
	return (limit);
}

cap_net_limit_t *
cap_net_limit_connect(cap_net_limit_t *limit, const struct sockaddr *sa,
    socklen_t salen)
{

	add_sockaddr(limit->cnl_connect, sa, salen);
	return (limit);
}

cap_net_limit_t *
cap_net_limit_bind(cap_net_limit_t *limit, const struct sockaddr *sa,
    socklen_t salen)
{

	add_sockaddr(limit->cnl_bind, sa, salen);
	return (limit);
}

cap_net_limit_t *
cap_net_limit_connect_name(cap_net_limit_t *limit, const char *host,
    const char *serv)
{

	add_host(limit->cnl_connect, host, serv);
	return (limit);
}
