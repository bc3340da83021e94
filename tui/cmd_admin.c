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

/* Ask one question that needs at most one operand (`name`) and return
 * the reply, or NULL with the exit code in *rc_p. */
static dg_msg_t *
s_ask(int argc, char *argv[], dg_cli_t *c, dg_op_t op, int min_args,
    const char *usage, int *rc_p)
{
	int first = dg_cli_common_only(argc, argv, c, min_args, 1, usage);

	*rc_p = DG_EXIT_USAGE;
	if (first < 0)
		return NULL;
	dg_client_t *cl = dg_cli_connect(c);
	if (!cl)
		return NULL;
	dg_msg_t *m = dg_msg_new(op);
	if (m)
		m->u.threads.name = first < argc ? argv[first] : "";
	dg_msg_t *reply = dg_cli_call(c, cl, &m, rc_p);
	dg_client_destroy(&cl);
	return reply;
}

static void
s_age(char *buf, size_t size, int64_t ms)
{
	if (ms < 0)
		snprintf(buf, size, "-");
	else if (ms < 10000)
		snprintf(buf, size, "%lldms", (long long)ms);
	else
		snprintf(buf, size, "%llds", (long long)(ms / 1000));
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
	if (c.json) {
		printf("{\"name\":");
		dg_json_str(stdout, q->name);
		printf(",\"rooms\":[");
	} else {
		printf("%-10s %20s %20s %10s\n", "QUEUE", "ROOM", "REQUEST",
		    "AGE");
	}
	for (size_t i = 0; i < q->n_rooms; i++) {
		const dg_queue_row_t *x = &q->rooms[i];
		if (c.json) {
			printf("%s{\"queue\":", i ? "," : "");
			dg_json_str(stdout, x->queue);
			printf(",\"room\":%llu,\"request\":%llu,\"age_ms\":%lld}",
			    (unsigned long long)x->room,
			    (unsigned long long)x->request, (long long)x->age_ms);
		} else {
			char age[32];
			s_age(age, sizeof age, x->age_ms);
			printf("%-10s %20llu %20llu %10s\n", x->queue,
			    (unsigned long long)x->room,
			    (unsigned long long)x->request, age);
		}
	}
	printf(c.json ? "]}\n" : "");
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

	if (!r)
		return rc;
	const dg_rooms_ok_msg_t *o = &r->u.rooms_ok;
	if (c.json)
		printf("{\"rooms\":[");
	else
		printf("%10s %10s %-10s %-10s %-12s %-10s %10s %8s\n", "ROOM",
		    "REQUEST", "STATE", "ENCODER", "TRANSFORMER", "DECODER",
		    "BYTES", "AGE");
	for (size_t i = 0; i < o->n_rooms; i++) {
		const dg_room_row_t *x = &o->rooms[i];
		if (c.json) {
			printf("%s{\"room\":%llu,\"request\":%llu,\"state\":",
			    i ? "," : "", (unsigned long long)x->room,
			    (unsigned long long)x->request);
			dg_json_str(stdout, x->state);
			printf(",\"encoder\":");
			dg_json_str(stdout, x->encoder);
			printf(",\"transformer\":");
			dg_json_str(stdout, x->transformer);
			printf(",\"decoder\":");
			dg_json_str(stdout, x->decoder);
			printf(",\"bytes\":%llu,\"age_ms\":%lld}",
			    (unsigned long long)x->bytes, (long long)x->age_ms);
		} else {
			char age[32];
			s_age(age, sizeof age, x->age_ms);
			printf("%10llu %10llu %-10s %-10s %-12s %-10s %10llu "
			    "%8s\n", (unsigned long long)x->room,
			    (unsigned long long)x->request, x->state,
			    x->encoder, x->transformer, x->decoder,
			    (unsigned long long)x->bytes, age);
		}
	}
	printf(c.json ? "]}\n" : "");
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
	if (c.json) {
		printf("{\"name\":");
		dg_json_str(stdout, t->name);
		printf(",\"threads\":[");
	} else {
		printf("%8s %-16s %-9s %-10s %10s %12s %9s\n", "TID", "NAME",
		    "STATE", "KERNEL", "ROOM", "CPU", "PROGRESS");
	}
	for (size_t i = 0; i < t->n_threads; i++) {
		const dg_thread_row_t *x = &t->threads[i];
		if (c.json) {
			printf("%s{\"tid\":%lld,\"name\":", i ? "," : "",
			    (long long)x->tid);
			dg_json_str(stdout, x->name);
			printf(",\"state\":");
			dg_json_str(stdout, x->state);
			printf(",\"kernel\":");
			dg_json_str(stdout, x->kernel);
			printf(",\"room\":%llu,\"cpu_us\":%llu,"
			    "\"progress_age_ms\":%lld}",
			    (unsigned long long)x->room,
			    (unsigned long long)x->cpu_us,
			    (long long)x->progress_age_ms);
		} else {
			char age[32], room[24];
			s_age(age, sizeof age, x->progress_age_ms);
			if (x->room)
				snprintf(room, sizeof room, "%llu",
				    (unsigned long long)x->room);
			else
				snprintf(room, sizeof room, "-");
			printf("%8lld %-16s %-9s %-10s %10s %11.3fs %9s\n",
			    (long long)x->tid, x->name, x->state,
			    x->kernel ? x->kernel : "-", room,
			    (double)x->cpu_us / 1e6, age);
		}
	}
	printf(c.json ? "]}\n" : "");
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
	if (c.json) {
		printf("{\"name\":");
		dg_json_str(stdout, s->name);
		printf(",\"sockets\":[");
	} else {
		printf("%-7s %-7s %-40s %9s %9s %11s %11s\n", "TYPE", "MODE",
		    "ENDPOINT", "MSGS-IN", "MSGS-OUT", "BYTES-IN", "BYTES-OUT");
	}
	for (size_t i = 0; i < s->n_sockets; i++) {
		const dg_socket_row_t *x = &s->sockets[i];
		if (c.json) {
			printf("%s{\"type\":", i ? "," : "");
			dg_json_str(stdout, x->type);
			printf(",\"endpoint\":");
			dg_json_str(stdout, x->endpoint);
			printf(",\"bind\":%s,\"msgs_in\":%llu,\"msgs_out\":%llu,"
			    "\"bytes_in\":%llu,\"bytes_out\":%llu}",
			    x->bind ? "true" : "false",
			    (unsigned long long)x->msgs_in,
			    (unsigned long long)x->msgs_out,
			    (unsigned long long)x->bytes_in,
			    (unsigned long long)x->bytes_out);
		} else {
			printf("%-7s %-7s %-40s %9llu %9llu %11llu %11llu\n",
			    x->type, x->bind ? "bind" : "connect", x->endpoint,
			    (unsigned long long)x->msgs_in,
			    (unsigned long long)x->msgs_out,
			    (unsigned long long)x->bytes_in,
			    (unsigned long long)x->bytes_out);
		}
	}
	if (c.json)
		printf("],\"rails\":[");
	else if (s->n_rails)
		printf("\n%-16s %4s %-44s %-12s\n", "PROVIDER", "RAIL", "PEER",
		    "QUARANTINE");
	for (size_t i = 0; i < s->n_rails; i++) {
		const dg_rail_row_t *x = &s->rails[i];
		if (c.json) {
			printf("%s{\"provider\":", i ? "," : "");
			dg_json_str(stdout, x->provider);
			printf(",\"rail\":%lld,\"peer\":", (long long)x->rail);
			dg_json_str(stdout, x->peer);
			printf(",\"quarantined\":%s,\"quarantine_left_ms\":%lld}",
			    x->quarantined ? "true" : "false",
			    (long long)x->quarantine_left_ms);
		} else {
			char q[32];
			if (x->quarantined)
				snprintf(q, sizeof q, "%llds left",
				    (long long)(x->quarantine_left_ms + 999) /
				    1000);
			else
				snprintf(q, sizeof q, "-");
			printf("%-16s %4lld %-44s %-12s\n", x->provider,
			    (long long)x->rail, x->peer, q);
		}
	}
	printf(c.json ? "]}\n" : "");
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
	const char *usage = "disagg release [--reason TEXT] [--json] "
	    "[-c endpoint] ROOM...";
	dg_cli_t c = { .timeout_ms = 5000 };
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
		fprintf(stderr, "usage: %s\n", usage);
		return DG_EXIT_USAGE;
	}
	if (optind == argc) {
		fprintf(stderr, "usage: %s\n", usage);
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
	dg_client_t *cl = dg_cli_connect(&c);
	if (!cl)
		return DG_EXIT_USAGE;
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
		up += strcmp(s->instances[i].state, "up") == 0;
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
	const char *usage = "disagg watch [-n N | --count N] [--events] "
	    "[--json] [-c endpoint]";
	dg_cli_t c = { .timeout_ms = 5000 };
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
		fprintf(stderr, "usage: %s\n", usage);
		return DG_EXIT_USAGE;
	}
	if (optind != argc) {
		fprintf(stderr, "usage: %s\n", usage);
		return DG_EXIT_USAGE;
	}
	/* Where to subscribe: the controller says (instances.ok publish),
	 * which also proves it is there. */
	dg_client_t *cl = dg_cli_connect(&c);
	if (!cl)
		return DG_EXIT_USAGE;
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
