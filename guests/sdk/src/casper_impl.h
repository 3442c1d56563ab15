/*
 * Shared by the Casper clients (cap_*.c): reading replies without aborting.
 *
 * FreeBSD's clients call nvlist_get_*() on the keys a reply must carry, and
 * libnv aborts the program when one is missing.  capsa's clients check first
 * and fail the call with EPROTO instead (as capsa's libcasper does for a
 * reply without "error"), so a faulty service costs one call, not the
 * guest.  The keys and types read are FreeBSD's.
 */

#ifndef _CASPER_IMPL_H_
#define _CASPER_IMPL_H_

#include <sys/nv.h>

#include <errno.h>
#include <stdint.h>

#ifndef ENOTCAPABLE
#define ENOTCAPABLE	76
#endif

/* The reply's "error" (0: success); EPROTO if it has none. */
static inline int
casper_reply_error(const nvlist_t *nvl)
{

	if (!nvlist_exists_number(nvl, "error"))
		return (EPROTO);
	return ((int)nvlist_get_number(nvl, "error"));
}

#endif /* !_CASPER_IMPL_H_ */
