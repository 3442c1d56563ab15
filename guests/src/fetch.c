/*
 * fetch URL: an HTTP GET through Casper's system.net, from capability mode.
 *
 *	fetch http://HOST[:PORT]/PATH
 *
 * Opens system.net, drops the Casper channel, narrows the service to
 * resolving HOST at PORT and connecting only to what that returned
 * (CAPNET_NAME2ADDR | CAPNET_CONNECTDNS), enters capability mode, resolves
 * HOST with cap_getaddrinfo, connects with cap_connect, sends
 * "GET /PATH HTTP/1.0" and copies the response body to stdout; the status
 * line goes to stderr.  If the grant is already narrower than that (a
 * manifest listing the addresses to connect to), the narrowing is refused
 * with ENOTCAPABLE and fetch keeps the granted limits.
 *
 * Exits 0 for a 2xx response, 1 for any failure (a refused lookup or
 * connect says so: "Capabilities insufficient"), 2 for another status.
 * Built without WITH_CASPER (mock mode) it cannot connect: wasi-libc has no
 * connect(2).
 */

#include <sys/capsicum.h>
#include <sys/socket.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libcasper.h>
#include <casper/cap_net.h>

#define	HOST_MAX	256
#define	PORT_MAX	8
#define	BUF_SIZE	8192

static void
die(const char *what)
{

	fprintf(stderr, "fetch: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Splits http://HOST[:PORT]/PATH; 0, or -1 if the URL is not one. */
static int
parse_url(const char *url, char *host, char *port, const char **path)
{
	const char *p, *end, *colon;
	size_t n;

	if (strncmp(url, "http://", 7) != 0)
		return (-1);
	p = url + 7;
	end = strchr(p, '/');
	if (end == NULL)
		end = p + strlen(p);
	colon = memchr(p, ':', (size_t)(end - p));
	n = (size_t)((colon != NULL ? colon : end) - p);
	if (n == 0 || n >= HOST_MAX)
		return (-1);
	memcpy(host, p, n);
	host[n] = '\0';
	if (colon != NULL) {
		n = (size_t)(end - colon - 1);
		if (n == 0 || n >= PORT_MAX)
			return (-1);
		memcpy(port, colon + 1, n);
		port[n] = '\0';
	} else {
		strcpy(port, "80");
	}
	*path = *end == '\0' ? "/" : end;
	return (0);
}

static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0)
			return (-1);
		buf += n;
		len -= (size_t)n;
	}
	return (0);
}

int
main(int argc, char *argv[])
{
	cap_channel_t *capcas, *capnet;
	cap_net_limit_t *limit;
	struct addrinfo hints, *res, *ai;
	char host[HOST_MAX], port[PORT_MAX], buf[BUF_SIZE];
	char request[HOST_MAX + BUF_SIZE];
	const char *path;
	size_t have;
	ssize_t n;
	char *eol, *body;
	int error, s, status, headers_done;

	if (argc != 2 || parse_url(argv[1], host, port, &path) != 0) {
		fprintf(stderr, "usage: fetch http://HOST[:PORT]/PATH\n");
		return (1);
	}
	if (strlen(path) > BUF_SIZE - 64) {
		fprintf(stderr, "fetch: the path is too long\n");
		return (1);
	}

	capcas = cap_init();
	if (capcas == NULL)
		die("unable to contact Casper");
	capnet = cap_service_open(capcas, "system.net");
	if (capnet == NULL)
		die("unable to open system.net");
	cap_close(capcas);

	/* Only this name at this port, and only what it resolves to. */
	limit = cap_net_limit_init(capnet, CAPNET_NAME2ADDR | CAPNET_CONNECTDNS);
	if (limit == NULL)
		die("cap_net_limit_init");
	cap_net_limit_name2addr(limit, host, port);
	if (cap_net_limit(limit) < 0) {
		if (errno != ENOTCAPABLE)
			die("cap_net_limit");
		fprintf(stderr, "fetch: keeping the granted limits, narrower "
		    "than resolve-and-connect\n");
	}

	if (cap_enter() < 0)
		die("cap_enter");

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	error = cap_getaddrinfo(capnet, host, port, &hints, &res);
	if (error != 0) {
		fprintf(stderr, "fetch: %s:%s: %s\n", host, port,
		    error == EAI_SYSTEM ? strerror(errno) : gai_strerror(error));
		return (1);
	}
	s = -1;
	for (ai = res; ai != NULL && s < 0; ai = ai->ai_next) {
		s = cap_connect(capnet, -1, ai->ai_addr, ai->ai_addrlen);
		if (s < 0)
			fprintf(stderr, "fetch: connect %s:%s: %s\n", host,
			    port, strerror(errno));
	}
	freeaddrinfo(res);
	if (s < 0)
		return (1);
	cap_close(capnet);

	n = snprintf(request, sizeof(request), "GET %s HTTP/1.0\r\n"
	    "Host: %s\r\nConnection: close\r\n\r\n", path, host);
	if (write_all(s, request, (size_t)n) < 0)
		die("send");

	/* The status line and headers, then the body as it comes. */
	status = 0;
	have = 0;
	headers_done = 0;
	for (;;) {
		n = read(s, buf + have, sizeof(buf) - have - 1);
		if (n < 0)
			die("recv");
		if (n == 0)
			break;
		if (headers_done) {
			if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				die("stdout");
			continue;
		}
		have += (size_t)n;
		buf[have] = '\0';
		body = strstr(buf, "\r\n\r\n");
		if (body == NULL) {
			if (have == sizeof(buf) - 1) {
				fprintf(stderr, "fetch: the headers are too long\n");
				return (1);
			}
			continue;
		}
		eol = strstr(buf, "\r\n");
		*eol = '\0';
		fprintf(stderr, "%s\n", buf);
		if (sscanf(buf, "HTTP/%*d.%*d %d", &status) != 1) {
			fprintf(stderr, "fetch: not an HTTP response\n");
			return (1);
		}
		body += 4;
		if (write_all(STDOUT_FILENO, body,
		    have - (size_t)(body - buf)) < 0)
			die("stdout");
		headers_done = 1;
		have = 0;
	}
	close(s);
	if (!headers_done) {
		fprintf(stderr, "fetch: the connection ended before a response\n");
		return (1);
	}
	return (status >= 200 && status < 300 ? 0 : 2);
}
