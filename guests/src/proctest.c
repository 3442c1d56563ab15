/*
 * proctest MODE [MODULE]: exercises pipes and process descriptors for the
 * tests.  MODULE is this program's own module file (/bin/proctest.wasm).
 *
 *   escape    (as a child, fd 1 a pipe) tries to reach the parent's /data
 *             preopen and to widen fd 1, and reports the errnos on fd 1
 *   spawn M C parent: starts `proctest C` with fd 0 an idle pipe and fd 1 a
 *             pipe limited to CAP_WRITE; copies fd 1 to stdout; reports status
 *   hang      (child) blocks reading fd 0
 *   exit7     exits with 7
 *   closepd M starts a hanging child, closes its descriptor, and reports the
 *             EOF on the child's pipe that follows
 *   kill M    starts a hanging child, pdkills it, and reports its status
 *   orphan M  starts three hanging children and exits at once
 *   bomb [M]  starts copies of itself that do the same, forever
 *   poll M    poll() over a pipe, a process descriptor and a timeout
 *   echo      (child) copies fd 0 to fd 1 a byte at a time until EOF
 *   bench M N times N spawns of `exit7` (pdspawn alone, and to pdwait's
 *             return) and N one-byte round trips through an `echo` child
 */

#include <capsa/spawn.h>
#include <sys/capsicum.h>
#include <sys/procdesc.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static void
die(const char *what)
{
	printf("%s: errno %d\n", what, errno);
	exit(2);
}

/* Starts `proctest mode` with fd 0 an idle pipe and fd 1 the write end of *out. */
static pid_t
start(int mod, const char *mode, int *pd, int out[2], int idle[2])
{
	char *argv[] = { "proctest", (char *)mode, NULL };
	cap_rights_t r;
	pid_t pid;

	if (pipe(out) != 0 || pipe(idle) != 0)
		die("pipe");
	if (cap_rights_limit(out[1], cap_rights_init(&r, CAP_WRITE)) != 0)
		die("cap_rights_limit");
	int fds[] = { idle[0], out[1] };
	if ((pid = pdspawn(pd, mod, argv, fds, 2, 0)) < 0)
		die("pdspawn");
	close(out[1]);
	close(idle[0]);
	return (pid);
}

static void
report(int pd)
{
	int status;
	pid_t pid, got;

	if (pdgetpid(pd, &pid) != 0)
		die("pdgetpid");
	if ((got = pdwait(pd, &status, 0)) < 0)
		die("pdwait");
	if (WIFSIGNALED(status))
		printf("child %s signal %d\n", got == pid ? "pid-ok" : "pid-bad", WTERMSIG(status));
	else
		printf("child %s exit %d\n", got == pid ? "pid-ok" : "pid-bad", WEXITSTATUS(status));
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x < y ? -1 : x > y);
}

static int64_t
median(int64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp64);
	return (v[n / 2]);
}

static int
openmod(int argc, char *argv[])
{
	int mod;

	if (argc < 3) {
		fprintf(stderr, "proctest: give the module\n");
		exit(2);
	}
	if ((mod = open(argv[2], O_RDONLY)) < 0)
		die("open module");
	return (mod);
}

int
main(int argc, char *argv[])
{
	const char *mode = argc > 1 ? argv[1] : "";
	char buf[512];
	cap_rights_t r;
	int out[2], idle[2], pd, mod;
	ssize_t n;

	if (strcmp(mode, "escape") == 0) {
		int fd = open("/data/secret.txt", O_RDONLY);
		printf("open /data/secret.txt: %d errno %d\n", fd, fd < 0 ? errno : 0);
		int rc = cap_rights_limit(1, cap_rights_init(&r, CAP_WRITE, CAP_READ));
		printf("widen fd 1: %d errno %d\n", rc, rc < 0 ? errno : 0);
		/* The SDK refuses a widening itself; the host must refuse it too. */
		printf("widen fd 1 (host): errno %d\n", __wasi_fd_fdstat_set_rights(1, CAP_WRITE | CAP_READ, 0));
		if (cap_rights_get(1, &r) != 0)
			die("cap_rights_get");
		printf("fd 1 read %d write %d\n", cap_rights_is_set(&r, CAP_READ), cap_rights_is_set(&r, CAP_WRITE));
		return (0);
	}
	if (strcmp(mode, "hang") == 0) {
		n = read(0, buf, sizeof(buf));
		return (n == 0 ? 3 : 4);
	}
	if (strcmp(mode, "exit7") == 0)
		return (7);
	if (strcmp(mode, "spawn") == 0) {
		mod = openmod(argc, argv);
		start(mod, argc > 3 ? argv[3] : "exit7", &pd, out, idle);
		while ((n = read(out[0], buf, sizeof(buf))) > 0)
			fwrite(buf, 1, (size_t)n, stdout);
		report(pd);
		return (0);
	}
	if (strcmp(mode, "closepd") == 0) {
		mod = openmod(argc, argv);
		start(mod, "hang", &pd, out, idle);
		close(pd);
		n = read(out[0], buf, sizeof(buf));
		printf("read after close(pd): %zd\n", n);
		return (0);
	}
	if (strcmp(mode, "kill") == 0) {
		mod = openmod(argc, argv);
		start(mod, "hang", &pd, out, idle);
		if (pdkill(pd, SIGTERM) != 0)
			die("pdkill");
		report(pd);
		return (0);
	}
	if (strcmp(mode, "orphan") == 0) {
		mod = openmod(argc, argv);
		for (int i = 0; i < 3; i++)
			start(mod, "hang", &pd, out, idle);
		printf("started 3\n");
		fflush(stdout);
		return (0);
	}
	if (strcmp(mode, "bomb") == 0) {
		/* A child finds the module as its fd 0. */
		mod = argc > 2 ? openmod(argc, argv) : 0;
		char *cargv[] = { "proctest", "bomb", NULL };
		for (;;)
			pdspawn(&pd, mod, cargv, &mod, 1, 0);
	}
	if (strcmp(mode, "poll") == 0) {
		mod = openmod(argc, argv);
		int p[2];
		if (pipe(p) != 0)
			die("pipe");
		start(mod, "exit7", &pd, out, idle);
		struct pollfd fds[2] = { { .fd = p[0], .events = POLLIN }, { .fd = pd, .events = POLLIN } };
		int k = poll(fds, 2, 10000);
		printf("poll pipe+pd: %d pipe %d pd %d\n", k, (fds[0].revents & POLLIN) != 0, (fds[1].revents & POLLIN) != 0);
		k = poll(fds, 1, 20);
		printf("poll empty pipe, 20 ms: %d\n", k);
		if (write(p[1], "x", 1) != 1)
			die("write");
		k = poll(fds, 1, 10000);
		printf("poll pipe after write: %d pipe %d\n", k, (fds[0].revents & POLLIN) != 0);
		report(pd);
		return (0);
	}
	if (strcmp(mode, "echo") == 0) {
		char c;
		while (read(0, &c, 1) == 1)
			if (write(1, &c, 1) != 1)
				return (2);
		return (0);
	}
	if (strcmp(mode, "bench") == 0) {
		int nrounds = argc > 3 ? atoi(argv[3]) : 100, status;
		int64_t *call = calloc((size_t)nrounds, sizeof(int64_t));
		int64_t *whole = calloc((size_t)nrounds, sizeof(int64_t));
		int64_t *rtt = calloc((size_t)nrounds, sizeof(int64_t));
		char *cargv[] = { "proctest", "exit7", NULL };
		char c = 'x';
		int none[1];

		mod = openmod(argc, argv);
		for (int i = 0; i < nrounds; i++) {
			int64_t t0 = now_ns();
			if (pdspawn(&pd, mod, cargv, none, 0, 0) < 0)
				die("pdspawn");
			int64_t t1 = now_ns();
			if (pdwait(pd, &status, 0) < 0 || WEXITSTATUS(status) != 7)
				die("pdwait");
			whole[i] = now_ns() - t0;
			call[i] = t1 - t0;
			close(pd);
		}
		int in[2], out2[2];
		if (pipe(in) != 0 || pipe(out2) != 0)
			die("pipe");
		char *eargv[] = { "proctest", "echo", NULL };
		int efds[] = { in[0], out2[1] };
		if (pdspawn(&pd, mod, eargv, efds, 2, 0) < 0)
			die("pdspawn echo");
		close(in[0]);
		close(out2[1]);
		for (int i = 0; i < nrounds; i++) {
			int64_t t0 = now_ns();
			if (write(in[1], &c, 1) != 1 || read(out2[0], &c, 1) != 1)
				die("round trip");
			rtt[i] = now_ns() - t0;
		}
		close(in[1]);
		pdwait(pd, &status, 0);
		printf("pdspawn_median_ns %lld\n", (long long)median(call, nrounds));
		printf("spawn_to_exit_median_ns %lld\n", (long long)median(whole, nrounds));
		printf("pipe_round_trip_median_ns %lld\n", (long long)median(rtt, nrounds));
		return (0);
	}
	fprintf(stderr, "proctest: unknown mode %s\n", mode);
	return (2);
}
