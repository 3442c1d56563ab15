/*
 * sockprobe: misbehaving and probing socket programs for capsa's tests.
 *
 *	sockprobe grab     try every way preview1 offers to get a socket:
 *	                   sock_accept on every descriptor, path_open of
 *	                   every preopen; print what each gave; exit 0 if
 *	                   none gave a socket, 3 if one did
 *	sockprobe hold     accept one connection, then never read (sleeps)
 *	sockprobe flood    accept one connection and send to it forever
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static int listener(void)
{
	for (int fd = 3; fd < 64; fd++) {
		__wasi_fdstat_t st;
		if (__wasi_fd_fdstat_get(fd, &st) == 0 &&
		    st.fs_filetype == __WASI_FILETYPE_SOCKET_STREAM &&
		    (st.fs_rights_base & __WASI_RIGHTS_SOCK_ACCEPT))
			return fd;
	}
	return -1;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "grab";
	if (strcmp(mode, "grab") == 0) {
		int got = 0;
		for (int fd = 0; fd < 64; fd++) {
			__wasi_fd_t out;
			__wasi_errno_t e = __wasi_sock_accept(fd, 0, &out);
			if (e != __WASI_ERRNO_BADF)
				printf("sock_accept(%d): %d\n", fd, e);
			if (e == 0)
				got = 1;
			__wasi_fdstat_t st;
			if (__wasi_fd_fdstat_get(fd, &st) == 0 &&
			    (st.fs_filetype == __WASI_FILETYPE_SOCKET_STREAM ||
			    st.fs_filetype == __WASI_FILETYPE_SOCKET_DGRAM)) {
				printf("fd %d is a socket\n", fd);
				got = 1;
			}
		}
		/* Names a socket might hide behind, below every preopen. */
		const char *names[] = { "/tmp/x.sock", "/dev/tcp/127.0.0.1/80", "/proc/net/tcp", "127.0.0.1:80" };
		for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
			int fd = open(names[i], O_RDWR);
			if (fd >= 0) {
				__wasi_fdstat_t st;
				if (__wasi_fd_fdstat_get(fd, &st) == 0 &&
				    st.fs_filetype == __WASI_FILETYPE_SOCKET_STREAM)
					got = 1;
				close(fd);
			}
			printf("open(%s): %s\n", names[i], fd >= 0 ? "opened" : strerror(errno));
		}
		return got ? 3 : 0;
	}
	int lfd = listener();
	if (lfd < 0) {
		fprintf(stderr, "sockprobe: no listener\n");
		return 2;
	}
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0) {
		perror("sockprobe: accept");
		return 1;
	}
	printf("accepted\n");
	fflush(stdout);
	if (strcmp(mode, "hold") == 0) {
		for (;;) {
			struct timespec ts = { 3600, 0 };
			nanosleep(&ts, NULL);
		}
	}
	static char buf[65536];
	memset(buf, 'x', sizeof buf);
	for (;;) {
		ssize_t w = send(fd, buf, sizeof buf, 0);
		if (w < 0) {
			perror("sockprobe: send");
			return 1;
		}
	}
}
