/*  disaggd.c: the disagg daemon.  One binary, one role per process: the
 *  controller, or one stage (encoder, transformer, decoder) named by -N.
 *
 *  Options follow OpenBSD's daemons: -f file, -n (check the file),
 *  -d (foreground, logs on stderr), -v (more verbose, repeatable), plus
 *  -T (print the effective configuration, like sshd -T) and -N name (the
 *  section this process runs).  Signals arrive through a signalfd polled
 *  by the control loop, never handled in signal context.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "proctitle.h"
#include "proto.h"
#include "version.h"

#ifndef DG_DEFAULT_CONFIG
#define DG_DEFAULT_CONFIG "/etc/disagg/disagg.ini"
#endif

static void
s_usage(FILE *out)
{
	fprintf(out,
	    "usage: disaggd [-dnTv] [-f file] [-N name]\n"
	    "  -d       stay in the foreground and log to stderr\n"
	    "  -f file  configuration file (default %s)\n"
	    "  -N name  the section to run: controller, or a stage's name\n"
	    "  -n       check the configuration and exit\n"
	    "  -T       print the effective configuration and exit\n"
	    "  -v       more verbose logging (repeat for more)\n"
	    "  -V, --version  print the version and exit\n"
	    "  -h, --help     this help\n", DG_DEFAULT_CONFIG);
}

static int
s_print_errors(const dg_config_t *cfg)
{
	size_t n = dg_config_error_count(cfg);

	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%s\n", dg_config_error(cfg, i));
	return n ? 1 : 0;
}

/* The known section names, for a helpful error when -N names none. */
static void
s_print_names(const dg_config_t *cfg)
{
	fprintf(stderr, "disaggd: sections in %s: controller",
	    dg_config_file(cfg));
	for (size_t i = 0; i < dg_config_stage_count(cfg); i++)
		fprintf(stderr, ", %s", dg_config_stage_at(cfg, i)->name);
	fputc('\n', stderr);
}

int
main(int argc, char *argv[])
{
	const char *file = DG_DEFAULT_CONFIG;
	const char *name = NULL;
	bool foreground = false, check = false, dump = false;
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int verbose = 0;
	int ch;

	/* The room for "disaggd: NAME ROLE" (dg_daemon_run writes it, once
	 * it has copied the file and the name out of argv). */
	dg_proctitle_init(argc, argv);
	while ((ch = getopt_long(argc, argv, "df:hN:nTvV", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': foreground = true; break;
		case 'f': file = optarg; break;
		case 'N': name = optarg; break;
		case 'n': check = true; break;
		case 'T': dump = true; break;
		case 'v': verbose++; break;
		case 'V':
			printf("disaggd %s (protocol %d)\n", DG_VERSION,
			    DG_PROTO_VERSION);
			return 0;
		case 'h':
			s_usage(stdout);
			return 0;
		default:
			s_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "disaggd: unexpected argument '%s'\n",
		    argv[optind]);
		s_usage(stderr);
		return 2;
	}

	dg_config_t *cfg = dg_config_load(file);
	if (!cfg) {
		fprintf(stderr, "disaggd: out of memory reading %s\n", file);
		return 1;
	}
	if (s_print_errors(cfg)) {
		dg_config_destroy(&cfg);
		return 1;
	}
	/* A file of settings alone is valid to the library (the CLI reads
	 * such files), but it is no pipeline to run or check. */
	if (dg_config_stage_count(cfg) == 0) {
		const dg_pipeline_conf_t *p = dg_config_pipeline(cfg);
		fprintf(stderr, "%s: no stage sections: the chain (%s) needs at "
		    "least one [ROLE NAME] section for each of its %zu roles\n",
		    file, p->stages, p->nroles);
		dg_config_destroy(&cfg);
		return 1;
	}
	if (name && strcmp(name, "controller") != 0 &&
	    !dg_config_stage(cfg, name)) {
		fprintf(stderr, "disaggd: no section for '%s' in %s\n", name,
		    file);
		s_print_names(cfg);
		dg_config_destroy(&cfg);
		return 1;
	}
	if (check || dump) {
		if (dump)
			dg_config_dump(cfg, stdout);
		if (check)
			printf("configuration OK\n");
		dg_config_destroy(&cfg);
		return 0;
	}
	if (!name) {
		fprintf(stderr, "disaggd: -N name is required to run a daemon\n");
		s_print_names(cfg);
		dg_config_destroy(&cfg);
		return 2;
	}
	int rc = dg_daemon_run(&cfg, name, foreground, verbose);
	dg_config_destroy(&cfg);
	return rc;
}
