/*
 * trap_debug [N]: divides 1 by N (default 0) two calls deep, so that N = 0
 * traps (integer divide by zero). Built with -g (DWARF line information,
 * the only guest that keeps it) so that trap backtraces can name the file
 * and line of each frame.
 */

#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static int
divide(int a, int b)
{

	return (a / b);
}

__attribute__((noinline)) static int
compute(int n)
{

	return (divide(1, n) + 1);
}

int
main(int argc, char *argv[])
{

	printf("%d\n", compute(argc > 1 ? atoi(argv[1]) : 0));
	return (0);
}
