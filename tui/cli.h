/*  cli.h: what the CLI's controller commands share: the common options
 *  (-c endpoint, -f file, --json, --timeout MS), connecting, turning a
 *  reply into an exit code and strict number parsing.
 *
 *  Exit codes (client.h): 0 ok, 1 the system refused or failed (an error
 *  reply), 2 usage (including a malformed endpoint), 3 controller not
 *  reachable (no reply within the timeout).  */
#ifndef DG_CLI_H
#define DG_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "client.h"
#include "json.h"
#include "rows.h"

typedef struct {
	const char *usage;              /* "disagg CMD [opts] ARGS", for -h */
	const char *endpoint;           /* -c */
	const char *file;               /* -f */
	bool json;
	int timeout_ms;
} dg_cli_t;

/* Long option values of the common options; a command's own start at
 * DG_OPT_OWN. */
enum { DG_OPT_JSON = 1000, DG_OPT_TIMEOUT, DG_OPT_OWN };

#define DG_CLI_SHORT "c:f:h"
#define DG_CLI_COMMON_OPTS \
	{ "help", no_argument, NULL, 'h' }, \
	{ "controller", required_argument, NULL, 'c' }, \
	{ "file", required_argument, NULL, 'f' }, \
	{ "json", no_argument, NULL, DG_OPT_JSON }, \
	{ "timeout", required_argument, NULL, DG_OPT_TIMEOUT }

/* What the option parsers return besides "taken" (1) and "not one"
 * (0): a bad value or option, said on stderr; or -h/--help, whose usage
 * went to stdout.  dg_cli_exit turns either into the exit code. */
enum { DG_CLI_BAD = -1, DG_CLI_HELP = -2 };

/* 1: ch was a common option, taken; 0: not one; DG_CLI_BAD: a bad value
 * (printed); DG_CLI_HELP: -h, c->usage printed on stdout. */
int dg_cli_common_opt(dg_cli_t *c, int ch);

/* Options of a command that takes only the common ones, then between
 * min_args and max_args operands (max_args < 0: any number).  The index
 * of the first operand, or DG_CLI_BAD after printing the usage on
 * stderr, or DG_CLI_HELP after printing it on stdout. */
int dg_cli_common_only(int argc, char *argv[], dg_cli_t *c, int min_args,
    int max_args, const char *usage);

/* The usage (c->usage and the common options) on `out`. */
void dg_cli_usage(const dg_cli_t *c, FILE *out);
/* The exit code for DG_CLI_HELP (0) or DG_CLI_BAD (2). */
int dg_cli_exit(int parsed);

/* A client for the controller of `c`; NULL, said why, with the exit
 * code in *rc_p: a malformed endpoint (usage), or one that surely has
 * no controller now (unreachable: RUN/up.ini after `disagg down`, an
 * ipc socket file that does not exist), so that no command waits out
 * its timeout for nothing. */
dg_client_t *dg_cli_connect(const dg_cli_t *c, int *rc_p);

/* Send `*msg_p` (destroyed) and wait for its reply; *rc_p gets the exit
 * code: the reply (destroy it) when 0, else NULL after printing the
 * error (as JSON with --json) or the timeout. */
dg_msg_t *dg_cli_call(const dg_cli_t *c, dg_client_t *cl, dg_msg_t **msg_p,
    int *rc_p);

/* The exit code for a reply (NULL: the timeout), printing the error. */
int dg_cli_check(const dg_msg_t *reply, const dg_cli_t *c);

/* A reply's rows: a table, or with --json `"key":[...]` (the caller
 * prints what is around it). */
void dg_cli_rows(const dg_cli_t *c, const char *key, const dg_rows_t *rows,
    const void *first, size_t n);

/* Whole decimal numbers only ("12x", "", "-1" for unsigned: false). */
bool dg_cli_u64(const char *s, uint64_t *out);
bool dg_cli_i64(const char *s, int64_t *out);

#endif
