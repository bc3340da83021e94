/*  cmd_keygen.c: `disagg keygen [-d DIR] NAME...`: CurveZMQ key pairs
 *  for [security] curve = on (see auth.h for who needs which).  */
#include <getopt.h>
#include <stdio.h>

#include "auth.h"
#include "client.h"
#include "cmd_keygen.h"

int
dg_cmd_keygen(int argc, char *argv[])
{
	const char *dir = ".";
	int ch, rc = DG_EXIT_OK;

	optind = 1;
	while ((ch = getopt(argc, argv, "d:")) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		default: goto usage;
		}
	}
	if (optind >= argc)
		goto usage;
	for (int i = optind; i < argc; i++) {
		char err[512];
		if (dg_auth_keygen(dir, argv[i], err, sizeof err) < 0) {
			fprintf(stderr, "disagg keygen: %s\n", err);
			rc = DG_EXIT_FAIL;
			continue;
		}
		printf("%s/%s          public key: give it to servers (client_keys "
		    "or admin_keys)\n%s/%s_secret   secret key: keep it here "
		    "(mode 0600)\n", dir, argv[i], dir, argv[i]);
	}
	return rc;
usage:
	fprintf(stderr, "usage: disagg keygen [-d dir] name...\n");
	return DG_EXIT_USAGE;
}
