/*
 * FreeBSD's libcasper for capsa guests (wasm32-wasi): channels to Casper
 * services, with FreeBSD's names and signatures (lib/libcasper/libcasper/
 * libcasper.h).  Two builds, chosen per program, as on FreeBSD:
 *
 * WITH_CASPER defined (or HAVE_CASPER): the real thing, in libcapsa.a.  The
 * services (system.dns, system.pwd, ...) run in the host, which hands the
 * guest channel descriptors; requests and replies are packed nvlists
 * (<sys/nv.h>) and the protocol is libcasper's (docs/abi.md, "casper"):
 *
 *   cap_init()            host import casper.init: a channel to core.casper;
 *                         fails with ECAPMODE (94) in capability mode, so
 *                         call it (and cap_service_open) before cap_enter()
 *   cap_service_open()    {"cmd":"open","service":NAME} on the core channel;
 *                         the reply's "error", else descriptor "chanfd" and
 *                         number "chanflags" make the new channel
 *   cap_service_limit()   cap_limit_set() on the core channel with one NULL
 *                         pair per service name
 *   cap_limit_set()       {"cmd":"limit_set","limits":LIMITS}; always
 *                         consumes limits
 *   cap_limit_get()       {"cmd":"limit_get"}; *limitsp = the reply's
 *                         "limits", NULL when it is NULL-typed (no limits)
 *   cap_clone()           {"cmd":"clone"}; wraps the reply's descriptor
 *                         "sock" with this channel's flags
 *   cap_xfer_nvlist()     casper.xfer then casper.recv; consumes nvl and
 *                         returns the reply, or NULL with errno (the host's
 *                         WASI errno, or the unpacking error)
 *   cap_send_nvlist()     casper.xfer without taking the reply: the host
 *   cap_recv_nvlist()     answers each request at once and keeps the last
 *                         reply until cap_recv_nvlist() collects it; a recv
 *                         with no send before it fails with EINVAL
 *   cap_close()           closes the channel's fd (fd_close) and frees it
 *
 * Nvlists on a channel are created, and replies must arrive, with the
 * channel's nvlist flags: 0, or NV_FLAG_NO_UNIQUE when the channel was made
 * with CASPER_NO_UNIQ (cap_wrap() flags, or the service's "chanflags").  A
 * reply with other flags fails with EILSEQ, as in libcasper.  A reply
 * without a number "error" (or an "open"/"clone" reply without its
 * descriptor) fails with EPROTO instead of aborting the program.
 *
 * WITH_CASPER not defined: FreeBSD's fallback for systems built without
 * Casper (the "mock"), all in this header.  Nothing leaves the program and
 * nothing is enforced: cap_init() and cap_service_open() return a dummy
 * channel (cch_fd -1), cap_service_limit() and cap_limit_set() succeed
 * (the latter frees limits, which FreeBSD's leaks), cap_limit_get() gives
 * an empty nvlist, cap_xfer_nvlist() destroys its input and returns an
 * empty nvlist, cap_sock() is cch_fd, and CASPER_SUPPORT is 0.  Service
 * headers then map their calls to plain libc.  cap_clone() of a channel
 * with a real fd fails with ENOTSUP, because WASI has no dup().  Programs
 * still link libcapsa.a, for the nvlist functions.
 */

#ifndef _LIBCASPER_H_
#define _LIBCASPER_H_

#ifdef HAVE_CASPER
#ifndef WITH_CASPER
#define WITH_CASPER
#endif
#endif

#include <sys/types.h>
#include <sys/nv.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define CASPER_NO_UNIQ	0x00000001

#ifndef _NVLIST_T_DECLARED
#define _NVLIST_T_DECLARED
struct nvlist;

typedef struct nvlist nvlist_t;
#endif

#ifndef _CAP_CHANNEL_T_DECLARED
#define _CAP_CHANNEL_T_DECLARED
#ifdef WITH_CASPER
struct cap_channel;

typedef struct cap_channel cap_channel_t;
#define CASPER_SUPPORT	(1)
#else
struct cap_channel {
	int cch_fd;
	int cch_flags;
};
typedef struct cap_channel cap_channel_t;
#define CASPER_SUPPORT	(0)
#endif /* !WITH_CASPER */
#endif /* !_CAP_CHANNEL_T_DECLARED */

#ifdef __cplusplus
extern "C" {
#endif

#ifdef WITH_CASPER

/** The channel's CASPER_* flags. */
int		 cap_channel_flags(const cap_channel_t *chan);
/** A channel to the core service; NULL with errno (ECAPMODE in capability mode). */
cap_channel_t	*cap_init(void);
/** A channel to service `name` through the core channel; NULL with errno. */
cap_channel_t	*cap_service_open(const cap_channel_t *chan, const char *name);
/** Allows only the named services on the core channel; 0, or -1 with errno. */
int		 cap_service_limit(const cap_channel_t *chan,
		    const char * const *names, size_t nnames);
/** A channel for the descriptor sock (an open fd); NULL with errno. */
cap_channel_t	*cap_wrap(int sock, int flags);
/** Frees the channel and returns its fd; its flags go to *flags. */
int		 cap_unwrap(cap_channel_t *chan, int *flags);
/** A new channel to the same service with the same limits; NULL with errno. */
cap_channel_t	*cap_clone(const cap_channel_t *chan);
/** Closes the channel's fd and frees it. */
void		 cap_close(cap_channel_t *chan);
/** The channel's fd. */
int		 cap_sock(const cap_channel_t *chan);
/** Sets the channel's limits, consuming `limits`; 0, or -1 with errno. */
int		 cap_limit_set(const cap_channel_t *chan, nvlist_t *limits);
/** Stores the channel's limits in *limitsp (NULL if none); 0, or -1 with errno. */
int		 cap_limit_get(const cap_channel_t *chan, nvlist_t **limitsp);
/** Sends nvl (not consumed); the reply waits for cap_recv_nvlist(). */
int		 cap_send_nvlist(const cap_channel_t *chan, const nvlist_t *nvl);
/** The reply to the last cap_send_nvlist(); NULL with errno. */
nvlist_t	*cap_recv_nvlist(const cap_channel_t *chan);
/** Sends nvl (consumed) and returns the reply; NULL with errno. */
nvlist_t	*cap_xfer_nvlist(const cap_channel_t *chan, nvlist_t *nvl);

#else /* !WITH_CASPER */

static inline int
cap_channel_flags(const cap_channel_t *chan)
{

	return (chan->cch_flags);
}

#endif /* WITH_CASPER */

/* The nvlist flags a channel's messages use. */
static inline int
channel_nvlist_flags(const cap_channel_t *chan)
{
	int flags;

	flags = 0;
	if ((cap_channel_flags(chan) & CASPER_NO_UNIQ) != 0)
		flags |= NV_FLAG_NO_UNIQUE;
	return (flags);
}

#ifndef WITH_CASPER

static inline cap_channel_t *
cap_init(void)
{
	cap_channel_t *chan;

	chan = (cap_channel_t *)malloc(sizeof(*chan));
	if (chan != NULL) {
		chan->cch_fd = -1;
		chan->cch_flags = 0;
	}
	return (chan);
}

static inline cap_channel_t *
cap_service_open(const cap_channel_t *chan, const char *name)
{

	(void)chan;
	(void)name;
	return (cap_init());
}

static inline int
cap_service_limit(const cap_channel_t *chan, const char * const *names,
    size_t nnames)
{

	(void)chan;
	(void)names;
	(void)nnames;
	return (0);
}

static inline cap_channel_t *
cap_wrap(int sock, int flags)
{
	cap_channel_t *chan;

	chan = cap_init();
	if (chan != NULL) {
		chan->cch_fd = sock;
		chan->cch_flags = flags;
	}
	return (chan);
}

static inline int
cap_unwrap(cap_channel_t *chan, int *flags)
{
	int fd;

	fd = chan->cch_fd;
	if (flags != NULL)
		*flags = chan->cch_flags;
	free(chan);
	return (fd);
}

static inline cap_channel_t *
cap_clone(const cap_channel_t *chan)
{
	cap_channel_t *newchan;

	if (chan->cch_fd != -1) {
		errno = ENOTSUP;	/* FreeBSD dup()s; WASI cannot */
		return (NULL);
	}
	newchan = cap_init();
	if (newchan != NULL)
		newchan->cch_flags = chan->cch_flags;
	return (newchan);
}

static inline void
cap_close(cap_channel_t *chan)
{

	if (chan->cch_fd >= 0)
		(void)close(chan->cch_fd);
	free(chan);
}

static inline int
cap_sock(const cap_channel_t *chan)
{

	return (chan->cch_fd);
}

static inline int
cap_limit_set(const cap_channel_t *chan, nvlist_t *limits)
{

	(void)chan;
	nvlist_destroy(limits);
	return (0);
}

static inline int
cap_limit_get(const cap_channel_t *chan, nvlist_t **limitsp)
{

	*limitsp = nvlist_create(channel_nvlist_flags(chan));
	return (*limitsp == NULL ? -1 : 0);
}

static inline int
cap_send_nvlist(const cap_channel_t *chan, const nvlist_t *nvl)
{

	(void)chan;
	(void)nvl;
	return (0);
}

static inline nvlist_t *
cap_recv_nvlist(const cap_channel_t *chan)
{

	return (nvlist_create(channel_nvlist_flags(chan)));
}

static inline nvlist_t *
cap_xfer_nvlist(const cap_channel_t *chan, nvlist_t *nvl)
{

	nvlist_destroy(nvl);
	return (nvlist_create(channel_nvlist_flags(chan)));
}

#endif /* !WITH_CASPER */

#ifdef __cplusplus
}
#endif

#endif /* !_LIBCASPER_H_ */
