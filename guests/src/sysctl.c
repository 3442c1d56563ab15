/*
 * sysctl NAME...: prints "NAME: VALUE" for each name, read through Casper's
 * system.sysctl with cap_sysctlbyname().
 *
 * Opens system.sysctl, limits it to reading exactly the names given,
 * enters capability mode, then asks each value's size and reads it.  A
 * value that ends with its NUL and is otherwise printable prints as a
 * string; one of 4 or 8 bytes as a (little-endian, signed) integer; anything
 * else as hex bytes.  A name that cannot be read prints
 * "sysctl: NAME: REASON" on stderr and makes the exit status 1.
 */

#include <sys/capsicum.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libcasper.h>
#include <casper/cap_sysctl.h>

static void
die(const char *what)
{

	fprintf(stderr, "sysctl: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int
is_string(const unsigned char *buf, size_t len)
{
	size_t i;

	if (len == 0 || buf[len - 1] != '\0')
		return (0);
	for (i = 0; i + 1 < len; i++)
		if (!isprint(buf[i]) && buf[i] != '\t' && buf[i] != '\n')
			return (0);
	return (1);
}

static void
print_value(const char *name, const unsigned char *buf, size_t len)
{
	int32_t i32;
	int64_t i64;
	size_t i;

	printf("%s: ", name);
	if (is_string(buf, len)) {
		printf("%s", (const char *)buf);
	} else if (len == sizeof(i32)) {
		memcpy(&i32, buf, sizeof(i32));
		printf("%jd", (intmax_t)i32);
	} else if (len == sizeof(i64)) {
		memcpy(&i64, buf, sizeof(i64));
		printf("%jd", (intmax_t)i64);
	} else {
		for (i = 0; i < len; i++)
			printf("%s%02x", i > 0 ? " " : "", buf[i]);
	}
	putchar('\n');
}

/* Reads name's value; 0, or -1 with errno. */
static int
show(cap_channel_t *capsysctl, const char *name)
{
	unsigned char *buf;
	size_t len;

	len = 0;
	if (cap_sysctlbyname(capsysctl, name, NULL, &len, NULL, 0) < 0)
		return (-1);
	/* Room for growth between the two calls, as sysctl(8) leaves. */
	len += len / 8 + 16;
	if ((buf = malloc(len)) == NULL)
		return (-1);
	if (cap_sysctlbyname(capsysctl, name, buf, &len, NULL, 0) < 0) {
		free(buf);
		return (-1);
	}
	print_value(name, buf, len);
	free(buf);
	return (0);
}

int
main(int argc, char *argv[])
{
	cap_channel_t *capcas, *capsysctl;
	cap_sysctl_limit_t *limit;
	int i, status;

	if (argc < 2) {
		fprintf(stderr, "usage: sysctl name ...\n");
		return (1);
	}

	capcas = cap_init();
	if (capcas == NULL)
		die("unable to contact Casper");
	capsysctl = cap_service_open(capcas, "system.sysctl");
	cap_close(capcas);
	if (capsysctl == NULL)
		die("unable to open system.sysctl");

	/* Read-only access to the names asked for, and nothing else. */
	limit = cap_sysctl_limit_init(capsysctl);
	for (i = 1; i < argc; i++)
		limit = cap_sysctl_limit_name(limit, argv[i], CAP_SYSCTL_READ);
	if (cap_sysctl_limit(limit) < 0)
		die("unable to limit system.sysctl");

	if (cap_enter() < 0)
		die("unable to enter capability mode");

	status = 0;
	for (i = 1; i < argc; i++) {
		if (show(capsysctl, argv[i]) < 0) {
			fprintf(stderr, "sysctl: %s: %s\n", argv[i],
			    strerror(errno));
			status = 1;
		}
	}
	cap_close(capsysctl);
	return (status);
}
