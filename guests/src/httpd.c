/*
 * httpd: a small static file server for capsa. It never opens a socket: it
 * is handed a listening one (capsa run --listen ADDR, or a manifest's
 * !socket), finds it among its descriptors (the first socket that may
 * accept), and serves GET requests for files below a directory (argv[1],
 * default the first preopened directory's path "/site"), many clients at
 * once from one thread with poll(2). Keep-alive and pipelined requests are
 * handled; anything but GET gets 405, a missing file 404, ".." 403.
 *
 *   httpd [ROOT] [-n REQUESTS]     exit after REQUESTS responses (tests)
 *
 * Built natively too (cc -O2 -DNATIVE) for the benchmark: it then makes its
 * own listener on 127.0.0.1:PORT from $HTTPD_PORT.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef NATIVE
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#else
#include <wasi/api.h>
#endif

#ifndef ENOTCAPABLE
#define ENOTCAPABLE EACCES
#endif

#define MAX_CLIENTS 256
#define REQ_MAX 8192
#define OUT_MAX 16384

struct client {
	int fd;
	char req[REQ_MAX];
	size_t req_len;
	char out[OUT_MAX];
	size_t out_len, out_off;
	int file;          /* file being sent, or -1 */
	int keep_alive;
};

static struct client clients[MAX_CLIENTS];
static int nclients;
static const char *root = "/site";
static long served, max_requests = -1;

static int find_listener(void)
{
#ifdef NATIVE
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	const char *port = getenv("HTTPD_PORT");
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons(port ? atoi(port) : 8080);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return fd;
#else
	for (int fd = 3; fd < 64; fd++) {
		__wasi_fdstat_t st;
		if (__wasi_fd_fdstat_get(fd, &st) != 0)
			continue;
		if (st.fs_filetype == __WASI_FILETYPE_SOCKET_STREAM &&
		    (st.fs_rights_base & __WASI_RIGHTS_SOCK_ACCEPT))
			return fd;
	}
	return -1;
#endif
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void drop(int i)
{
	close(clients[i].fd);
	if (clients[i].file >= 0)
		close(clients[i].file);
	clients[i] = clients[--nclients];
}

static void respond_text(struct client *c, int code, const char *reason)
{
	char body[64];
	int blen = snprintf(body, sizeof body, "%d %s\n", code, reason);
	c->out_len = (size_t)snprintf(c->out, OUT_MAX,
	    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s",
	    code, reason, blen, c->keep_alive ? "" : "Connection: close\r\n", body);
	c->out_off = 0;
}

/* Parses one complete request at the start of c->req; returns its length. */
static size_t start_response(struct client *c, size_t end)
{
	char method[8], target[1024], version[16];
	char *line_end = memchr(c->req, '\r', end);
	size_t n = line_end ? (size_t)(line_end - c->req) : end;
	char line[1100];
	if (n >= sizeof line)
		n = sizeof line - 1;
	memcpy(line, c->req, n);
	line[n] = 0;
	c->keep_alive = 0;
	if (sscanf(line, "%7s %1023s %15s", method, target, version) != 3) {
		respond_text(c, 400, "Bad Request");
		return end;
	}
	c->keep_alive = strcmp(version, "HTTP/1.1") == 0;
	/* Header names are case-insensitive; only Connection matters here. */
	for (char *h = c->req; h < c->req + end; h++) {
		if ((h == c->req || h[-1] == '\n') && strncasecmp(h, "connection:", 11) == 0) {
			char *v = h + 11;
			while (*v == ' ')
				v++;
			if (strncasecmp(v, "close", 5) == 0)
				c->keep_alive = 0;
			else if (strncasecmp(v, "keep-alive", 10) == 0)
				c->keep_alive = 1;
		}
	}
	if (strcmp(method, "GET") != 0) {
		respond_text(c, 405, "Method Not Allowed");
		return end;
	}
	char *q = strchr(target, '?');
	if (q)
		*q = 0;
	if (strstr(target, "..")) {
		respond_text(c, 403, "Forbidden");
		return end;
	}
	char path[1200];
	snprintf(path, sizeof path, "%s%s%s", root, target,
	    target[strlen(target) - 1] == '/' ? "index.html" : "");
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 && errno != ENOENT && errno != ENOTDIR && errno != ENOTCAPABLE) {
		/* Out of descriptors (EMFILE) or the like: the file may well exist. */
		respond_text(c, 503, "Service Unavailable");
		return end;
	}
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		respond_text(c, 404, "Not Found");
		return end;
	}
	c->file = fd;
	c->out_len = (size_t)snprintf(c->out, OUT_MAX,
	    "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n%s\r\n",
	    (long long)st.st_size, c->keep_alive ? "" : "Connection: close\r\n");
	c->out_off = 0;
	return end;
}

/* Looks for a whole request in the buffer and starts answering it. */
static void next_request(struct client *c)
{
	char *e = NULL;
	for (size_t i = 3; i < c->req_len; i++)
		if (memcmp(c->req + i - 3, "\r\n\r\n", 4) == 0) {
			e = c->req + i + 1;
			break;
		}
	if (!e)
		return;
	size_t used = start_response(c, (size_t)(e - c->req));
	memmove(c->req, c->req + used, c->req_len - used);
	c->req_len -= used;
}

/* Sends what it can; returns -1 when the client should be dropped. */
static int pump_out(struct client *c)
{
	for (;;) {
		if (c->out_off == c->out_len) {
			c->out_off = c->out_len = 0;
			if (c->file >= 0) {
				ssize_t r = read(c->file, c->out, OUT_MAX);
				if (r > 0) {
					c->out_len = (size_t)r;
					continue;
				}
				close(c->file);
				c->file = -1;
			}
			served++;
			if (!c->keep_alive)
				return -1;
			next_request(c);
			if (c->out_len == 0)
				return 0;
			continue;
		}
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, 0);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		c->out_off += (size_t)w;
	}
}

static int busy(struct client *c)
{
	return c->out_len > 0 || c->file >= 0;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			max_requests = atol(argv[++i]);
		else
			root = argv[i];
	}
	int lfd = find_listener();
	if (lfd < 0) {
		fprintf(stderr, "httpd: no listening socket was granted (capsa run --listen ADDR)\n");
		return 2;
	}
	set_nonblock(lfd);
	static struct pollfd pfd[MAX_CLIENTS + 1];
	while (max_requests < 0 || served < max_requests) {
		pfd[0].fd = lfd;
		pfd[0].events = nclients < MAX_CLIENTS ? POLLIN : 0;
		for (int i = 0; i < nclients; i++) {
			pfd[i + 1].fd = clients[i].fd;
			pfd[i + 1].events = busy(&clients[i]) ? POLLOUT : POLLIN;
			pfd[i + 1].revents = 0;
		}
		if (poll(pfd, (nfds_t)nclients + 1, -1) < 0) {
			perror("httpd: poll");
			return 1;
		}
		/* Clients first: accepting moves entries of clients[]. */
		for (int i = nclients - 1; i >= 0; i--) {
			struct client *c = &clients[i];
			short re = pfd[i + 1].revents;
			if (!re)
				continue;
			if (!busy(c) && (re & (POLLIN | POLLHUP))) {
				ssize_t r = recv(c->fd, c->req + c->req_len, REQ_MAX - c->req_len, 0);
				if (r == 0 || (r < 0 && errno != EAGAIN)) {
					drop(i);
					continue;
				}
				if (r > 0)
					c->req_len += (size_t)r;
				next_request(c);
				if (!busy(c) && c->req_len == REQ_MAX) {
					c->keep_alive = 0;
					respond_text(c, 431, "Request Header Fields Too Large");
				}
			}
			if (busy(c) && pump_out(c) < 0)
				drop(i);
		}
		if (pfd[0].revents & POLLIN) {
			while (nclients < MAX_CLIENTS) {
				int fd = accept(lfd, NULL, NULL);
				if (fd < 0)
					break;
				set_nonblock(fd);
				struct client *c = &clients[nclients++];
				c->fd = fd;
				c->req_len = c->out_len = c->out_off = 0;
				c->file = -1;
				c->keep_alive = 0;
			}
		}
	}
	return 0;
}
