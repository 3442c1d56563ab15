/*
 * libnv for capsa guests: FreeBSD's nvlist API (<sys/nv.h>) and its binary
 * format, written from FreeBSD's sys/contrib/libnv/nvlist.c and
 * bsd_nvpair.c (read for the format and the semantics; the code is capsa's).
 *
 * A list is a doubly linked list of pairs.  Nested lists and arrays of
 * lists are owned by their pair.  Everything here recurses over nesting;
 * what the program builds is its own business, and nvlist_unpack() refuses
 * more than NV_NEST_MAX levels, so input cannot run the stack out.
 *
 * Packing follows libnv byte for byte (see <sys/nv.h> for the layout).  The
 * one subtle field is the datasize of an NV_TYPE_NVLIST pair: libnv stores
 * nvlist_size() of the child there, and that function walks on from the
 * child's last pair through the rest of every enclosing list, adding each
 * later pair in full but none of the headers and sentinels that close the
 * child and its ancestors.  (For an empty child the walk never starts and
 * the datasize is 19, the header alone.)  In buffer terms that is
 *
 *	datasize = total - (offset of the child's header) - tail(child)
 *
 * where tail(root) = 0, tail(child of a pair in P) = tail(P) + 20 (its UP),
 * and tail(element i of n of an array in P) = tail(P) + 20 (its
 * ARRAY_NEXT) + 39 * (n - 1 - i) (the header and ARRAY_NEXT of each later
 * element).  pack_list() carries tail down.  Likewise each header's
 * descriptor count is that of the rest of the buffer, as libnv's
 * nvlist_ndescriptors() walks on past the list it is asked about.
 */

#include <sys/nv.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <wasi/api.h>

#define NVL_HEADER_MAGIC	0x6c
#define NVL_HEADER_VERSION	0x00
#define NVL_HEADER_SIZE		19	/* magic, version, flags, u64 descriptors, u64 size */
#define NVP_HEADER_SIZE		19	/* type, u16 namesize, u64 datasize, u64 nitems */
#define SENTINEL_SIZE		(NVP_HEADER_SIZE + 1)	/* and the name "" */
#define ELEMENT_OVERHEAD	(NVL_HEADER_SIZE + SENTINEL_SIZE)

#define NV_TYPE_FIRST		NV_TYPE_NULL
#define NV_TYPE_LAST		NV_TYPE_DESCRIPTOR_ARRAY
#define NV_TYPE_NVLIST_ARRAY_NEXT	254
#define NV_TYPE_NVLIST_UP	255

#define NV_FLAG_BIG_ENDIAN	0x80
#define NV_FLAG_PUBLIC_MASK	(NV_FLAG_IGNORE_CASE | NV_FLAG_NO_UNIQUE)
#define NV_FLAG_ALL_MASK	(NV_FLAG_PUBLIC_MASK | NV_FLAG_BIG_ENDIAN)

typedef struct nvpair nvpair_t;

struct nvpair {
	nvpair_t	*nvp_next;
	nvpair_t	*nvp_prev;
	int		 nvp_type;
	bool		 nvp_ownfd;	/* DESCRIPTOR: closed with the pair */
	bool		*nvp_ownfds;	/* DESCRIPTOR_ARRAY: per item, or NULL */
	size_t		 nvp_count;	/* arrays: items; BINARY: bytes */
	union {
		bool		  b;
		uint64_t	  num;
		char		 *str;
		nvlist_t	 *nvl;
		int		  fd;
		void		 *bin;
		bool		 *bools;
		uint64_t	 *nums;
		char		**strs;
		nvlist_t	**nvls;
		int		 *fds;
	} nvp_v;
	char		 nvp_name[];
};

struct nvlist {
	int		 nvl_error;
	int		 nvl_flags;
	bool		 nvl_nested;	/* the value of a pair (or array item) */
	nvpair_t	*nvl_head;
	nvpair_t	*nvl_tail;
};

static const char *const type_names[] = {
	"NONE", "NULL", "BOOL", "NUMBER", "STRING", "NVLIST", "DESCRIPTOR",
	"BINARY", "BOOL ARRAY", "NUMBER ARRAY", "STRING ARRAY",
	"NVLIST ARRAY", "DESCRIPTOR ARRAY",
};

/* ---- missing names ---------------------------------------------------- */

__attribute__((weak, noreturn)) void
__capsa_nvlist_missing(const char *func, const char *name)
{
	static const char sep[] = ": missing ";

	(void)write(STDERR_FILENO, func, strlen(func));
	(void)write(STDERR_FILENO, sep, sizeof(sep) - 1);
	if (name != NULL)
		(void)write(STDERR_FILENO, name, strlen(name));
	(void)write(STDERR_FILENO, "\n", 1);
	abort();
}

/* ---- pairs ------------------------------------------------------------ */

static bool
fd_is_open(int fd)
{
	__wasi_fdstat_t st;

	return (fd >= 0 && __wasi_fd_fdstat_get((__wasi_fd_t)fd, &st) == 0);
}

/* A pair without a value; NULL with errno (EINVAL, ENAMETOOLONG, ENOMEM). */
static nvpair_t *
pair_new(const char *name, int type)
{
	nvpair_t *nvp;
	size_t len;

	if (name == NULL) {
		errno = EINVAL;
		return (NULL);
	}
	len = strlen(name);
	if (len >= NV_NAME_MAX) {
		errno = ENAMETOOLONG;
		return (NULL);
	}
	nvp = calloc(1, sizeof(*nvp) + len + 1);
	if (nvp == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	nvp->nvp_type = type;
	memcpy(nvp->nvp_name, name, len + 1);
	return (nvp);
}

static void
close_fd(int fd)
{
	int serrno;

	if (fd < 0)
		return;
	serrno = errno;
	(void)close(fd);
	errno = serrno;
}

static void
free_strings(char **strs, size_t n)
{
	size_t i;

	if (strs == NULL)
		return;
	for (i = 0; i < n; i++)
		free(strs[i]);
	free(strs);
}

static void
destroy_lists(nvlist_t **nvls, size_t n)
{
	size_t i;

	if (nvls == NULL)
		return;
	for (i = 0; i < n; i++)
		nvlist_destroy(nvls[i]);
	free(nvls);
}

/* Frees the pair and its value, closing the descriptors it owns. */
static void
pair_free(nvpair_t *nvp)
{
	size_t i;

	switch (nvp->nvp_type) {
	case NV_TYPE_STRING:
		free(nvp->nvp_v.str);
		break;
	case NV_TYPE_NVLIST:
		nvlist_destroy(nvp->nvp_v.nvl);
		break;
	case NV_TYPE_DESCRIPTOR:
		if (nvp->nvp_ownfd)
			close_fd(nvp->nvp_v.fd);
		break;
	case NV_TYPE_BINARY:
		free(nvp->nvp_v.bin);
		break;
	case NV_TYPE_BOOL_ARRAY:
		free(nvp->nvp_v.bools);
		break;
	case NV_TYPE_NUMBER_ARRAY:
		free(nvp->nvp_v.nums);
		break;
	case NV_TYPE_STRING_ARRAY:
		free_strings(nvp->nvp_v.strs, nvp->nvp_count);
		break;
	case NV_TYPE_NVLIST_ARRAY:
		destroy_lists(nvp->nvp_v.nvls, nvp->nvp_count);
		break;
	case NV_TYPE_DESCRIPTOR_ARRAY:
		if (nvp->nvp_ownfds != NULL && nvp->nvp_v.fds != NULL) {
			for (i = 0; i < nvp->nvp_count; i++)
				if (nvp->nvp_ownfds[i])
					close_fd(nvp->nvp_v.fds[i]);
		}
		free(nvp->nvp_ownfds);
		free(nvp->nvp_v.fds);
		break;
	}
	free(nvp);
}

/* ---- lists ------------------------------------------------------------ */

static bool
name_matches(const nvlist_t *nvl, const char *a, const char *b)
{

	if ((nvl->nvl_flags & NV_FLAG_IGNORE_CASE) != 0)
		return (strcasecmp(a, b) == 0);
	return (strcmp(a, b) == 0);
}

/* The first pair called `name` of `type` (any type for NV_TYPE_NONE). */
static nvpair_t *
find(const nvlist_t *nvl, int type, const char *name)
{
	nvpair_t *nvp;

	if (nvl == NULL || name == NULL)
		return (NULL);
	for (nvp = nvl->nvl_head; nvp != NULL; nvp = nvp->nvp_next) {
		if (type != NV_TYPE_NONE && nvp->nvp_type != type)
			continue;
		if (name_matches(nvl, nvp->nvp_name, name))
			return (nvp);
	}
	return (NULL);
}

static void
unlink_pair(nvlist_t *nvl, nvpair_t *nvp)
{

	if (nvp->nvp_prev != NULL)
		nvp->nvp_prev->nvp_next = nvp->nvp_next;
	else
		nvl->nvl_head = nvp->nvp_next;
	if (nvp->nvp_next != NULL)
		nvp->nvp_next->nvp_prev = nvp->nvp_prev;
	else
		nvl->nvl_tail = nvp->nvp_prev;
	nvp->nvp_next = nvp->nvp_prev = NULL;
}

/* True if adds to nvl go ahead; else errno is why not. */
static bool
list_ok(const nvlist_t *nvl)
{

	if (nvl == NULL) {
		errno = ENOMEM;
		return (false);
	}
	if (nvl->nvl_error != 0) {
		errno = nvl->nvl_error;
		return (false);
	}
	return (true);
}

/* Puts nvl in error (the first error sticks) and sets errno. */
static void
add_failed(nvlist_t *nvl, int error)
{

	if (error == 0)
		error = ENOMEM;
	if (nvl != NULL && nvl->nvl_error == 0)
		nvl->nvl_error = error;
	errno = error;
}

/*
 * libnv's nvlist_move_nvpair(): appends nvp, or frees it and fails (with
 * EEXIST in the list if the name is taken).  Always consumes nvp.
 */
static bool
insert(nvlist_t *nvl, nvpair_t *nvp)
{

	if (!list_ok(nvl)) {
		pair_free(nvp);
		return (false);
	}
	if ((nvl->nvl_flags & NV_FLAG_NO_UNIQUE) == 0 &&
	    find(nvl, NV_TYPE_NONE, nvp->nvp_name) != NULL) {
		pair_free(nvp);
		add_failed(nvl, EEXIST);
		return (false);
	}
	nvp->nvp_prev = nvl->nvl_tail;
	nvp->nvp_next = NULL;
	if (nvl->nvl_tail != NULL)
		nvl->nvl_tail->nvp_next = nvp;
	else
		nvl->nvl_head = nvp;
	nvl->nvl_tail = nvp;
	return (true);
}

nvlist_t *
nvlist_create(int flags)
{
	nvlist_t *nvl;

	if ((flags & ~NV_FLAG_PUBLIC_MASK) != 0) {
		errno = EINVAL;
		return (NULL);
	}
	nvl = calloc(1, sizeof(*nvl));
	if (nvl == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	nvl->nvl_flags = flags;
	return (nvl);
}

void
nvlist_destroy(nvlist_t *nvl)
{
	nvpair_t *nvp, *next;
	int serrno;

	if (nvl == NULL)
		return;
	serrno = errno;
	for (nvp = nvl->nvl_head; nvp != NULL; nvp = next) {
		next = nvp->nvp_next;
		pair_free(nvp);
	}
	free(nvl);
	errno = serrno;
}

int
nvlist_error(const nvlist_t *nvl)
{

	if (nvl == NULL)
		return (ENOMEM);
	return (nvl->nvl_error);
}

void
nvlist_set_error(nvlist_t *nvl, int error)
{

	if (nvl != NULL && error != 0 && nvl->nvl_error == 0)
		nvl->nvl_error = error;
}

bool
nvlist_empty(const nvlist_t *nvl)
{

	return (nvl == NULL || nvl->nvl_head == NULL);
}

int
nvlist_flags(const nvlist_t *nvl)
{

	return (nvl == NULL ? 0 : (nvl->nvl_flags & NV_FLAG_PUBLIC_MASK));
}

const char *
nvlist_next(const nvlist_t *nvl, int *typep, void **cookiep)
{
	nvpair_t *nvp;

	if (nvl == NULL)
		return (NULL);
	if (cookiep == NULL || *cookiep == NULL)
		nvp = nvl->nvl_head;
	else
		nvp = ((nvpair_t *)*cookiep)->nvp_next;
	if (nvp == NULL)
		return (NULL);
	if (typep != NULL)
		*typep = nvp->nvp_type;
	if (cookiep != NULL)
		*cookiep = nvp;
	return (nvp->nvp_name);
}

/* ---- cloning ---------------------------------------------------------- */

static nvlist_t *clone_list(const nvlist_t *nvl);

static void *
dup_bytes(const void *p, size_t n)
{
	void *q;

	q = malloc(n == 0 ? 1 : n);
	if (q == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	memcpy(q, p, n);
	return (q);
}

static char *
dup_string(const char *s)
{

	return (dup_bytes(s, strlen(s) + 1));
}

static char **
dup_strings(const char * const *strs, size_t n)
{
	char **out;
	size_t i;

	out = calloc(n, sizeof(*out));
	if (out == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	for (i = 0; i < n; i++) {
		if (strs[i] == NULL) {
			free_strings(out, i);
			errno = EINVAL;
			return (NULL);
		}
		out[i] = dup_string(strs[i]);
		if (out[i] == NULL) {
			free_strings(out, i);
			return (NULL);
		}
	}
	return (out);
}

/* Clones of the lists, each marked nested; NULL with errno. */
static nvlist_t **
dup_lists(const nvlist_t * const *nvls, size_t n)
{
	nvlist_t **out;
	size_t i;

	out = calloc(n, sizeof(*out));
	if (out == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	for (i = 0; i < n; i++) {
		if (nvls[i] == NULL) {
			destroy_lists(out, i);
			errno = EINVAL;
			return (NULL);
		}
		out[i] = clone_list(nvls[i]);
		if (out[i] == NULL) {
			destroy_lists(out, i);
			return (NULL);
		}
		out[i]->nvl_nested = true;
	}
	return (out);
}

/* A copy of nvp's value into the fresh pair out; descriptors are shared, not owned. */
static bool
clone_value(const nvpair_t *nvp, nvpair_t *out)
{
	size_t n;

	n = nvp->nvp_count;
	out->nvp_count = n;
	switch (nvp->nvp_type) {
	case NV_TYPE_NULL:
		return (true);
	case NV_TYPE_BOOL:
		out->nvp_v.b = nvp->nvp_v.b;
		return (true);
	case NV_TYPE_NUMBER:
		out->nvp_v.num = nvp->nvp_v.num;
		return (true);
	case NV_TYPE_STRING:
		out->nvp_v.str = dup_string(nvp->nvp_v.str);
		return (out->nvp_v.str != NULL);
	case NV_TYPE_NVLIST:
		out->nvp_v.nvl = clone_list(nvp->nvp_v.nvl);
		if (out->nvp_v.nvl == NULL)
			return (false);
		out->nvp_v.nvl->nvl_nested = true;
		return (true);
	case NV_TYPE_DESCRIPTOR:
		out->nvp_v.fd = nvp->nvp_v.fd;
		return (true);
	case NV_TYPE_BINARY:
		out->nvp_v.bin = dup_bytes(nvp->nvp_v.bin, n);
		return (out->nvp_v.bin != NULL);
	case NV_TYPE_BOOL_ARRAY:
		out->nvp_v.bools = dup_bytes(nvp->nvp_v.bools, n * sizeof(bool));
		return (out->nvp_v.bools != NULL);
	case NV_TYPE_NUMBER_ARRAY:
		out->nvp_v.nums = dup_bytes(nvp->nvp_v.nums, n * sizeof(uint64_t));
		return (out->nvp_v.nums != NULL);
	case NV_TYPE_STRING_ARRAY:
		out->nvp_v.strs = dup_strings(
		    (const char * const *)nvp->nvp_v.strs, n);
		return (out->nvp_v.strs != NULL);
	case NV_TYPE_NVLIST_ARRAY:
		out->nvp_v.nvls = dup_lists(
		    (const nvlist_t * const *)nvp->nvp_v.nvls, n);
		return (out->nvp_v.nvls != NULL);
	case NV_TYPE_DESCRIPTOR_ARRAY:
		out->nvp_v.fds = dup_bytes(nvp->nvp_v.fds, n * sizeof(int));
		return (out->nvp_v.fds != NULL);
	}
	errno = EINVAL;
	return (false);
}

static nvlist_t *
clone_list(const nvlist_t *nvl)
{
	nvlist_t *out;
	nvpair_t *nvp, *copy;

	if (nvl == NULL) {
		errno = EINVAL;
		return (NULL);
	}
	if (nvl->nvl_error != 0) {
		errno = nvl->nvl_error;
		return (NULL);
	}
	out = nvlist_create(nvl->nvl_flags & NV_FLAG_PUBLIC_MASK);
	if (out == NULL)
		return (NULL);
	for (nvp = nvl->nvl_head; nvp != NULL; nvp = nvp->nvp_next) {
		copy = pair_new(nvp->nvp_name, nvp->nvp_type);
		if (copy == NULL || !clone_value(nvp, copy)) {
			if (copy != NULL) {
				copy->nvp_count = 0;	/* nothing was copied */
				memset(&copy->nvp_v, 0, sizeof(copy->nvp_v));
				pair_free(copy);
			}
			nvlist_destroy(out);
			return (NULL);
		}
		/* The source obeyed the same flags, so this cannot clash. */
		(void)insert(out, copy);
	}
	return (out);
}

nvlist_t *
nvlist_clone(const nvlist_t *nvl)
{

	return (clone_list(nvl));
}

/* ---- adding ----------------------------------------------------------- */

/* A new pair for nvl, or NULL (nvl in error, or the name refused). */
static nvpair_t *
add_begin(nvlist_t *nvl, const char *name, int type)
{
	nvpair_t *nvp;

	if (!list_ok(nvl))
		return (NULL);
	nvp = pair_new(name, type);
	if (nvp == NULL)
		add_failed(nvl, errno);
	return (nvp);
}

/* Gives up on a pair whose value could not be made: the error goes to nvl. */
static void
add_abort(nvlist_t *nvl, nvpair_t *nvp, int error)
{

	free(nvp);
	add_failed(nvl, error);
}

void
nvlist_add_null(nvlist_t *nvl, const char *name)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_NULL)) != NULL)
		(void)insert(nvl, nvp);
}

void
nvlist_add_bool(nvlist_t *nvl, const char *name, bool value)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_BOOL)) == NULL)
		return;
	nvp->nvp_v.b = value;
	(void)insert(nvl, nvp);
}

void
nvlist_add_number(nvlist_t *nvl, const char *name, uint64_t value)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_NUMBER)) == NULL)
		return;
	nvp->nvp_v.num = value;
	(void)insert(nvl, nvp);
}

void
nvlist_add_string(nvlist_t *nvl, const char *name, const char *value)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_STRING)) == NULL)
		return;
	if (value == NULL) {
		add_abort(nvl, nvp, EINVAL);
		return;
	}
	nvp->nvp_v.str = dup_string(value);
	if (nvp->nvp_v.str == NULL) {
		add_abort(nvl, nvp, errno);
		return;
	}
	(void)insert(nvl, nvp);
}

void
nvlist_add_stringv(nvlist_t *nvl, const char *name, const char *valuefmt,
    va_list valueap)
{
	va_list ap;
	char *str;
	int len;

	if (!list_ok(nvl))
		return;
	if (valuefmt == NULL) {
		add_failed(nvl, EINVAL);
		return;
	}
	va_copy(ap, valueap);
	len = vsnprintf(NULL, 0, valuefmt, ap);
	va_end(ap);
	if (len < 0) {
		add_failed(nvl, errno);
		return;
	}
	str = malloc((size_t)len + 1);
	if (str == NULL) {
		add_failed(nvl, ENOMEM);
		return;
	}
	va_copy(ap, valueap);
	(void)vsnprintf(str, (size_t)len + 1, valuefmt, ap);
	va_end(ap);
	nvlist_move_string(nvl, name, str);
}

void
nvlist_add_stringf(nvlist_t *nvl, const char *name, const char *valuefmt, ...)
{
	va_list ap;

	va_start(ap, valuefmt);
	nvlist_add_stringv(nvl, name, valuefmt, ap);
	va_end(ap);
}

void
nvlist_add_nvlist(nvlist_t *nvl, const char *name, const nvlist_t *value)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_NVLIST)) == NULL)
		return;
	nvp->nvp_v.nvl = clone_list(value);
	if (nvp->nvp_v.nvl == NULL) {
		add_abort(nvl, nvp, errno);
		return;
	}
	nvp->nvp_v.nvl->nvl_nested = true;
	(void)insert(nvl, nvp);
}

void
nvlist_add_binary(nvlist_t *nvl, const char *name, const void *value,
    size_t size)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_BINARY)) == NULL)
		return;
	if (value == NULL || size == 0) {
		add_abort(nvl, nvp, EINVAL);
		return;
	}
	nvp->nvp_v.bin = dup_bytes(value, size);
	if (nvp->nvp_v.bin == NULL) {
		add_abort(nvl, nvp, errno);
		return;
	}
	nvp->nvp_count = size;
	(void)insert(nvl, nvp);
}

/* Array adds: a copy of nitems items of `size` bytes each. */
static void
add_array(nvlist_t *nvl, const char *name, int type, const void *value,
    size_t nitems, size_t size)
{
	nvpair_t *nvp;
	void *copy;

	if ((nvp = add_begin(nvl, name, type)) == NULL)
		return;
	if (value == NULL || nitems == 0) {
		add_abort(nvl, nvp, EINVAL);
		return;
	}
	if (nitems > SIZE_MAX / size) {
		add_abort(nvl, nvp, ENOMEM);
		return;
	}
	copy = dup_bytes(value, nitems * size);
	if (copy == NULL) {
		add_abort(nvl, nvp, errno);
		return;
	}
	switch (type) {
	case NV_TYPE_BOOL_ARRAY:
		nvp->nvp_v.bools = copy;
		break;
	case NV_TYPE_NUMBER_ARRAY:
		nvp->nvp_v.nums = copy;
		break;
	case NV_TYPE_DESCRIPTOR_ARRAY:
		nvp->nvp_v.fds = copy;
		break;
	}
	nvp->nvp_count = nitems;
	(void)insert(nvl, nvp);
}

void
nvlist_add_bool_array(nvlist_t *nvl, const char *name, const bool *value,
    size_t nitems)
{

	add_array(nvl, name, NV_TYPE_BOOL_ARRAY, value, nitems, sizeof(bool));
}

void
nvlist_add_number_array(nvlist_t *nvl, const char *name,
    const uint64_t *value, size_t nitems)
{

	add_array(nvl, name, NV_TYPE_NUMBER_ARRAY, value, nitems,
	    sizeof(uint64_t));
}

void
nvlist_add_string_array(nvlist_t *nvl, const char *name,
    const char * const *value, size_t nitems)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_STRING_ARRAY)) == NULL)
		return;
	if (value == NULL || nitems == 0) {
		add_abort(nvl, nvp, EINVAL);
		return;
	}
	nvp->nvp_v.strs = dup_strings(value, nitems);
	if (nvp->nvp_v.strs == NULL) {
		add_abort(nvl, nvp, errno);
		return;
	}
	nvp->nvp_count = nitems;
	(void)insert(nvl, nvp);
}

void
nvlist_add_nvlist_array(nvlist_t *nvl, const char *name,
    const nvlist_t * const *value, size_t nitems)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_NVLIST_ARRAY)) == NULL)
		return;
	if (value == NULL || nitems == 0) {
		add_abort(nvl, nvp, EINVAL);
		return;
	}
	nvp->nvp_v.nvls = dup_lists(value, nitems);
	if (nvp->nvp_v.nvls == NULL) {
		add_abort(nvl, nvp, errno);
		return;
	}
	nvp->nvp_count = nitems;
	(void)insert(nvl, nvp);
}

void
nvlist_add_descriptor(nvlist_t *nvl, const char *name, int value)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_DESCRIPTOR)) == NULL)
		return;
	if (!fd_is_open(value)) {
		add_abort(nvl, nvp, EBADF);
		return;
	}
	nvp->nvp_v.fd = value;		/* borrowed: WASI cannot dup() */
	(void)insert(nvl, nvp);
}

static bool
fds_valid(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fds[i] != -1 && !fd_is_open(fds[i]))
			return (false);
	return (true);
}

void
nvlist_add_descriptor_array(nvlist_t *nvl, const char *name,
    const int *value, size_t nitems)
{

	if (!list_ok(nvl))
		return;
	if (value != NULL && !fds_valid(value, nitems)) {
		add_failed(nvl, EBADF);
		return;
	}
	add_array(nvl, name, NV_TYPE_DESCRIPTOR_ARRAY, value, nitems,
	    sizeof(int));
}

/* ---- appending -------------------------------------------------------- */

/* Grows an array pair by one item of `size` bytes; false (ENOMEM) if it cannot. */
static bool
grow(nvpair_t *nvp, void **arrayp, size_t size)
{
	void *p;

	if (nvp->nvp_count >= SIZE_MAX / size - 1)
		return (false);
	p = realloc(*arrayp, (nvp->nvp_count + 1) * size);
	if (p == NULL)
		return (false);
	*arrayp = p;
	return (true);
}

void
nvlist_append_bool_array(nvlist_t *nvl, const char *name, const bool value)
{
	nvpair_t *nvp;
	void *arr;

	if (!list_ok(nvl))
		return;
	nvp = find(nvl, NV_TYPE_BOOL_ARRAY, name);
	if (nvp == NULL) {
		nvlist_add_bool_array(nvl, name, &value, 1);
		return;
	}
	arr = nvp->nvp_v.bools;
	if (!grow(nvp, &arr, sizeof(bool))) {
		add_failed(nvl, ENOMEM);
		return;
	}
	nvp->nvp_v.bools = arr;
	nvp->nvp_v.bools[nvp->nvp_count++] = value;
}

void
nvlist_append_number_array(nvlist_t *nvl, const char *name,
    const uint64_t value)
{
	nvpair_t *nvp;
	void *arr;

	if (!list_ok(nvl))
		return;
	nvp = find(nvl, NV_TYPE_NUMBER_ARRAY, name);
	if (nvp == NULL) {
		nvlist_add_number_array(nvl, name, &value, 1);
		return;
	}
	arr = nvp->nvp_v.nums;
	if (!grow(nvp, &arr, sizeof(uint64_t))) {
		add_failed(nvl, ENOMEM);
		return;
	}
	nvp->nvp_v.nums = arr;
	nvp->nvp_v.nums[nvp->nvp_count++] = value;
}

void
nvlist_append_string_array(nvlist_t *nvl, const char *name,
    const char * const value)
{
	nvpair_t *nvp;
	void *arr;
	char *copy;

	if (!list_ok(nvl))
		return;
	nvp = find(nvl, NV_TYPE_STRING_ARRAY, name);
	if (nvp == NULL) {
		nvlist_add_string_array(nvl, name, &value, 1);
		return;
	}
	if (value == NULL) {
		add_failed(nvl, EINVAL);
		return;
	}
	copy = dup_string(value);
	arr = nvp->nvp_v.strs;
	if (copy == NULL || !grow(nvp, &arr, sizeof(char *))) {
		free(copy);
		add_failed(nvl, ENOMEM);
		return;
	}
	nvp->nvp_v.strs = arr;
	nvp->nvp_v.strs[nvp->nvp_count++] = copy;
}

void
nvlist_append_nvlist_array(nvlist_t *nvl, const char *name,
    const nvlist_t * const value)
{
	nvpair_t *nvp;
	nvlist_t *copy;
	void *arr;

	if (!list_ok(nvl))
		return;
	nvp = find(nvl, NV_TYPE_NVLIST_ARRAY, name);
	if (nvp == NULL) {
		nvlist_add_nvlist_array(nvl, name, &value, 1);
		return;
	}
	if (value == NULL || value->nvl_error != 0) {
		add_failed(nvl, EINVAL);
		return;
	}
	copy = clone_list(value);
	arr = nvp->nvp_v.nvls;
	if (copy == NULL || !grow(nvp, &arr, sizeof(nvlist_t *))) {
		nvlist_destroy(copy);
		add_failed(nvl, ENOMEM);
		return;
	}
	copy->nvl_nested = true;
	nvp->nvp_v.nvls = arr;
	nvp->nvp_v.nvls[nvp->nvp_count++] = copy;
}

void
nvlist_append_descriptor_array(nvlist_t *nvl, const char *name, int value)
{
	nvpair_t *nvp;
	void *arr, *own;

	if (!list_ok(nvl))
		return;
	nvp = find(nvl, NV_TYPE_DESCRIPTOR_ARRAY, name);
	if (nvp == NULL) {
		nvlist_add_descriptor_array(nvl, name, &value, 1);
		return;
	}
	if (value != -1 && !fd_is_open(value)) {
		add_failed(nvl, EBADF);
		return;
	}
	arr = nvp->nvp_v.fds;
	if (!grow(nvp, &arr, sizeof(int))) {
		add_failed(nvl, ENOMEM);
		return;
	}
	nvp->nvp_v.fds = arr;
	if (nvp->nvp_ownfds != NULL) {
		own = nvp->nvp_ownfds;
		if (!grow(nvp, &own, sizeof(bool))) {
			add_failed(nvl, ENOMEM);
			return;
		}
		nvp->nvp_ownfds = own;
		nvp->nvp_ownfds[nvp->nvp_count] = false;
	}
	nvp->nvp_v.fds[nvp->nvp_count++] = value;
}

/* ---- moving ----------------------------------------------------------- */

void
nvlist_move_string(nvlist_t *nvl, const char *name, char *value)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_STRING)) == NULL) {
		free(value);
		return;
	}
	if (value == NULL) {
		add_abort(nvl, nvp, EINVAL);
		return;
	}
	nvp->nvp_v.str = value;
	(void)insert(nvl, nvp);
}

void
nvlist_move_nvlist(nvlist_t *nvl, const char *name, nvlist_t *value)
{
	nvpair_t *nvp;
	int error;

	if (value != NULL && value->nvl_nested) {
		/* Someone else's: refuse it, leave it alone. */
		if (list_ok(nvl))
			add_failed(nvl, EINVAL);
		return;
	}
	if ((nvp = add_begin(nvl, name, NV_TYPE_NVLIST)) == NULL) {
		nvlist_destroy(value);
		return;
	}
	if (value == NULL || value->nvl_error != 0) {
		error = value == NULL ? EINVAL : value->nvl_error;
		nvlist_destroy(value);
		add_abort(nvl, nvp, error);
		return;
	}
	value->nvl_nested = true;
	nvp->nvp_v.nvl = value;
	(void)insert(nvl, nvp);
}

void
nvlist_move_binary(nvlist_t *nvl, const char *name, void *value, size_t size)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_BINARY)) == NULL) {
		free(value);
		return;
	}
	if (value == NULL || size == 0) {
		free(value);
		add_abort(nvl, nvp, EINVAL);
		return;
	}
	nvp->nvp_v.bin = value;
	nvp->nvp_count = size;
	(void)insert(nvl, nvp);
}

void
nvlist_move_bool_array(nvlist_t *nvl, const char *name, bool *value,
    size_t nitems)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_BOOL_ARRAY)) == NULL) {
		free(value);
		return;
	}
	if (value == NULL || nitems == 0) {
		free(value);
		add_abort(nvl, nvp, EINVAL);
		return;
	}
	nvp->nvp_v.bools = value;
	nvp->nvp_count = nitems;
	(void)insert(nvl, nvp);
}

void
nvlist_move_number_array(nvlist_t *nvl, const char *name, uint64_t *value,
    size_t nitems)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_NUMBER_ARRAY)) == NULL) {
		free(value);
		return;
	}
	if (value == NULL || nitems == 0) {
		free(value);
		add_abort(nvl, nvp, EINVAL);
		return;
	}
	nvp->nvp_v.nums = value;
	nvp->nvp_count = nitems;
	(void)insert(nvl, nvp);
}

void
nvlist_move_string_array(nvlist_t *nvl, const char *name, char **value,
    size_t nitems)
{
	nvpair_t *nvp;
	size_t i;
	bool ok;

	ok = value != NULL && nitems > 0;
	for (i = 0; ok && i < nitems; i++)
		ok = value[i] != NULL;
	if ((nvp = add_begin(nvl, name, NV_TYPE_STRING_ARRAY)) == NULL ||
	    !ok) {
		if (value != NULL)
			free_strings(value, nitems);	/* free(NULL) is fine */
		if (nvp != NULL)
			add_abort(nvl, nvp, EINVAL);
		return;
	}
	nvp->nvp_v.strs = value;
	nvp->nvp_count = nitems;
	(void)insert(nvl, nvp);
}

void
nvlist_move_nvlist_array(nvlist_t *nvl, const char *name, nvlist_t **value,
    size_t nitems)
{
	nvpair_t *nvp;
	size_t i;
	int error;

	error = (value == NULL || nitems == 0) ? EINVAL : 0;
	for (i = 0; error == 0 && i < nitems; i++) {
		if (value[i] == NULL || value[i]->nvl_nested)
			error = EINVAL;
		else if (value[i]->nvl_error != 0)
			error = value[i]->nvl_error;
	}
	nvp = add_begin(nvl, name, NV_TYPE_NVLIST_ARRAY);
	if (nvp == NULL || error != 0) {
		if (value != NULL) {
			for (i = 0; i < nitems; i++)
				if (value[i] != NULL && !value[i]->nvl_nested)
					nvlist_destroy(value[i]);
			free(value);
		}
		if (nvp != NULL)
			add_abort(nvl, nvp, error);
		return;
	}
	for (i = 0; i < nitems; i++)
		value[i]->nvl_nested = true;
	nvp->nvp_v.nvls = value;
	nvp->nvp_count = nitems;
	(void)insert(nvl, nvp);
}

void
nvlist_move_descriptor(nvlist_t *nvl, const char *name, int value)
{
	nvpair_t *nvp;

	if ((nvp = add_begin(nvl, name, NV_TYPE_DESCRIPTOR)) == NULL) {
		close_fd(value);
		return;
	}
	if (!fd_is_open(value)) {
		add_abort(nvl, nvp, EBADF);
		return;
	}
	nvp->nvp_v.fd = value;
	nvp->nvp_ownfd = true;
	(void)insert(nvl, nvp);
}

void
nvlist_move_descriptor_array(nvlist_t *nvl, const char *name, int *value,
    size_t nitems)
{
	nvpair_t *nvp;
	bool *own;
	size_t i;
	int error;

	error = (value == NULL || nitems == 0) ? EINVAL :
	    !fds_valid(value, nitems) ? EBADF : 0;
	own = NULL;
	if (error == 0 && (own = calloc(nitems, sizeof(bool))) == NULL)
		error = ENOMEM;
	nvp = add_begin(nvl, name, NV_TYPE_DESCRIPTOR_ARRAY);
	if (nvp == NULL || error != 0) {
		if (value != NULL) {
			for (i = 0; i < nitems; i++)
				if (value[i] != -1 && fd_is_open(value[i]))
					close_fd(value[i]);
			free(value);
		}
		free(own);
		if (nvp != NULL)
			add_abort(nvl, nvp, error);
		return;
	}
	for (i = 0; i < nitems; i++)
		own[i] = value[i] != -1;
	nvp->nvp_v.fds = value;
	nvp->nvp_ownfds = own;
	nvp->nvp_count = nitems;
	(void)insert(nvl, nvp);
}

/* ---- looking up ------------------------------------------------------- */

bool
nvlist_exists(const nvlist_t *nvl, const char *name)
{

	return (find(nvl, NV_TYPE_NONE, name) != NULL);
}

bool
nvlist_exists_type(const nvlist_t *nvl, const char *name, int type)
{

	return (find(nvl, type, name) != NULL);
}

#define EXISTS(type, TYPE)						\
bool									\
nvlist_exists_##type(const nvlist_t *nvl, const char *name)		\
{									\
									\
	return (find(nvl, NV_TYPE_##TYPE, name) != NULL);		\
}

EXISTS(null, NULL)
EXISTS(bool, BOOL)
EXISTS(number, NUMBER)
EXISTS(string, STRING)
EXISTS(nvlist, NVLIST)
EXISTS(binary, BINARY)
EXISTS(bool_array, BOOL_ARRAY)
EXISTS(number_array, NUMBER_ARRAY)
EXISTS(string_array, STRING_ARRAY)
EXISTS(nvlist_array, NVLIST_ARRAY)
EXISTS(descriptor, DESCRIPTOR)
EXISTS(descriptor_array, DESCRIPTOR_ARRAY)

#undef EXISTS

/* The pair, or the program aborts as libnv does. */
static nvpair_t *
need(const nvlist_t *nvl, int type, const char *name, const char *func)
{
	nvpair_t *nvp;

	nvp = find(nvl, type, name);
	if (nvp == NULL)
		__capsa_nvlist_missing(func, name);
	return (nvp);
}

static void
set_count(size_t *p, size_t n)
{

	if (p != NULL)
		*p = n;
}

bool
nvlist_get_bool(const nvlist_t *nvl, const char *name)
{

	return (need(nvl, NV_TYPE_BOOL, name, __func__)->nvp_v.b);
}

uint64_t
nvlist_get_number(const nvlist_t *nvl, const char *name)
{

	return (need(nvl, NV_TYPE_NUMBER, name, __func__)->nvp_v.num);
}

const char *
nvlist_get_string(const nvlist_t *nvl, const char *name)
{

	return (need(nvl, NV_TYPE_STRING, name, __func__)->nvp_v.str);
}

const nvlist_t *
nvlist_get_nvlist(const nvlist_t *nvl, const char *name)
{

	return (need(nvl, NV_TYPE_NVLIST, name, __func__)->nvp_v.nvl);
}

int
nvlist_get_descriptor(const nvlist_t *nvl, const char *name)
{

	return (need(nvl, NV_TYPE_DESCRIPTOR, name, __func__)->nvp_v.fd);
}

const void *
nvlist_get_binary(const nvlist_t *nvl, const char *name, size_t *sizep)
{
	nvpair_t *nvp;

	nvp = need(nvl, NV_TYPE_BINARY, name, __func__);
	set_count(sizep, nvp->nvp_count);
	return (nvp->nvp_v.bin);
}

const bool *
nvlist_get_bool_array(const nvlist_t *nvl, const char *name, size_t *nitemsp)
{
	nvpair_t *nvp;

	nvp = need(nvl, NV_TYPE_BOOL_ARRAY, name, __func__);
	set_count(nitemsp, nvp->nvp_count);
	return (nvp->nvp_v.bools);
}

const uint64_t *
nvlist_get_number_array(const nvlist_t *nvl, const char *name,
    size_t *nitemsp)
{
	nvpair_t *nvp;

	nvp = need(nvl, NV_TYPE_NUMBER_ARRAY, name, __func__);
	set_count(nitemsp, nvp->nvp_count);
	return (nvp->nvp_v.nums);
}

const char * const *
nvlist_get_string_array(const nvlist_t *nvl, const char *name,
    size_t *nitemsp)
{
	nvpair_t *nvp;

	nvp = need(nvl, NV_TYPE_STRING_ARRAY, name, __func__);
	set_count(nitemsp, nvp->nvp_count);
	return ((const char * const *)nvp->nvp_v.strs);
}

const nvlist_t * const *
nvlist_get_nvlist_array(const nvlist_t *nvl, const char *name,
    size_t *nitemsp)
{
	nvpair_t *nvp;

	nvp = need(nvl, NV_TYPE_NVLIST_ARRAY, name, __func__);
	set_count(nitemsp, nvp->nvp_count);
	return ((const nvlist_t * const *)nvp->nvp_v.nvls);
}

const int *
nvlist_get_descriptor_array(const nvlist_t *nvl, const char *name,
    size_t *nitemsp)
{
	nvpair_t *nvp;

	nvp = need(nvl, NV_TYPE_DESCRIPTOR_ARRAY, name, __func__);
	set_count(nitemsp, nvp->nvp_count);
	return (nvp->nvp_v.fds);
}

/* ---- taking ----------------------------------------------------------- */

/* Unlinks the pair; the caller takes its value and frees the shell. */
static nvpair_t *
take(nvlist_t *nvl, int type, const char *name, const char *func)
{
	nvpair_t *nvp;

	nvp = need(nvl, type, name, func);
	unlink_pair(nvl, nvp);
	return (nvp);
}

bool
nvlist_take_bool(nvlist_t *nvl, const char *name)
{
	nvpair_t *nvp;
	bool v;

	nvp = take(nvl, NV_TYPE_BOOL, name, __func__);
	v = nvp->nvp_v.b;
	free(nvp);
	return (v);
}

uint64_t
nvlist_take_number(nvlist_t *nvl, const char *name)
{
	nvpair_t *nvp;
	uint64_t v;

	nvp = take(nvl, NV_TYPE_NUMBER, name, __func__);
	v = nvp->nvp_v.num;
	free(nvp);
	return (v);
}

char *
nvlist_take_string(nvlist_t *nvl, const char *name)
{
	nvpair_t *nvp;
	char *v;

	nvp = take(nvl, NV_TYPE_STRING, name, __func__);
	v = nvp->nvp_v.str;
	free(nvp);
	return (v);
}

nvlist_t *
nvlist_take_nvlist(nvlist_t *nvl, const char *name)
{
	nvpair_t *nvp;
	nvlist_t *v;

	nvp = take(nvl, NV_TYPE_NVLIST, name, __func__);
	v = nvp->nvp_v.nvl;
	v->nvl_nested = false;
	free(nvp);
	return (v);
}

int
nvlist_take_descriptor(nvlist_t *nvl, const char *name)
{
	nvpair_t *nvp;
	int v;

	nvp = take(nvl, NV_TYPE_DESCRIPTOR, name, __func__);
	v = nvp->nvp_v.fd;
	free(nvp);
	return (v);
}

void *
nvlist_take_binary(nvlist_t *nvl, const char *name, size_t *sizep)
{
	nvpair_t *nvp;
	void *v;

	nvp = take(nvl, NV_TYPE_BINARY, name, __func__);
	v = nvp->nvp_v.bin;
	set_count(sizep, nvp->nvp_count);
	free(nvp);
	return (v);
}

bool *
nvlist_take_bool_array(nvlist_t *nvl, const char *name, size_t *nitemsp)
{
	nvpair_t *nvp;
	bool *v;

	nvp = take(nvl, NV_TYPE_BOOL_ARRAY, name, __func__);
	v = nvp->nvp_v.bools;
	set_count(nitemsp, nvp->nvp_count);
	free(nvp);
	return (v);
}

uint64_t *
nvlist_take_number_array(nvlist_t *nvl, const char *name, size_t *nitemsp)
{
	nvpair_t *nvp;
	uint64_t *v;

	nvp = take(nvl, NV_TYPE_NUMBER_ARRAY, name, __func__);
	v = nvp->nvp_v.nums;
	set_count(nitemsp, nvp->nvp_count);
	free(nvp);
	return (v);
}

char **
nvlist_take_string_array(nvlist_t *nvl, const char *name, size_t *nitemsp)
{
	nvpair_t *nvp;
	char **v;

	nvp = take(nvl, NV_TYPE_STRING_ARRAY, name, __func__);
	v = nvp->nvp_v.strs;
	set_count(nitemsp, nvp->nvp_count);
	free(nvp);
	return (v);
}

nvlist_t **
nvlist_take_nvlist_array(nvlist_t *nvl, const char *name, size_t *nitemsp)
{
	nvpair_t *nvp;
	nvlist_t **v;
	size_t i;

	nvp = take(nvl, NV_TYPE_NVLIST_ARRAY, name, __func__);
	v = nvp->nvp_v.nvls;
	for (i = 0; i < nvp->nvp_count; i++)
		v[i]->nvl_nested = false;
	set_count(nitemsp, nvp->nvp_count);
	free(nvp);
	return (v);
}

int *
nvlist_take_descriptor_array(nvlist_t *nvl, const char *name,
    size_t *nitemsp)
{
	nvpair_t *nvp;
	int *v;

	nvp = take(nvl, NV_TYPE_DESCRIPTOR_ARRAY, name, __func__);
	v = nvp->nvp_v.fds;
	set_count(nitemsp, nvp->nvp_count);
	free(nvp->nvp_ownfds);
	free(nvp);
	return (v);
}

/* ---- freeing ---------------------------------------------------------- */

static void
free_named(nvlist_t *nvl, int type, const char *name, const char *func)
{

	pair_free(take(nvl, type, name, func));
}

void
nvlist_free(nvlist_t *nvl, const char *name)
{

	free_named(nvl, NV_TYPE_NONE, name, __func__);
}

void
nvlist_free_type(nvlist_t *nvl, const char *name, int type)
{

	free_named(nvl, type, name, __func__);
}

#define FREE(type, TYPE)						\
void									\
nvlist_free_##type(nvlist_t *nvl, const char *name)			\
{									\
									\
	free_named(nvl, NV_TYPE_##TYPE, name, __func__);		\
}

FREE(null, NULL)
FREE(bool, BOOL)
FREE(number, NUMBER)
FREE(string, STRING)
FREE(nvlist, NVLIST)
FREE(binary, BINARY)
FREE(bool_array, BOOL_ARRAY)
FREE(number_array, NUMBER_ARRAY)
FREE(string_array, STRING_ARRAY)
FREE(nvlist_array, NVLIST_ARRAY)
FREE(descriptor, DESCRIPTOR)
FREE(descriptor_array, DESCRIPTOR_ARRAY)

#undef FREE

/* ---- packing ---------------------------------------------------------- */

static bool
size_add(size_t *acc, size_t n)
{

	if (*acc > SIZE_MAX - n)
		return (false);
	*acc += n;
	return (true);
}

static bool
size_mul_add(size_t *acc, size_t n, size_t each)
{

	if (each != 0 && n > SIZE_MAX / each)
		return (false);
	return (size_add(acc, n * each));
}

/* The data bytes of a pair that holds no list. */
static bool
leaf_datasize(const nvpair_t *nvp, size_t *sizep)
{
	size_t i, size;

	size = 0;
	switch (nvp->nvp_type) {
	case NV_TYPE_NULL:
		break;
	case NV_TYPE_BOOL:
		size = 1;
		break;
	case NV_TYPE_NUMBER:
	case NV_TYPE_DESCRIPTOR:
		size = 8;
		break;
	case NV_TYPE_STRING:
		if (!size_add(&size, strlen(nvp->nvp_v.str)) ||
		    !size_add(&size, 1))
			return (false);
		break;
	case NV_TYPE_BINARY:
	case NV_TYPE_BOOL_ARRAY:
		size = nvp->nvp_count;
		break;
	case NV_TYPE_NUMBER_ARRAY:
	case NV_TYPE_DESCRIPTOR_ARRAY:
		if (!size_mul_add(&size, nvp->nvp_count, 8))
			return (false);
		break;
	case NV_TYPE_STRING_ARRAY:
		for (i = 0; i < nvp->nvp_count; i++)
			if (!size_add(&size, strlen(nvp->nvp_v.strs[i])) ||
			    !size_add(&size, 1))
				return (false);
		break;
	}
	*sizep = size;
	return (true);
}

/*
 * The packed size of nvl as a root list and its descriptor count; false
 * with errno (a nested list in error, or a size past SIZE_MAX).
 */
static bool
list_size(const nvlist_t *nvl, size_t *sizep, uint64_t *ndescsp)
{
	const nvpair_t *nvp;
	size_t size, sub, i;

	if (nvl->nvl_error != 0) {
		errno = nvl->nvl_error;
		return (false);
	}
	size = NVL_HEADER_SIZE;
	for (nvp = nvl->nvl_head; nvp != NULL; nvp = nvp->nvp_next) {
		if (!size_add(&size, NVP_HEADER_SIZE) ||
		    !size_add(&size, strlen(nvp->nvp_name) + 1))
			goto toobig;
		switch (nvp->nvp_type) {
		case NV_TYPE_NVLIST:
			if (!list_size(nvp->nvp_v.nvl, &sub, ndescsp))
				return (false);
			if (!size_add(&size, sub) ||
			    !size_add(&size, SENTINEL_SIZE))
				goto toobig;
			break;
		case NV_TYPE_NVLIST_ARRAY:
			for (i = 0; i < nvp->nvp_count; i++) {
				if (!list_size(nvp->nvp_v.nvls[i], &sub,
				    ndescsp))
					return (false);
				if (!size_add(&size, sub) ||
				    !size_add(&size, SENTINEL_SIZE))
					goto toobig;
			}
			break;
		default:
			if (!leaf_datasize(nvp, &sub) || !size_add(&size, sub))
				goto toobig;
			if (nvp->nvp_type == NV_TYPE_DESCRIPTOR)
				(*ndescsp)++;
			else if (nvp->nvp_type == NV_TYPE_DESCRIPTOR_ARRAY)
				*ndescsp += nvp->nvp_count;
			break;
		}
	}
	*sizep = size;
	return (true);
toobig:
	errno = ENOMEM;
	return (false);
}

size_t
nvlist_size(const nvlist_t *nvl)
{
	size_t size;
	uint64_t ndescs;

	ndescs = 0;
	if (nvl == NULL || !list_size(nvl, &size, &ndescs))
		return (0);
	return (size);
}

struct packer {
	uint8_t		*buf;
	size_t		 total;		/* of the whole buffer */
	size_t		 off;		/* where the next byte goes */
	uint64_t	 ndescs;	/* descriptors in the whole buffer */
	uint64_t	 seen;		/* descriptors packed so far */
};

static void
put8(struct packer *pk, uint8_t v)
{

	pk->buf[pk->off++] = v;
}

static void
put16(struct packer *pk, uint16_t v)
{

	put8(pk, (uint8_t)v);
	put8(pk, (uint8_t)(v >> 8));
}

static void
put64(struct packer *pk, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		put8(pk, (uint8_t)(v >> (8 * i)));
}

static void
put_bytes(struct packer *pk, const void *p, size_t n)
{

	memcpy(pk->buf + pk->off, p, n);
	pk->off += n;
}

static void
put_pair_header(struct packer *pk, const nvpair_t *nvp, uint64_t datasize,
    uint64_t nitems)
{
	size_t namesize;

	namesize = strlen(nvp->nvp_name) + 1;
	put8(pk, (uint8_t)nvp->nvp_type);
	put16(pk, (uint16_t)namesize);
	put64(pk, datasize);
	put64(pk, nitems);
	put_bytes(pk, nvp->nvp_name, namesize);
}

static void
put_sentinel(struct packer *pk, uint8_t type)
{

	put8(pk, type);
	put16(pk, 1);
	put64(pk, 0);
	put64(pk, 0);
	put8(pk, 0);
}

/*
 * Packs nvl's header and pairs (not its closing sentinel).  tail is the
 * number of bytes of sentinels and element headers that close nvl and its
 * ancestors after nvl's header (see the comment at the top).
 */
static void
pack_list(struct packer *pk, const nvlist_t *nvl, size_t tail)
{
	const nvpair_t *nvp;
	size_t i, n, at, datasize;

	at = pk->off;
	put8(pk, NVL_HEADER_MAGIC);
	put8(pk, NVL_HEADER_VERSION);
	put8(pk, (uint8_t)(nvl->nvl_flags & NV_FLAG_PUBLIC_MASK));
	put64(pk, pk->ndescs - pk->seen);
	put64(pk, pk->total - at - NVL_HEADER_SIZE);

	for (nvp = nvl->nvl_head; nvp != NULL; nvp = nvp->nvp_next) {
		n = nvp->nvp_count;
		switch (nvp->nvp_type) {
		case NV_TYPE_NVLIST:
			/* libnv's nvlist_size(): an empty child stops at its header. */
			at = pk->off + NVP_HEADER_SIZE +
			    strlen(nvp->nvp_name) + 1;
			datasize = nvp->nvp_v.nvl->nvl_head == NULL ?
			    NVL_HEADER_SIZE :
			    pk->total - at - (tail + SENTINEL_SIZE);
			put_pair_header(pk, nvp, datasize, 0);
			pack_list(pk, nvp->nvp_v.nvl, tail + SENTINEL_SIZE);
			put_sentinel(pk, NV_TYPE_NVLIST_UP);
			continue;
		case NV_TYPE_NVLIST_ARRAY:
			put_pair_header(pk, nvp, 0, n);
			for (i = 0; i < n; i++) {
				pack_list(pk, nvp->nvp_v.nvls[i], tail +
				    SENTINEL_SIZE + (n - 1 - i) *
				    ELEMENT_OVERHEAD);
				put_sentinel(pk, NV_TYPE_NVLIST_ARRAY_NEXT);
			}
			continue;
		}
		(void)leaf_datasize(nvp, &datasize);	/* list_size checked it */
		switch (nvp->nvp_type) {
		case NV_TYPE_NULL:
			put_pair_header(pk, nvp, 0, 0);
			break;
		case NV_TYPE_BOOL:
			put_pair_header(pk, nvp, 1, 0);
			put8(pk, nvp->nvp_v.b ? 1 : 0);
			break;
		case NV_TYPE_NUMBER:
			put_pair_header(pk, nvp, 8, 0);
			put64(pk, nvp->nvp_v.num);
			break;
		case NV_TYPE_STRING:
			put_pair_header(pk, nvp, datasize, 0);
			put_bytes(pk, nvp->nvp_v.str, datasize);
			break;
		case NV_TYPE_DESCRIPTOR:
			put_pair_header(pk, nvp, 8, 0);
			put64(pk, (uint64_t)(int64_t)nvp->nvp_v.fd);
			pk->seen++;
			break;
		case NV_TYPE_BINARY:
			put_pair_header(pk, nvp, datasize, 0);
			put_bytes(pk, nvp->nvp_v.bin, datasize);
			break;
		case NV_TYPE_BOOL_ARRAY:
			put_pair_header(pk, nvp, datasize, n);
			for (i = 0; i < n; i++)
				put8(pk, nvp->nvp_v.bools[i] ? 1 : 0);
			break;
		case NV_TYPE_NUMBER_ARRAY:
			put_pair_header(pk, nvp, datasize, n);
			for (i = 0; i < n; i++)
				put64(pk, nvp->nvp_v.nums[i]);
			break;
		case NV_TYPE_STRING_ARRAY:
			put_pair_header(pk, nvp, datasize, n);
			for (i = 0; i < n; i++)
				put_bytes(pk, nvp->nvp_v.strs[i],
				    strlen(nvp->nvp_v.strs[i]) + 1);
			break;
		case NV_TYPE_DESCRIPTOR_ARRAY:
			put_pair_header(pk, nvp, datasize, n);
			for (i = 0; i < n; i++)
				put64(pk, (uint64_t)(int64_t)nvp->nvp_v.fds[i]);
			pk->seen += n;
			break;
		}
	}
}

void *
nvlist_pack(const nvlist_t *nvl, size_t *sizep)
{
	struct packer pk;

	if (!list_ok(nvl))
		return (NULL);
	memset(&pk, 0, sizeof(pk));
	if (!list_size(nvl, &pk.total, &pk.ndescs))
		return (NULL);
	pk.buf = malloc(pk.total);
	if (pk.buf == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	pack_list(&pk, nvl, 0);
	if (sizep != NULL)
		*sizep = pk.total;
	return (pk.buf);
}

/* ---- unpacking -------------------------------------------------------- */

struct unpacker {
	const uint8_t	*p;
	size_t		 left;		/* bytes from p to the end */
	bool		 be;		/* NV_FLAG_BIG_ENDIAN input */
	int		 depth;		/* lists open around the current one */
};

static bool
bad(void)
{

	errno = EINVAL;
	return (false);
}

static uint64_t
get64(const uint8_t *p, bool be)
{
	uint64_t v;
	int i;

	v = 0;
	for (i = 0; i < 8; i++)
		v |= (uint64_t)p[be ? 7 - i : i] << (8 * i);
	return (v);
}

static uint16_t
get16(const uint8_t *p, bool be)
{

	return (be ? (uint16_t)(p[0] << 8 | p[1]) :
	    (uint16_t)(p[1] << 8 | p[0]));
}

static void
skip(struct unpacker *u, size_t n)
{

	u->p += n;
	u->left -= n;
}

/* A list header: its size must reach exactly to the end of the buffer. */
static bool
unpack_header(struct unpacker *u, nvlist_t *nvl, bool root)
{
	const uint8_t *p;
	bool be;

	if (u->left < NVL_HEADER_SIZE)
		return (bad());
	p = u->p;
	if (p[0] != NVL_HEADER_MAGIC || p[1] != NVL_HEADER_VERSION ||
	    (p[2] & ~NV_FLAG_ALL_MASK) != 0)
		return (bad());
	be = (p[2] & NV_FLAG_BIG_ENDIAN) != 0;
	if (root)
		u->be = be;
	else if (be != u->be)
		return (bad());
	if (get64(p + 11, be) != u->left - NVL_HEADER_SIZE)
		return (bad());
	nvl->nvl_flags = p[2] & NV_FLAG_PUBLIC_MASK;
	skip(u, NVL_HEADER_SIZE);
	return (true);
}

static bool unpack_pairs(struct unpacker *u, nvlist_t *nvl, int closer);

/* A nested list: its header, its pairs, its sentinel. */
static nvlist_t *
unpack_child(struct unpacker *u, int closer)
{
	nvlist_t *child;

	if (u->depth >= NV_NEST_MAX)
		return (bad(), NULL);
	child = nvlist_create(0);
	if (child == NULL)
		return (NULL);
	child->nvl_nested = true;
	u->depth++;
	if (!unpack_header(u, child, false) ||
	    !unpack_pairs(u, child, closer)) {
		u->depth--;
		nvlist_destroy(child);
		return (NULL);
	}
	u->depth--;
	return (child);
}

/* The value of nvp, whose header said datasize (<= u->left) and nitems. */
static bool
unpack_value(struct unpacker *u, nvpair_t *nvp, uint64_t datasize,
    uint64_t nitems)
{
	const uint8_t *p, *nul;
	size_t i, n, len, rem;
	int64_t fd;

	p = u->p;
	n = (size_t)nitems;
	switch (nvp->nvp_type) {
	case NV_TYPE_NULL:
		return (datasize == 0 || bad());
	case NV_TYPE_BOOL:
		if (datasize != 1 || p[0] > 1)
			return (bad());
		nvp->nvp_v.b = p[0] != 0;
		break;
	case NV_TYPE_NUMBER:
		if (datasize != 8)
			return (bad());
		nvp->nvp_v.num = get64(p, u->be);
		break;
	case NV_TYPE_STRING:
		if (datasize == 0 ||
		    memchr(p, 0, (size_t)datasize) != p + datasize - 1)
			return (bad());
		nvp->nvp_v.str = dup_bytes(p, (size_t)datasize);
		if (nvp->nvp_v.str == NULL)
			return (false);
		break;
	case NV_TYPE_NVLIST:
		/* libnv's datasize here is not a length to skip; only 0 is wrong. */
		if (datasize == 0)
			return (bad());
		nvp->nvp_v.nvl = unpack_child(u, NV_TYPE_NVLIST_UP);
		return (nvp->nvp_v.nvl != NULL);
	case NV_TYPE_DESCRIPTOR:
		if (datasize != 8)
			return (bad());
		fd = (int64_t)get64(p, u->be);
		if (fd < 0 || fd > INT_MAX)
			return (bad());
		nvp->nvp_v.fd = (int)fd;
		break;
	case NV_TYPE_BINARY:
		if (datasize == 0)
			return (bad());
		nvp->nvp_v.bin = dup_bytes(p, (size_t)datasize);
		if (nvp->nvp_v.bin == NULL)
			return (false);
		nvp->nvp_count = (size_t)datasize;
		break;
	case NV_TYPE_BOOL_ARRAY:
		if (nitems == 0 || datasize != nitems)
			return (bad());
		for (i = 0; i < n; i++)
			if (p[i] > 1)
				return (bad());
		nvp->nvp_v.bools = malloc(n * sizeof(bool));
		if (nvp->nvp_v.bools == NULL)
			return (errno = ENOMEM, false);
		for (i = 0; i < n; i++)
			nvp->nvp_v.bools[i] = p[i] != 0;
		nvp->nvp_count = n;
		break;
	case NV_TYPE_NUMBER_ARRAY:
	case NV_TYPE_DESCRIPTOR_ARRAY:
		if (nitems == 0 || nitems > datasize / 8 ||
		    datasize != nitems * 8)
			return (bad());
		if (nvp->nvp_type == NV_TYPE_NUMBER_ARRAY) {
			nvp->nvp_v.nums = malloc(n * sizeof(uint64_t));
			if (nvp->nvp_v.nums == NULL)
				return (errno = ENOMEM, false);
			for (i = 0; i < n; i++)
				nvp->nvp_v.nums[i] = get64(p + 8 * i, u->be);
		} else {
			nvp->nvp_v.fds = malloc(n * sizeof(int));
			if (nvp->nvp_v.fds == NULL)
				return (errno = ENOMEM, false);
			nvp->nvp_count = n;	/* so that pair_free frees it */
			for (i = 0; i < n; i++) {
				fd = (int64_t)get64(p + 8 * i, u->be);
				if (fd < -1 || fd > INT_MAX)
					return (bad());
				nvp->nvp_v.fds[i] = (int)fd;
			}
		}
		nvp->nvp_count = n;
		break;
	case NV_TYPE_STRING_ARRAY:
		/* Exactly nitems NUL-terminated strings fill datasize. */
		if (nitems == 0 || nitems > datasize)
			return (bad());
		rem = (size_t)datasize;
		for (i = 0; i < n; i++) {
			nul = memchr(p + (datasize - rem), 0, rem);
			if (nul == NULL)
				return (bad());
			rem -= (size_t)(nul - (p + (datasize - rem))) + 1;
		}
		if (rem != 0)
			return (bad());
		nvp->nvp_v.strs = calloc(n, sizeof(char *));
		if (nvp->nvp_v.strs == NULL)
			return (errno = ENOMEM, false);
		nvp->nvp_count = n;
		for (i = 0, rem = 0; i < n; i++) {
			len = strlen((const char *)p + rem) + 1;
			nvp->nvp_v.strs[i] = dup_bytes(p + rem, len);
			if (nvp->nvp_v.strs[i] == NULL)
				return (false);
			rem += len;
		}
		break;
	case NV_TYPE_NVLIST_ARRAY:
		/* Each element takes a header and a sentinel at least. */
		if (nitems == 0 || nitems > u->left / ELEMENT_OVERHEAD)
			return (bad());
		nvp->nvp_v.nvls = calloc(n, sizeof(nvlist_t *));
		if (nvp->nvp_v.nvls == NULL)
			return (errno = ENOMEM, false);
		nvp->nvp_count = n;
		for (i = 0; i < n; i++) {
			nvp->nvp_v.nvls[i] = unpack_child(u,
			    NV_TYPE_NVLIST_ARRAY_NEXT);
			if (nvp->nvp_v.nvls[i] == NULL)
				return (false);
		}
		return (true);
	default:
		return (bad());
	}
	skip(u, (size_t)datasize);
	return (true);
}

/*
 * Pairs into nvl until its closing sentinel: NVLIST_UP for a nested list,
 * NVLIST_ARRAY_NEXT for an array element, the end of the buffer (closer 0)
 * for the root.
 */
static bool
unpack_pairs(struct unpacker *u, nvlist_t *nvl, int closer)
{
	const uint8_t *p;
	const char *name;
	nvpair_t *nvp;
	uint64_t datasize, nitems;
	size_t namesize;
	int type;

	for (;;) {
		if (u->left == 0)
			return (closer == 0 || bad());
		if (u->left < NVP_HEADER_SIZE)
			return (bad());
		p = u->p;
		type = p[0];
		namesize = get16(p + 1, u->be);
		datasize = get64(p + 3, u->be);
		nitems = get64(p + 11, u->be);
		skip(u, NVP_HEADER_SIZE);
		if (namesize == 0 || namesize > NV_NAME_MAX ||
		    namesize > u->left ||
		    memchr(u->p, 0, namesize) != u->p + namesize - 1)
			return (bad());
		name = (const char *)u->p;
		skip(u, namesize);
		if (type == NV_TYPE_NVLIST_UP ||
		    type == NV_TYPE_NVLIST_ARRAY_NEXT) {
			if (type != closer || namesize != 1 ||
			    datasize != 0 || nitems != 0)
				return (bad());
			return (true);
		}
		if (type < NV_TYPE_FIRST || type > NV_TYPE_LAST ||
		    datasize > u->left)
			return (bad());
		nvp = pair_new(name, type);
		if (nvp == NULL)
			return (false);
		if (!unpack_value(u, nvp, datasize, nitems)) {
			pair_free(nvp);
			return (false);
		}
		if (!insert(nvl, nvp))
			return (false);		/* EEXIST */
	}
}

/* Marks every descriptor in nvl as the list's own. */
static bool
own_descriptors(nvlist_t *nvl)
{
	nvpair_t *nvp;
	size_t i;

	for (nvp = nvl->nvl_head; nvp != NULL; nvp = nvp->nvp_next) {
		switch (nvp->nvp_type) {
		case NV_TYPE_DESCRIPTOR:
			nvp->nvp_ownfd = true;
			break;
		case NV_TYPE_DESCRIPTOR_ARRAY:
			if (nvp->nvp_ownfds == NULL) {
				nvp->nvp_ownfds = calloc(nvp->nvp_count,
				    sizeof(bool));
				if (nvp->nvp_ownfds == NULL)
					return (false);
			}
			for (i = 0; i < nvp->nvp_count; i++)
				nvp->nvp_ownfds[i] = nvp->nvp_v.fds[i] != -1;
			break;
		case NV_TYPE_NVLIST:
			if (!own_descriptors(nvp->nvp_v.nvl))
				return (false);
			break;
		case NV_TYPE_NVLIST_ARRAY:
			for (i = 0; i < nvp->nvp_count; i++)
				if (!own_descriptors(nvp->nvp_v.nvls[i]))
					return (false);
			break;
		}
	}
	return (true);
}

nvlist_t *
__capsa_nvlist_unpack(const void *buf, size_t size, int flags, bool ownfds)
{
	struct unpacker u;
	nvlist_t *nvl;

	if ((buf == NULL && size != 0) ||
	    (flags & ~NV_FLAG_PUBLIC_MASK) != 0) {
		errno = EINVAL;
		return (NULL);
	}
	nvl = nvlist_create(0);
	if (nvl == NULL)
		return (NULL);
	u.p = buf;
	u.left = size;
	u.be = false;
	u.depth = 0;
	if (!unpack_header(&u, nvl, true))
		goto fail;
	if (nvl->nvl_flags != flags) {
		errno = EILSEQ;
		goto fail;
	}
	if (!unpack_pairs(&u, nvl, 0))
		goto fail;
	if (ownfds && !own_descriptors(nvl)) {
		errno = ENOMEM;
		goto fail;
	}
	return (nvl);
fail:
	nvlist_destroy(nvl);	/* keeps errno */
	return (NULL);
}

nvlist_t *
nvlist_unpack(const void *buf, size_t size, int flags)
{

	return (__capsa_nvlist_unpack(buf, size, flags, false));
}

/* ---- dumping ---------------------------------------------------------- */

static void
dump_list(const nvlist_t *nvl, int fd, int level)
{
	const nvpair_t *nvp;
	size_t i, n;

	if (nvl->nvl_error != 0) {
		dprintf(fd, "%*serror: %d\n", level * 4, "", nvl->nvl_error);
		return;
	}
	for (nvp = nvl->nvl_head; nvp != NULL; nvp = nvp->nvp_next) {
		n = nvp->nvp_count;
		dprintf(fd, "%*s%s (%s):", level * 4, "", nvp->nvp_name,
		    type_names[nvp->nvp_type]);
		switch (nvp->nvp_type) {
		case NV_TYPE_NULL:
			dprintf(fd, " null\n");
			break;
		case NV_TYPE_BOOL:
			dprintf(fd, " %s\n", nvp->nvp_v.b ? "TRUE" : "FALSE");
			break;
		case NV_TYPE_NUMBER:
			dprintf(fd, " %ju (%jd) (0x%jx)\n",
			    (uintmax_t)nvp->nvp_v.num,
			    (intmax_t)nvp->nvp_v.num,
			    (uintmax_t)nvp->nvp_v.num);
			break;
		case NV_TYPE_STRING:
			dprintf(fd, " [%s]\n", nvp->nvp_v.str);
			break;
		case NV_TYPE_NVLIST:
			dprintf(fd, "\n");
			dump_list(nvp->nvp_v.nvl, fd, level + 1);
			break;
		case NV_TYPE_DESCRIPTOR:
			dprintf(fd, " %d\n", nvp->nvp_v.fd);
			break;
		case NV_TYPE_BINARY:
			dprintf(fd, " %zu ", n);
			for (i = 0; i < n; i++)
				dprintf(fd, "%02x",
				    ((const uint8_t *)nvp->nvp_v.bin)[i]);
			dprintf(fd, "\n");
			break;
		case NV_TYPE_NVLIST_ARRAY:
			dprintf(fd, " %zu\n", n);
			for (i = 0; i < n; i++) {
				dump_list(nvp->nvp_v.nvls[i], fd, level + 1);
				dprintf(fd, "%*s,\n", (level + 1) * 4, "");
			}
			break;
		default:
			dprintf(fd, " [ ");
			for (i = 0; i < n; i++) {
				if (i > 0)
					dprintf(fd, ", ");
				if (nvp->nvp_type == NV_TYPE_BOOL_ARRAY)
					dprintf(fd, "%s", nvp->nvp_v.bools[i] ?
					    "TRUE" : "FALSE");
				else if (nvp->nvp_type == NV_TYPE_NUMBER_ARRAY)
					dprintf(fd, "%ju (%jd) (0x%jx)",
					    (uintmax_t)nvp->nvp_v.nums[i],
					    (intmax_t)nvp->nvp_v.nums[i],
					    (uintmax_t)nvp->nvp_v.nums[i]);
				else if (nvp->nvp_type == NV_TYPE_STRING_ARRAY)
					dprintf(fd, "\"%s\"",
					    nvp->nvp_v.strs[i]);
				else
					dprintf(fd, "%d", nvp->nvp_v.fds[i]);
			}
			dprintf(fd, " ]\n");
			break;
		}
	}
}

void
nvlist_dump(const nvlist_t *nvl, int fd)
{

	if (nvl == NULL) {
		dprintf(fd, "error: %d\n", ENOMEM);
		return;
	}
	dump_list(nvl, fd, 0);
}

void
nvlist_fdump(const nvlist_t *nvl, FILE *fp)
{

	fflush(fp);
	nvlist_dump(nvl, fileno(fp));
}
