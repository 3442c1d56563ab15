/*
 * privsep_grep PATTERN FILE [MODULE]: prints the lines of FILE that contain
 * PATTERN, with FreeBSD-style privilege separation.
 *
 * The parent opens FILE and its own module (MODULE, default
 * /bin/privsep_grep.wasm), limits FILE to CAP_READ, makes a pipe whose write
 * end it limits to CAP_WRITE, enters capability mode, and starts the module
 * again as a child holding only those two descriptors (its fds 0 and 1).  The
 * child enters capability mode and does the matching: a bug in the parser
 * can reach the file and the pipe, nothing else.  The parent copies the pipe
 * to stdout and exits with the child's status (grep's: 0 match, 1 none).
 */

#include <capsa/spawn.h>
#include <sys/capsicum.h>
#include <sys/procdesc.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define	CHILD	"privsep_grep-child"

static int
child(const char *pattern)
{
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (cap_enter() != 0) {
		perror("cap_enter");
		return (2);
	}
	/* fd 0 is the file, fd 1 the pipe: stdio's stdin and stdout. */
	while (getline(&line, &cap, stdin) > 0) {
		if (strstr(line, pattern) != NULL) {
			fputs(line, stdout);
			found = 1;
		}
	}
	if (fflush(stdout) != 0)
		return (2);
	return (found ? 0 : 1);
}

int
main(int argc, char *argv[])
{
	const char *module;
	char buf[4096];
	cap_rights_t r;
	int file, mod, p[2], pd, status;
	ssize_t n;

	if (argc >= 2 && strcmp(argv[0], CHILD) == 0)
		return (child(argv[1]));
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: privsep_grep PATTERN FILE [MODULE]\n");
		return (2);
	}
	module = argc == 4 ? argv[3] : "/bin/privsep_grep.wasm";
	if ((file = open(argv[2], O_RDONLY)) < 0) {
		fprintf(stderr, "privsep_grep: %s: %s\n", argv[2], strerror(errno));
		return (2);
	}
	if ((mod = open(module, O_RDONLY)) < 0) {
		fprintf(stderr, "privsep_grep: %s: %s\n", module, strerror(errno));
		return (2);
	}
	if (pipe(p) != 0 ||
	    cap_rights_limit(file, cap_rights_init(&r, CAP_READ)) != 0 ||
	    cap_rights_limit(p[1], cap_rights_init(&r, CAP_WRITE)) != 0 ||
	    cap_enter() != 0) {
		perror("privsep_grep");
		return (2);
	}
	char *cargv[] = { CHILD, argv[1], NULL };
	int fds[] = { file, p[1] };
	if (pdspawn(&pd, mod, cargv, fds, 2, 0) < 0) {
		perror("privsep_grep: pdspawn");
		return (2);
	}
	/* Only the child writes now: EOF comes when it ends. */
	close(p[1]);
	close(file);
	while ((n = read(p[0], buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	fflush(stdout);
	if (pdwait(pd, &status, 0) < 0) {
		perror("privsep_grep: pdwait");
		return (2);
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "privsep_grep: the child ended with signal %d\n", WTERMSIG(status));
		return (2);
	}
	return (WEXITSTATUS(status));
}
