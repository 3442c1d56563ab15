/*
 * FreeBSD's Capsicum calls on top of WASI preview1 rights.
 *
 * Rights live in the host: cap_rights_limit() and cap_rights_get() are
 * fd_fdstat_set_rights and fd_fdstat_get.  Capability mode has no WASI
 * call, so cap_enter() and cap_getmode() are imports from the host's
 * "capsicum" module.
 */

#include <sys/capsicum.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <wasi/api.h>

__attribute__((import_module("capsicum"), import_name("cap_enter")))
uint32_t __capsa_cap_enter(void);

__attribute__((import_module("capsicum"), import_name("cap_getmode")))
uint32_t __capsa_cap_getmode(uint32_t *mode);

/* WASI errnos are wasi-libc's errno values, so they pass straight through. */
static int
fail(uint32_t error)
{
	errno = (int)error;
	return (-1);
}

cap_rights_t *
__cap_rights_init(int version, cap_rights_t *rights, ...)
{
	va_list ap;
	uint64_t right;

	(void)version;
	rights->cr_rights[0] = 0;
	rights->cr_rights[1] = 0;
	va_start(ap, rights);
	while ((right = va_arg(ap, uint64_t)) != 0)
		rights->cr_rights[0] |= right;
	va_end(ap);
	return (rights);
}

cap_rights_t *
__cap_rights_set(cap_rights_t *rights, ...)
{
	va_list ap;
	uint64_t right;

	va_start(ap, rights);
	while ((right = va_arg(ap, uint64_t)) != 0)
		rights->cr_rights[0] |= right;
	va_end(ap);
	return (rights);
}

cap_rights_t *
__cap_rights_clear(cap_rights_t *rights, ...)
{
	va_list ap;
	uint64_t right;

	va_start(ap, rights);
	while ((right = va_arg(ap, uint64_t)) != 0)
		rights->cr_rights[0] &= ~right;
	va_end(ap);
	return (rights);
}

bool
__cap_rights_is_set(const cap_rights_t *rights, ...)
{
	va_list ap;
	uint64_t right, want;

	want = 0;
	va_start(ap, rights);
	while ((right = va_arg(ap, uint64_t)) != 0)
		want |= right;
	va_end(ap);
	return ((rights->cr_rights[0] & want) == want);
}

bool
cap_rights_is_valid(const cap_rights_t *rights)
{

	return ((rights->cr_rights[0] & ~CAP_ALL) == 0 &&
	    rights->cr_rights[1] == 0);
}

cap_rights_t *
cap_rights_merge(cap_rights_t *dst, const cap_rights_t *src)
{

	dst->cr_rights[0] |= src->cr_rights[0];
	return (dst);
}

cap_rights_t *
cap_rights_remove(cap_rights_t *dst, const cap_rights_t *src)
{

	dst->cr_rights[0] &= ~src->cr_rights[0];
	return (dst);
}

bool
cap_rights_contains(const cap_rights_t *big, const cap_rights_t *little)
{

	return ((big->cr_rights[0] & little->cr_rights[0]) ==
	    little->cr_rights[0]);
}

int
cap_rights_limit(int fd, const cap_rights_t *rights)
{
	__wasi_fdstat_t st;
	__wasi_errno_t error;
	uint64_t want, allowed;

	if (!cap_rights_is_valid(rights))
		return (fail(EINVAL));
	want = rights->cr_rights[0];
	error = __wasi_fd_fdstat_get(fd, &st);
	if (error != 0)
		return (fail(error));

	/*
	 * A WASI directory never holds file rights such as CAP_READ in its
	 * base; FreeBSD programs grant them to a directory so that files
	 * opened beneath it get them.  So for a directory a right may also
	 * come from what it passes on, and lands only there.
	 */
	allowed = st.fs_rights_base;
	if (st.fs_filetype == __WASI_FILETYPE_DIRECTORY)
		allowed |= st.fs_rights_inheriting;
	if ((want & ~allowed) != 0)
		return (fail(ENOTCAPABLE));

	/* As on FreeBSD, files opened through fd get at most fd's rights. */
	error = __wasi_fd_fdstat_set_rights(fd, want & st.fs_rights_base,
	    want & st.fs_rights_inheriting);
	if (error != 0)
		return (fail(error));
	return (0);
}

int
cap_rights_get(int fd, cap_rights_t *rights)
{
	__wasi_fdstat_t st;
	__wasi_errno_t error;

	error = __wasi_fd_fdstat_get(fd, &st);
	if (error != 0)
		return (fail(error));
	rights->cr_rights[0] = st.fs_rights_base;
	rights->cr_rights[1] = 0;
	return (0);
}

int
cap_enter(void)
{
	uint32_t error;

	error = __capsa_cap_enter();
	if (error != 0)
		return (fail(error));
	return (0);
}

int
cap_getmode(unsigned int *modep)
{
	uint32_t error, mode;

	error = __capsa_cap_getmode(&mode);
	if (error != 0)
		return (fail(error));
	*modep = mode;
	return (0);
}

bool
cap_sandboxed(void)
{
	unsigned int mode;

	if (cap_getmode(&mode) != 0)
		return (false);
	return (mode != 0);
}
