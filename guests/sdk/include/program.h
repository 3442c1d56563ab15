/*
 * CloudABI-style program entry for capsa guests (wasm32-wasi).
 *
 * A program may define program_main() instead of main():
 *
 *	#include <argdata.h>
 *	#include <program.h>
 *
 *	void
 *	program_main(const argdata_t *ad)
 *	{
 *		...		// ad is argdata_program(): the host's argdata
 *	}
 *
 * and build as usual with libcapsa.a:
 *
 *	clang --target=wasm32-wasi -O2 -I guests/sdk/include prog.c \
 *	    guests/build/libcapsa.a
 *
 * libcapsa.a holds a weak main() that calls program_main(argdata_program())
 * and then exits with status 0.  The linker takes it only when the program
 * defines no main() of its own, so programs with a main() are unaffected (and
 * may still call argdata_program()).  Unlike CloudABI's, program_main() may
 * return; it may also end the program with exit().
 */

#ifndef _PROGRAM_H_
#define _PROGRAM_H_

#include <stddef.h>

#ifndef argdata_t
typedef struct argdata_t argdata_t;
#define argdata_t argdata_t
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The program's entry point, defined by the program. */
void program_main(const argdata_t *ad);

/*
 * The program's argdata as the host serialized it (cloudlibc's call): *data
 * is NULL and *len 0 when there is none.  Exits like argdata_program() if
 * the host fails to deliver it.
 */
void program_get_raw_argdata(const void **data, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* !_PROGRAM_H_ */
