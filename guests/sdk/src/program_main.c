/*
 * main() for programs that define program_main() instead (<program.h>).
 *
 * Its own archive member, and weak: wasm-ld takes it from libcapsa.a only
 * when something needs the symbol "main" and the program has none.  Under
 * wasi-libc that is when the program defines neither int main(void) (which
 * defines "main") nor int main(int, char **) (which defines
 * "__main_argc_argv"): then libc's __main_argc_argv calls "main", and that is
 * this function.  It is named differently in C so that clang does not give it
 * the special treatment of main().
 */

#include <argdata.h>
#include <program.h>

int __capsa_program_main(int argc, char **argv) __asm__("main");

__attribute__((weak)) int
__capsa_program_main(int argc, char **argv)
{

	(void)argc;
	(void)argv;
	program_main(argdata_program());
	return (0);
}
