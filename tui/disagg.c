/*  disagg.c: the operator tool.  With a subcommand it is a scriptable
 *  CLI; the console and the pipeline commands (up, down, submit, status,
 *  rooms, drain, ...) join the table below as they are built.
 *
 *  Exit codes: 0 ok, 1 the system refused or failed, 2 usage,
 *  3 controller not reachable.  */
#include <czmq.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cmd_keygen.h"
#include "cmd_admin.h"
#include "cmd_pipeline.h"
#include "console.h"
#include "proto.h"
#include "ref.h"
#include "up.h"
#include "version.h"

typedef struct {
	const char *name;
	const char *usage;
	const char *help;
	int (*run)(int argc, char *argv[]);
} s_command_t;

static int s_cmd_version(int argc, char *argv[]);
static int s_cmd_help(int argc, char *argv[]);

static const s_command_t s_commands[] = {
	{ "help", "help", "show this list", s_cmd_help },
	{ "version", "version", "print the version and protocol", s_cmd_version },
	{ "ref", "ref [opts]", "run the reference stages in this process",
	  dg_ref_main },
	{ "up", "up [-f file]", "start every daemon of a topology (default: "
	  "a one-host pipeline)", dg_cmd_up },
	{ "down", "down [-f file]", "stop what up started, and the "
	  "topology's daemons started by hand", dg_cmd_down },
	{ "restart", "restart NAME", "restart one daemon that up started",
	  dg_cmd_restart },
	{ "submit", "submit [--wait]", "submit a request; --wait shows its "
	  "progress until its result", dg_cmd_submit },
	{ "status", "status REQUEST...", "state of requests", dg_cmd_status },
	{ "cancel", "cancel REQUEST...", "cancel requests", dg_cmd_cancel },
	{ "instances", "instances", "the registered stage instances",
	  dg_cmd_instances },
	{ "drain", "drain NAME...", "send an instance no new work",
	  dg_cmd_drain },
	{ "undrain", "undrain NAME...", "send an instance work again",
	  dg_cmd_undrain },
	{ "queues", "queues NAME", "the rooms in each queue of a daemon",
	  dg_cmd_queues },
	{ "rooms", "rooms [NAME]", "every live room, or those on one instance",
	  dg_cmd_rooms },
	{ "threads", "threads NAME", "a daemon's threads: state, room, CPU "
	  "time, last progress", dg_cmd_threads },
	{ "sockets", "sockets NAME", "a daemon's ZeroMQ sockets and fabric "
	  "rails", dg_cmd_sockets },
	{ "release", "release ROOM...", "free a room everywhere; its request "
	  "fails", dg_cmd_release },
	{ "reload", "reload [NAME]", "re-read the configuration (default: "
	  "the controller's)", dg_cmd_reload },
	{ "watch", "watch [-n N]", "print the controller's events and "
	  "snapshots as they come", dg_cmd_watch },
	{ "keygen", "keygen [-d dir] NAME...", "make CurveZMQ key pairs for "
	  "[security] curve = on", dg_cmd_keygen },
	{ "console", "console [opts]", "the operator console (ncurses); -b "
	  "for text snapshots", dg_cmd_console },
	{ "bench", "bench xfer|pipeline|rooms", "measure the transfer engine "
	  "against bare libfabric, a running pipeline, or rooms held and "
	  "failed over", dg_bench_main },
};
#define NCOMMANDS (sizeof s_commands / sizeof s_commands[0])

static void
s_usage(FILE *out)
{
	fprintf(out, "usage: disagg command [arguments]\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-18s %s\n", s_commands[i].usage,
		    s_commands[i].help);
}

/* Whether a command that takes no arguments was asked for its help;
 * anything else is a usage error (said, *rc set). */
static bool
s_no_args(int argc, char *argv[], const char *usage, int *rc)
{
	if (argc < 2)
		return false;
	bool help = argc == 2 && (strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0);
	fprintf(help ? stdout : stderr, "usage: disagg %s\n", usage);
	*rc = help ? 0 : 2;
	return true;
}

static int
s_cmd_help(int argc, char *argv[])
{
	int rc;

	if (s_no_args(argc, argv, "help", &rc))
		return rc;
	s_usage(stdout);
	return 0;
}

static int
s_cmd_version(int argc, char *argv[])
{
	int rc;

	if (s_no_args(argc, argv, "version", &rc))
		return rc;
	printf("disagg %s (protocol %d)\n", DG_VERSION, DG_PROTO_VERSION);
	return 0;
}

int
main(int argc, char *argv[])
{
	/* czmq's handler would turn SIGINT and SIGTERM into a flag that
	 * makes every wait return at once; a command line tool should just
	 * stop. */
	zsys_handler_set(NULL);
	/* Bare `disagg` on a terminal is the console, as top is. */
	if (argc < 2 && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
		return dg_cmd_console(argc, argv);
	if (argc < 2) {
		s_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)
		return s_cmd_version(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
		return s_cmd_help(argc - 1, argv + 1);
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(argv[1], s_commands[i].name) == 0)
			return s_commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "disagg: unknown command '%s'\n", argv[1]);
	s_usage(stderr);
	return 2;
}
