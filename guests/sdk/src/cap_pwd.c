/*
 * Casper's system.pwd client: FreeBSD's lib/libcasper/services/cap_pwd
 * client half, speaking the same requests and reading the same replies.
 *
 *   getpwent, getpwent_r          {cmd}
 *   getpwnam, getpwnam_r          {cmd, name: string}
 *   getpwuid, getpwuid_r          {cmd, uid: number}
 *     reply {error} when not found, else {error, pw_name, pw_passwd,
 *            pw_class, pw_gecos, pw_dir, pw_shell: strings; pw_uid, pw_gid,
 *            pw_change, pw_expire, pw_fields: numbers}
 *   setpassent                    {cmd, stayopen: bool}   reply {error}
 *   setpwent, endpwent            {cmd}                   reply {error}
 *
 * Limits: nested "cmds" {NAME: null}, "fields" {NAME: null} and "users"
 * {"uid%u": number, "name%u": string}.
 */

#ifndef WITH_CASPER
#define WITH_CASPER
#endif

#include <sys/nv.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libcasper.h>
#include <casper/cap_pwd.h>

#include "casper_impl.h"

/* The static result of the non-_r calls and the buffer its strings live in. */
static struct passwd gpwd;
static char *gbuffer;
static size_t gbufsize;

static const char *const pwd_strings[] = {
	"pw_name", "pw_passwd", "pw_class", "pw_gecos", "pw_dir", "pw_shell",
};
static const char *const pwd_numbers[] = {
	"pw_uid", "pw_gid", "pw_change", "pw_expire", "pw_fields",
};

#define	nitems(x)	(sizeof(x) / sizeof((x)[0]))

/* The bytes the strings of a found entry need; 0 if the reply is malformed. */
static size_t
passwd_size(const nvlist_t *nvl)
{
	size_t i, size;

	size = 0;
	for (i = 0; i < nitems(pwd_strings); i++) {
		if (!nvlist_exists_string(nvl, pwd_strings[i]))
			return (0);
		size += strlen(nvlist_get_string(nvl, pwd_strings[i])) + 1;
	}
	for (i = 0; i < nitems(pwd_numbers); i++) {
		if (!nvlist_exists_number(nvl, pwd_numbers[i]))
			return (0);
	}
	return (size);
}

static char *
passwd_string(const nvlist_t *nvl, const char *key, char **bufp)
{
	const char *str;
	char *field;
	size_t len;

	str = nvlist_get_string(nvl, key);
	len = strlen(str) + 1;
	field = *bufp;
	memcpy(field, str, len);
	*bufp += len;
	return (field);
}

/* Fills *pwd from a reply whose passwd_size() is size <= bufsize. */
static void
passwd_unpack(const nvlist_t *nvl, struct passwd *pwd, char *buffer)
{

	memset(pwd, 0, sizeof(*pwd));
	pwd->pw_name = passwd_string(nvl, "pw_name", &buffer);
	pwd->pw_uid = (uid_t)nvlist_get_number(nvl, "pw_uid");
	pwd->pw_gid = (gid_t)nvlist_get_number(nvl, "pw_gid");
	pwd->pw_change = (time_t)nvlist_get_number(nvl, "pw_change");
	pwd->pw_passwd = passwd_string(nvl, "pw_passwd", &buffer);
	pwd->pw_class = passwd_string(nvl, "pw_class", &buffer);
	pwd->pw_gecos = passwd_string(nvl, "pw_gecos", &buffer);
	pwd->pw_dir = passwd_string(nvl, "pw_dir", &buffer);
	pwd->pw_shell = passwd_string(nvl, "pw_shell", &buffer);
	pwd->pw_expire = (time_t)nvlist_get_number(nvl, "pw_expire");
	pwd->pw_fields = (int)nvlist_get_number(nvl, "pw_fields");
}

/*
 * One lookup.  With global (the non-_r form) the result goes to gpwd and
 * gbuffer, grown as needed.  Returns 0 (found, or not found with *result
 * NULL) or an errno.
 */
static int
cap_getpwlookup(cap_channel_t *chan, const char *cmd, const char *login,
    uid_t uid, bool global, struct passwd *pwd, char *buffer, size_t bufsize,
    struct passwd **result)
{
	nvlist_t *nvl;
	size_t size;
	char *nbuf;
	int error;

	*result = NULL;
	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "cmd", cmd);
	if (strncmp(cmd, "getpwnam", 8) == 0)
		nvlist_add_string(nvl, "name", login);
	else if (strncmp(cmd, "getpwuid", 8) == 0)
		nvlist_add_number(nvl, "uid", (uint64_t)uid);
	nvl = cap_xfer_nvlist(chan, nvl);
	if (nvl == NULL)
		return (errno != 0 ? errno : EIO);
	error = casper_reply_error(nvl);
	if (error != 0)
		goto out;
	if (!nvlist_exists_string(nvl, "pw_name"))
		goto out;		/* not found */

	size = passwd_size(nvl);
	if (size == 0) {
		error = EPROTO;
		goto out;
	}
	if (global) {
		if (size > gbufsize) {
			if ((nbuf = realloc(gbuffer, size)) == NULL) {
				error = ENOMEM;
				goto out;
			}
			gbuffer = nbuf;
			gbufsize = size;
		}
		pwd = &gpwd;
		buffer = gbuffer;
	} else if (size > bufsize) {
		error = ERANGE;
		goto out;
	}
	passwd_unpack(nvl, pwd, buffer);
	*result = pwd;
out:
	nvlist_destroy(nvl);
	return (error);
}

/* The non-_r form: errno is set on error and left alone when not found. */
static struct passwd *
cap_getpwcommon(cap_channel_t *chan, const char *cmd, const char *login,
    uid_t uid)
{
	struct passwd *result;
	int error, serrno;

	serrno = errno;
	error = cap_getpwlookup(chan, cmd, login, uid, true, NULL, NULL, 0,
	    &result);
	if (error != 0) {
		errno = error;
		return (NULL);
	}
	errno = serrno;
	return (result);
}

struct passwd *
cap_getpwent(cap_channel_t *chan)
{

	return (cap_getpwcommon(chan, "getpwent", NULL, 0));
}

struct passwd *
cap_getpwnam(cap_channel_t *chan, const char *login)
{

	return (cap_getpwcommon(chan, "getpwnam", login, 0));
}

struct passwd *
cap_getpwuid(cap_channel_t *chan, uid_t uid)
{

	return (cap_getpwcommon(chan, "getpwuid", NULL, uid));
}

int
cap_getpwent_r(cap_channel_t *chan, struct passwd *pwd, char *buffer,
    size_t bufsize, struct passwd **result)
{

	return (cap_getpwlookup(chan, "getpwent_r", NULL, 0, false, pwd,
	    buffer, bufsize, result));
}

int
cap_getpwnam_r(cap_channel_t *chan, const char *name, struct passwd *pwd,
    char *buffer, size_t bufsize, struct passwd **result)
{

	return (cap_getpwlookup(chan, "getpwnam_r", name, 0, false, pwd,
	    buffer, bufsize, result));
}

int
cap_getpwuid_r(cap_channel_t *chan, uid_t uid, struct passwd *pwd,
    char *buffer, size_t bufsize, struct passwd **result)
{

	return (cap_getpwlookup(chan, "getpwuid_r", NULL, uid, false, pwd,
	    buffer, bufsize, result));
}

int
cap_setpassent(cap_channel_t *chan, int stayopen)
{
	nvlist_t *nvl;
	int error;

	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "cmd", "setpassent");
	nvlist_add_bool(nvl, "stayopen", stayopen != 0);
	nvl = cap_xfer_nvlist(chan, nvl);
	if (nvl == NULL)
		return (0);
	error = casper_reply_error(nvl);
	nvlist_destroy(nvl);
	if (error != 0) {
		errno = error;
		return (0);
	}
	return (1);
}

static void
cap_set_end_pwent(cap_channel_t *chan, const char *cmd)
{
	nvlist_t *nvl;

	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "cmd", cmd);
	/* Errors are ignored: there is no way to report them. */
	nvl = cap_xfer_nvlist(chan, nvl);
	if (nvl != NULL)
		nvlist_destroy(nvl);
}

void
cap_setpwent(cap_channel_t *chan)
{

	cap_set_end_pwent(chan, "setpwent");
}

void
cap_endpwent(cap_channel_t *chan)
{

	cap_set_end_pwent(chan, "endpwent");
}

/* Replaces the nested list key of the current limits with sub. */
static int
limit_replace(cap_channel_t *chan, const char *key, nvlist_t *sub)
{
	nvlist_t *limits;

	if (cap_limit_get(chan, &limits) < 0) {
		nvlist_destroy(sub);
		return (-1);
	}
	if (limits == NULL)
		limits = nvlist_create(0);
	else if (nvlist_exists_nvlist(limits, key))
		nvlist_free_nvlist(limits, key);
	nvlist_move_nvlist(limits, key, sub);
	return (cap_limit_set(chan, limits));
}

int
cap_pwd_limit_cmds(cap_channel_t *chan, const char * const *cmds,
    size_t ncmds)
{
	nvlist_t *nvl;
	size_t i;

	nvl = nvlist_create(0);
	for (i = 0; i < ncmds; i++)
		nvlist_add_null(nvl, cmds[i]);
	return (limit_replace(chan, "cmds", nvl));
}

int
cap_pwd_limit_fields(cap_channel_t *chan, const char * const *fields,
    size_t nfields)
{
	nvlist_t *nvl;
	size_t i;

	nvl = nvlist_create(0);
	for (i = 0; i < nfields; i++)
		nvlist_add_null(nvl, fields[i]);
	return (limit_replace(chan, "fields", nvl));
}

int
cap_pwd_limit_users(cap_channel_t *chan, const char * const *names,
    size_t nnames, uid_t *uids, size_t nuids)
{
	nvlist_t *nvl;
	char key[32];
	size_t i;

	nvl = nvlist_create(0);
	for (i = 0; i < nuids; i++) {
		snprintf(key, sizeof(key), "uid%zu", i);
		nvlist_add_number(nvl, key, (uint64_t)uids[i]);
	}
	for (i = 0; i < nnames; i++) {
		snprintf(key, sizeof(key), "name%zu", i);
		nvlist_add_string(nvl, key, names[i]);
	}
	return (limit_replace(chan, "users", nvl));
}
