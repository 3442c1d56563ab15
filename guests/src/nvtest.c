/*
 * nvtest: checks <sys/nv.h> (libnv) and, when asked, calls casper.init.
 *
 *   nvtest                 the libnv checks, one line each (see below);
 *                          exits 1 if any failed
 *   nvtest casper [SVC]    cap_init(), then with SVC cap_service_open(),
 *                          cap_limit_get() and cap_close(); prints
 *                          "cap_init: fd N" or "cap_init: errno N", etc.
 *   nvtest missing         nvlist_get_string() of a missing name: prints
 *                          "nvlist_get_string: missing nothere" to stderr
 *                          and aborts
 *   nvtest dump            nvlist_dump() of the list "packed" shows
 *
 * Lines of the checks: "small HEX" (a three-pair list with a nested one),
 * "shapes HEX" (nesting at the ends of lists and elements, descriptors
 * inside), "packed HEX" (a list of every type, nested lists and arrays),
 * then
 * "roundtrip ok", "repack identical", "clone identical", "eexist ok",
 * "ignore_case ok", "no_unique ok", "eilseq ok", "take/move/free ok",
 * "errors ok", "big-endian ok", "nesting limit ok",
 * "garbage rejected N/N" and "fuzz N mutations: A accepted, R rejected";
 * a failed check prints what differs instead.
 */

#include <libcasper.h>
#include <sys/nv.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHYLEN	256

static int failures;
static char why[WHYLEN];

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		snprintf(why, WHYLEN, __VA_ARGS__);			\
		return (false);						\
	}								\
} while (0)

static void
report(const char *what, bool ok)
{

	if (ok) {
		printf("%s ok\n", what);
	} else {
		printf("%s FAIL: %s\n", what, why);
		failures++;
	}
}

static void
print_hex(const char *label, const void *buf, size_t size)
{
	const uint8_t *p = buf;
	size_t i;

	printf("%s ", label);
	for (i = 0; i < size; i++)
		printf("%02x", p[i]);
	printf("\n");
}

/* ---- the lists -------------------------------------------------------- */

/* {"a": 1, "c": {"x": true}, "d": null} */
static nvlist_t *
build_small(void)
{
	nvlist_t *nvl, *c;

	nvl = nvlist_create(0);
	nvlist_add_number(nvl, "a", 1);
	c = nvlist_create(0);
	nvlist_add_bool(c, "x", true);
	nvlist_move_nvlist(nvl, "c", c);
	nvlist_add_null(nvl, "d");
	return (nvl);
}

static const bool full_bools[] = { true, false, true };
static const uint64_t full_nums[] = { 1, 2, UINT64_MAX };
static const char *const full_strs[] = { "a", "", "ccc" };
static const uint8_t full_bin[] = { 0xde, 0xad, 0xbe, 0xef };
static const int full_fds[] = { 0, -1, 2 };

/* Every type; lists nested in lists and in arrays, empty ones too. */
static nvlist_t *
build_full(void)
{
	nvlist_t *nvl, *inner, *deep, *e[3], *sub;
	int i;

	nvl = nvlist_create(0);
	nvlist_add_null(nvl, "null");
	nvlist_add_bool(nvl, "bool", true);
	nvlist_add_bool(nvl, "false", false);
	nvlist_add_number(nvl, "number", 0x0123456789abcdefULL);
	nvlist_add_string(nvl, "string", "hello");
	nvlist_add_stringf(nvl, "stringf", "%s-%d", "x", 42);

	inner = nvlist_create(0);
	nvlist_add_number(inner, "inner", 7);
	deep = nvlist_create(NV_FLAG_IGNORE_CASE);
	nvlist_add_string(deep, "s", "t");
	nvlist_move_nvlist(inner, "deep", deep);
	nvlist_move_nvlist(inner, "empty", nvlist_create(0));
	nvlist_add_string(inner, "tail", "after deep");
	nvlist_move_nvlist(nvl, "nvlist", inner);

	nvlist_add_descriptor(nvl, "descriptor", 1);
	nvlist_add_binary(nvl, "binary", full_bin, sizeof(full_bin));
	nvlist_add_bool_array(nvl, "bool_array", full_bools, 3);
	nvlist_add_number_array(nvl, "number_array", full_nums, 3);
	nvlist_add_string_array(nvl, "string_array", full_strs, 3);

	e[0] = nvlist_create(0);
	nvlist_add_number(e[0], "k", 1);
	e[1] = nvlist_create(NV_FLAG_NO_UNIQUE);
	e[2] = nvlist_create(0);
	nvlist_add_number(e[2], "k", 3);
	sub = nvlist_create(0);
	nvlist_add_null(sub, "z");
	nvlist_move_nvlist(e[2], "sub", sub);
	nvlist_add_bool(e[2], "last", false);
	nvlist_add_nvlist_array(nvl, "nvlist_array",
	    (const nvlist_t * const *)e, 3);
	for (i = 0; i < 3; i++)
		nvlist_destroy(e[i]);

	/* An array whose first element is empty. */
	nvlist_append_nvlist_array(nvl, "arr2", e[1] = nvlist_create(0));
	nvlist_destroy(e[1]);
	e[1] = nvlist_create(0);
	nvlist_add_number(e[1], "q", 9);
	nvlist_append_nvlist_array(nvl, "arr2", e[1]);
	nvlist_destroy(e[1]);

	nvlist_add_descriptor_array(nvl, "descriptor_array", full_fds, 3);
	nvlist_add_string(nvl, "after", "end");
	return (nvl);
}

/* A list with one descriptor and one pair in it. */
static nvlist_t *
leaf(const char *name, int fd)
{
	nvlist_t *nvl;

	nvl = nvlist_create(0);
	if (fd >= 0)
		nvlist_add_descriptor(nvl, "fd", fd);
	nvlist_add_null(nvl, name);
	return (nvl);
}

/*
 * Shapes the full list lacks: nested lists as the last pair of lists and of
 * array elements, arrays nested in nested lists, descriptors inside nested
 * lists and elements (the headers' descriptor counts), empty elements last.
 * {"a": [{"n": {"m": {fd, "x"}}}, {}, {"o": {"p": {}}}],
 *  "q": {"r": [{}, {"s": {fd, "t"}}, {}]}, "fd": fd,
 *  "z": {"last": {fd, "y"}}}
 */
static nvlist_t *
build_shapes(void)
{
	nvlist_t *nvl, *e[3], *l;
	int i;

	nvl = nvlist_create(0);
	e[0] = nvlist_create(0);
	l = nvlist_create(0);
	nvlist_move_nvlist(l, "m", leaf("x", 0));
	nvlist_move_nvlist(e[0], "n", l);
	e[1] = nvlist_create(0);
	e[2] = nvlist_create(0);
	l = nvlist_create(0);
	nvlist_move_nvlist(l, "p", nvlist_create(0));
	nvlist_move_nvlist(e[2], "o", l);
	nvlist_move_nvlist_array(nvl, "a", memcpy(malloc(sizeof(e)), e,
	    sizeof(e)), 3);

	for (i = 0; i < 3; i++)
		e[i] = nvlist_create(0);
	nvlist_move_nvlist(e[1], "s", leaf("t", 2));
	l = nvlist_create(0);
	nvlist_move_nvlist_array(l, "r", memcpy(malloc(sizeof(e)), e,
	    sizeof(e)), 3);
	nvlist_move_nvlist(nvl, "q", l);
	nvlist_add_descriptor(nvl, "fd", 1);
	l = nvlist_create(0);
	nvlist_move_nvlist(l, "last", leaf("y", 1));
	nvlist_move_nvlist(nvl, "z", l);
	return (nvl);
}

static const struct {
	const char	*name;
	int		 type;
} full_pairs[] = {
	{ "null", NV_TYPE_NULL }, { "bool", NV_TYPE_BOOL },
	{ "false", NV_TYPE_BOOL }, { "number", NV_TYPE_NUMBER },
	{ "string", NV_TYPE_STRING }, { "stringf", NV_TYPE_STRING },
	{ "nvlist", NV_TYPE_NVLIST }, { "descriptor", NV_TYPE_DESCRIPTOR },
	{ "binary", NV_TYPE_BINARY }, { "bool_array", NV_TYPE_BOOL_ARRAY },
	{ "number_array", NV_TYPE_NUMBER_ARRAY },
	{ "string_array", NV_TYPE_STRING_ARRAY },
	{ "nvlist_array", NV_TYPE_NVLIST_ARRAY },
	{ "arr2", NV_TYPE_NVLIST_ARRAY },
	{ "descriptor_array", NV_TYPE_DESCRIPTOR_ARRAY },
	{ "after", NV_TYPE_STRING },
};

/* The names and types of nvl's pairs, in order, are these. */
static bool
check_names(const nvlist_t *nvl, const char *where, const char *const *names,
    const int *types, size_t n)
{
	const char *name;
	void *cookie;
	size_t i;
	int type;

	cookie = NULL;
	for (i = 0; (name = nvlist_next(nvl, &type, &cookie)) != NULL; i++) {
		CHECK(i < n, "%s: extra pair %s", where, name);
		CHECK(strcmp(name, names[i]) == 0 && type == types[i],
		    "%s: pair %zu is %s/%d, want %s/%d", where, i, name, type,
		    names[i], types[i]);
	}
	CHECK(i == n, "%s: %zu pairs, want %zu", where, i, n);
	return (true);
}

static bool
check_full(const nvlist_t *nvl)
{
	static const char *const inner_names[] = { "inner", "deep", "empty", "tail" };
	static const int inner_types[] = { NV_TYPE_NUMBER, NV_TYPE_NVLIST,
	    NV_TYPE_NVLIST, NV_TYPE_STRING };
	static const char *const e2_names[] = { "k", "sub", "last" };
	static const int e2_types[] = { NV_TYPE_NUMBER, NV_TYPE_NVLIST,
	    NV_TYPE_BOOL };
	const char *names[sizeof(full_pairs) / sizeof(full_pairs[0])];
	int types[sizeof(full_pairs) / sizeof(full_pairs[0])];
	const nvlist_t *inner, *deep;
	const nvlist_t * const *arr;
	const char * const *strs;
	const uint64_t *nums;
	const bool *bools;
	const int *fds;
	const uint8_t *bin;
	size_t i, n;

	for (i = 0; i < sizeof(full_pairs) / sizeof(full_pairs[0]); i++) {
		names[i] = full_pairs[i].name;
		types[i] = full_pairs[i].type;
	}
	CHECK(nvlist_error(nvl) == 0, "error %d", nvlist_error(nvl));
	CHECK(nvlist_flags(nvl) == 0, "flags %d", nvlist_flags(nvl));
	if (!check_names(nvl, "root", names, types, i))
		return (false);
	CHECK(nvlist_get_bool(nvl, "bool") == true, "bool");
	CHECK(nvlist_get_bool(nvl, "false") == false, "false");
	CHECK(nvlist_get_number(nvl, "number") == 0x0123456789abcdefULL,
	    "number %jx", (uintmax_t)nvlist_get_number(nvl, "number"));
	CHECK(strcmp(nvlist_get_string(nvl, "string"), "hello") == 0,
	    "string [%s]", nvlist_get_string(nvl, "string"));
	CHECK(strcmp(nvlist_get_string(nvl, "stringf"), "x-42") == 0,
	    "stringf [%s]", nvlist_get_string(nvl, "stringf"));

	inner = nvlist_get_nvlist(nvl, "nvlist");
	if (!check_names(inner, "nvlist", inner_names, inner_types, 4))
		return (false);
	CHECK(nvlist_get_number(inner, "inner") == 7, "inner");
	deep = nvlist_get_nvlist(inner, "deep");
	CHECK(nvlist_flags(deep) == NV_FLAG_IGNORE_CASE, "deep flags %d",
	    nvlist_flags(deep));
	CHECK(strcmp(nvlist_get_string(deep, "S"), "t") == 0, "deep.s");
	CHECK(nvlist_empty(nvlist_get_nvlist(inner, "empty")), "empty");
	CHECK(strcmp(nvlist_get_string(inner, "tail"), "after deep") == 0,
	    "tail");

	CHECK(nvlist_get_descriptor(nvl, "descriptor") == 1, "descriptor %d",
	    nvlist_get_descriptor(nvl, "descriptor"));
	bin = nvlist_get_binary(nvl, "binary", &n);
	CHECK(n == sizeof(full_bin) && memcmp(bin, full_bin, n) == 0,
	    "binary (%zu bytes)", n);
	bools = nvlist_get_bool_array(nvl, "bool_array", &n);
	CHECK(n == 3 && bools[0] && !bools[1] && bools[2], "bool_array");
	nums = nvlist_get_number_array(nvl, "number_array", &n);
	CHECK(n == 3 && memcmp(nums, full_nums, sizeof(full_nums)) == 0,
	    "number_array");
	strs = nvlist_get_string_array(nvl, "string_array", &n);
	CHECK(n == 3, "string_array: %zu items", n);
	for (i = 0; i < 3; i++)
		CHECK(strcmp(strs[i], full_strs[i]) == 0,
		    "string_array[%zu] [%s]", i, strs[i]);

	arr = nvlist_get_nvlist_array(nvl, "nvlist_array", &n);
	CHECK(n == 3, "nvlist_array: %zu items", n);
	CHECK(nvlist_get_number(arr[0], "k") == 1 && nvlist_flags(arr[0]) == 0,
	    "nvlist_array[0]");
	CHECK(nvlist_empty(arr[1]) && nvlist_flags(arr[1]) == NV_FLAG_NO_UNIQUE,
	    "nvlist_array[1] (flags %d)", nvlist_flags(arr[1]));
	if (!check_names(arr[2], "nvlist_array[2]", e2_names, e2_types, 3))
		return (false);
	CHECK(nvlist_get_number(arr[2], "k") == 3 &&
	    nvlist_exists_null(nvlist_get_nvlist(arr[2], "sub"), "z") &&
	    nvlist_get_bool(arr[2], "last") == false, "nvlist_array[2]");
	arr = nvlist_get_nvlist_array(nvl, "arr2", &n);
	CHECK(n == 2 && nvlist_empty(arr[0]) &&
	    nvlist_get_number(arr[1], "q") == 9, "arr2");

	fds = nvlist_get_descriptor_array(nvl, "descriptor_array", &n);
	CHECK(n == 3 && fds[0] == 0 && fds[1] == -1 && fds[2] == 2,
	    "descriptor_array");
	CHECK(strcmp(nvlist_get_string(nvl, "after"), "end") == 0, "after");
	return (true);
}

/* ---- the layout, walked independently of nv.c ------------------------ */

#define MAXOFF	1024

struct layout {
	size_t	hdr[MAXOFF];	/* offsets of list headers */
	int	nhdr;
	size_t	pair[MAXOFF];	/* offsets of pairs, sentinels included */
	int	npair;
};

static uint64_t
le64(const uint8_t *p)
{
	uint64_t v;
	int i;

	v = 0;
	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return (v);
}

static void
put_le64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Finds every header and pair of a well-formed buffer. */
static bool
walk(const uint8_t *b, size_t size, struct layout *lo)
{
	uint64_t left[64];
	size_t pos, ns;
	int sp, type;

	lo->nhdr = lo->npair = 0;
	lo->hdr[lo->nhdr++] = 0;
	pos = 19;
	sp = 0;
	while (pos < size && lo->npair < MAXOFF && lo->nhdr < MAXOFF - 1) {
		type = b[pos];
		ns = (size_t)(b[pos + 1] | b[pos + 2] << 8);
		lo->pair[lo->npair++] = pos;
		switch (type) {
		case NV_TYPE_NVLIST:
		case NV_TYPE_NVLIST_ARRAY:
			left[sp++] = type == NV_TYPE_NVLIST ? 0 :
			    le64(b + pos + 11) - 1;
			pos += 19 + ns;
			lo->hdr[lo->nhdr++] = pos;
			pos += 19;
			break;
		case 255:
			sp--;
			pos += 20;
			break;
		case 254:
			pos += 20;
			if (left[sp - 1] > 0) {
				left[sp - 1]--;
				lo->hdr[lo->nhdr++] = pos;
				pos += 19;
			} else {
				sp--;
			}
			break;
		default:
			pos += 19 + ns + (size_t)le64(b + pos + 3);
			break;
		}
	}
	return (pos == size && sp == 0);
}

/* ---- checks ----------------------------------------------------------- */

static bool
same_bytes(const nvlist_t *nvl, const void *want, size_t wantsize)
{
	size_t size;
	void *buf;
	bool same;

	buf = nvlist_pack(nvl, &size);
	CHECK(buf != NULL, "pack: errno %d", errno);
	same = size == wantsize && memcmp(buf, want, size) == 0;
	free(buf);
	CHECK(same, "%zu bytes differ from the original %zu", size, wantsize);
	return (true);
}

static bool
test_eexist(void)
{
	nvlist_t *nvl;
	void *buf;
	size_t size;
	uint8_t *p;

	nvl = nvlist_create(0);
	nvlist_add_number(nvl, "a", 1);
	nvlist_add_string(nvl, "a", "other type, same name");
	CHECK(nvlist_error(nvl) == EEXIST, "error %d, want EEXIST",
	    nvlist_error(nvl));
	nvlist_add_number(nvl, "b", 2);
	CHECK(!nvlist_exists(nvl, "b"), "an add after the error went in");
	errno = 0;
	CHECK(nvlist_pack(nvl, &size) == NULL && errno == EEXIST,
	    "pack of a list in error: errno %d", errno);
	nvlist_destroy(nvl);

	/* A duplicate in packed input. */
	nvl = nvlist_create(0);
	nvlist_add_number(nvl, "a", 1);
	nvlist_add_number(nvl, "b", 2);
	buf = nvlist_pack(nvl, &size);
	nvlist_destroy(nvl);
	CHECK(buf != NULL, "pack: errno %d", errno);
	p = buf;
	CHECK(p[19 + 29 + 19] == 'b', "layout: no 'b' at 67");
	p[19 + 29 + 19] = 'a';
	errno = 0;
	nvl = nvlist_unpack(buf, size, 0);
	free(buf);
	CHECK(nvl == NULL && errno == EEXIST, "unpack of a duplicate: %s, errno %d",
	    nvl == NULL ? "NULL" : "a list", errno);
	return (true);
}

static bool
test_ignore_case(void)
{
	nvlist_t *nvl, *back;
	size_t size;
	void *buf;

	nvl = nvlist_create(NV_FLAG_IGNORE_CASE);
	nvlist_add_number(nvl, "Key", 5);
	CHECK(nvlist_exists(nvl, "KEY") && nvlist_exists_number(nvl, "key"),
	    "lookup ignoring case");
	CHECK(nvlist_get_number(nvl, "kEy") == 5, "get ignoring case");
	buf = nvlist_pack(nvl, &size);
	CHECK(buf != NULL && ((uint8_t *)buf)[2] == NV_FLAG_IGNORE_CASE,
	    "packed flags");
	back = nvlist_unpack(buf, size, NV_FLAG_IGNORE_CASE);
	free(buf);
	CHECK(back != NULL && nvlist_get_number(back, "KEY") == 5,
	    "unpacked ignoring case");
	nvlist_destroy(back);
	nvlist_add_string(nvl, "KEY", "clash");
	CHECK(nvlist_error(nvl) == EEXIST, "error %d, want EEXIST",
	    nvlist_error(nvl));
	nvlist_destroy(nvl);

	nvl = nvlist_create(0);
	nvlist_add_number(nvl, "Key", 5);
	CHECK(!nvlist_exists(nvl, "KEY"), "case matters without the flag");
	nvlist_add_number(nvl, "KEY", 6);
	CHECK(nvlist_error(nvl) == 0, "Key and KEY clash without the flag");
	nvlist_destroy(nvl);
	return (true);
}

static bool
test_no_unique(void)
{
	nvlist_t *nvl, *back;
	const char *name;
	void *cookie, *buf;
	size_t size;
	int type, n;

	nvl = nvlist_create(NV_FLAG_NO_UNIQUE);
	nvlist_add_number(nvl, "x", 1);
	nvlist_add_string(nvl, "x", "two");
	nvlist_add_number(nvl, "x", 3);
	CHECK(nvlist_error(nvl) == 0, "error %d", nvlist_error(nvl));
	CHECK(nvlist_get_number(nvl, "x") == 1, "get gives the first");
	buf = nvlist_pack(nvl, &size);
	nvlist_destroy(nvl);
	CHECK(buf != NULL, "pack: errno %d", errno);
	back = nvlist_unpack(buf, size, NV_FLAG_NO_UNIQUE);
	CHECK(back != NULL, "unpack: errno %d", errno);
	cookie = NULL;
	n = 0;
	while ((name = nvlist_next(back, &type, &cookie)) != NULL) {
		CHECK(strcmp(name, "x") == 0, "name %s", name);
		n++;
	}
	CHECK(n == 3, "%d pairs after unpack", n);
	nvlist_free_number(back, "x");
	CHECK(strcmp(nvlist_get_string(back, "x"), "two") == 0,
	    "free took the first");
	nvlist_destroy(back);
	errno = 0;
	back = nvlist_unpack(buf, size, 0);
	free(buf);
	CHECK(back == NULL && errno == EILSEQ,
	    "unpack with other flags: errno %d, want EILSEQ", errno);
	return (true);
}

static bool
test_eilseq(const void *buf, size_t size)
{
	nvlist_t *nvl;

	errno = 0;
	nvl = nvlist_unpack(buf, size, NV_FLAG_IGNORE_CASE);
	CHECK(nvl == NULL && errno == EILSEQ, "errno %d, want EILSEQ", errno);
	return (true);
}

static bool
test_take_move_free(void)
{
	nvlist_t *nvl, *child, *got, **lists;
	char *s, **strs;
	void *bin;
	size_t n;

	nvl = nvlist_create(0);
	s = strdup("moved");
	nvlist_move_string(nvl, "s", s);
	child = nvlist_create(0);
	nvlist_add_number(child, "n", 1);
	nvlist_move_nvlist(nvl, "child", child);
	bin = malloc(3);
	memcpy(bin, "abc", 3);
	nvlist_move_binary(nvl, "bin", bin, 3);
	nvlist_add_number(nvl, "gone", 1);
	nvlist_append_string_array(nvl, "sa", "one");
	nvlist_append_string_array(nvl, "sa", "two");
	child = nvlist_create(0);
	nvlist_append_nvlist_array(nvl, "la", child);
	nvlist_add_bool(child, "later", true);
	nvlist_append_nvlist_array(nvl, "la", child);
	nvlist_destroy(child);
	CHECK(nvlist_error(nvl) == 0, "error %d", nvlist_error(nvl));

	s = nvlist_take_string(nvl, "s");
	CHECK(strcmp(s, "moved") == 0 && !nvlist_exists(nvl, "s"),
	    "take_string");
	free(s);
	got = nvlist_take_nvlist(nvl, "child");
	CHECK(nvlist_get_number(got, "n") == 1, "take_nvlist");
	nvlist_move_nvlist(nvl, "again", got);	/* taken lists move back in */
	CHECK(nvlist_error(nvl) == 0 && nvlist_exists_nvlist(nvl, "again"),
	    "move of a taken list");
	bin = nvlist_take_binary(nvl, "bin", &n);
	CHECK(n == 3 && memcmp(bin, "abc", 3) == 0, "take_binary");
	free(bin);
	nvlist_free_number(nvl, "gone");
	CHECK(!nvlist_exists(nvl, "gone"), "free_number");
	strs = nvlist_take_string_array(nvl, "sa", &n);
	CHECK(n == 2 && strcmp(strs[0], "one") == 0 &&
	    strcmp(strs[1], "two") == 0, "append/take string_array");
	free(strs[0]);
	free(strs[1]);
	free(strs);
	lists = nvlist_take_nvlist_array(nvl, "la", &n);
	CHECK(n == 2 && nvlist_empty(lists[0]) &&
	    nvlist_get_bool(lists[1], "later"), "append/take nvlist_array");
	nvlist_destroy(lists[0]);
	nvlist_destroy(lists[1]);
	free(lists);
	nvlist_free(nvl, "again");
	CHECK(nvlist_empty(nvl), "not empty at the end");
	nvlist_destroy(nvl);
	return (true);
}

static bool
test_errors(void)
{
	nvlist_t *nvl, *bad;
	char *longname;
	void *buf;
	size_t size;

	nvl = nvlist_create(0);
	nvlist_add_string(nvl, "s", NULL);
	CHECK(nvlist_error(nvl) == EINVAL, "string NULL: %d",
	    nvlist_error(nvl));
	nvlist_destroy(nvl);

	longname = malloc(NV_NAME_MAX + 1);
	memset(longname, 'n', NV_NAME_MAX);
	longname[NV_NAME_MAX] = '\0';
	nvl = nvlist_create(0);
	nvlist_add_null(nvl, longname + 1);	/* 2047 characters: fine */
	CHECK(nvlist_error(nvl) == 0, "2047-character name: %d",
	    nvlist_error(nvl));
	nvlist_add_null(nvl, longname);
	CHECK(nvlist_error(nvl) == ENAMETOOLONG, "2048-character name: %d",
	    nvlist_error(nvl));
	nvlist_destroy(nvl);
	free(longname);

	nvl = nvlist_create(0);
	nvlist_add_binary(nvl, "b", "x", 0);
	CHECK(nvlist_error(nvl) == EINVAL, "binary of 0 bytes: %d",
	    nvlist_error(nvl));
	nvlist_destroy(nvl);

	nvl = nvlist_create(0);
	nvlist_add_number_array(nvl, "a", NULL, 1);
	CHECK(nvlist_error(nvl) == EINVAL, "array NULL: %d",
	    nvlist_error(nvl));
	nvlist_destroy(nvl);

	nvl = nvlist_create(0);
	nvlist_add_descriptor(nvl, "fd", 999);
	CHECK(nvlist_error(nvl) == EBADF, "closed descriptor: %d",
	    nvlist_error(nvl));
	nvlist_destroy(nvl);

	bad = nvlist_create(0);
	nvlist_set_error(bad, ENOTSUP);
	nvlist_set_error(bad, EINVAL);		/* the first error sticks */
	CHECK(nvlist_error(bad) == ENOTSUP, "set_error: %d",
	    nvlist_error(bad));
	CHECK(nvlist_clone(bad) == NULL && errno == ENOTSUP, "clone in error");
	nvl = nvlist_create(0);
	nvlist_add_nvlist(nvl, "bad", bad);
	CHECK(nvlist_error(nvl) == ENOTSUP, "add of a list in error: %d",
	    nvlist_error(nvl));
	nvlist_destroy(nvl);
	nvl = nvlist_create(0);
	nvlist_move_nvlist(nvl, "bad", bad);	/* consumed */
	CHECK(nvlist_error(nvl) == ENOTSUP, "move of a list in error: %d",
	    nvlist_error(nvl));
	buf = nvlist_pack(nvl, &size);
	CHECK(buf == NULL && errno == ENOTSUP, "pack in error: errno %d",
	    errno);
	nvlist_destroy(nvl);

	CHECK(nvlist_error(NULL) == ENOMEM, "nvlist_error(NULL)");
	nvlist_add_number(NULL, "n", 1);	/* a no-op, as in libnv */
	nvlist_move_string(NULL, "s", strdup("freed, not leaked"));
	nvlist_destroy(NULL);
	CHECK(nvlist_create(0x10) == NULL && errno == EINVAL,
	    "create with a private flag");
	CHECK(nvlist_unpack(NULL, 0, 0) == NULL && errno == EINVAL,
	    "unpack of nothing");
	return (true);
}

/* The buffer (walked as lo) with every integer in big-endian order. */
static void
to_big_endian(uint8_t *b, const struct layout *lo)
{
	uint8_t t;
	size_t at, n, i, j;
	int k, type;

#define SWAP(p, len) do {						\
	for (j = 0; j < (len) / 2; j++) {				\
		t = (p)[j];						\
		(p)[j] = (p)[(len) - 1 - j];				\
		(p)[(len) - 1 - j] = t;					\
	}								\
} while (0)
	for (k = 0; k < lo->nhdr; k++) {
		at = lo->hdr[k];
		b[at + 2] |= 0x80;
		SWAP(b + at + 3, 8);
		SWAP(b + at + 11, 8);
	}
	for (k = 0; k < lo->npair; k++) {
		at = lo->pair[k];
		type = b[at];
		n = (size_t)le64(b + at + 11);
		i = at + 19 + (size_t)(b[at + 1] | b[at + 2] << 8);
		if (type == NV_TYPE_NUMBER || type == NV_TYPE_DESCRIPTOR)
			SWAP(b + i, 8);
		if (type == NV_TYPE_NUMBER_ARRAY ||
		    type == NV_TYPE_DESCRIPTOR_ARRAY)
			for (; n > 0; n--, i += 8)
				SWAP(b + i, 8);
		SWAP(b + at + 1, 2);
		SWAP(b + at + 3, 8);
		SWAP(b + at + 11, 8);
	}
#undef SWAP
}

static bool
test_big_endian(const uint8_t *buf, size_t size, const struct layout *lo)
{
	nvlist_t *nvl;
	uint8_t *be;
	bool ok;

	be = malloc(size);
	memcpy(be, buf, size);
	to_big_endian(be, lo);
	nvl = nvlist_unpack(be, size, 0);
	free(be);
	CHECK(nvl != NULL, "unpack: errno %d", errno);
	ok = check_full(nvl);
	nvlist_destroy(nvl);
	return (ok);
}

/* A chain of `levels` lists nested below a root, packed. */
static void *
pack_chain(int levels, size_t *sizep)
{
	nvlist_t *nvl, *outer;
	void *buf;
	int i;

	nvl = nvlist_create(0);
	nvlist_add_number(nvl, "bottom", 1);
	for (i = 0; i < levels; i++) {
		outer = nvlist_create(0);
		nvlist_move_nvlist(outer, "l", nvl);
		nvl = outer;
	}
	buf = nvlist_pack(nvl, sizep);
	nvlist_destroy(nvl);
	return (buf);
}

static bool
test_nesting(void)
{
	nvlist_t *nvl;
	size_t size;
	void *buf;

	buf = pack_chain(NV_NEST_MAX, &size);
	nvl = nvlist_unpack(buf, size, 0);
	free(buf);
	CHECK(nvl != NULL, "%d levels refused: errno %d", NV_NEST_MAX, errno);
	nvlist_destroy(nvl);
	buf = pack_chain(NV_NEST_MAX + 1, &size);
	errno = 0;
	nvl = nvlist_unpack(buf, size, 0);
	free(buf);
	CHECK(nvl == NULL && errno == EINVAL, "%d levels: errno %d",
	    NV_NEST_MAX + 1, errno);
	return (true);
}

/* ---- garbage ---------------------------------------------------------- */

static int garbage_total, garbage_rejected;

/* buf with `len` bytes at `at` replaced must be refused with EINVAL. */
static void
must_reject(const uint8_t *buf, size_t size, size_t at, const void *with,
    size_t len, const char *what)
{
	nvlist_t *nvl;
	uint8_t *b;

	b = malloc(size == 0 ? 1 : size);
	memcpy(b, buf, size);
	if (len > 0)
		memcpy(b + at, with, len);
	errno = 0;
	nvl = nvlist_unpack(b, size, 0);
	garbage_total++;
	if (nvl == NULL && errno == EINVAL)
		garbage_rejected++;
	else
		printf("garbage accepted: %s at %zu (%s, errno %d)\n", what, at,
		    nvl == NULL ? "NULL" : "a list", errno);
	nvlist_destroy(nvl);
	free(b);
}

static void
test_garbage(const uint8_t *buf, size_t size, const struct layout *lo)
{
	static const uint8_t zero = 0, one = 1, bad_flags = 0x40;
	uint8_t v8, v16[2], v64[8], *b;
	size_t at, len, ns;
	uint64_t v;
	int k, type;

	/* Every truncation, and one byte too many. */
	for (len = 0; len < size; len++)
		must_reject(buf, len, 0, NULL, 0, "truncated");
	b = calloc(1, size + 1);
	memcpy(b, buf, size);
	must_reject(b, size + 1, 0, NULL, 0, "extra byte");
	free(b);

	for (k = 0; k < lo->nhdr; k++) {
		at = lo->hdr[k];
		must_reject(buf, size, at, &zero, 1, "header magic");
		must_reject(buf, size, at + 1, &one, 1, "header version");
		v8 = buf[at + 2] | bad_flags;
		must_reject(buf, size, at + 2, &v8, 1, "header flag 0x40");
		v8 = buf[at + 2] | 0x80;
		must_reject(buf, size, at + 2, &v8, 1, "header big-endian");
		v = le64(buf + at + 11);
		put_le64(v64, v + 1);
		must_reject(buf, size, at + 11, v64, 8, "header size + 1");
		put_le64(v64, v - 1);
		must_reject(buf, size, at + 11, v64, 8, "header size - 1");
	}
	for (k = 0; k < lo->npair; k++) {
		at = lo->pair[k];
		type = buf[at];
		ns = (size_t)(buf[at + 1] | buf[at + 2] << 8);
		v8 = 0;
		must_reject(buf, size, at, &v8, 1, "type 0");
		v8 = 13;
		must_reject(buf, size, at, &v8, 1, "type 13");
		v8 = 253;
		must_reject(buf, size, at, &v8, 1, "type 253");
		v16[0] = v16[1] = 0;
		must_reject(buf, size, at + 1, v16, 2, "namesize 0");
		v16[0] = 0x01;
		v16[1] = 0x08;			/* 2049 */
		must_reject(buf, size, at + 1, v16, 2, "namesize 2049");
		v8 = 'x';
		must_reject(buf, size, at + 19 + ns - 1, &v8, 1, "name NUL");
		memset(v64, 0xff, 8);
		must_reject(buf, size, at + 3, v64, 8, "datasize 2^64-1");
		v = le64(buf + at + 3);
		switch (type) {
		case 254:
		case 255:
			v8 = type == 254 ? 255 : 254;
			must_reject(buf, size, at, &v8, 1, "other sentinel");
			put_le64(v64, 1);
			must_reject(buf, size, at + 3, v64, 8,
			    "sentinel datasize 1");
			must_reject(buf, size, at + 11, v64, 8,
			    "sentinel nitems 1");
			break;
		case NV_TYPE_NULL:
			put_le64(v64, 1);
			must_reject(buf, size, at + 3, v64, 8, "null datasize 1");
			break;
		case NV_TYPE_BOOL:
			v8 = 2;
			must_reject(buf, size, at + 19 + ns, &v8, 1, "bool 2");
			break;
		case NV_TYPE_NUMBER:
		case NV_TYPE_DESCRIPTOR:
			put_le64(v64, 7);
			must_reject(buf, size, at + 3, v64, 8, "datasize 7");
			if (type == NV_TYPE_NUMBER)
				break;
			put_le64(v64, (uint64_t)-1);
			must_reject(buf, size, at + 19 + ns, v64, 8, "fd -1");
			put_le64(v64, (uint64_t)1 << 31);
			must_reject(buf, size, at + 19 + ns, v64, 8, "fd 2^31");
			break;
		case NV_TYPE_STRING:
			v8 = 'x';
			must_reject(buf, size, at + 19 + ns + v - 1, &v8, 1,
			    "string NUL");
			break;
		case NV_TYPE_NVLIST:
			put_le64(v64, 0);
			must_reject(buf, size, at + 3, v64, 8,
			    "nvlist datasize 0");
			break;
		case NV_TYPE_BOOL_ARRAY:
		case NV_TYPE_NUMBER_ARRAY:
		case NV_TYPE_STRING_ARRAY:
		case NV_TYPE_NVLIST_ARRAY:
		case NV_TYPE_DESCRIPTOR_ARRAY:
			put_le64(v64, 0);
			must_reject(buf, size, at + 11, v64, 8, "nitems 0");
			put_le64(v64, le64(buf + at + 11) + 1);
			must_reject(buf, size, at + 11, v64, 8, "nitems + 1");
			memset(v64, 0xff, 8);
			must_reject(buf, size, at + 11, v64, 8,
			    "nitems 2^64-1");
			if (type != NV_TYPE_DESCRIPTOR_ARRAY)
				break;
			put_le64(v64, (uint64_t)-2);
			must_reject(buf, size, at + 19 + ns, v64, 8, "fd -2");
			break;
		}
	}
	printf("garbage rejected %d/%d\n", garbage_rejected, garbage_total);
	if (garbage_rejected != garbage_total)
		failures++;
}

static uint32_t
rnd(void)
{
	static uint32_t x = 2463534242U;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return (x);
}

/* Mutations that may or may not be valid: nothing may crash. */
static void
test_fuzz(const uint8_t *buf, size_t size)
{
	static const uint8_t flips[] = { 0x01, 0x80, 0xff };
	nvlist_t *nvl;
	uint8_t *b;
	size_t i, f, len, psize;
	void *packed;
	int n, accepted;

	n = accepted = 0;
	b = malloc(size + 64);
	for (i = 0; i < size; i++) {
		for (f = 0; f < sizeof(flips); f++) {
			memcpy(b, buf, size);
			b[i] ^= flips[f];
			nvl = nvlist_unpack(b, size, 0);
			n++;
			if (nvl != NULL) {
				accepted++;
				packed = nvlist_pack(nvl, &psize);
				if (packed == NULL) {
					printf("fuzz: repack failed at %zu\n", i);
					failures++;
				}
				free(packed);
				nvlist_destroy(nvl);
			}
		}
	}
	/* Random tails behind a header whose size is right. */
	for (i = 0; i < 3000; i++) {
		len = 19 + rnd() % 64;
		memcpy(b, buf, 19);
		put_le64(b + 11, len - 19);
		for (f = 19; f < len; f++)
			b[f] = (uint8_t)(rnd() % 4 == 0 ? rnd() % 13 : rnd());
		nvl = nvlist_unpack(b, len, 0);
		n++;
		if (nvl != NULL) {
			accepted++;
			nvlist_destroy(nvl);
		}
	}
	free(b);
	printf("fuzz %d mutations: %d accepted, %d rejected\n", n, accepted,
	    n - accepted);
}

/* ---- casper ----------------------------------------------------------- */

static int
casper_main(int argc, char **argv)
{
	cap_channel_t *chan, *svc;
	nvlist_t *limits;

	limits = NULL;
	chan = cap_init();
	if (chan == NULL) {
		printf("cap_init: errno %d\n", errno);
		return (1);
	}
	printf("cap_init: fd %d\n", cap_sock(chan));
	if (argc > 2) {
		svc = cap_service_open(chan, argv[2]);
		if (svc == NULL) {
			printf("cap_service_open %s: errno %d\n", argv[2], errno);
		} else {
			printf("cap_service_open %s: fd %d\n", argv[2],
			    cap_sock(svc));
			if (cap_limit_get(svc, &limits) != 0)
				printf("cap_limit_get: errno %d\n", errno);
			else if (limits == NULL)
				printf("cap_limit_get: none\n");
			else
				printf("cap_limit_get: %s\n",
				    nvlist_empty(limits) ? "empty" : "set");
			nvlist_destroy(limits);
			cap_close(svc);
		}
	}
	cap_close(chan);
	return (0);
}

/* ---- main ------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	struct layout *lo;
	nvlist_t *nvl, *back, *copy;
	size_t size, smallsize;
	void *buf, *small;

	if (argc > 1 && strcmp(argv[1], "casper") == 0)
		return (casper_main(argc, argv));
	if (argc > 1 && strcmp(argv[1], "dump") == 0) {
		nvl = build_full();
		nvlist_fdump(nvl, stdout);
		nvlist_destroy(nvl);
		return (0);
	}
	if (argc > 1 && strcmp(argv[1], "missing") == 0) {
		nvl = nvlist_create(0);
		printf("%s\n", nvlist_get_string(nvl, "nothere"));
		return (0);
	}

	nvl = build_small();
	small = nvlist_pack(nvl, &smallsize);
	nvlist_destroy(nvl);
	if (small == NULL) {
		printf("small: pack failed, errno %d\n", errno);
		return (1);
	}
	print_hex("small", small, smallsize);
	free(small);

	nvl = build_shapes();
	small = nvlist_pack(nvl, &smallsize);
	if (small == NULL || nvlist_error(nvl) != 0) {
		printf("shapes: pack failed, errno %d\n", errno);
		return (1);
	}
	print_hex("shapes", small, smallsize);
	back = nvlist_unpack(small, smallsize, 0);
	if (back == NULL || !same_bytes(back, small, smallsize))
		report("shapes repack", false);
	nvlist_destroy(back);
	nvlist_destroy(nvl);
	free(small);

	nvl = build_full();
	buf = nvlist_pack(nvl, &size);
	if (buf == NULL) {
		printf("packed: pack failed, errno %d\n", errno);
		return (1);
	}
	print_hex("packed", buf, size);
	if (size != nvlist_size(nvl)) {
		printf("nvlist_size %zu, packed %zu\n", nvlist_size(nvl), size);
		failures++;
	}

	back = nvlist_unpack(buf, size, 0);
	if (back == NULL) {
		snprintf(why, WHYLEN, "unpack: errno %d", errno);
		report("roundtrip", false);
	} else {
		report("roundtrip", check_full(back));
		if (same_bytes(back, buf, size))
			printf("repack identical\n");
		else
			report("repack", false);
		nvlist_destroy(back);
	}
	copy = nvlist_clone(nvl);
	if (copy != NULL && same_bytes(copy, buf, size))
		printf("clone identical\n");
	else
		report("clone", false);
	nvlist_destroy(copy);
	nvlist_destroy(nvl);

	report("eexist", test_eexist());
	report("ignore_case", test_ignore_case());
	report("no_unique", test_no_unique());
	report("eilseq", test_eilseq(buf, size));
	report("take/move/free", test_take_move_free());
	report("errors", test_errors());

	lo = malloc(sizeof(*lo));
	if (!walk(buf, size, lo)) {
		printf("layout: the packed list does not walk\n");
		return (1);
	}
	report("big-endian", test_big_endian(buf, size, lo));
	report("nesting limit", test_nesting());
	test_garbage(buf, size, lo);
	test_fuzz(buf, size);
	free(lo);
	free(buf);
	return (failures == 0 ? 0 : 1);
}
