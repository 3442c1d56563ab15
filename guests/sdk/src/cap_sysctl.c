/*
 * Casper's system.sysctl client: FreeBSD's lib/libcasper/services/cap_sysctl
 * client half (the 2018 interface), speaking the same requests and reading
 * the same replies.
 *
 *   sysctl        {cmd, mib: binary int[], operation: number, [justsize:
 *                  null | oldlen: number], [newp: binary]}
 *   sysctlbyname  {cmd, name: string, operation, [justsize | oldlen],
 *                  [newp]}
 *     operation: CAP_SYSCTL_READ if oldlenp != NULL, | CAP_SYSCTL_WRITE if
 *     newp != NULL; justsize when oldp == NULL (size query), else oldlen
 *     (the buffer's size).
 *     reply {error, oldlen: number} for justsize, {error, oldp: binary} for
 *     a read, {error} otherwise
 *   sysctlnametomib {cmd, name, operation: 0, size: number (max entries)}
 *     reply {error, mib: binary int[]}
 *
 * Limits: an NV_FLAG_NO_UNIQUE list of "limit" nvlists, each {[name:
 * string], [mib: binary int[]], operation: number}.
 */

#ifndef WITH_CASPER
#define WITH_CASPER
#endif

#include <sys/nv.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libcasper.h>
#include <casper/cap_sysctl.h>

#include "casper_impl.h"

struct cap_sysctl_limit {
	cap_channel_t	*chan;
	nvlist_t	*nv;
};

cap_sysctl_limit_t *
cap_sysctl_limit_init(cap_channel_t *chan)
{
	cap_sysctl_limit_t *limit;

	limit = malloc(sizeof(*limit));
	if (limit == NULL)
		return (NULL);
	limit->chan = chan;
	limit->nv = nvlist_create(NV_FLAG_NO_UNIQUE);
	if (limit->nv == NULL) {
		free(limit);
		return (NULL);
	}
	return (limit);
}

/* Frees the set after a failure, keeping errno. */
static cap_sysctl_limit_t *
limit_fail(cap_sysctl_limit_t *limit)
{
	int serrno;

	serrno = errno;
	nvlist_destroy(limit->nv);
	free(limit);
	errno = serrno;
	return (NULL);
}

cap_sysctl_limit_t *
cap_sysctl_limit_name(cap_sysctl_limit_t *limit, const char *name, int flags)
{
	nvlist_t *lnv;
	size_t mibsz;
	int mib[CTL_MAXNAME], serrno;

	if (limit == NULL)
		return (NULL);
	lnv = nvlist_create(0);
	if (lnv == NULL)
		return (limit_fail(limit));
	nvlist_add_string(lnv, "name", name);
	nvlist_add_number(lnv, "operation", (uint64_t)flags);

	/* As FreeBSD does: also allow the MIB, when the service knows it. */
	serrno = errno;
	mibsz = CTL_MAXNAME;
	if (cap_sysctlnametomib(limit->chan, name, mib, &mibsz) == 0)
		nvlist_add_binary(lnv, "mib", mib, mibsz * sizeof(int));
	errno = serrno;

	nvlist_move_nvlist(limit->nv, "limit", lnv);
	return (limit);
}

cap_sysctl_limit_t *
cap_sysctl_limit_mib(cap_sysctl_limit_t *limit, const int *mibp,
    u_int miblen, int flags)
{
	nvlist_t *lnv;

	if (limit == NULL)
		return (NULL);
	lnv = nvlist_create(0);
	if (lnv == NULL)
		return (limit_fail(limit));
	nvlist_add_binary(lnv, "mib", mibp, (size_t)miblen * sizeof(int));
	nvlist_add_number(lnv, "operation", (uint64_t)flags);
	nvlist_move_nvlist(limit->nv, "limit", lnv);
	return (limit);
}

int
cap_sysctl_limit(cap_sysctl_limit_t *limit)
{
	cap_channel_t *chan;
	nvlist_t *lnv;

	if (limit == NULL) {
		errno = ENOMEM;
		return (-1);
	}
	chan = limit->chan;
	lnv = limit->nv;
	free(limit);
	/* cap_limit_set() always consumes the list. */
	return (cap_limit_set(chan, lnv));
}

static int
do_sysctl(cap_channel_t *chan, nvlist_t *nvl, void *oldp, size_t *oldlenp,
    const void *newp, size_t newlen)
{
	const void *data;
	size_t size;
	uint8_t operation;
	int error;

	operation = 0;
	if (oldlenp != NULL)
		operation |= CAP_SYSCTL_READ;
	if (newp != NULL)
		operation |= CAP_SYSCTL_WRITE;
	nvlist_add_number(nvl, "operation", (uint64_t)operation);
	if (oldp == NULL && oldlenp != NULL)
		nvlist_add_null(nvl, "justsize");
	else if (oldlenp != NULL)
		nvlist_add_number(nvl, "oldlen", (uint64_t)*oldlenp);
	if (newp != NULL)
		nvlist_add_binary(nvl, "newp", newp, newlen);

	nvl = cap_xfer_nvlist(chan, nvl);
	if (nvl == NULL)
		return (-1);
	error = casper_reply_error(nvl);
	if (error != 0)
		goto fail;

	if (oldlenp != NULL && oldp == NULL) {
		if (!nvlist_exists_number(nvl, "oldlen")) {
			error = EPROTO;
			goto fail;
		}
		*oldlenp = (size_t)nvlist_get_number(nvl, "oldlen");
	} else if (oldlenp != NULL) {
		if (!nvlist_exists_binary(nvl, "oldp")) {
			error = EPROTO;
			goto fail;
		}
		data = nvlist_get_binary(nvl, "oldp", &size);
		/* The service never sends more than oldlen; refuse if it does. */
		if (size > *oldlenp) {
			memcpy(oldp, data, *oldlenp);
			error = ENOMEM;
			goto fail;
		}
		memcpy(oldp, data, size);
		*oldlenp = size;
	}
	nvlist_destroy(nvl);
	return (0);
fail:
	nvlist_destroy(nvl);
	errno = error;
	return (-1);
}

int
cap_sysctl(cap_channel_t *chan, const int *name, u_int namelen, void *oldp,
    size_t *oldlenp, const void *newp, size_t newlen)
{
	nvlist_t *req;

	req = nvlist_create(0);
	nvlist_add_string(req, "cmd", "sysctl");
	nvlist_add_binary(req, "mib", name, (size_t)namelen * sizeof(int));
	return (do_sysctl(chan, req, oldp, oldlenp, newp, newlen));
}

int
cap_sysctlbyname(cap_channel_t *chan, const char *name, void *oldp,
    size_t *oldlenp, const void *newp, size_t newlen)
{
	nvlist_t *req;

	req = nvlist_create(0);
	nvlist_add_string(req, "cmd", "sysctlbyname");
	nvlist_add_string(req, "name", name);
	return (do_sysctl(chan, req, oldp, oldlenp, newp, newlen));
}

int
cap_sysctlnametomib(cap_channel_t *chan, const char *name, int *mibp,
    size_t *sizep)
{
	const void *mib;
	nvlist_t *req;
	size_t mibsz;
	int error;

	req = nvlist_create(0);
	nvlist_add_string(req, "cmd", "sysctlnametomib");
	nvlist_add_string(req, "name", name);
	nvlist_add_number(req, "operation", 0);
	nvlist_add_number(req, "size", (uint64_t)*sizep);

	req = cap_xfer_nvlist(chan, req);
	if (req == NULL)
		return (-1);
	error = casper_reply_error(req);
	if (error == 0 && !nvlist_exists_binary(req, "mib"))
		error = EPROTO;
	if (error == 0) {
		mib = nvlist_get_binary(req, "mib", &mibsz);
		if (mibsz % sizeof(int) != 0)
			error = EPROTO;
		else if (mibsz / sizeof(int) > *sizep)
			error = ENOMEM;
		else {
			memcpy(mibp, mib, mibsz);
			*sizep = mibsz / sizeof(int);
		}
	}
	nvlist_destroy(req);
	if (error != 0) {
		errno = error;
		return (-1);
	}
	return (0);
}
