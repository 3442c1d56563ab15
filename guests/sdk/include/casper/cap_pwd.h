/*
 * Casper's system.pwd client (FreeBSD's cap_pwd(3)) for capsa guests.
 *
 * With WITH_CASPER defined (or HAVE_CASPER), the calls below send libcasper
 * requests over a channel from cap_service_open(chan, "system.pwd"), exactly
 * as FreeBSD's libcap_pwd does; link with libcapsa.a.  Without it they map
 * to libc, as FreeBSD's header does ("mock mode"), except that wasi-libc has
 * no user database: there the lookups are stubs that fail with ENOSYS
 * (NULL with errno ENOSYS; the _r calls return ENOSYS with *result NULL;
 * cap_setpassent returns 0), cap_setpwent/cap_endpwent do nothing, and the
 * limit calls succeed and enforce nothing.
 *
 * Limits (nested nvlists; each call replaces its own and keeps the others):
 *   cap_pwd_limit_cmds(chan, cmds, n)    "cmds": {NAME: null}, NAME one of
 *       getpwent getpwent_r getpwnam getpwnam_r getpwuid getpwuid_r
 *       setpassent setpwent endpwent; others fail with ENOTCAPABLE;
 *   cap_pwd_limit_fields(chan, fields, n) "fields": {NAME: null}, NAME one
 *       of pw_name pw_passwd pw_uid pw_gid pw_change pw_class pw_gecos
 *       pw_dir pw_shell pw_expire; others come back empty ("" / -1 / 0) and
 *       their _PWF_* bit is cleared in pw_fields;
 *   cap_pwd_limit_users(chan, names, nnames, uids, nuids) "users":
 *       {"uid%u": number, "name%u": string}; other users are not found.
 */

#ifndef _CAP_PWD_H_
#define _CAP_PWD_H_

#ifdef HAVE_CASPER
#ifndef WITH_CASPER
#define WITH_CASPER
#endif
#endif

#include <sys/types.h>
#include <stddef.h>

#include <pwd.h>
#include <libcasper.h>

struct passwd;

#ifdef WITH_CASPER

#ifdef __cplusplus
extern "C" {
#endif

struct passwd *cap_getpwent(cap_channel_t *chan);
struct passwd *cap_getpwnam(cap_channel_t *chan, const char *login);
struct passwd *cap_getpwuid(cap_channel_t *chan, uid_t uid);

int cap_getpwent_r(cap_channel_t *chan, struct passwd *pwd, char *buffer,
    size_t bufsize, struct passwd **result);
int cap_getpwnam_r(cap_channel_t *chan, const char *name, struct passwd *pwd,
    char *buffer, size_t bufsize, struct passwd **result);
int cap_getpwuid_r(cap_channel_t *chan, uid_t uid, struct passwd *pwd,
    char *buffer, size_t bufsize, struct passwd **result);

int cap_setpassent(cap_channel_t *chan, int stayopen);
void cap_setpwent(cap_channel_t *chan);
void cap_endpwent(cap_channel_t *chan);

int cap_pwd_limit_cmds(cap_channel_t *chan, const char * const *cmds,
    size_t ncmds);
int cap_pwd_limit_fields(cap_channel_t *chan, const char * const *fields,
    size_t nfields);
int cap_pwd_limit_users(cap_channel_t *chan, const char * const *names,
    size_t nnames, uid_t *uids, size_t nuids);

#ifdef __cplusplus
}
#endif

#else /* !WITH_CASPER */

#include <errno.h>

/* No user database in libc: the mock lookups fail with ENOSYS. */
static inline struct passwd *
cap_getpwent(cap_channel_t *chan)
{

	(void)chan;
	errno = ENOSYS;
	return (NULL);
}

static inline struct passwd *
cap_getpwnam(cap_channel_t *chan, const char *login)
{

	(void)chan, (void)login;
	errno = ENOSYS;
	return (NULL);
}

static inline struct passwd *
cap_getpwuid(cap_channel_t *chan, uid_t uid)
{

	(void)chan, (void)uid;
	errno = ENOSYS;
	return (NULL);
}

static inline int
cap_getpwent_r(cap_channel_t *chan, struct passwd *pwd, char *buffer,
    size_t bufsize, struct passwd **result)
{

	(void)chan, (void)pwd, (void)buffer, (void)bufsize;
	*result = NULL;
	return (ENOSYS);
}

static inline int
cap_getpwnam_r(cap_channel_t *chan, const char *name, struct passwd *pwd,
    char *buffer, size_t bufsize, struct passwd **result)
{

	(void)chan, (void)name, (void)pwd, (void)buffer, (void)bufsize;
	*result = NULL;
	return (ENOSYS);
}

static inline int
cap_getpwuid_r(cap_channel_t *chan, uid_t uid, struct passwd *pwd,
    char *buffer, size_t bufsize, struct passwd **result)
{

	(void)chan, (void)uid, (void)pwd, (void)buffer, (void)bufsize;
	*result = NULL;
	return (ENOSYS);
}

static inline int
cap_setpassent(cap_channel_t *chan, int stayopen)
{

	(void)chan, (void)stayopen;
	errno = ENOSYS;
	return (0);
}

static inline void
cap_setpwent(cap_channel_t *chan)
{

	(void)chan;
}

static inline void
cap_endpwent(cap_channel_t *chan)
{

	(void)chan;
}


static inline int
cap_pwd_limit_cmds(cap_channel_t *chan, const char * const *cmds,
    size_t ncmds)
{

	(void)chan, (void)cmds, (void)ncmds;
	return (0);
}

static inline int
cap_pwd_limit_fields(cap_channel_t *chan, const char * const *fields,
    size_t nfields)
{

	(void)chan, (void)fields, (void)nfields;
	return (0);
}

static inline int
cap_pwd_limit_users(cap_channel_t *chan, const char * const *names,
    size_t nnames, uid_t *uids, size_t nuids)
{

	(void)chan, (void)names, (void)nnames, (void)uids, (void)nuids;
	return (0);
}

#endif /* WITH_CASPER */

#endif /* !_CAP_PWD_H_ */
