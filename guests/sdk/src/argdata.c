/*
 * Reading CloudABI argdata in place: NuxiNL/argdata's getters and iterators
 * (semantics checked against its src/argdata_get_*.c, argdata_map_*.c,
 * argdata_seq_*.c and parse_subfield in src/argdata_impl.h, 9b78f467f391).
 *
 * Every length comes from the data and is checked against the bytes left
 * before use; nothing here recurses, so hostile nesting costs the caller only
 * what its own walk costs.
 */

#include "argdata_impl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const argdata_t argdata_null = { NULL, 0, NULL, NULL };

static const uint8_t buf_false[] = { ADT_BOOL };
static const uint8_t buf_true[] = { ADT_BOOL, 1 };
const argdata_t argdata_false = { buf_false, sizeof(buf_false), NULL, NULL };
const argdata_t argdata_true = { buf_true, sizeof(buf_true), NULL, NULL };

/* The iterators' private state, inside the public iterator types. */
struct map_iter {
	size_t		 index;
	const uint8_t	*buf;		/* the entries not yet loaded */
	size_t		 len;
	int		(*convert_fd)(void *, size_t);
	void		*convert_fd_arg;
	argdata_t	 key;		/* the current entry */
	argdata_t	 value;
};

struct seq_iter {
	size_t		 index;
	const uint8_t	*buf;
	size_t		 len;
	int		(*convert_fd)(void *, size_t);
	void		*convert_fd_arg;
	argdata_t	 element;
};

_Static_assert(sizeof(struct map_iter) <= sizeof(argdata_map_iterator_t),
    "map iterator too large");
_Static_assert(_Alignof(struct map_iter) <= _Alignof(argdata_map_iterator_t),
    "map iterator alignment");
_Static_assert(offsetof(struct map_iter, index) ==
    offsetof(argdata_map_iterator_t, index), "map iterator index");
_Static_assert(sizeof(struct seq_iter) <= sizeof(argdata_seq_iterator_t),
    "seq iterator too large");
_Static_assert(_Alignof(struct seq_iter) <= _Alignof(argdata_seq_iterator_t),
    "seq iterator alignment");
_Static_assert(offsetof(struct seq_iter, index) ==
    offsetof(argdata_seq_iterator_t, index), "seq iterator index");

static int
no_fds(void *arg, size_t fd)
{

	(void)arg;
	(void)fd;
	return (-1);
}

argdata_t *
argdata_from_buffer(const void *buf, size_t len,
    int (*convert_fd)(void *, size_t), void *convert_fd_arg)
{
	argdata_t *ad;

	ad = malloc(sizeof(*ad));
	if (ad == NULL)
		return (NULL);
	ad->buf = buf;
	ad->len = len;
	ad->convert_fd = convert_fd != NULL ? convert_fd : no_fds;
	ad->convert_fd_arg = convert_fd_arg;
	return (ad);
}

void
argdata_free(argdata_t *ad)
{

	free(ad);
}

/* Checks the type byte; on success *payload and *len describe what follows. */
static int
payload_of(const argdata_t *ad, uint8_t type, const uint8_t **payload,
    size_t *len)
{

	if (ad->len < 1 || ad->buf[0] != type)
		return (EINVAL);
	*payload = ad->buf + 1;
	*len = ad->len - 1;
	return (0);
}

/*
 * One element of a map or seq: a length (big-endian, 7 bits a byte, the high
 * bit set on the last byte; a leading 00 is overlong), then that many bytes.
 * On success *out is the element, and *bufp and *lenp are moved past it.
 */
static int
parse_field(const uint8_t **bufp, size_t *lenp,
    int (*convert_fd)(void *, size_t), void *convert_fd_arg, argdata_t *out)
{
	const uint8_t *buf;
	size_t len, n;
	uint8_t c;

	buf = *bufp;
	len = *lenp;
	if (len == 0 || buf[0] == 0)
		return (EINVAL);
	n = 0;
	for (;;) {
		if (len == 0)
			return (EINVAL);
		c = *buf++;
		len--;
		/* Digits only add: stop once the length cannot fit what is left. */
		if (n > (SIZE_MAX >> 7))
			return (EINVAL);
		n = n << 7 | (c & 0x7f);
		if (n > len)
			return (EINVAL);
		if ((c & 0x80) != 0)
			break;
	}
	out->buf = buf;
	out->len = n;
	out->convert_fd = convert_fd;
	out->convert_fd_arg = convert_fd_arg;
	*bufp = buf + n;
	*lenp = len - n;
	return (0);
}

int
argdata_get_binary(const argdata_t *ad, const void **buf, size_t *len)
{
	const uint8_t *p;
	size_t n;

	if (payload_of(ad, ADT_BINARY, &p, &n) != 0)
		return (EINVAL);
	*buf = p;
	*len = n;
	return (0);
}

int
argdata_get_bool(const argdata_t *ad, bool *value)
{
	const uint8_t *p;
	size_t n;

	if (payload_of(ad, ADT_BOOL, &p, &n) != 0)
		return (EINVAL);
	if (n == 0) {
		*value = false;
		return (0);
	}
	if (n == 1 && p[0] == 1) {
		*value = true;
		return (0);
	}
	return (EINVAL);
}

int
argdata_get_fd(const argdata_t *ad, int *value)
{
	const uint8_t *p;
	size_t n;
	uint32_t raw;
	int fd;

	if (payload_of(ad, ADT_FD, &p, &n) != 0 || n != 4)
		return (EINVAL);
	raw = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
	fd = ad->convert_fd != NULL ?
	    ad->convert_fd(ad->convert_fd_arg, raw) : -1;
	if (fd < 0)
		return (EBADF);
	*value = fd;
	return (0);
}

int
argdata_get_float(const argdata_t *ad, double *value)
{
	const uint8_t *p;
	size_t n, i;
	uint64_t bits;

	if (payload_of(ad, ADT_FLOAT, &p, &n) != 0 || n != 8)
		return (EINVAL);
	bits = 0;
	for (i = 0; i < 8; i++)
		bits = bits << 8 | p[i];
	_Static_assert(sizeof(double) == sizeof(bits), "IEEE 754 double");
	memcpy(value, &bits, sizeof(bits));
	return (0);
}

/*
 * Reads a signed big-endian integer of up to 8 bytes (sign-extended); ERANGE
 * if longer.  Redundant leading bytes are accepted, as NuxiNL's readers do.
 */
static int
read_signed(const uint8_t *p, size_t n, int64_t *value)
{
	uint64_t v;
	size_t i;

	if (n == 0) {
		*value = 0;
		return (0);
	}
	if (n > 8)
		return (ERANGE);
	v = (p[0] & 0x80) != 0 ? UINT64_MAX : 0;
	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	*value = (int64_t)v;		/* two's complement: wasm's and C23's */
	return (0);
}

int
argdata_get_int_s(const argdata_t *ad, intmax_t *value, intmax_t min,
    intmax_t max)
{
	const uint8_t *p;
	size_t n;
	int64_t v;
	int error;

	if (payload_of(ad, ADT_INT, &p, &n) != 0)
		return (EINVAL);
	error = read_signed(p, n, &v);
	if (error != 0)
		return (error);
	if (v < min || v > max)
		return (ERANGE);
	*value = v;
	return (0);
}

int
argdata_get_int_u(const argdata_t *ad, uintmax_t *value, uintmax_t max)
{
	const uint8_t *p;
	size_t n, i;
	uint64_t v;

	if (payload_of(ad, ADT_INT, &p, &n) != 0)
		return (EINVAL);
	if (n > 0 && (p[0] & 0x80) != 0)
		return (ERANGE);		/* negative */
	/* Up to 2^64-1 fits, which takes 9 bytes, the first 00. */
	if (n > 8 && (n != 9 || p[0] != 0))
		return (ERANGE);
	v = 0;
	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	if (v > max)
		return (ERANGE);
	*value = v;
	return (0);
}

/* UTF-8 as NuxiNL's validate_string: no overlong forms, surrogates, or > U+10FFFF. */
static bool
valid_utf8(const uint8_t *s, size_t len)
{
	static const uint32_t min[4] = { 0, 0x80, 0x800, 0x10000 };
	uint32_t cp;
	size_t i, n, k;

	for (i = 0; i < len;) {
		uint8_t b = s[i++];

		if (b < 0x80)
			continue;
		if ((b & 0xe0) == 0xc0) {
			n = 1;
			cp = b & 0x1f;
		} else if ((b & 0xf0) == 0xe0) {
			n = 2;
			cp = b & 0x0f;
		} else if ((b & 0xf8) == 0xf0) {
			n = 3;
			cp = b & 0x07;
		} else
			return (false);
		if (len - i < n)
			return (false);
		for (k = 0; k < n; k++) {
			if ((s[i] & 0xc0) != 0x80)
				return (false);
			cp = cp << 6 | (s[i++] & 0x3f);
		}
		if (cp < min[n] || (cp >= 0xd800 && cp <= 0xdfff) ||
		    cp > 0x10ffff)
			return (false);
	}
	return (true);
}

int
argdata_get_str(const argdata_t *ad, const char **str, size_t *len)
{
	const uint8_t *p;
	size_t n;

	if (payload_of(ad, ADT_STR, &p, &n) != 0 || n < 1 || p[n - 1] != '\0')
		return (EINVAL);
	if (!valid_utf8(p, n - 1))
		return (EILSEQ);
	*str = (const char *)p;
	*len = n - 1;
	return (0);
}

int
argdata_get_str_c(const argdata_t *ad, const char **str)
{
	const char *s;
	size_t len;
	int error;

	error = argdata_get_str(ad, &s, &len);
	if (error != 0)
		return (error);
	if (memchr(s, '\0', len) != NULL)
		return (EILSEQ);
	*str = s;
	return (0);
}

int
argdata_get_timestamp(const argdata_t *ad, struct timespec *ts)
{
	const uint8_t *p;
	size_t n, i;
	uint8_t v[12];
	int64_t high, sec;
	int32_t rem;
	uint64_t low;
	uint32_t nsec;

	if (payload_of(ad, ADT_TIMESTAMP, &p, &n) != 0)
		return (EINVAL);
	/* Nanoseconds as a 96-bit signed number: more than time_t can hold. */
	if (n > sizeof(v))
		return (ERANGE);
	memset(v, n > 0 && (p[0] & 0x80) != 0 ? 0xff : 0x00, sizeof(v) - n);
	if (n > 0)
		memcpy(v + sizeof(v) - n, p, n);

	/* v = high * 2^32 + low; divide by 10^9 in two steps (floor). */
	high = 0;
	for (i = 0; i < 8; i++)
		high = (int64_t)((uint64_t)high << 8 | v[i]);
	low = 0;
	for (i = 8; i < 12; i++)
		low = low << 8 | v[i];
	rem = (int32_t)(high % 1000000000);
	high /= 1000000000;
	if (rem < 0) {
		rem += 1000000000;
		high--;
	}
	if (high < INT32_MIN || high > INT32_MAX)
		return (ERANGE);
	low += (uint64_t)rem << 32;
	nsec = (uint32_t)(low % 1000000000);
	low /= 1000000000;		/* < 2^33 */
	sec = (int64_t)((uint64_t)high << 32);
	if (sec > INT64_MAX - (int64_t)low)
		return (ERANGE);
	sec += (int64_t)low;
	_Static_assert(sizeof(time_t) == sizeof(int64_t), "64-bit time_t");
	ts->tv_sec = (time_t)sec;
	ts->tv_nsec = (long)nsec;
	return (0);
}

/* Loads the next entry, or ends the iteration (END, or INVALID on bad data). */
static void
map_load(struct map_iter *it)
{

	if (it->len == 0) {
		it->index = ARGDATA_ITERATOR_END;
		return;
	}
	if (parse_field(&it->buf, &it->len, it->convert_fd,
	    it->convert_fd_arg, &it->key) != 0 ||
	    parse_field(&it->buf, &it->len, it->convert_fd,
	    it->convert_fd_arg, &it->value) != 0) {
		it->len = 0;
		it->index = ARGDATA_ITERATOR_INVALID;
	}
}

void
argdata_map_iterate(const argdata_t *ad, argdata_map_iterator_t *it_)
{
	struct map_iter *it = (struct map_iter *)it_;

	it->convert_fd = ad->convert_fd;
	it->convert_fd_arg = ad->convert_fd_arg;
	if (payload_of(ad, ADT_MAP, &it->buf, &it->len) != 0) {
		it->buf = NULL;
		it->len = 0;
		it->index = ARGDATA_ITERATOR_INVALID;
		return;
	}
	it->index = 0;
	map_load(it);
}

bool
argdata_map_get(const argdata_map_iterator_t *it_, const argdata_t **key,
    const argdata_t **value)
{
	const struct map_iter *it = (const struct map_iter *)it_;

	if (it->index == ARGDATA_ITERATOR_END ||
	    it->index == ARGDATA_ITERATOR_INVALID)
		return (false);
	*key = &it->key;
	*value = &it->value;
	return (true);
}

void
argdata_map_next(argdata_map_iterator_t *it_)
{
	struct map_iter *it = (struct map_iter *)it_;

	if (it->index == ARGDATA_ITERATOR_END ||
	    it->index == ARGDATA_ITERATOR_INVALID)
		return;
	it->index++;
	map_load(it);
}

static void
seq_load(struct seq_iter *it)
{

	if (it->len == 0) {
		it->index = ARGDATA_ITERATOR_END;
		return;
	}
	if (parse_field(&it->buf, &it->len, it->convert_fd,
	    it->convert_fd_arg, &it->element) != 0) {
		it->len = 0;
		it->index = ARGDATA_ITERATOR_INVALID;
	}
}

void
argdata_seq_iterate(const argdata_t *ad, argdata_seq_iterator_t *it_)
{
	struct seq_iter *it = (struct seq_iter *)it_;

	it->convert_fd = ad->convert_fd;
	it->convert_fd_arg = ad->convert_fd_arg;
	if (payload_of(ad, ADT_SEQ, &it->buf, &it->len) != 0) {
		it->buf = NULL;
		it->len = 0;
		it->index = ARGDATA_ITERATOR_INVALID;
		return;
	}
	it->index = 0;
	seq_load(it);
}

bool
argdata_seq_get(const argdata_seq_iterator_t *it_, const argdata_t **element)
{
	const struct seq_iter *it = (const struct seq_iter *)it_;

	if (it->index == ARGDATA_ITERATOR_END ||
	    it->index == ARGDATA_ITERATOR_INVALID)
		return (false);
	*element = &it->element;
	return (true);
}

void
argdata_seq_next(argdata_seq_iterator_t *it_)
{
	struct seq_iter *it = (struct seq_iter *)it_;

	if (it->index == ARGDATA_ITERATOR_END ||
	    it->index == ARGDATA_ITERATOR_INVALID)
		return;
	it->index++;
	seq_load(it);
}
