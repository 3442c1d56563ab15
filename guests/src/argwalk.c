/*
 * argwalk: prints the program's argdata, one node a line, indented two
 * spaces a level.  Written CloudABI-style: it defines program_main(), and
 * libcapsa.a supplies main().
 *
 *	map			then each key one level in, its value two
 *	seq			then each element one level in
 *	str "..."		C escapes for " \ and control bytes
 *	int N
 *	float F			the shortest form that reads back exactly
 *	bool true|false
 *	binary N bytes
 *	timestamp S.NNNNNNNNN	seconds since the epoch (negative before it)
 *	fd N rights 0xRIGHTS	cap_rights_get(); if it holds CAP_READ, the
 *	  > first line		first line read from it follows
 *	null
 *
 * A node the getters cannot read (malformed data) prints as null, as
 * NuxiNL's argdata_print_yaml does; a map or seq whose data breaks off
 * prints "(malformed)" at its end.  Exits 0.
 */

#include <argdata.h>
#include <program.h>
#include <sys/capsicum.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void walk(const argdata_t *, int);

static void
indent(int depth)
{

	printf("%*s", depth * 2, "");
}

static void
print_str(const char *s, size_t len)
{
	size_t i;
	unsigned char c;

	putchar('"');
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		switch (c) {
		case '"':	fputs("\\\"", stdout); break;
		case '\\':	fputs("\\\\", stdout); break;
		case '\n':	fputs("\\n", stdout); break;
		case '\t':	fputs("\\t", stdout); break;
		case '\r':	fputs("\\r", stdout); break;
		default:
			if (c < 0x20 || c == 0x7f)
				printf("\\x%02x", c);
			else
				putchar(c);
		}
	}
	putchar('"');
}

static void
print_float(double f)
{
	char buf[40];
	int prec;

	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, f);
		if (strtod(buf, NULL) == f)
			break;
	}
	snprintf(buf, sizeof(buf), "%.*g", prec, f);
	fputs(buf, stdout);
}

static void
print_timestamp(const struct timespec *ts)
{
	long long sec;
	long nsec;

	sec = ts->tv_sec;
	nsec = ts->tv_nsec;
	/* tv_nsec counts up from tv_sec; a decimal counts away from zero. */
	if (sec < 0 && nsec > 0)
		printf("-%lld.%09ld", -(sec + 1), 1000000000L - nsec);
	else
		printf("%lld.%09ld", sec, nsec);
}

/* The first line of fd, without its newline; up to 200 bytes. */
static void
print_first_line(int fd, int depth)
{
	char line[201];
	size_t len;
	ssize_t n;

	len = 0;
	while (len < sizeof(line) - 1) {
		n = read(fd, line + len, 1);
		if (n <= 0 || line[len] == '\n')
			break;
		len++;
	}
	indent(depth);
	fputs("> ", stdout);
	fwrite(line, 1, len, stdout);
	putchar('\n');
}

static void
print_fd(int fd, int depth)
{
	cap_rights_t rights;

	if (cap_rights_get(fd, &rights) != 0) {
		printf("fd %d rights ? (%s)\n", fd, strerror(errno));
		return;
	}
	printf("fd %d rights 0x%" PRIx64 "\n", fd, rights.cr_rights[0]);
	if (cap_rights_is_set(&rights, CAP_READ))
		print_first_line(fd, depth + 1);
}

static void
walk(const argdata_t *ad, int depth)
{
	argdata_map_iterator_t mit;
	argdata_seq_iterator_t sit;
	const argdata_t *key, *value;
	const char *s;
	const void *bin;
	size_t len;
	intmax_t i;
	uintmax_t u;
	double f;
	bool b;
	int fd, error;
	struct timespec ts;

	indent(depth);
	argdata_map_iterate(ad, &mit);
	if (mit.index != ARGDATA_ITERATOR_INVALID) {
		puts("map");
		while (argdata_map_get(&mit, &key, &value)) {
			walk(key, depth + 1);
			walk(value, depth + 2);
			argdata_map_next(&mit);
		}
		if (mit.index == ARGDATA_ITERATOR_INVALID) {
			indent(depth + 1);
			puts("(malformed)");
		}
		return;
	}
	argdata_seq_iterate(ad, &sit);
	if (sit.index != ARGDATA_ITERATOR_INVALID) {
		puts("seq");
		while (argdata_seq_get(&sit, &value)) {
			walk(value, depth + 1);
			argdata_seq_next(&sit);
		}
		if (sit.index == ARGDATA_ITERATOR_INVALID) {
			indent(depth + 1);
			puts("(malformed)");
		}
		return;
	}
	if ((error = argdata_get_str(ad, &s, &len)) != EINVAL) {
		if (error == 0) {
			fputs("str ", stdout);
			print_str(s, len);
			putchar('\n');
		} else
			puts("str (not UTF-8)");
		return;
	}
	if ((error = argdata_get_int_s(ad, &i, INTMAX_MIN, INTMAX_MAX)) !=
	    EINVAL) {
		if (error == 0)
			printf("int %jd\n", i);
		else if (argdata_get_int_u(ad, &u, UINTMAX_MAX) == 0)
			printf("int %ju\n", u);
		else
			puts("int (out of range)");
		return;
	}
	if (argdata_get_float(ad, &f) == 0) {
		fputs("float ", stdout);
		print_float(f);
		putchar('\n');
		return;
	}
	if (argdata_get_bool(ad, &b) == 0) {
		puts(b ? "bool true" : "bool false");
		return;
	}
	if (argdata_get_binary(ad, &bin, &len) == 0) {
		printf("binary %zu bytes\n", len);
		return;
	}
	if ((error = argdata_get_timestamp(ad, &ts)) != EINVAL) {
		fputs("timestamp ", stdout);
		if (error == 0)
			print_timestamp(&ts);
		else
			fputs("(out of range)", stdout);
		putchar('\n');
		return;
	}
	if ((error = argdata_get_fd(ad, &fd)) != EINVAL) {
		if (error == 0)
			print_fd(fd, depth);
		else
			puts("fd (not open)");
		return;
	}
	puts("null");
}

void
program_main(const argdata_t *ad)
{

	walk(ad, 0);
	fflush(stdout);
}
