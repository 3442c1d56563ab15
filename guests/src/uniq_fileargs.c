/*
 * uniq_fileargs [-c] [INPUT]: uniq(1) reading its input through Casper's
 * system.fileargs, writing unique lines (adjacent duplicates dropped) to
 * stdout; -c prefixes each with its count.
 *
 * FreeBSD's pattern for programs that open their arguments after entering
 * capability mode: fileargs_init() names the one file the program may open,
 * how (O_RDONLY) and with which rights (CAP_READ, CAP_FSTAT, CAP_SEEK; the
 * service limits the descriptor before handing it over), stdio is limited,
 * cap_enter(), and only then fileargs_open().  Without INPUT, or with "-",
 * it reads stdin and asks fileargs for nothing.
 */

#include <sys/capsicum.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libcasper.h>
#include <casper/cap_fileargs.h>

static void
usage(void)
{

	fprintf(stderr, "usage: uniq_fileargs [-c] [input]\n");
	exit(1);
}

static void
die(const char *what)
{

	fprintf(stderr, "uniq: %s: %s\n", what, strerror(errno));
	exit(1);
}

/*
 * Limits fd to at most *want, dropping what it lacks (a WASI tty or pipe
 * holds no CAP_SEEK): what matters is that it can do nothing more.
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
show(const char *line, size_t len, intmax_t count, int cflag)
{

	if (cflag)
		printf("%4jd ", count);
	fwrite(line, 1, len, stdout);
	putchar('\n');
}

int
main(int argc, char *argv[])
{
	cap_rights_t rd, wr;
	fileargs_t *fa;
	FILE *ifp;
	const char *ifn;
	char *line, *prev, *tmp;
	size_t linecap, prevcap, tmpcap;
	ssize_t len, prevlen;
	intmax_t count;
	int ch, cflag, nfiles;

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
	if (argc > 1)
		usage();
	ifn = argc > 0 ? argv[0] : "-";
	nfiles = strcmp(ifn, "-") != 0 ? 1 : 0;

	/* CAP_SEEK: stdio seeks back over unread input when it closes a file. */
	cap_rights_init(&rd, CAP_READ, CAP_FSTAT, CAP_SEEK);
	cap_rights_init(&wr, CAP_WRITE, CAP_FSTAT, CAP_SEEK);
	fa = fileargs_init(nfiles, argv, O_RDONLY, 0, &rd, FA_OPEN);
	if (fa == NULL)
		die("unable to open system.fileargs");
	limit(STDIN_FILENO, "stdin", &rd);
	limit(STDOUT_FILENO, "stdout", &wr);
	limit(STDERR_FILENO, "stderr", &wr);

	if (cap_enter() != 0)
		die("unable to enter capability mode");

	if (nfiles > 0) {
		if ((ifp = fileargs_fopen(fa, ifn, "r")) == NULL)
			die(ifn);
	} else {
		ifp = stdin;
		ifn = "stdin";
	}

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
			show(prev, prevlen, count, cflag);
		tmp = prev, prev = line, line = tmp;
		tmpcap = prevcap, prevcap = linecap, linecap = tmpcap;
		prevlen = len;
		count = 1;
	}
	if (ferror(ifp))
		die(ifn);
	if (count > 0)
		show(prev, prevlen, count, cflag);
	if (fflush(stdout) != 0 || ferror(stdout))
		die("stdout");
	fileargs_free(fa);
	return (0);
}
