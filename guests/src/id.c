/*
 * id USER: an id(1) for one user, by name or uid (a name is tried first, as
 * FreeBSD's id does), through Casper's system.pwd and system.grp.
 *
 *	uid=1001(alice) gid=1001(alice) groups=1001(alice),0(wheel),20(staff)
 *
 * Opens both services, limits system.pwd to looking up that one user (by
 * that name, and by that uid if USER is a number) and reading pw_name,
 * pw_uid and pw_gid, limits system.grp to getgrgid and walking the groups
 * (gr_name, gr_gid, gr_mem), enters capability mode, and only then looks
 * the user up.  groups= lists the primary group, then every
 * other group naming the user as a member, in database order.  A group
 * without a name prints its number alone.  Exits 1 if the user is unknown.
 */

#include <sys/capsicum.h>
#include <sys/types.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libcasper.h>
#include <casper/cap_grp.h>
#include <casper/cap_pwd.h>

static void
die(const char *what)
{

	fprintf(stderr, "id: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
usage(void)
{

	fprintf(stderr, "usage: id user\n");
	exit(1);
}

/* "ID(NAME)", or "ID" for a group the service does not name. */
static void
print_group(gid_t gid, const struct group *gr)
{

	if (gr != NULL && gr->gr_name != NULL && gr->gr_name[0] != '\0')
		printf("%u(%s)", (unsigned)gid, gr->gr_name);
	else
		printf("%u", (unsigned)gid);
}

static int
is_member(const struct group *gr, const char *user)
{
	char **mem;

	for (mem = gr->gr_mem; mem != NULL && *mem != NULL; mem++)
		if (strcmp(*mem, user) == 0)
			return (1);
	return (0);
}

int
main(int argc, char *argv[])
{
	static const char *const pwdcmds[] = { "getpwnam", "getpwuid" };
	static const char *const pwdfields[] = { "pw_name", "pw_uid",
	    "pw_gid" };
	static const char *const grpcmds[] = { "getgrgid", "setgrent",
	    "getgrent", "endgrent" };
	static const char *const grpfields[] = { "gr_name", "gr_gid",
	    "gr_mem" };
	cap_channel_t *capcas, *cappwd, *capgrp;
	const char *names[1];
	struct passwd *pw;
	struct group *gr;
	char *end, *user;
	unsigned long ul;
	uid_t uids[1];
	gid_t gid;
	int byuid;

	if (argc != 2 || argv[1][0] == '\0')
		usage();
	/* As FreeBSD's id: a name first, then a number as a uid. */
	errno = 0;
	ul = strtoul(argv[1], &end, 10);
	byuid = argv[1][0] != '-' && *end == '\0' && errno == 0;
	uids[0] = (uid_t)ul;
	names[0] = argv[1];

	capcas = cap_init();
	if (capcas == NULL)
		die("unable to contact Casper");
	cappwd = cap_service_open(capcas, "system.pwd");
	if (cappwd == NULL)
		die("unable to open system.pwd");
	capgrp = cap_service_open(capcas, "system.grp");
	if (capgrp == NULL)
		die("unable to open system.grp");
	cap_close(capcas);

	if (cap_pwd_limit_cmds(cappwd, pwdcmds, 2) < 0 ||
	    cap_pwd_limit_fields(cappwd, pwdfields, 3) < 0)
		die("unable to limit system.pwd");
	if (cap_pwd_limit_users(cappwd, names, 1, uids, byuid ? 1 : 0) < 0)
		die("unable to limit system.pwd");
	if (cap_grp_limit_cmds(capgrp, grpcmds, 4) < 0 ||
	    cap_grp_limit_fields(capgrp, grpfields, 3) < 0)
		die("unable to limit system.grp");

	if (cap_enter() < 0)
		die("unable to enter capability mode");

	errno = 0;
	pw = cap_getpwnam(cappwd, argv[1]);
	if (pw == NULL && errno == 0 && byuid)
		pw = cap_getpwuid(cappwd, uids[0]);
	if (pw == NULL) {
		if (errno != 0)
			die(argv[1]);
		fprintf(stderr, "id: %s: no such user\n", argv[1]);
		return (1);
	}
	/* The next lookups reuse the static passwd: keep what we need. */
	if ((user = strdup(pw->pw_name)) == NULL)
		die("strdup");
	gid = pw->pw_gid;

	printf("uid=%u(%s) gid=", (unsigned)pw->pw_uid, user);
	gr = cap_getgrgid(capgrp, gid);
	print_group(gid, gr);
	printf(" groups=");
	print_group(gid, gr);
	if (cap_setgrent(capgrp) == 0)
		die("setgrent");
	errno = 0;
	while ((gr = cap_getgrent(capgrp)) != NULL) {
		if (gr->gr_gid != gid && is_member(gr, user)) {
			putchar(',');
			print_group(gr->gr_gid, gr);
		}
	}
	if (errno != 0)
		die("getgrent");
	cap_endgrent(capgrp);
	putchar('\n');

	free(user);
	cap_close(cappwd);
	cap_close(capgrp);
	return (0);
}
