/*
 * Starting child guests: fexecve(2) and pdfork(2) in one call, since a guest
 * cannot copy itself.  Link with libcapsa.a.
 */

#ifndef _CAPSA_SPAWN_H_
#define _CAPSA_SPAWN_H_

#include <sys/procdesc.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Starts a child guest from the module file modfd (held with CAP_FEXECVE),
 * with argv (NULL-terminated; argv[0] is its name) and, as its fds 0..nfds-1,
 * the descriptors fds[0..nfds-1] with the rights this guest holds on them.
 * The child gets nothing else: no preopens, no environment.  Works in
 * capability mode.  Stores the process descriptor in *pdp and returns the
 * child's pid; -1 with errno (EAGAIN: the run has as many children as it
 * may; ENOTSUP: a descriptor that cannot cross, such as a writable file;
 * ENOEXEC: not a module a child can run).  flags must be 0.
 */
pid_t pdspawn(int *pdp, int modfd, char *const argv[], const int *fds, int nfds, int flags);

#ifdef __cplusplus
}
#endif

#endif /* !_CAPSA_SPAWN_H_ */
