/*
 * Casper's system.sysctl client (FreeBSD's cap_sysctl(3)) for capsa guests.
 *
 * With WITH_CASPER defined (or HAVE_CASPER), the calls below send libcasper
 * requests over a channel from cap_service_open(chan, "system.sysctl"),
 * exactly as FreeBSD's libcap_sysctl does; link with libcapsa.a.  Values are
 * the bytes the service holds (an int is 4 little-endian bytes, a string
 * ends with its NUL), as sysctl(3) gives them.
 *
 * Limits: build a set with cap_sysctl_limit_init(chan), add entries with
 * cap_sysctl_limit_name(limit, name, flags) (which also records the MIB,
 * asked of the channel) or cap_sysctl_limit_mib(limit, mib, len, flags),
 * and apply it with cap_sysctl_limit(limit), which consumes the set.
 * flags: CAP_SYSCTL_READ, CAP_SYSCTL_WRITE (or CAP_SYSCTL_RDWR), optionally
 * with CAP_SYSCTL_RECURSIVE (the name and everything below it).  Each later
 * set must be a subset; an empty set denies everything.  Refused calls fail
 * with ENOTCAPABLE.
 *
 * Without WITH_CASPER ("mock mode") FreeBSD maps the calls to libc's
 * sysctl(), sysctlbyname() and sysctlnametomib(); wasi-libc has none, so
 * here they are stubs that fail with -1 and errno ENOSYS.  As on FreeBSD,
 * cap_sysctl_limit_init/_name/_mib return NULL and cap_sysctl_limit
 * returns 0.
 */

#ifndef _CAP_SYSCTL_H_
#define _CAP_SYSCTL_H_

#ifdef HAVE_CASPER
#ifndef WITH_CASPER
#define WITH_CASPER
#endif
#endif

#include <sys/types.h>		/* u_int */
#include <stddef.h>

#include <libcasper.h>

#define	CAP_SYSCTL_READ		0x01
#define	CAP_SYSCTL_WRITE	0x02
#define	CAP_SYSCTL_RDWR		(CAP_SYSCTL_READ | CAP_SYSCTL_WRITE)
#define	CAP_SYSCTL_RECURSIVE	0x04

#ifndef CTL_MAXNAME
#define	CTL_MAXNAME	24	/* FreeBSD's longest MIB */
#endif

struct cap_sysctl_limit;
typedef struct cap_sysctl_limit cap_sysctl_limit_t;

#ifdef WITH_CASPER

#ifdef __cplusplus
extern "C" {
#endif

int cap_sysctl(cap_channel_t *chan, const int *name, u_int namelen,
    void *oldp, size_t *oldlenp, const void *newp, size_t newlen);
int cap_sysctlbyname(cap_channel_t *chan, const char *name, void *oldp,
    size_t *oldlenp, const void *newp, size_t newlen);
int cap_sysctlnametomib(cap_channel_t *chan, const char *name, int *mibp,
    size_t *sizep);

cap_sysctl_limit_t *cap_sysctl_limit_init(cap_channel_t *chan);
cap_sysctl_limit_t *cap_sysctl_limit_name(cap_sysctl_limit_t *limit,
    const char *name, int flags);
cap_sysctl_limit_t *cap_sysctl_limit_mib(cap_sysctl_limit_t *limit,
    const int *mibp, u_int miblen, int flags);
int cap_sysctl_limit(cap_sysctl_limit_t *limit);

#ifdef __cplusplus
}
#endif

#else /* !WITH_CASPER */

/*
 * wasi-libc has no sysctl(): the mock calls are stubs.  (No __has_include
 * test for <sys/sysctl.h>: Debian's clang also searches the host's
 * /usr/include, whose header is not the guest libc's.)
 */
#include <errno.h>

static inline int
cap_sysctl(cap_channel_t *chan, const int *name, u_int namelen, void *oldp,
    size_t *oldlenp, const void *newp, size_t newlen)
{

	(void)chan;
	(void)name, (void)namelen, (void)oldp, (void)oldlenp;
	(void)newp, (void)newlen;
	errno = ENOSYS;
	return (-1);
}

static inline int
cap_sysctlbyname(cap_channel_t *chan, const char *name, void *oldp,
    size_t *oldlenp, const void *newp, size_t newlen)
{

	(void)chan;
	(void)name, (void)oldp, (void)oldlenp, (void)newp, (void)newlen;
	errno = ENOSYS;
	return (-1);
}

static inline int
cap_sysctlnametomib(cap_channel_t *chan, const char *name, int *mibp,
    size_t *sizep)
{

	(void)chan;
	(void)name, (void)mibp, (void)sizep;
	errno = ENOSYS;
	return (-1);
}

static inline cap_sysctl_limit_t *
cap_sysctl_limit_init(cap_channel_t *chan)
{

	(void)chan;
	return (NULL);
}

static inline cap_sysctl_limit_t *
cap_sysctl_limit_name(cap_sysctl_limit_t *limit, const char *name, int flags)
{

	(void)limit, (void)name, (void)flags;
	return (NULL);
}

static inline cap_sysctl_limit_t *
cap_sysctl_limit_mib(cap_sysctl_limit_t *limit, const int *mibp,
    u_int miblen, int flags)
{

	(void)limit, (void)mibp, (void)miblen, (void)flags;
	return (NULL);
}

static inline int
cap_sysctl_limit(cap_sysctl_limit_t *limit)
{

	(void)limit;
	return (0);
}

#endif /* WITH_CASPER */

#endif /* !_CAP_SYSCTL_H_ */
