/*
 * Casper's system.grp client (FreeBSD's cap_grp(3)) for capsa guests.
 *
 * With WITH_CASPER defined (or HAVE_CASPER), the calls below send libcasper
 * requests over a channel from cap_service_open(chan, "system.grp"), exactly
 * as FreeBSD's libcap_grp does; link with libcapsa.a.  Without it they map
 * to libc, as FreeBSD's header does ("mock mode"), except that wasi-libc has
 * no group database: there the lookups are stubs that fail with ENOSYS
 * (NULL with errno ENOSYS; the _r calls return ENOSYS with *result NULL;
 * cap_setgroupent and cap_setgrent return 0 with errno ENOSYS),
 * cap_endgrent does nothing, and the limit calls succeed and enforce nothing.
 *
 * Limits (nested nvlists; each call replaces its own and keeps the others):
 *   cap_grp_limit_cmds(chan, cmds, n)     "cmds": {NAME: null}, NAME one of
 *       getgrent getgrent_r getgrnam getgrnam_r getgrgid getgrgid_r
 *       setgroupent setgrent endgrent; others fail with ENOTCAPABLE;
 *   cap_grp_limit_fields(chan, fields, n) "fields": {NAME: null}, NAME one
 *       of gr_name gr_passwd gr_gid gr_mem; others come back empty ("",
 *       gid -1, no members);
 *   cap_grp_limit_groups(chan, names, nnames, gids, ngids) "groups":
 *       {"gid%u": number, "name%u": string}; other groups are not found.
 *       (FreeBSD keys the names "gid%u" too, which collides with the gids
 *       and fails with EEXIST when both are given; the service tells them
 *       apart by type, so capsa keys them "name%u".)
 */

#ifndef _CAP_GRP_H_
#define _CAP_GRP_H_

#ifdef HAVE_CASPER
#ifndef WITH_CASPER
#define WITH_CASPER
#endif
#endif

#include <sys/types.h>
#include <stddef.h>

#include <grp.h>
#include <libcasper.h>

struct group;

#ifdef WITH_CASPER

#ifdef __cplusplus
extern "C" {
#endif

struct group *cap_getgrent(cap_channel_t *chan);
struct group *cap_getgrnam(cap_channel_t *chan, const char *name);
struct group *cap_getgrgid(cap_channel_t *chan, gid_t gid);

int cap_getgrent_r(cap_channel_t *chan, struct group *grp, char *buffer,
    size_t bufsize, struct group **result);
int cap_getgrnam_r(cap_channel_t *chan, const char *name, struct group *grp,
    char *buffer, size_t bufsize, struct group **result);
int cap_getgrgid_r(cap_channel_t *chan, gid_t gid, struct group *grp,
    char *buffer, size_t bufsize, struct group **result);

int cap_setgroupent(cap_channel_t *chan, int stayopen);
int cap_setgrent(cap_channel_t *chan);
void cap_endgrent(cap_channel_t *chan);

int cap_grp_limit_cmds(cap_channel_t *chan, const char * const *cmds,
    size_t ncmds);
int cap_grp_limit_fields(cap_channel_t *chan, const char * const *fields,
    size_t nfields);
int cap_grp_limit_groups(cap_channel_t *chan, const char * const *names,
    size_t nnames, const gid_t *gids, size_t ngids);

#ifdef __cplusplus
}
#endif

#else /* !WITH_CASPER */

#include <errno.h>

/* No group database in libc: the mock lookups fail with ENOSYS. */
static inline struct group *
cap_getgrent(cap_channel_t *chan)
{

	(void)chan;
	errno = ENOSYS;
	return (NULL);
}

static inline struct group *
cap_getgrnam(cap_channel_t *chan, const char *name)
{

	(void)chan, (void)name;
	errno = ENOSYS;
	return (NULL);
}

static inline struct group *
cap_getgrgid(cap_channel_t *chan, gid_t gid)
{

	(void)chan, (void)gid;
	errno = ENOSYS;
	return (NULL);
}

static inline int
cap_getgrent_r(cap_channel_t *chan, struct group *grp, char *buffer,
    size_t bufsize, struct group **result)
{

	(void)chan, (void)grp, (void)buffer, (void)bufsize;
	*result = NULL;
	return (ENOSYS);
}

static inline int
cap_getgrnam_r(cap_channel_t *chan, const char *name, struct group *grp,
    char *buffer, size_t bufsize, struct group **result)
{

	(void)chan, (void)name, (void)grp, (void)buffer, (void)bufsize;
	*result = NULL;
	return (ENOSYS);
}

static inline int
cap_getgrgid_r(cap_channel_t *chan, gid_t gid, struct group *grp,
    char *buffer, size_t bufsize, struct group **result)
{

	(void)chan, (void)gid, (void)grp, (void)buffer, (void)bufsize;
	*result = NULL;
	return (ENOSYS);
}

static inline int
cap_setgroupent(cap_channel_t *chan, int stayopen)
{

	(void)chan, (void)stayopen;
	errno = ENOSYS;
	return (0);
}

static inline int
cap_setgrent(cap_channel_t *chan)
{

	(void)chan;
	errno = ENOSYS;
	return (0);
}

static inline void
cap_endgrent(cap_channel_t *chan)
{

	(void)chan;
}


static inline int
cap_grp_limit_cmds(cap_channel_t *chan, const char * const *cmds,
    size_t ncmds)
{

	(void)chan, (void)cmds, (void)ncmds;
	return (0);
}

static inline int
cap_grp_limit_fields(cap_channel_t *chan, const char * const *fields,
    size_t nfields)
{

	(void)chan, (void)fields, (void)nfields;
	return (0);
}

static inline int
cap_grp_limit_groups(cap_channel_t *chan, const char * const *names,
    size_t nnames, const gid_t *gids, size_t ngids)
{

	(void)chan, (void)names, (void)nnames, (void)gids, (void)ngids;
	return (0);
}

#endif /* WITH_CASPER */

#endif /* !_CAP_GRP_H_ */
