/*
 * dgram: connected UDP through preview1, on the datagram socket the host
 * handed over as fd 3 (a manifest's !socket { type: dgram, ... }).
 *
 *	dgram ping MESSAGE	send MESSAGE as one datagram, receive one, print it
 *	dgram recv SIZE [N]	receive N datagrams (default 1) into SIZE bytes each;
 *				print each as "LEN[ truncated]: BYTES"
 *	dgram flood		send 1000-byte datagrams until a send fails
 *
 * preview1 has sock_recv and sock_send but no recvfrom or sendto: a
 * connected socket talks to its one peer; a bound one only receives (a
 * send fails with EDESTADDRREQ).  Prints "fd 3: ERRNO" and exits 1 when a
 * call fails.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

#define	FD	3

static int
fail(const char *call, __wasi_errno_t e)
{

	printf("fd %d: %s: %s\n", FD, call, strerror(e));
	return (1);
}

static int
recv_one(size_t size)
{
	char *buf;
	__wasi_iovec_t iov;
	__wasi_size_t n;
	__wasi_roflags_t flags;
	__wasi_errno_t e;

	buf = malloc(size + 1);
	if (buf == NULL)
		return (1);
	iov.buf = (uint8_t *)buf;
	iov.buf_len = size;
	e = __wasi_sock_recv(FD, &iov, 1, 0, &n, &flags);
	if (e != 0)
		return (fail("sock_recv", e));
	buf[n] = '\0';
	printf("%u%s: %s\n", (unsigned)n,
	    flags & __WASI_ROFLAGS_RECV_DATA_TRUNCATED ? " truncated" : "", buf);
	free(buf);
	return (0);
}

static int
send_one(const char *msg, size_t len)
{
	__wasi_ciovec_t iov;
	__wasi_size_t n;
	__wasi_errno_t e;

	iov.buf = (const uint8_t *)msg;
	iov.buf_len = len;
	e = __wasi_sock_send(FD, &iov, 1, 0, &n);
	if (e != 0)
		return (fail("sock_send", e));
	return (0);
}

int
main(int argc, char *argv[])
{
	__wasi_fdstat_t st;
	static char big[1000];
	int i, count;

	if (__wasi_fd_fdstat_get(FD, &st) != 0 ||
	    st.fs_filetype != __WASI_FILETYPE_SOCKET_DGRAM) {
		printf("fd %d is not a datagram socket\n", FD);
		return (1);
	}
	if (argc == 3 && strcmp(argv[1], "ping") == 0) {
		if (send_one(argv[2], strlen(argv[2])) != 0)
			return (1);
		return (recv_one(2048));
	}
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "recv") == 0) {
		count = argc == 4 ? atoi(argv[3]) : 1;
		for (i = 0; i < count; i++)
			if (recv_one((size_t)atoi(argv[2])) != 0)
				return (1);
		return (0);
	}
	if (argc == 2 && strcmp(argv[1], "flood") == 0) {
		memset(big, 'x', sizeof(big));
		for (;;)
			if (send_one(big, sizeof(big)) != 0)
				return (1);
	}
	fprintf(stderr, "usage: dgram ping MESSAGE | recv SIZE [N] | flood\n");
	return (2);
}
