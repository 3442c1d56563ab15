/*
 * <grp.h> for capsa guests: struct group as Casper's system.grp fills it.
 *
 * wasi-libc (preview1) ships no <grp.h>, so this header gives struct group
 * (the same fields on FreeBSD and musl).  It declares no getgrnam() & co.:
 * a guest looks groups up only through system.grp (cap_grp.h).
 */

#ifndef _CAPSA_GRP_H_
#define _CAPSA_GRP_H_

#include <sys/types.h>		/* gid_t */

struct group {
	char	 *gr_name;		/* group name */
	char	 *gr_passwd;		/* group password */
	gid_t	  gr_gid;		/* group id */
	char	**gr_mem;		/* group members, NULL-terminated */
};

#endif /* !_CAPSA_GRP_H_ */
