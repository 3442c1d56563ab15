/*
 * pipe(), pdspawn() and the process-descriptor calls over capsa's
 * "capsicum" imports (docs/abi.md).
 */

#include <capsa/spawn.h>
#include <sys/procdesc.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((import_module("capsicum"), import_name("pipe")))
uint32_t __capsa_pipe(uint32_t *fds);

__attribute__((import_module("capsicum"), import_name("pdspawn")))
uint32_t __capsa_pdspawn(uint32_t modfd, const char *argv, uint32_t argv_len,
    const uint32_t *fds, uint32_t nfds, uint32_t flags, uint32_t *pd, uint32_t *pid);

__attribute__((import_module("capsicum"), import_name("pdwait")))
uint32_t __capsa_pdwait(uint32_t pd, uint32_t *status, uint32_t options);

__attribute__((import_module("capsicum"), import_name("pdkill")))
uint32_t __capsa_pdkill(uint32_t pd, uint32_t sig);

__attribute__((import_module("capsicum"), import_name("pdgetpid")))
uint32_t __capsa_pdgetpid(uint32_t pd, uint32_t *pid);

/* WASI errnos are wasi-libc's errno values, so they pass straight through. */
static int
fail(uint32_t error)
{
	errno = (int)error;
	return (-1);
}

int
pipe(int fds[2])
{
	uint32_t out[2];
	uint32_t error;

	if ((error = __capsa_pipe(out)) != 0)
		return (fail(error));
	fds[0] = (int)out[0];
	fds[1] = (int)out[1];
	return (0);
}

pid_t
pdspawn(int *pdp, int modfd, char *const argv[], const int *fds, int nfds, int flags)
{
	size_t len = 0, n;
	char *buf, *p;
	uint32_t pd, pid, error;
	int i;

	if (nfds < 0)
		return (fail(EINVAL));
	/* The arguments cross as one buffer of NUL-terminated strings. */
	for (i = 0; argv != NULL && argv[i] != NULL; i++)
		len += strlen(argv[i]) + 1;
	if ((buf = malloc(len > 0 ? len : 1)) == NULL)
		return (fail(ENOMEM));
	p = buf;
	for (i = 0; argv != NULL && argv[i] != NULL; i++) {
		n = strlen(argv[i]) + 1;
		memcpy(p, argv[i], n);
		p += n;
	}
	error = __capsa_pdspawn((uint32_t)modfd, buf, (uint32_t)len,
	    (const uint32_t *)fds, (uint32_t)nfds, (uint32_t)flags, &pd, &pid);
	free(buf);
	if (error != 0)
		return (fail(error));
	*pdp = (int)pd;
	return ((pid_t)pid);
}

pid_t
pdwait(int fd, int *status, int options)
{
	uint32_t st, pid, error;

	error = __capsa_pdwait((uint32_t)fd, &st, (uint32_t)options);
	if (error == EAGAIN && (options & WNOHANG) != 0)
		return (0);
	if (error != 0)
		return (fail(error));
	if ((error = __capsa_pdgetpid((uint32_t)fd, &pid)) != 0)
		pid = 1;	/* waited without CAP_PDGETPID: any positive value */
	if (status != NULL)
		*status = (int)st;
	return ((pid_t)pid);
}

int
pdkill(int fd, int signum)
{
	uint32_t error;

	if ((error = __capsa_pdkill((uint32_t)fd, (uint32_t)signum)) != 0)
		return (fail(error));
	return (0);
}

int
pdgetpid(int fd, pid_t *pidp)
{
	uint32_t pid, error;

	if ((error = __capsa_pdgetpid((uint32_t)fd, &pid)) != 0)
		return (fail(error));
	*pidp = (pid_t)pid;
	return (0);
}
