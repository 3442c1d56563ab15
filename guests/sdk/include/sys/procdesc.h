/*
 * FreeBSD's process descriptors for capsa guests (wasm32-wasi).
 *
 * A process descriptor names a child guest started with pdspawn()
 * (<capsa/spawn.h>).  Its rights are CAP_PDWAIT, CAP_PDKILL, CAP_PDGETPID and
 * CAP_EVENT (poll() for the child's end); closing it ends the child, as
 * FreeBSD does without PD_DAEMON.  Link with libcapsa.a.
 */

#ifndef _SYS_PROCDESC_H_
#define _SYS_PROCDESC_H_

#include <sys/types.h>

/* wasi-libc has no <sys/wait.h>: the status macros, with POSIX's encoding. */
#ifndef WNOHANG
#define WNOHANG		1
#endif
#ifndef WIFEXITED
#define WIFEXITED(s)	(((s) & 0x7f) == 0)
#define WEXITSTATUS(s)	(((s) >> 8) & 0xff)
#define WIFSIGNALED(s)	(((s) & 0x7f) != 0)
#define WTERMSIG(s)	((s) & 0x7f)
#endif

/* Signals a guest may send; every one ends the child (guests have no handlers). */
#ifndef SIGKILL
#define SIGHUP		1
#define SIGINT		2
#define SIGILL		4
#define SIGABRT		6
#define SIGKILL		9
#define SIGTERM		15
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Stores the child's pid in *pidp (CAP_PDGETPID); 0, or -1 with errno. */
int pdgetpid(int fd, pid_t *pidp);
/** Sends signum (1-31) to the child, which ends it (CAP_PDKILL); 0, or -1 with errno. */
int pdkill(int fd, int signum);
/**
 * Waits for the child to end and stores its wait status in *status
 * (CAP_PDWAIT).  Returns the child's pid; 0 with WNOHANG while it runs;
 * -1 with errno.  The status stays readable: a second pdwait returns it again.
 */
pid_t pdwait(int fd, int *status, int options);

#ifdef __cplusplus
}
#endif

#endif /* !_SYS_PROCDESC_H_ */
