/*
 * Casper's system.random client (FreeBSD's cap_random(3)) for capsa guests.
 *
 * cap_random_buf(chan, buf, nbytes) fills buf with nbytes random bytes from a
 * channel opened with cap_service_open(chan, "system.random"), asking for at
 * most 1 MiB per request as FreeBSD does; 0, or -1 with errno.  The service
 * takes no limits (cap_limit_set fails with EOPNOTSUPP).
 *
 * Without WITH_CASPER (or HAVE_CASPER) it is arc4random_buf(buf, nbytes),
 * which wasi-libc has, and returns 0 ("mock mode").
 */

#ifndef _CAP_RANDOM_H_
#define _CAP_RANDOM_H_

#ifdef HAVE_CASPER
#ifndef WITH_CASPER
#define WITH_CASPER
#endif
#endif

#include <stddef.h>
#include <stdlib.h>		/* arc4random_buf */

#include <libcasper.h>

#ifdef WITH_CASPER

#ifdef __cplusplus
extern "C" {
#endif

int cap_random_buf(cap_channel_t *chan, void *buf, size_t nbytes);

#ifdef __cplusplus
}
#endif

#else /* !WITH_CASPER */

/* <stdlib.h> declares it only with _BSD_SOURCE (musl's default). */
void arc4random_buf(void *, size_t);

static inline int
cap_random_buf(cap_channel_t *chan, void *buf, size_t nbytes)
{

	(void)chan;
	arc4random_buf(buf, nbytes);
	return (0);
}

#endif /* WITH_CASPER */

#endif /* !_CAP_RANDOM_H_ */
