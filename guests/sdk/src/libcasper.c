/*
 * libcasper's client side over capsa's "casper" host imports (docs/abi.md):
 * the protocol of FreeBSD's lib/libcasper/libcasper/libcasper.c, whose
 * services run in the host instead of in forked processes.
 *
 * A channel is a descriptor in the guest's fd table.  casper.xfer sends one
 * packed request and makes the host answer it at once; the host keeps the
 * answer on the channel and reports its length, and casper.recv copies it
 * out.  Imports return WASI errnos, which are wasi-libc's errno values.
 */

#ifndef WITH_CASPER
#define WITH_CASPER	/* this file is the real library, never the mock */
#endif

#include <libcasper.h>
#include <sys/nv.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <wasi/api.h>

__attribute__((import_module("casper"), import_name("init")))
uint32_t __capsa_casper_init(uint32_t *fd_out);

__attribute__((import_module("casper"), import_name("xfer")))
uint32_t __capsa_casper_xfer(uint32_t fd, const void *req, uint32_t req_len,
    uint32_t *resp_len);

__attribute__((import_module("casper"), import_name("recv")))
uint32_t __capsa_casper_recv(uint32_t fd, void *buf, uint32_t len);

#define CASPER_VALID_FLAGS	(CASPER_NO_UNIQ)
#define CAP_CHANNEL_MAGIC	0xcac8a31

struct cap_channel {
	int		cch_magic;	/* CAP_CHANNEL_MAGIC while alive */
	int		cch_sock;	/* the channel's fd */
	int		cch_flags;	/* CASPER_* */
	bool		cch_pending;	/* cap_send_nvlist() left a reply */
	uint32_t	cch_pendlen;	/* and its length */
};

static bool
valid(const cap_channel_t *chan)
{

	if (chan == NULL || chan->cch_magic != CAP_CHANNEL_MAGIC) {
		errno = EINVAL;
		return (false);
	}
	return (true);
}

int
cap_channel_flags(const cap_channel_t *chan)
{

	return (chan->cch_flags);
}

cap_channel_t *
cap_wrap(int sock, int flags)
{
	__wasi_fdstat_t st;
	cap_channel_t *chan;

	if (sock < 0 || __wasi_fd_fdstat_get((__wasi_fd_t)sock, &st) != 0) {
		errno = EBADF;
		return (NULL);
	}
	if ((flags & CASPER_VALID_FLAGS) != flags) {
		errno = EINVAL;
		return (NULL);
	}
	chan = malloc(sizeof(*chan));
	if (chan == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	chan->cch_magic = CAP_CHANNEL_MAGIC;
	chan->cch_sock = sock;
	chan->cch_flags = flags;
	chan->cch_pending = false;
	chan->cch_pendlen = 0;
	return (chan);
}

int
cap_unwrap(cap_channel_t *chan, int *flags)
{
	int sock;

	if (!valid(chan))
		return (-1);
	sock = chan->cch_sock;
	if (flags != NULL)
		*flags = chan->cch_flags;
	chan->cch_magic = 0;
	free(chan);
	return (sock);
}

cap_channel_t *
cap_init(void)
{
	cap_channel_t *chan;
	uint32_t error, fd;
	int serrno;

	error = __capsa_casper_init(&fd);
	if (error != 0) {
		errno = (int)error;
		return (NULL);
	}
	chan = cap_wrap((int)fd, 0);
	if (chan == NULL) {
		serrno = errno;
		(void)close((int)fd);
		errno = serrno;
	}
	return (chan);
}

void
cap_close(cap_channel_t *chan)
{
	int serrno;

	if (!valid(chan))
		return;
	serrno = errno;
	chan->cch_magic = 0;
	(void)close(chan->cch_sock);
	free(chan);
	errno = serrno;
}

int
cap_sock(const cap_channel_t *chan)
{

	if (!valid(chan))
		return (-1);
	return (chan->cch_sock);
}

/* The channel's bookkeeping changes even through FreeBSD's const pointers. */
static cap_channel_t *
mut(const cap_channel_t *chan)
{

	return ((cap_channel_t *)(uintptr_t)chan);
}

/* Sends nvl; the reply's length is then waiting in *lenp. */
static int
send_packed(const cap_channel_t *chan, const nvlist_t *nvl, uint32_t *lenp)
{
	uint32_t error;
	size_t size;
	void *buf;

	buf = nvlist_pack(nvl, &size);
	if (buf == NULL)
		return (-1);
	if (size > UINT32_MAX) {
		free(buf);
		errno = ENOBUFS;
		return (-1);
	}
	mut(chan)->cch_pending = false;
	error = __capsa_casper_xfer((uint32_t)chan->cch_sock, buf,
	    (uint32_t)size, lenp);
	free(buf);
	if (error != 0) {
		errno = (int)error;
		return (-1);
	}
	return (0);
}

/* Fetches the waiting reply of `len` bytes and unpacks it. */
static nvlist_t *
fetch_reply(const cap_channel_t *chan, uint32_t len)
{
	nvlist_t *nvl;
	uint32_t error;
	void *buf;

	buf = malloc(len == 0 ? 1 : len);
	if (buf == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	error = __capsa_casper_recv((uint32_t)chan->cch_sock, buf, len);
	if (error != 0) {
		free(buf);
		errno = (int)error;
		return (NULL);
	}
	/* The host installed the reply's fds for us: the reply owns them. */
	nvl = __capsa_nvlist_unpack(buf, len, channel_nvlist_flags(chan), true);
	free(buf);
	return (nvl);
}

int
cap_send_nvlist(const cap_channel_t *chan, const nvlist_t *nvl)
{
	uint32_t len;

	if (!valid(chan))
		return (-1);
	if (send_packed(chan, nvl, &len) != 0)
		return (-1);
	mut(chan)->cch_pending = true;
	mut(chan)->cch_pendlen = len;
	return (0);
}

nvlist_t *
cap_recv_nvlist(const cap_channel_t *chan)
{
	uint32_t len;

	if (!valid(chan))
		return (NULL);
	/* With nothing sent, ask for 0 bytes: the host says EINVAL. */
	len = chan->cch_pending ? chan->cch_pendlen : 0;
	mut(chan)->cch_pending = false;
	return (fetch_reply(chan, len));
}

nvlist_t *
cap_xfer_nvlist(const cap_channel_t *chan, nvlist_t *nvl)
{
	uint32_t len;
	int error;

	if (!valid(chan)) {
		nvlist_destroy(nvl);	/* keeps errno */
		return (NULL);
	}
	error = send_packed(chan, nvl, &len);
	nvlist_destroy(nvl);
	if (error != 0)
		return (NULL);
	return (fetch_reply(chan, len));
}

/*
 * The reply's "error": 0 for success.  libcasper aborts on a reply without
 * one; a guest should not die of a faulty host, so that is EPROTO.
 */
static int
reply_error(const nvlist_t *reply)
{

	if (!nvlist_exists_number(reply, "error"))
		return (EPROTO);
	return ((int)nvlist_get_number(reply, "error"));
}

/* A request with string "cmd"; its reply or NULL with errno, as libcasper. */
static nvlist_t *
command(const cap_channel_t *chan, nvlist_t *nvl)
{
	nvlist_t *reply;
	int error;

	reply = cap_xfer_nvlist(chan, nvl);
	if (reply == NULL)
		return (NULL);
	error = reply_error(reply);
	if (error != 0) {
		nvlist_destroy(reply);
		errno = error;
		return (NULL);
	}
	return (reply);
}

static nvlist_t *
request(const cap_channel_t *chan, const char *cmd)
{
	nvlist_t *nvl;

	nvl = nvlist_create(channel_nvlist_flags(chan));
	nvlist_add_string(nvl, "cmd", cmd);
	return (nvl);
}

/* Takes descriptor `name` out of reply and wraps it; consumes reply. */
static cap_channel_t *
wrap_reply(nvlist_t *reply, const char *name, int flags)
{
	cap_channel_t *chan;
	int serrno, sock;

	if (!nvlist_exists_descriptor(reply, name)) {
		nvlist_destroy(reply);
		errno = EPROTO;
		return (NULL);
	}
	sock = nvlist_take_descriptor(reply, name);
	nvlist_destroy(reply);
	chan = cap_wrap(sock, flags);
	if (chan == NULL) {
		serrno = errno;
		(void)close(sock);
		errno = serrno;
	}
	return (chan);
}

cap_channel_t *
cap_service_open(const cap_channel_t *chan, const char *name)
{
	nvlist_t *nvl, *reply;
	int flags;

	if (!valid(chan))
		return (NULL);
	nvl = request(chan, "open");
	nvlist_add_string(nvl, "service", name);
	reply = command(chan, nvl);
	if (reply == NULL)
		return (NULL);
	flags = 0;
	if (nvlist_exists_number(reply, "chanflags"))
		flags = (int)nvlist_get_number(reply, "chanflags");
	return (wrap_reply(reply, "chanfd", flags));
}

cap_channel_t *
cap_clone(const cap_channel_t *chan)
{
	nvlist_t *reply;

	if (!valid(chan))
		return (NULL);
	reply = command(chan, request(chan, "clone"));
	if (reply == NULL)
		return (NULL);
	return (wrap_reply(reply, "sock", chan->cch_flags));
}

int
cap_limit_set(const cap_channel_t *chan, nvlist_t *limits)
{
	nvlist_t *nvl, *reply;

	if (!valid(chan)) {
		nvlist_destroy(limits);
		return (-1);
	}
	nvl = request(chan, "limit_set");
	/* Moved, not copied: consumed on every path, as libcasper's copy is. */
	nvlist_move_nvlist(nvl, "limits", limits);
	reply = command(chan, nvl);
	if (reply == NULL)
		return (-1);
	nvlist_destroy(reply);
	return (0);
}

int
cap_limit_get(const cap_channel_t *chan, nvlist_t **limitsp)
{
	nvlist_t *reply;

	if (!valid(chan))
		return (-1);
	reply = command(chan, request(chan, "limit_get"));
	if (reply == NULL)
		return (-1);
	if (nvlist_exists_null(reply, "limits")) {
		*limitsp = NULL;
	} else if (nvlist_exists_nvlist(reply, "limits")) {
		*limitsp = nvlist_take_nvlist(reply, "limits");
	} else {
		nvlist_destroy(reply);
		errno = EPROTO;
		return (-1);
	}
	nvlist_destroy(reply);
	return (0);
}

int
cap_service_limit(const cap_channel_t *chan, const char * const *names,
    size_t nnames)
{
	nvlist_t *limits;
	size_t i;

	if (!valid(chan))
		return (-1);
	limits = nvlist_create(channel_nvlist_flags(chan));
	for (i = 0; i < nnames; i++)
		nvlist_add_null(limits, names[i]);
	return (cap_limit_set(chan, limits));
}
