/*
 * bench_casper: what a Casper round trip costs a guest, next to the WASI call it replaces.
 * Times N cap_random_buf(16) calls one by one (median and mean), N getentropy(16) calls, and
 * N cap_getpwnam("root") calls; prints one "name value" line each.
 */
#include <sys/capsicum.h>
#include <libcasper.h>
#include <casper/cap_pwd.h>
#include <casper/cap_random.h>

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec * 1e9 + ts.tv_nsec);
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x < y ? -1 : x > y);
}

int
main(int argc, char *argv[])
{
	cap_channel_t *cas, *rnd, *pwd;
	unsigned char buf[16];
	double *t, t0, t1, t2, sum;
	int i, n;

	n = argc > 1 ? atoi(argv[1]) : 10000;
	if (n <= 0 || (t = calloc(n, sizeof(*t))) == NULL)
		return (2);
	if ((cas = cap_init()) == NULL ||
	    (rnd = cap_service_open(cas, "system.random")) == NULL ||
	    (pwd = cap_service_open(cas, "system.pwd")) == NULL) {
		perror("bench_casper: casper");
		return (1);
	}
	cap_close(cas);
	for (i = 0; i < 200; i++)
		cap_random_buf(rnd, buf, sizeof(buf));

	sum = 0;
	for (i = 0; i < n; i++) {
		t0 = now_ns();
		if (cap_random_buf(rnd, buf, sizeof(buf)) != 0)
			return (1);
		t[i] = now_ns() - t0;
		sum += t[i];
	}
	qsort(t, n, sizeof(*t), cmp);
	printf("casper_random_median_ns %.0f\n", t[n / 2]);
	printf("casper_random_mean_ns %.0f\n", sum / n);

	t1 = now_ns();
	for (i = 0; i < n; i++)
		if (getentropy(buf, sizeof(buf)) != 0)
			return (1);
	printf("wasi_random_get_ns %.0f\n", (now_ns() - t1) / n);

	t2 = now_ns();
	for (i = 0; i < n; i++)
		if (cap_getpwnam(pwd, "root") == NULL)
			return (1);
	printf("cap_getpwnam_per_s %.0f\n", n / ((now_ns() - t2) / 1e9));
	return (0);
}
