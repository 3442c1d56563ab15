/*
 * pipeline BINDIR CMD [ARG ...] '|' CMD [ARG ...] '|' CMD [ARG ...]: runs
 * three child guests chained by pipes, like a shell's `a | b | c`.
 *
 * Each CMD's module is BINDIR/CMD.wasm, opened by descriptor.  The parent
 * copies its stdin into the first pipe, the last child writes to the
 * parent's stdout, every child writes its errors to the parent's stderr, and the parent exits with the last child's status.  The
 * parent enters capability mode before it starts anything.
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

#define	STAGES	3

int
main(int argc, char *argv[])
{
	char path[1024], buf[4096];
	char **stage[STAGES];
	int mods[STAGES], pds[STAGES], in[2], mid[2][2];
	int i, n = 0, status = 0;
	ssize_t r, w, off;

	if (argc < 3) {
		fprintf(stderr, "usage: pipeline BINDIR CMD [ARG ...] '|' CMD ... '|' CMD ...\n");
		return (2);
	}
	/* Split argv at the "|" words, in place. */
	stage[n++] = &argv[2];
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "|") != 0)
			continue;
		argv[i] = NULL;
		if (n == STAGES) {
			fprintf(stderr, "pipeline: %d stages at most\n", STAGES);
			return (2);
		}
		stage[n++] = &argv[i + 1];
	}
	if (n != STAGES) {
		fprintf(stderr, "pipeline: give %d stages\n", STAGES);
		return (2);
	}
	for (i = 0; i < STAGES; i++) {
		if (stage[i][0] == NULL) {
			fprintf(stderr, "pipeline: empty stage %d\n", i + 1);
			return (2);
		}
		snprintf(path, sizeof(path), "%s/%s.wasm", argv[1], stage[i][0]);
		if ((mods[i] = open(path, O_RDONLY)) < 0) {
			fprintf(stderr, "pipeline: %s: %s\n", path, strerror(errno));
			return (2);
		}
	}
	if (pipe(in) != 0 || pipe(mid[0]) != 0 || pipe(mid[1]) != 0 || cap_enter() != 0) {
		perror("pipeline");
		return (2);
	}
	/* Each child gets its input, its output and stderr as fds 0-2, nothing else. */
	int fds[STAGES][3] = {
		{ in[0], mid[0][1], STDERR_FILENO },
		{ mid[0][0], mid[1][1], STDERR_FILENO },
		{ mid[1][0], STDOUT_FILENO, STDERR_FILENO },
	};
	for (i = 0; i < STAGES; i++) {
		if (pdspawn(&pds[i], mods[i], stage[i], fds[i], 3, 0) < 0) {
			fprintf(stderr, "pipeline: %s: %s\n", stage[i][0], strerror(errno));
			return (2);
		}
	}
	/* The parent keeps only the write end of the first pipe. */
	close(in[0]);
	close(mid[0][0]);
	close(mid[0][1]);
	close(mid[1][0]);
	close(mid[1][1]);
	while ((r = read(STDIN_FILENO, buf, sizeof(buf))) > 0) {
		for (off = 0; off < r; off += w) {
			if ((w = write(in[1], buf + off, (size_t)(r - off))) < 0) {
				perror("pipeline: write");
				return (2);
			}
		}
	}
	close(in[1]);
	for (i = 0; i < STAGES; i++) {
		if (pdwait(pds[i], &status, 0) < 0) {
			perror("pipeline: pdwait");
			return (2);
		}
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "pipeline: %s ended with signal %d\n", stage[STAGES - 1][0], WTERMSIG(status));
		return (2);
	}
	return (WEXITSTATUS(status));
}
