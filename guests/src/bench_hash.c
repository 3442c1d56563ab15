/*
 * bench_hash [MIB]: FNV-1a 64 over MIB MiB (default 64) of generated data,
 * printed in hex.  No I/O in the loop: it measures the engine, not the host.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define	MIB	(1024 * 1024)

int
main(int argc, char *argv[])
{
	static uint8_t buf[MIB];
	uint64_t h, x;
	long i, n;
	size_t j;

	n = argc > 1 ? atol(argv[1]) : 64;

	/* xorshift64: the same bytes on every run and every engine. */
	x = 0x9e3779b97f4a7c15ULL;
	for (j = 0; j < sizeof(buf); j++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[j] = (uint8_t)x;
	}

	h = 0xcbf29ce484222325ULL;
	for (i = 0; i < n; i++) {
		for (j = 0; j < sizeof(buf); j++) {
			h ^= buf[j];
			h *= 0x100000001b3ULL;
		}
	}
	printf("%016llx\n", (unsigned long long)h);
	return (0);
}
