/*
 * <pwd.h> for capsa guests: struct passwd as Casper's system.pwd fills it.
 *
 * wasi-libc (preview1) ships no <pwd.h>, so this header gives FreeBSD's
 * struct passwd and its _PWF_* field bits (the ones system.pwd sends in
 * "pw_fields").  It declares no getpwnam() & co.: a guest looks users up only
 * through system.pwd (cap_pwd.h).
 */

#ifndef _CAPSA_PWD_H_
#define _CAPSA_PWD_H_

#include <sys/types.h>		/* uid_t, gid_t, time_t */

/* FreeBSD's layout and field names. */
struct passwd {
	char	*pw_name;		/* user name */
	char	*pw_passwd;		/* encrypted password */
	uid_t	 pw_uid;		/* user uid */
	gid_t	 pw_gid;		/* user gid */
	time_t	 pw_change;		/* password change time */
	char	*pw_class;		/* user access class */
	char	*pw_gecos;		/* Honeywell login info */
	char	*pw_dir;		/* home directory */
	char	*pw_shell;		/* default shell */
	time_t	 pw_expire;		/* account expiration */
	int	 pw_fields;		/* internal: fields filled in */
};

/* pw_fields bits: which fields hold data (system.pwd clears hidden ones). */
#define	_PWF(x)		(1 << (x))
#define	_PWF_NAME	_PWF(0)
#define	_PWF_PASSWD	_PWF(1)
#define	_PWF_UID	_PWF(2)
#define	_PWF_GID	_PWF(3)
#define	_PWF_CHANGE	_PWF(4)
#define	_PWF_CLASS	_PWF(5)
#define	_PWF_GECOS	_PWF(6)
#define	_PWF_DIR	_PWF(7)
#define	_PWF_SHELL	_PWF(8)
#define	_PWF_EXPIRE	_PWF(9)

#endif /* !_CAPSA_PWD_H_ */
