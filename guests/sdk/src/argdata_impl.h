/*
 * What argdata.c and program.c share: the layout of argdata_t.
 */

#ifndef ARGDATA_IMPL_H
#define ARGDATA_IMPL_H

#include <argdata.h>

#include <stddef.h>
#include <stdint.h>

/* A value is its serialized bytes: a type byte and a payload, or none (null). */
struct argdata_t {
	const uint8_t	*buf;
	size_t		 len;
	int		(*convert_fd)(void *, size_t);
	void		*convert_fd_arg;
};

/* NuxiNL's ADT_* type bytes (src/argdata_impl.h there). */
enum {
	ADT_BINARY = 1,
	ADT_BOOL = 2,
	ADT_FD = 3,
	ADT_FLOAT = 4,
	ADT_INT = 5,
	ADT_MAP = 6,
	ADT_SEQ = 7,
	ADT_STR = 8,
	ADT_TIMESTAMP = 9,
};

#endif /* !ARGDATA_IMPL_H */
