/*
 * Casper's system.random client: FreeBSD's lib/libcasper/services/cap_random
 * client half.
 *
 *   generate  {cmd, size: number (1..1 MiB)}   reply {error, data: binary}
 *
 * A request for more than 1 MiB is split into several, as on FreeBSD.
 */

#ifndef WITH_CASPER
#define WITH_CASPER
#endif

#include <sys/nv.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <libcasper.h>
#include <casper/cap_random.h>

#include "casper_impl.h"

#define	MAXSIZE	(1024 * 1024)

int
cap_random_buf(cap_channel_t *chan, void *buf, size_t nbytes)
{
	const void *data;
	nvlist_t *nvl;
	uint8_t *ptr;
	size_t chunk, left, size;
	int error;

	ptr = buf;
	left = nbytes;
	while (left > 0) {
		chunk = left > MAXSIZE ? MAXSIZE : left;
		nvl = nvlist_create(0);
		nvlist_add_string(nvl, "cmd", "generate");
		nvlist_add_number(nvl, "size", (uint64_t)chunk);
		nvl = cap_xfer_nvlist(chan, nvl);
		if (nvl == NULL)
			return (-1);
		error = casper_reply_error(nvl);
		if (error == 0 && !nvlist_exists_binary(nvl, "data"))
			error = EPROTO;
		if (error != 0) {
			nvlist_destroy(nvl);
			errno = error;
			return (-1);
		}
		data = nvlist_get_binary(nvl, "data", &size);
		/* FreeBSD trusts the size; an empty or long reply is faulty. */
		if (size == 0 || size > chunk) {
			nvlist_destroy(nvl);
			errno = EPROTO;
			return (-1);
		}
		memcpy(ptr, data, size);
		nvlist_destroy(nvl);
		ptr += size;
		left -= size;
	}
	return (0);
}
