/*
 * uniq [-c] [INPUT [OUTPUT]]: drops adjacent duplicate lines.
 *
 * Follows FreeBSD uniq(1)'s Capsicum pattern: open every file first, limit
 * each descriptor to what the rest of the run needs, enter capability mode,
 * and only then read the (untrusted) input.
 */

#include <sys/capsicum.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(void)
{

	fprintf(stderr, "usage: uniq [-c] [input [output]]\n");
	exit(1);
}

static void
die(const char *what)
{

	fprintf(stderr, "uniq: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* "-" means the standard stream, as in FreeBSD's uniq. */
static FILE *
file(const char *name, const char *mode)
{
	FILE *fp;

	if (strcmp(name, "-") == 0)
		return (*mode == 'r' ? stdin : stdout);
	if ((fp = fopen(name, mode)) == NULL)
		die(name);
	return (fp);
}

/*
 * Limits fd to at most *want.  FreeBSD descriptors start with every right,
 * but a WASI tty or pipe never holds CAP_SEEK, so drop what fd lacks rather
 * than fail: what matters is that it can do nothing more.
 */
static void
limit(int fd, const char *name, const cap_rights_t *want)
{
	cap_rights_t have, lacking, rights;

	if (cap_rights_get(fd, &have) != 0)
		goto fail;
	rights = lacking = *want;
	cap_rights_remove(&lacking, &have);
	cap_rights_remove(&rights, &lacking);
	if (cap_rights_limit(fd, &rights) != 0)
		goto fail;
	return;
fail:
	fprintf(stderr, "uniq: unable to limit rights for %s: %s\n", name,
	    strerror(errno));
	exit(1);
}

static void
show(FILE *ofp, const char *line, size_t len, intmax_t count, int cflag)
{

	if (cflag)
		fprintf(ofp, "%4jd ", count);
	fwrite(line, 1, len, ofp);
	putc('\n', ofp);
}

int
main(int argc, char *argv[])
{
	cap_rights_t rd, wr;
	FILE *ifp, *ofp;
	const char *ifn, *ofn;
	char *line, *prev, *tmp;
	size_t linecap, prevcap, tmpcap;
	ssize_t len, prevlen;
	intmax_t count;
	int ch, cflag;

	cflag = 0;
	while ((ch = getopt(argc, argv, "c")) != -1) {
		switch (ch) {
		case 'c':
			cflag = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 2)
		usage();

	ifn = argc > 0 ? argv[0] : "-";
	ofn = argc > 1 ? argv[1] : "-";
	ifp = file(ifn, "r");
	ofp = file(ofn, "w");
	if (ifp == stdin)
		ifn = "stdin";
	if (ofp == stdout)
		ofn = "stdout";

	/* CAP_SEEK: stdio seeks back over unread input when it closes a file. */
	cap_rights_init(&rd, CAP_READ, CAP_FSTAT, CAP_SEEK);
	cap_rights_init(&wr, CAP_WRITE, CAP_FSTAT, CAP_SEEK);
	limit(fileno(ifp), ifn, &rd);
	limit(fileno(ofp), ofn, &wr);
	if (ifp != stdin)
		limit(STDIN_FILENO, "stdin", &rd);
	if (ofp != stdout)
		limit(STDOUT_FILENO, "stdout", &wr);
	limit(STDERR_FILENO, "stderr", &wr);

	if (cap_enter() != 0)
		die("unable to enter capability mode");

	line = prev = NULL;
	linecap = prevcap = 0;
	prevlen = 0;
	count = 0;
	while ((len = getline(&line, &linecap, ifp)) != -1) {
		/* A last line without a newline still matches its twin. */
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (count > 0 && len == prevlen &&
		    memcmp(line, prev, len) == 0) {
			count++;
			continue;
		}
		if (count > 0)
			show(ofp, prev, prevlen, count, cflag);
		tmp = prev, prev = line, line = tmp;
		tmpcap = prevcap, prevcap = linecap, linecap = tmpcap;
		prevlen = len;
		count = 1;
	}
	if (ferror(ifp))
		die(ifn);
	if (count > 0)
		show(ofp, prev, prevlen, count, cflag);
	if (fflush(ofp) != 0 || ferror(ofp))
		die(ofn);
	return (0);
}
