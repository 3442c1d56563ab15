/*
 * The libc half of capsa's <netdb.h>: h_errno, freeaddrinfo(), gai_strerror()
 * and hstrerror(), which wasi-libc lacks.
 * Lists from cap_getaddrinfo() are built by cap_dns.c: one malloc per entry
 * holding the struct and its address, plus a strdup'ed ai_canonname.
 */

#include <netdb.h>

#include <stdlib.h>

int h_errno;

void
freeaddrinfo(struct addrinfo *ai)
{
	struct addrinfo *next;

	for (; ai != NULL; ai = next) {
		next = ai->ai_next;
		free(ai->ai_canonname);
		free(ai);
	}
}

const char *
gai_strerror(int ecode)
{

	switch (ecode) {
	case 0:
		return ("Success");
	case EAI_ADDRFAMILY:
		return ("Address family for hostname not supported");
	case EAI_AGAIN:
		return ("Temporary failure in name resolution");
	case EAI_BADFLAGS:
		return ("Invalid value for ai_flags");
	case EAI_FAIL:
		return ("Non-recoverable failure in name resolution");
	case EAI_FAMILY:
		return ("ai_family not supported");
	case EAI_MEMORY:
		return ("Memory allocation failure");
	case EAI_NODATA:
		return ("No address associated with hostname");
	case EAI_NONAME:
		return ("hostname nor servname provided, or not known");
	case EAI_SERVICE:
		return ("servname not supported for ai_socktype");
	case EAI_SOCKTYPE:
		return ("ai_socktype not supported");
	case EAI_SYSTEM:
		return ("System error returned in errno");
	case EAI_BADHINTS:
		return ("Invalid value for hints");
	case EAI_PROTOCOL:
		return ("Resolved protocol is unknown");
	case EAI_OVERFLOW:
		return ("Argument buffer overflow");
	default:
		return ("Unknown error");
	}
}

const char *
hstrerror(int err)
{

	switch (err) {
	case NETDB_INTERNAL:
		return ("Internal resolver error");
	case NETDB_SUCCESS:
		return ("Resolver Error 0 (no error)");
	case HOST_NOT_FOUND:
		return ("Unknown host");
	case TRY_AGAIN:
		return ("Host name lookup failure");
	case NO_RECOVERY:
		return ("Unknown server error");
	case NO_DATA:
		return ("No address associated with name");
	default:
		return ("Unknown resolver error");
	}
}
