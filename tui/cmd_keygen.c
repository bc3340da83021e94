/*  cmd_keygen.c: `disagg keygen [-d DIR] NAME...`: CurveZMQ key pairs
 *  for [security] curve = on (see auth.h for who needs which).  */
#include <getopt.h>
#include <stdio.h>

#include "auth.h"
#include "client.h"
#include "cmd_keygen.h"

static void
s_usage(FILE *out)
{
	fprintf(out, "usage: disagg keygen [-d dir] name...\n");
	if (out == stdout)
		fprintf(out, "\nMake a CurveZMQ key pair per name: dir/NAME (the "
		    "public key) and\ndir/NAME_secret (mode 0600).\n\n"
		    "  -d, --dir DIR  where to write them (default .)\n"
		    "  -h, --help     this help\n");
}

int
dg_cmd_keygen(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *dir = ".";
	int ch, rc = DG_EXIT_OK;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		case 'h': s_usage(stdout); return DG_EXIT_OK;
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
	s_usage(stderr);
	return DG_EXIT_USAGE;
}
