/*
 * Casper's system.grp client: FreeBSD's lib/libcasper/services/cap_grp
 * client half, speaking the same requests and reading the same replies.
 *
 *   getgrent, getgrent_r          {cmd}
 *   getgrnam, getgrnam_r          {cmd, name: string}
 *   getgrgid, getgrgid_r          {cmd, gid: number}
 *     reply {error} when not found, else {error, gr_name, gr_passwd:
 *            strings; gr_gid: number; [gr_nmem: number, "gr_mem[%u]":
 *            strings]} (no gr_nmem: no members)
 *   setgroupent                   {cmd, stayopen: bool}   reply {error}
 *   setgrent, endgrent            {cmd}                   reply {error}
 *
 * Limits: nested "cmds" {NAME: null}, "fields" {NAME: null} and "groups"
 * {"gid%u": number, "name%u": string}.
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
#include <casper/cap_grp.h>

#include "casper_impl.h"

/* The static result of the non-_r calls and the buffer it lives in. */
static struct group ggrp;
static char *gbuffer;
static size_t gbufsize;

/* More members than this is a faulty reply, not a group. */
#define	GROUP_MAX_MEMBERS	65536

#define	PTR_ALIGN	(sizeof(char *) - 1)

/*
 * The bytes a found entry needs (strings, then the aligned gr_mem array,
 * then the member strings), and its member count in *nmemp; 0 if the reply
 * is malformed.
 */
static size_t
group_size(const nvlist_t *nvl, size_t *nmemp)
{
	char key[32];
	uint64_t n;
	size_t i, size;

	if (!nvlist_exists_string(nvl, "gr_name") ||
	    !nvlist_exists_string(nvl, "gr_passwd") ||
	    !nvlist_exists_number(nvl, "gr_gid"))
		return (0);
	size = strlen(nvlist_get_string(nvl, "gr_name")) + 1 +
	    strlen(nvlist_get_string(nvl, "gr_passwd")) + 1;
	n = 0;
	if (nvlist_exists_number(nvl, "gr_nmem"))
		n = nvlist_get_number(nvl, "gr_nmem");
	if (n > GROUP_MAX_MEMBERS)
		return (0);
	size += PTR_ALIGN + sizeof(char *) * ((size_t)n + 1);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "gr_mem[%zu]", i);
		if (!nvlist_exists_string(nvl, key))
			return (0);
		size += strlen(nvlist_get_string(nvl, key)) + 1;
	}
	*nmemp = (size_t)n;
	return (size);
}

static char *
group_string(const char *str, char **bufp)
{
	char *field;
	size_t len;

	len = strlen(str) + 1;
	field = *bufp;
	memcpy(field, str, len);
	*bufp += len;
	return (field);
}

/* Fills *grp from a reply whose group_size() fits in buffer. */
static void
group_unpack(const nvlist_t *nvl, struct group *grp, char *buffer,
    size_t nmem)
{
	char key[32], **mem;
	size_t i;

	memset(grp, 0, sizeof(*grp));
	grp->gr_name = group_string(nvlist_get_string(nvl, "gr_name"), &buffer);
	grp->gr_passwd = group_string(nvlist_get_string(nvl, "gr_passwd"),
	    &buffer);
	grp->gr_gid = (gid_t)nvlist_get_number(nvl, "gr_gid");
	mem = (char **)(((uintptr_t)buffer + PTR_ALIGN) & ~(uintptr_t)PTR_ALIGN);
	buffer = (char *)(mem + nmem + 1);
	for (i = 0; i < nmem; i++) {
		snprintf(key, sizeof(key), "gr_mem[%zu]", i);
		mem[i] = group_string(nvlist_get_string(nvl, key), &buffer);
	}
	mem[nmem] = NULL;
	grp->gr_mem = mem;
}

/*
 * One lookup.  With global (the non-_r form) the result goes to ggrp and
 * gbuffer, grown as needed.  Returns 0 (found, or not found with *result
 * NULL) or an errno.
 */
static int
cap_getgrlookup(cap_channel_t *chan, const char *cmd, const char *name,
    gid_t gid, bool global, struct group *grp, char *buffer, size_t bufsize,
    struct group **result)
{
	nvlist_t *nvl;
	size_t nmem, size;
	char *nbuf;
	int error;

	*result = NULL;
	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "cmd", cmd);
	if (strncmp(cmd, "getgrnam", 8) == 0)
		nvlist_add_string(nvl, "name", name);
	else if (strncmp(cmd, "getgrgid", 8) == 0)
		nvlist_add_number(nvl, "gid", (uint64_t)gid);
	nvl = cap_xfer_nvlist(chan, nvl);
	if (nvl == NULL)
		return (errno != 0 ? errno : EIO);
	error = casper_reply_error(nvl);
	if (error != 0)
		goto out;
	if (!nvlist_exists_string(nvl, "gr_name"))
		goto out;		/* not found */

	nmem = 0;
	size = group_size(nvl, &nmem);
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
		grp = &ggrp;
		buffer = gbuffer;
	} else if (size > bufsize) {
		error = ERANGE;
		goto out;
	}
	group_unpack(nvl, grp, buffer, nmem);
	*result = grp;
out:
	nvlist_destroy(nvl);
	return (error);
}

/* The non-_r form: errno is set on error and left alone when not found. */
static struct group *
cap_getgrcommon(cap_channel_t *chan, const char *cmd, const char *name,
    gid_t gid)
{
	struct group *result;
	int error, serrno;

	serrno = errno;
	error = cap_getgrlookup(chan, cmd, name, gid, true, NULL, NULL, 0,
	    &result);
	if (error != 0) {
		errno = error;
		return (NULL);
	}
	errno = serrno;
	return (result);
}

struct group *
cap_getgrent(cap_channel_t *chan)
{

	return (cap_getgrcommon(chan, "getgrent", NULL, 0));
}

struct group *
cap_getgrnam(cap_channel_t *chan, const char *name)
{

	return (cap_getgrcommon(chan, "getgrnam", name, 0));
}

struct group *
cap_getgrgid(cap_channel_t *chan, gid_t gid)
{

	return (cap_getgrcommon(chan, "getgrgid", NULL, gid));
}

int
cap_getgrent_r(cap_channel_t *chan, struct group *grp, char *buffer,
    size_t bufsize, struct group **result)
{

	return (cap_getgrlookup(chan, "getgrent_r", NULL, 0, false, grp,
	    buffer, bufsize, result));
}

int
cap_getgrnam_r(cap_channel_t *chan, const char *name, struct group *grp,
    char *buffer, size_t bufsize, struct group **result)
{

	return (cap_getgrlookup(chan, "getgrnam_r", name, 0, false, grp,
	    buffer, bufsize, result));
}

int
cap_getgrgid_r(cap_channel_t *chan, gid_t gid, struct group *grp,
    char *buffer, size_t bufsize, struct group **result)
{

	return (cap_getgrlookup(chan, "getgrgid_r", NULL, gid, false, grp,
	    buffer, bufsize, result));
}

/* Sends a request whose reply carries only "error"; 1 on success, else 0. */
static int
cap_grp_simple(cap_channel_t *chan, nvlist_t *nvl)
{
	int error;

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

int
cap_setgroupent(cap_channel_t *chan, int stayopen)
{
	nvlist_t *nvl;

	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "cmd", "setgroupent");
	nvlist_add_bool(nvl, "stayopen", stayopen != 0);
	return (cap_grp_simple(chan, nvl));
}

int
cap_setgrent(cap_channel_t *chan)
{
	nvlist_t *nvl;

	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "cmd", "setgrent");
	return (cap_grp_simple(chan, nvl));
}

void
cap_endgrent(cap_channel_t *chan)
{
	nvlist_t *nvl;

	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "cmd", "endgrent");
	/* Errors are ignored: there is no way to report them. */
	nvl = cap_xfer_nvlist(chan, nvl);
	if (nvl != NULL)
		nvlist_destroy(nvl);
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
cap_grp_limit_cmds(cap_channel_t *chan, const char * const *cmds,
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
cap_grp_limit_fields(cap_channel_t *chan, const char * const *fields,
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
cap_grp_limit_groups(cap_channel_t *chan, const char * const *names,
    size_t nnames, const gid_t *gids, size_t ngids)
{
	nvlist_t *nvl;
	char key[32];
	size_t i;

	nvl = nvlist_create(0);
	for (i = 0; i < ngids; i++) {
		snprintf(key, sizeof(key), "gid%zu", i);
		nvlist_add_number(nvl, key, (uint64_t)gids[i]);
	}
	/* FreeBSD reuses "gid%u" here, colliding with the gids (EEXIST). */
	for (i = 0; i < nnames; i++) {
		snprintf(key, sizeof(key), "name%zu", i);
		nvlist_add_string(nvl, key, names[i]);
	}
	return (limit_replace(chan, "groups", nvl));
}
