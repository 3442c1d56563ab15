/*
 * The program's own argdata, from the host's "argdata" import module (the
 * way wasi-libc gets argv from args_sizes_get/args_get): fetched once, on
 * first use, into memory kept for the life of the program.
 */

#include "argdata_impl.h"

#include <program.h>

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

__attribute__((import_module("argdata"), import_name("argdata_size")))
uint32_t __capsa_argdata_size(uint32_t *size);

__attribute__((import_module("argdata"), import_name("argdata_get")))
uint32_t __capsa_argdata_get(uint8_t *buf);

static bool loaded;
static const uint8_t *raw;
static size_t rawlen;
static argdata_t program_argdata;

/* Fd numbers in the host's argdata are the program's own descriptors. */
static int
program_fd(void *arg, size_t fd)
{
	__wasi_fdstat_t st;

	(void)arg;
	if (fd > INT_MAX || __wasi_fd_fdstat_get((int)fd, &st) != 0)
		return (-1);
	return ((int)fd);
}

static void
die(const char *what)
{
	static const char prefix[] = "argdata_program: cannot fetch argdata: ";

	write(STDERR_FILENO, prefix, sizeof(prefix) - 1);
	write(STDERR_FILENO, what, strlen(what));
	write(STDERR_FILENO, "\n", 1);
	_Exit(71);			/* EX_OSERR */
}

static void
load(void)
{
	uint32_t size;
	uint8_t *buf;

	if (loaded)
		return;
	loaded = true;
	if (__capsa_argdata_size(&size) != 0)
		die("argdata_size failed");
	if (size == 0)
		return;
	buf = malloc(size);
	if (buf == NULL)
		die("out of memory");
	if (__capsa_argdata_get(buf) != 0)
		die("argdata_get failed");
	raw = buf;
	rawlen = size;
	program_argdata.buf = raw;
	program_argdata.len = rawlen;
	program_argdata.convert_fd = program_fd;
	program_argdata.convert_fd_arg = NULL;
}

const argdata_t *
argdata_program(void)
{

	load();
	return (rawlen == 0 ? &argdata_null : &program_argdata);
}

void
program_get_raw_argdata(const void **data, size_t *len)
{

	load();
	*data = raw;
	*len = rawlen;
}
