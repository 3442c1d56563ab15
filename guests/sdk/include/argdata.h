/*
 * CloudABI's argdata for capsa guests (wasm32-wasi): the reading half of
 * NuxiNL/argdata's <argdata.h>, with its names, types and return values.
 *
 * An argdata_t is a typed tree (binary, bool, fd, float, int, map, seq, str,
 * timestamp, null) kept in its serialized form; the getters and iterators
 * parse it in place, bounds-checking every length, so malformed data makes
 * them fail (EINVAL, ARGDATA_ITERATOR_INVALID) and never read outside it.
 *
 * Under capsa a program's own tree comes from argdata_program(), which asks
 * the host through the imports argdata.argdata_size/argdata.argdata_get (so a
 * program that calls it runs only under capsa). A program may instead define
 * program_main(), as on CloudABI; see <program.h>.
 *
 * Link with libcapsa.a.  The writing half of NuxiNL's library
 * (argdata_create_*, argdata_serialize, readers and writers) is not here.
 */

#ifndef ARGDATA_H
#define ARGDATA_H

#include <limits.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct timespec;

/* An argdata value; only ever used through pointers. */
#ifndef argdata_t
typedef struct argdata_t argdata_t;
#define argdata_t argdata_t
#endif

/* Iterators: `index` is public, the rest is the library's. */
typedef struct {
	alignas(max_align_t) size_t	index;
	char				data[128];
} argdata_map_iterator_t;

typedef struct {
	alignas(max_align_t) size_t	index;
	char				data[128];
} argdata_seq_iterator_t;

/* it->index once past the last element. */
#define ARGDATA_ITERATOR_END		SIZE_MAX
/* it->index when the node is not a map (seq) or its data is malformed. */
#define ARGDATA_ITERATOR_INVALID	(SIZE_MAX - 1)

#ifdef __cplusplus
extern "C" {
#endif

extern const argdata_t argdata_false;
extern const argdata_t argdata_true;
extern const argdata_t argdata_null;

/*
 * The program's argdata, fetched from the host on the first call and kept
 * for the life of the program; &argdata_null if the host gave none.  Fd
 * nodes name the program's own descriptors; argdata_get_fd gives EBADF for
 * one that is not open.  If the host fails to deliver the data, the program
 * exits with status 71 (EX_OSERR) after a message on stderr.
 */
const argdata_t *argdata_program(void);

/*
 * A value over a buffer of serialized argdata, which is not copied (keep it
 * alive).  convert_fd maps a descriptor number in the data to a process one
 * (negative: not available, EBADF); NULL refuses every fd.  Returns NULL with
 * errno ENOMEM if out of memory.  Free with argdata_free().
 */
argdata_t *argdata_from_buffer(const void *buf, size_t len,
    int (*convert_fd)(void *, size_t), void *convert_fd_arg);
/* Frees a value made by argdata_from_buffer(); NULL is a no-op. */
void argdata_free(argdata_t *ad);

/* Each getter returns 0, or EINVAL if the value is not of its type. */
int argdata_get_binary(const argdata_t *ad, const void **buf, size_t *len);
int argdata_get_bool(const argdata_t *ad, bool *value);
/* Also EBADF if the descriptor is not available in this process. */
int argdata_get_fd(const argdata_t *ad, int *value);
int argdata_get_float(const argdata_t *ad, double *value);
/* Also ERANGE if the integer lies outside [min, max] (or [0, max]). */
int argdata_get_int_s(const argdata_t *ad, intmax_t *value, intmax_t min,
    intmax_t max);
int argdata_get_int_u(const argdata_t *ad, uintmax_t *value, uintmax_t max);
/*
 * *str points into the data and is NUL-terminated; *len excludes the NUL.
 * Also EILSEQ if it is not valid UTF-8; the _c variant also if the string
 * holds a NUL of its own.
 */
int argdata_get_str(const argdata_t *ad, const char **str, size_t *len);
int argdata_get_str_c(const argdata_t *ad, const char **str);
/* Also ERANGE if the time does not fit a struct timespec. */
int argdata_get_timestamp(const argdata_t *ad, struct timespec *ts);

/*
 * Iteration, as in NuxiNL:
 *
 *	argdata_map_iterate(ad, &it);
 *	while (argdata_map_get(&it, &key, &value)) {
 *		...
 *		argdata_map_next(&it);
 *	}
 *
 * iterate sets it->index to 0 (an element is there), ARGDATA_ITERATOR_END
 * (empty) or ARGDATA_ITERATOR_INVALID (not a map/seq).  get returns false
 * once past the end; the pointers it gives live in the iterator, valid until
 * the next call of next.  next sets ARGDATA_ITERATOR_INVALID on malformed
 * data (an element overrunning its container, a key without a value).
 */
void argdata_map_iterate(const argdata_t *ad, argdata_map_iterator_t *it);
bool argdata_map_get(const argdata_map_iterator_t *it, const argdata_t **key,
    const argdata_t **value);
void argdata_map_next(argdata_map_iterator_t *it);
void argdata_seq_iterate(const argdata_t *ad, argdata_seq_iterator_t *it);
bool argdata_seq_get(const argdata_seq_iterator_t *it,
    const argdata_t **element);
void argdata_seq_next(argdata_seq_iterator_t *it);

#ifdef __cplusplus
}
#endif

/*
 * argdata_get_int(ad, &x) for any integer type x: the range checks of
 * argdata_get_int_s/_u with the limits of x's type (NuxiNL's _Generic).
 */
#define __ARGDATA_INT_S(type, name, min, max)				\
static inline int							\
argdata_get_int_##name(const argdata_t *__ad, type *__value)		\
{									\
	intmax_t __v;							\
	int __error;							\
									\
	__error = argdata_get_int_s(__ad, &__v, (min), (max));		\
	if (__error == 0)						\
		*__value = (type)__v;					\
	return (__error);						\
}
#define __ARGDATA_INT_U(type, name, max)				\
static inline int							\
argdata_get_int_##name(const argdata_t *__ad, type *__value)		\
{									\
	uintmax_t __v;							\
	int __error;							\
									\
	__error = argdata_get_int_u(__ad, &__v, (max));			\
	if (__error == 0)						\
		*__value = (type)__v;					\
	return (__error);						\
}
__ARGDATA_INT_S(char, char, CHAR_MIN, CHAR_MAX)
__ARGDATA_INT_S(signed char, schar, SCHAR_MIN, SCHAR_MAX)
__ARGDATA_INT_U(unsigned char, uchar, UCHAR_MAX)
__ARGDATA_INT_S(short, short, SHRT_MIN, SHRT_MAX)
__ARGDATA_INT_U(unsigned short, ushort, USHRT_MAX)
__ARGDATA_INT_S(int, int, INT_MIN, INT_MAX)
__ARGDATA_INT_U(unsigned int, uint, UINT_MAX)
__ARGDATA_INT_S(long, long, LONG_MIN, LONG_MAX)
__ARGDATA_INT_U(unsigned long, ulong, ULONG_MAX)
__ARGDATA_INT_S(long long, llong, LLONG_MIN, LLONG_MAX)
__ARGDATA_INT_U(unsigned long long, ullong, ULLONG_MAX)
#undef __ARGDATA_INT_S
#undef __ARGDATA_INT_U

#ifndef __cplusplus
#define argdata_get_int(ad, value)					\
	_Generic(*(value),						\
	    char: argdata_get_int_char,					\
	    signed char: argdata_get_int_schar,				\
	    unsigned char: argdata_get_int_uchar,			\
	    short: argdata_get_int_short,				\
	    unsigned short: argdata_get_int_ushort,			\
	    int: argdata_get_int_int,					\
	    unsigned int: argdata_get_int_uint,				\
	    long: argdata_get_int_long,					\
	    unsigned long: argdata_get_int_ulong,			\
	    long long: argdata_get_int_llong,				\
	    unsigned long long: argdata_get_int_ullong)((ad), (value))
#endif

#endif /* !ARGDATA_H */
