/*  cmd_admin.c: the CLI's look inside the pipeline: queues, rooms,
 *  threads and sockets of a daemon, release of a room, reload, and a
 *  live tail of the controller's events (watch).  The same admin ops the
 *  console uses; human columns by default, --json for scripts, exit
 *  codes as cli.h says.  */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "auth.h"
#include "cmd_admin.h"
#include "wire.h"
#include "registry.h"

/* Ask one question that needs at most one operand (`name`) and return
 * the reply, or NULL with the exit code in *rc_p. */
static dg_msg_t *
s_ask(int argc, char *argv[], dg_cli_t *c, dg_op_t op, int min_args,
    const char *usage, int *rc_p)
{
	int first = dg_cli_common_only(argc, argv, c, min_args, 1, usage);

	*rc_p = DG_EXIT_USAGE;
	if (first < 0) {
		*rc_p = dg_cli_exit(first);
		return NULL;
	}
	dg_client_t *cl = dg_cli_connect(c, rc_p);
	if (!cl)
		return NULL;
	dg_msg_t *m = dg_msg_new(op);
	if (m)
		m->u.threads.name = first < argc ? argv[first] : "";
	dg_msg_t *reply = dg_cli_call(c, cl, &m, rc_p);
	dg_client_destroy(&cl);
	return reply;
}

/* {"name":NAME, then the rows: the shape of the per-daemon replies. */
static void
s_named(const dg_cli_t *c, const char *name)
{
	if (c->json) {
		printf("{\"name\":");
		dg_json_str(stdout, name);
		printf(",");
	}
}

/* ---- queues ------------------------------------------------------------ */

int
dg_cmd_queues(int argc, char *argv[])
{
	dg_cli_t c = { 0 };
	int rc;
	dg_msg_t *r = s_ask(argc, argv, &c, DG_OP_QUEUES, 1,
	    "disagg queues [--json] [-c endpoint] NAME", &rc);

	if (!r)
		return rc;
	const dg_queues_ok_msg_t *q = &r->u.queues_ok;
	s_named(&c, q->name);
	dg_cli_rows(&c, "rooms", dg_rows_queues(), q->rooms, q->n_rooms);
	printf(c.json ? "}\n" : "");
	dg_msg_destroy(&r);
	return DG_EXIT_OK;
}

/* ---- rooms ------------------------------------------------------------- */

int
dg_cmd_rooms(int argc, char *argv[])
{
	dg_cli_t c = { 0 };
	int rc;
	dg_msg_t *r = s_ask(argc, argv, &c, DG_OP_ROOMS, 0,
	    "disagg rooms [--json] [-c endpoint] [NAME]", &rc);
	const dg_rows_t *rows = dg_rows_rooms();

	if (!r)
		return rc;
	if (!rows) {
		fprintf(stderr, "disagg: out of memory\n");
		dg_msg_destroy(&r);
		return DG_EXIT_FAIL;
	}
	const dg_rooms_ok_msg_t *o = &r->u.rooms_ok;
	printf(c.json ? "{" : "");
	dg_cli_rows(&c, "rooms", rows, o->rooms, o->n_rooms);
	printf(c.json ? "}\n" : "");
	dg_msg_destroy(&r);
	return DG_EXIT_OK;
}

/* ---- threads ----------------------------------------------------------- */

int
dg_cmd_threads(int argc, char *argv[])
{
	dg_cli_t c = { 0 };
	int rc;
	dg_msg_t *r = s_ask(argc, argv, &c, DG_OP_THREADS, 1,
	    "disagg threads [--json] [-c endpoint] NAME", &rc);

	if (!r)
		return rc;
	const dg_threads_ok_msg_t *t = &r->u.threads_ok;
	s_named(&c, t->name);
	dg_cli_rows(&c, "threads", dg_rows_threads(), t->threads,
	    t->n_threads);
	printf(c.json ? "}\n" : "");
	dg_msg_destroy(&r);
	return DG_EXIT_OK;
}

/* ---- sockets ----------------------------------------------------------- */

int
dg_cmd_sockets(int argc, char *argv[])
{
	dg_cli_t c = { 0 };
	int rc;
	dg_msg_t *r = s_ask(argc, argv, &c, DG_OP_SOCKETS, 1,
	    "disagg sockets [--json] [-c endpoint] NAME", &rc);

	if (!r)
		return rc;
	const dg_sockets_ok_msg_t *s = &r->u.sockets_ok;
	s_named(&c, s->name);
	dg_cli_rows(&c, "sockets", dg_rows_sockets(), s->sockets,
	    s->n_sockets);
	/* The rails are a second table, when there are any. */
	if (c.json || s->n_rails) {
		printf(c.json ? "," : "\n");
		dg_cli_rows(&c, "rails", dg_rows_rails(), s->rails, s->n_rails);
	}
	printf(c.json ? "}\n" : "");
	dg_msg_destroy(&r);
	return DG_EXIT_OK;
}

/* ---- release, reload --------------------------------------------------- */

int
dg_cmd_release(int argc, char *argv[])
{
	static const struct option opts[] = { DG_CLI_COMMON_OPTS,
	    { "reason", required_argument, NULL, DG_OPT_OWN },
	    { NULL, 0, NULL, 0 } };
	dg_cli_t c = { .timeout_ms = 5000, .usage = "disagg release "
	    "[--reason TEXT] [--json] [-c endpoint] ROOM..." };
	const char *reason = NULL;
	int ch, rc = DG_EXIT_OK;

	optind = 1;
	while ((ch = getopt_long(argc, argv, DG_CLI_SHORT, opts, NULL)) != -1) {
		int common = dg_cli_common_opt(&c, ch);
		if (common == 1)
			continue;
		if (common == 0 && ch == DG_OPT_OWN) {
			reason = optarg;
			continue;
		}
		if (common != DG_CLI_HELP)
			dg_cli_usage(&c, stderr);
		return dg_cli_exit(common);
	}
	if (optind == argc) {
		dg_cli_usage(&c, stderr);
		return DG_EXIT_USAGE;
	}
	for (int i = optind; i < argc; i++) {
		uint64_t room;
		if (!dg_cli_u64(argv[i], &room) || room == 0) {
			fprintf(stderr, "disagg: '%s' is not a room id\n",
			    argv[i]);
			return DG_EXIT_USAGE;
		}
	}
	int unreached;
	dg_client_t *cl = dg_cli_connect(&c, &unreached);
	if (!cl)
		return unreached;
	for (int i = optind; i < argc; i++) {
		uint64_t room = strtoull(argv[i], NULL, 10);
		dg_msg_t *m = dg_msg_new(DG_OP_RELEASE);
		int e;
		if (m) {
			m->u.release.room = room;
			m->u.release.reason = reason;
		}
		dg_msg_t *reply = dg_cli_call(&c, cl, &m, &e);
		if (reply && c.json)
			printf("{\"room\":%llu,\"released\":true}\n",
			    (unsigned long long)room);
		else if (reply)
			printf("room %llu released\n", (unsigned long long)room);
		dg_msg_destroy(&reply);
		if (e)
			rc = e;
		if (e == DG_EXIT_UNREACHABLE)
			break;
	}
	dg_client_destroy(&cl);
	return rc;
}

int
dg_cmd_reload(int argc, char *argv[])
{
	dg_cli_t c = { 0 };
	int rc;
	dg_msg_t *r = s_ask(argc, argv, &c, DG_OP_RELOAD, 0,
	    "disagg reload [--json] [-c endpoint] [NAME]", &rc);
	const char *name = optind < argc ? argv[optind] : "controller";

	if (!r)
		return rc;
	const char *text = r->u.reload_ok.message ? r->u.reload_ok.message : "";
	if (c.json) {
		printf("{\"name\":");
		dg_json_str(stdout, name);
		printf(",\"reloaded\":true,\"message\":");
		dg_json_str(stdout, text);
		printf("}\n");
	} else {
		printf("%s reloaded: %s\n", name, text);
	}
	dg_msg_destroy(&r);
	return DG_EXIT_OK;
}

/* ---- watch ------------------------------------------------------------- */


static void
s_print_event(const dg_msg_t *m, bool json)
{
	const dg_event_msg_t *e = &m->u.event;

	if (json) {
		printf("{\"op\":\"event\",\"kind\":");
		dg_json_str(stdout, e->kind);
		printf(",\"ts_ms\":%lld", (long long)e->ts_ms);
		if (e->name) {
			printf(",\"name\":");
			dg_json_str(stdout, e->name);
		}
		printf(",\"request\":%llu,\"room\":%llu,\"message\":",
		    (unsigned long long)e->request, (unsigned long long)e->room);
		dg_json_str(stdout, e->message);
		printf("}\n");
		return;
	}
	time_t t = (time_t)(e->ts_ms / 1000);
	struct tm tm;
	char when[16];
	strftime(when, sizeof when, "%H:%M:%S", localtime_r(&t, &tm));
	printf("%s.%03lld event %-9s %s\n", when, (long long)(e->ts_ms % 1000),
	    e->kind, e->message ? e->message : "");
}

static void
s_print_snapshot(const dg_msg_t *m, bool json)
{
	const dg_snapshot_msg_t *s = &m->u.snapshot;
	size_t up = 0;

	for (size_t i = 0; i < s->n_instances; i++)
		up += dg_inst_state_lookup(s->instances[i].state) == DG_INST_UP;
	if (json) {
		printf("{\"op\":\"snapshot\",\"ts_ms\":%lld,\"instances\":%zu,"
		    "\"up\":%zu,\"pending\":%llu,\"active\":%llu,\"done\":%llu,"
		    "\"failed\":%llu}\n", (long long)s->ts_ms, s->n_instances,
		    up, (unsigned long long)s->pending,
		    (unsigned long long)s->active, (unsigned long long)s->done,
		    (unsigned long long)s->failed);
		return;
	}
	time_t t = (time_t)(s->ts_ms / 1000);
	struct tm tm;
	char when[16];
	strftime(when, sizeof when, "%H:%M:%S", localtime_r(&t, &tm));
	printf("%s.%03lld snapshot  %zu instances (%zu up), %llu pending, "
	    "%llu active, %llu done, %llu failed\n", when,
	    (long long)(s->ts_ms % 1000), s->n_instances, up,
	    (unsigned long long)s->pending, (unsigned long long)s->active,
	    (unsigned long long)s->done, (unsigned long long)s->failed);
}

int
dg_cmd_watch(int argc, char *argv[])
{
	static const struct option opts[] = { DG_CLI_COMMON_OPTS,
	    { "count", required_argument, NULL, 'n' },
	    { "events", no_argument, NULL, DG_OPT_OWN },
	    { NULL, 0, NULL, 0 } };
	dg_cli_t c = { .timeout_ms = 5000, .usage = "disagg watch "
	    "[-n N | --count N] [--events] [--json] [-c endpoint]" };
	int64_t count = 0;
	bool events_only = false;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, DG_CLI_SHORT "n:", opts,
	    NULL)) != -1) {
		int common = dg_cli_common_opt(&c, ch);
		if (common == 1)
			continue;
		if (common == 0 && ch == 'n' && dg_cli_i64(optarg, &count) &&
		    count >= 0)
			continue;
		if (common == 0 && ch == DG_OPT_OWN) {
			events_only = true;
			continue;
		}
		if (common != DG_CLI_HELP)
			dg_cli_usage(&c, stderr);
		return dg_cli_exit(common);
	}
	if (optind != argc) {
		dg_cli_usage(&c, stderr);
		return DG_EXIT_USAGE;
	}
	/* Where to subscribe: the controller says (instances.ok publish),
	 * which also proves it is there. */
	int unreached;
	dg_client_t *cl = dg_cli_connect(&c, &unreached);
	if (!cl)
		return unreached;
	dg_msg_t *m = dg_msg_new(DG_OP_INSTANCES);
	dg_msg_t *reply = dg_cli_call(&c, cl, &m, &rc);
	dg_client_destroy(&cl);
	if (!reply)
		return rc;
	char pub[512];
	if (!reply->u.instances_ok.publish) {
		fprintf(stderr, "disagg: this controller does not say where it "
		    "publishes (an older version)\n");
		dg_msg_destroy(&reply);
		return DG_EXIT_FAIL;
	}
	dg_client_pub_endpoint(pub, sizeof pub, reply->u.instances_ok.publish,
	    dg_client_endpoint(c.endpoint, c.file));
	dg_msg_destroy(&reply);
	char why[256];
	zsock_t *sub = dg_auth_sub_new(pub, why, sizeof why);
	if (!sub) {
		fprintf(stderr, "disagg: cannot subscribe to %s: %s\n", pub,
		    why);
		return DG_EXIT_FAIL;
	}
	if (!c.json)
		fprintf(stderr, "watching %s (interrupt to stop)\n", pub);
	int64_t lines = 0;
	while (count == 0 || lines < count) {
		dg_proto_err_t err;
		if (dg_wire_recv(sub, NULL, &m, &err) < 0)
			break;
		if (!m)
			continue;
		if (m->op == DG_OP_EVENT) {
			s_print_event(m, c.json);
			lines++;
		} else if (m->op == DG_OP_SNAPSHOT && !events_only) {
			s_print_snapshot(m, c.json);
			lines++;
		}
		fflush(stdout);
		dg_msg_destroy(&m);
	}
	zsock_destroy(&sub);
	return DG_EXIT_OK;
}
