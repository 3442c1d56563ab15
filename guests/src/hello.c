/*
 * hello [WORD ...] [--exit=N]: prints "hello" and the words, then exits with
 * status N (default 0), so tests can check arguments and exit codes.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char *argv[])
{
	int i, status;

	status = 0;
	fputs("hello", stdout);
	for (i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--exit=", 7) == 0)
			status = atoi(argv[i] + 7);
		else
			printf(" %s", argv[i]);
	}
	putchar('\n');
	return (status);
}
