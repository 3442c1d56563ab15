/*
 * wasi-libc's <unistd.h>, plus pipe(2), which WASI preview1 lacks and capsa
 * provides in its "capsicum" import module.  Link with libcapsa.a.
 */

#ifndef _CAPSA_UNISTD_H_
#define _CAPSA_UNISTD_H_

#include_next <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

/** fds[0] reads what fds[1] writes (CAP_READ / CAP_WRITE, both CAP_EVENT); 0, or -1 with errno. */
int pipe(int fds[2]);

#ifdef __cplusplus
}
#endif

#endif /* !_CAPSA_UNISTD_H_ */
