/*  cli.c: see cli.h.  */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "run.h"

bool
dg_cli_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || errno)
		return false;
	*out = v;
	return true;
}

bool
dg_cli_i64(const char *s, int64_t *out)
{
	char *end;

	if (!s || !*s)
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end || errno)
		return false;
	*out = v;
	return true;
}

int
dg_cli_common_opt(dg_cli_t *c, int ch)
{
	int64_t v;

	switch (ch) {
	case 'h': dg_cli_usage(c, stdout); return DG_CLI_HELP;
	case 'c': c->endpoint = optarg; return 1;
	case 'f': c->file = optarg; return 1;
	case DG_OPT_JSON: c->json = true; return 1;
	case DG_OPT_TIMEOUT:
		if (!dg_cli_i64(optarg, &v) || v < 1 || v > 3600000) {
			fprintf(stderr, "disagg: --timeout wants milliseconds, "
			    "1 to 3600000, not '%s'\n", optarg);
			return DG_CLI_BAD;
		}
		c->timeout_ms = (int)v;
		return 1;
	}
	return 0;
}

int
dg_cli_common_only(int argc, char *argv[], dg_cli_t *c, int min_args,
    int max_args, const char *usage)
{
	static const struct option opts[] = { DG_CLI_COMMON_OPTS,
	    { NULL, 0, NULL, 0 } };
	int ch;

	if (!c->timeout_ms)
		c->timeout_ms = 5000;
	c->usage = usage;
	optind = 1;
	while ((ch = getopt_long(argc, argv, DG_CLI_SHORT, opts, NULL)) != -1) {
		int taken = dg_cli_common_opt(c, ch);
		if (taken == DG_CLI_HELP)
			return DG_CLI_HELP;
		if (taken != 1) {
			dg_cli_usage(c, stderr);
			return DG_CLI_BAD;
		}
	}
	int n = argc - optind;
	if (n < min_args || (max_args >= 0 && n > max_args)) {
		dg_cli_usage(c, stderr);
		return DG_CLI_BAD;
	}
	return optind;
}

void
dg_cli_usage(const dg_cli_t *c, FILE *out)
{
	fprintf(out, "usage: %s\n", c->usage ? c->usage : "disagg COMMAND");
	/* The long form only where it was asked for: an error's usage
	 * stays one line under the error. */
	if (out != stdout)
		return;
	fprintf(out, "\n"
	    "  -c, --controller ENDPOINT  the controller (default: "
	    "$DISAGG_CONTROLLER,\n"
	    "                             the running 'disagg up', or "
	    "tcp://127.0.0.1:7700)\n"
	    "  -f, --file FILE            the controller of this topology "
	    "file\n"
	    "  --json                     JSON instead of text\n"
	    "  --timeout MS               how long to wait for each reply "
	    "(default 5000)\n"
	    "  -h, --help                 this help\n");
}

int
dg_cli_exit(int parsed)
{
	return parsed == DG_CLI_HELP ? DG_EXIT_OK : DG_EXIT_USAGE;
}

/* Whether `ep` is surely no controller now, known without asking it
 * (ZeroMQ would wait out the whole timeout): said why in `why`.  Only
 * what the file system shows: a connection made to find out would be a
 * failed handshake in a CurveZMQ controller's log. */
static bool
s_gone(const dg_cli_t *c, const char *ep, char *why, size_t size)
{
	const char *env = getenv("DISAGG_CONTROLLER");
	char upini[DG_PATH_MAX], pids[DG_PATH_MAX];

	/* Found through RUN/up.ini: `disagg down` removes RUN/pids and
	 * leaves the topology, which then names a controller gone. */
	if (!(c->endpoint && *c->endpoint) && !(env && *env) &&
	    !(c->file && *c->file) &&
	    access(dg_run_path(upini, sizeof upini, "up.ini"), R_OK) == 0 &&
	    access(dg_run_path(pids, sizeof pids, "pids"), F_OK) < 0 &&
	    errno == ENOENT) {
		snprintf(why, size, "no pipeline is up: %s is missing (the last "
		    "'disagg down' removed it), so the controller %s names is "
		    "gone; start one with 'disagg up', or name a controller "
		    "with -c or DISAGG_CONTROLLER", pids, upini);
		return true;
	}
	/* An ipc endpoint is a file while its controller runs (abstract
	 * "@" names and wildcards are not files). */
	struct stat st;
	const char *path = strncmp(ep, "ipc://", 6) == 0 ? ep + 6 : NULL;
	if (path && *path != '@' && !strchr(path, '*') &&
	    stat(path, &st) < 0 && errno == ENOENT) {
		snprintf(why, size, "no controller at %s: no socket %s (is its "
		    "pipeline up?)", ep, path);
		return true;
	}
	return false;
}

dg_client_t *
dg_cli_connect(const dg_cli_t *c, int *rc_p)
{
	const char *ep = dg_client_endpoint(c->endpoint, c->file);
	char why[2 * DG_PATH_MAX + 256];

	if (s_gone(c, ep, why, sizeof why)) {
		fprintf(stderr, "disagg: %s\n", why);
		*rc_p = DG_EXIT_UNREACHABLE;
		return NULL;
	}
	dg_client_t *cl = dg_client_new(ep);
	if (!cl)
		fprintf(stderr, "disagg: cannot connect to '%s': not a ZeroMQ "
		    "endpoint (tcp://HOST:PORT, ipc://PATH)\n", ep);
	*rc_p = DG_EXIT_USAGE;
	return cl;
}

int
dg_cli_check(const dg_msg_t *reply, const dg_cli_t *c)
{
	if (!reply) {
		fprintf(stderr, "disagg: controller at %s did not answer within "
		    "%d ms\n", dg_client_endpoint(c->endpoint, c->file),
		    c->timeout_ms);
		return DG_EXIT_UNREACHABLE;
	}
	if (reply->op == DG_OP_ERROR) {
		if (c->json) {
			printf("{\"error\":");
			dg_json_str(stdout, reply->u.error.code);
			printf(",\"message\":");
			dg_json_str(stdout, reply->u.error.message);
			printf("}\n");
		} else {
			fprintf(stderr, "disagg: %s: %s\n", reply->u.error.code,
			    reply->u.error.message);
		}
		return DG_EXIT_FAIL;
	}
	return DG_EXIT_OK;
}

dg_msg_t *
dg_cli_call(const dg_cli_t *c, dg_client_t *cl, dg_msg_t **msg_p, int *rc_p)
{
	dg_msg_t *reply = *msg_p ? dg_client_call(cl, *msg_p, c->timeout_ms) :
	    NULL;

	dg_msg_destroy(msg_p);
	*rc_p = dg_cli_check(reply, c);
	if (*rc_p != DG_EXIT_OK)
		dg_msg_destroy(&reply);
	return reply;
}

void
dg_cli_rows(const dg_cli_t *c, const char *key, const dg_rows_t *rows,
    const void *first, size_t n)
{
	if (c->json) {
		printf("\"%s\":", key);
		dg_rows_json(stdout, rows, first, n);
	} else {
		dg_rows_text(stdout, rows, first, n);
	}
}
