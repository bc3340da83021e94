/*  cmd_pipeline.c: the CLI's request and instance commands: submit,
 *  status, cancel, instances, drain, undrain.  Human output by default,
 *  --json for scripts; exit codes as client.h says.  */
#define _GNU_SOURCE
#include <getopt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_pipeline.h"
#include "lifecycle.h"
#include "registry.h"
#include "submit_bars.h"

enum { OPT_NEGATIVE = DG_OPT_OWN, OPT_DEADLINE, OPT_WAIT, OPT_COUNT,
       OPT_PROMPT, OPT_FRAMES, OPT_HEIGHT, OPT_WIDTH, OPT_STEPS, OPT_SEED,
       OPT_QUIET, OPT_KEY, OPT_PRIORITY };

/* ---- submit ------------------------------------------------------------ */

typedef struct {
	uint64_t id;
	bool over;
	char state[16];
	dg_bars_t bars;                 /* its progress, when it has any */
	double age_s;
} s_track_t;

static int
s_cols(void)
{
	struct winsize ws;

	return ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ?
	    ws.ws_col : 80;
}

/* A progress message: a bar per stage on a terminal, redrawn in place;
 * off one, a line per change. */
static void
s_progress(s_track_t *track, int count, const dg_progress_msg_t *p,
    bool tty)
{
	char line[512];

	for (int i = 0; i < count; i++) {
		s_track_t *t = &track[i];
		if (t->id != p->request || t->over ||
		    !dg_bars_take(&t->bars, p))
			continue;
		if (tty) {
			dg_bars_line(&t->bars, t->id, t->age_s, s_cols(), line,
			    sizeof line);
			printf("\r\033[K%s", line);
		} else {
			dg_bars_change(p, line, sizeof line);
			printf("%s\n", line);
		}
		fflush(stdout);
	}
}

/* `timings` (result, status.ok) as a table: a row per stage with the
 * parts of its time, then the request's total. */
static void
s_print_timings(const dg_kv_t *t, size_t n)
{
	static const char *const parts[] =
	    { "queue_us", "in_us", "compute_us", "out_us", "total_us" };
	bool head = false;

	for (size_t i = 0; i < n; i++) {
		const char *role = t[i].key;
		if (strchr(role, '.') || strcmp(role, "total") == 0)
			continue;
		if (!head)
			printf("  %-14s %9s %9s %9s %9s %9s  (ms)\n", "timings",
			    "queue", "in", "compute", "out", "total");
		head = true;
		printf("  %-14s", role);
		for (size_t k = 0; k < 5; k++) {
			char key[DG_NAME_MAX + 16];
			snprintf(key, sizeof key, "%s.%s", role, parts[k]);
			size_t j = 0;
			while (j < n && strcmp(t[j].key, key) != 0)
				j++;
			if (j < n)
				printf(" %9.1f", (double)t[j].value / 1000.0);
			else
				printf(" %9s", "-");
		}
		printf("\n");
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].key, "total") == 0)
			printf("  %-14s %49lld\n", "total",
			    (long long)t[i].value);
}

/* The same for --json: an object of the keys as they came. */
static void
s_json_timings(const dg_kv_t *t, size_t n)
{
	printf(",\"timings\":{");
	for (size_t i = 0; i < n; i++) {
		printf("%s", i ? "," : "");
		dg_json_str(stdout, t[i].key);
		printf(":%lld", (long long)t[i].value);
	}
	printf("}");
}

static void
s_print_result(const dg_msg_t *m, bool json)
{
	const dg_result_msg_t *r = &m->u.result;

	if (json) {
		printf("{\"request\":%llu,\"status\":",
		    (unsigned long long)r->request);
		dg_json_str(stdout, r->status);
		printf(",\"output\":");
		dg_json_str(stdout, r->output);
		printf(",\"bytes\":%llu,\"digest\":", (unsigned long long)r->bytes);
		dg_json_str(stdout, r->digest);
		if (r->error) {
			printf(",\"error\":");
			dg_json_str(stdout, r->error);
		}
		s_json_timings(r->timings, r->n_timings);
		printf("}\n");
		return;
	}
	printf("request %llu %s", (unsigned long long)r->request, r->status);
	if (r->error)
		printf(": %s", r->error);
	printf("\n");
	if (r->output && *r->output)
		printf("  output  %s (%llu bytes, digest %s)\n", r->output,
		    (unsigned long long)r->bytes, r->digest ? r->digest : "");
	s_print_timings(r->timings, r->n_timings);
}

int
dg_cmd_submit(int argc, char *argv[])
{
	static const struct option opts[] = {
		DG_CLI_COMMON_OPTS,
		{ "prompt", required_argument, NULL, OPT_PROMPT },
		{ "negative", required_argument, NULL, OPT_NEGATIVE },
		{ "frames", required_argument, NULL, OPT_FRAMES },
		{ "height", required_argument, NULL, OPT_HEIGHT },
		{ "width", required_argument, NULL, OPT_WIDTH },
		{ "steps", required_argument, NULL, OPT_STEPS },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "deadline", required_argument, NULL, OPT_DEADLINE },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "wait", no_argument, NULL, OPT_WAIT },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "priority", required_argument, NULL, OPT_PRIORITY },
		{ NULL, 0, NULL, 0 }
	};
	dg_cli_t c = { .timeout_ms = 5000, .usage = "disagg submit "
	    "[--prompt TEXT] [--negative TEXT] [--frames N] [--height H]\n"
	    "         [--width W] [--steps N] [--seed N] [--deadline MS] "
	    "[--priority 0-9]\n"
	    "         [--count N] [--key KEY] [--wait] [--quiet] [--json] "
	    "[--timeout MS]\n"
	    "         [-c endpoint | -f file]" };
	const char *key = NULL;
	char made[48];
	dg_submit_msg_t sub = { .prompt = "a red fox running through fresh "
	    "snow at dawn", .frames = 17, .height = 256, .width = 448,
	    .steps = 8, .seed = 42 };
	bool wait = false, quiet = false;
	int count = 1, ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, DG_CLI_SHORT, opts, NULL)) != -1) {
		int common = dg_cli_common_opt(&c, ch);
		if (common < 0)
			return dg_cli_exit(common);
		if (common)
			continue;
		int64_t *num = NULL, v;
		switch (ch) {
		case OPT_PROMPT: sub.prompt = optarg; continue;
		case OPT_NEGATIVE: sub.negative_prompt = optarg; continue;
		case OPT_WAIT: wait = true; continue;
		case OPT_QUIET: quiet = true; continue;
		case OPT_KEY: key = optarg; continue;
		case OPT_FRAMES: num = &sub.frames; break;
		case OPT_HEIGHT: num = &sub.height; break;
		case OPT_WIDTH: num = &sub.width; break;
		case OPT_STEPS: num = &sub.steps; break;
		case OPT_SEED: num = &sub.seed; break;
		case OPT_DEADLINE: num = &sub.deadline_ms; break;
		case OPT_PRIORITY: num = &sub.priority; break;
		case OPT_COUNT: num = &v; break;
		}
		if (!num) {
			dg_cli_usage(&c, stderr);
			return DG_EXIT_USAGE;
		}
		/* Range checks are the controller's (it answers invalid);
		 * here only "is it a number". */
		if (!dg_cli_i64(optarg, num)) {
			fprintf(stderr, "disagg submit: '%s' is not a whole "
			    "number\n", optarg);
			return DG_EXIT_USAGE;
		}
		if (num == &v)
			count = v < 1 || v > 1000000 ? 0 : (int)v;
	}
	if (count < 1 || optind != argc) {
		fprintf(stderr, "disagg submit: bad arguments (--count is 1 to "
		    "1000000; no operands)\n");
		return DG_EXIT_USAGE;
	}
	int unreached;
	dg_client_t *cl = dg_cli_connect(&c, &unreached);
	if (!cl)
		return unreached;
	/* Every submit has a key, ours when none is given: asking again
	 * after a lost reply is then the same request, never a second. */
	if (!key) {
		uint64_t r[2] = { (uint64_t)getpid(), (uint64_t)time(NULL) };
		(void)getentropy(r, sizeof r);  /* else pid and time */
		snprintf(made, sizeof made, "cli-%016llx%016llx",
		    (unsigned long long)r[0], (unsigned long long)r[1]);
		key = made;
	}
	/* Progress is for eyes: not with --json or --quiet. */
	sub.progress = wait && !c.json && !quiet;
	s_track_t *track = calloc((size_t)count, sizeof *track);
	int rc = DG_EXIT_OK, open = 0;
	for (int i = 0; i < count && track; i++) {
		char this_key[DG_SUBMIT_KEY_MAX + 16];
		if (count > 1)
			snprintf(this_key, sizeof this_key, "%.52s-%d", key, i + 1);
		else
			snprintf(this_key, sizeof this_key, "%s", key);
		dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
		m->u.submit = sub;
		m->u.submit.seed = sub.seed + i;
		m->u.submit.key = this_key;
		dg_msg_t *reply = dg_client_call(cl, m, c.timeout_ms);
		if (!reply && errno == ETIMEDOUT)
			reply = dg_client_call(cl, m, c.timeout_ms);
		dg_msg_destroy(&m);
		int e = dg_cli_check(reply, &c);
		if (e) {
			dg_msg_destroy(&reply);
			rc = e;
			break;
		}
		track[i].id = reply->u.submit_ok.request;
		open++;
		if (!wait) {
			/* --quiet: the id alone, for a script to read. */
			if (c.json)
				printf("{\"request\":%llu}\n",
				    (unsigned long long)track[i].id);
			else
				printf(quiet ? "%llu\n" : "request %llu "
				    "submitted\n", (unsigned long long)track[i].id);
		}
		dg_msg_destroy(&reply);
	}
	/* Wait for every result, showing each state change. */
	bool tty = isatty(STDOUT_FILENO) && !c.json && !quiet;
	int64_t next_poll = 0;
	while (wait && open > 0 && rc != DG_EXIT_UNREACHABLE) {
		dg_msg_t *m = dg_client_next(cl, 100);
		if (m && m->op == DG_OP_PROGRESS && sub.progress)
			s_progress(track, count, &m->u.progress, tty);
		if (m && m->op == DG_OP_RESULT) {
			for (int i = 0; i < count; i++) {
				if (track[i].id != m->u.result.request ||
				    track[i].over)
					continue;
				track[i].over = true;
				open--;
				if (tty)
					printf("\r\033[K");
				if (!quiet || dg_req_state_lookup(m->u.result.status) != DG_REQ_DONE)
					s_print_result(m, c.json);
				if (dg_req_state_lookup(m->u.result.status) != DG_REQ_DONE)
					rc = DG_EXIT_FAIL;
			}
		}
		dg_msg_destroy(&m);
		if (zclock_mono() < next_poll || open == 0)
			continue;
		/* Ask now and then, on a terminal for the progress line, and
		 * always so that a controller that went away, or a result
		 * that was lost, does not leave us waiting for ever. */
		next_poll = zclock_mono() + (tty ? 200 : 1000);
		for (int i = 0; i < count; i++) {
			if (track[i].over)
				continue;
			dg_msg_t *q = dg_msg_new(DG_OP_STATUS);
			q->u.status.request = track[i].id;
			dg_msg_t *st = dg_client_call(cl, q, c.timeout_ms);
			dg_msg_destroy(&q);
			if (!st) {
				if (tty)
					printf("\n");
				rc = dg_cli_check(NULL, &c);
				break;
			}
			if (st->op == DG_OP_STATUS_OK) {
				const char *state = st->u.status_ok.state;
				bool over = dg_req_state_lookup(state) >=
				    DG_REQ_DONE;
				/* Over, and still no result: wait one more
				 * round for it, then believe the status. */
				if (over && track[i].state[0]) {
					track[i].over = true;
					open--;
					printf("%srequest %llu %s%s%s\n", tty ?
					    "\r\033[K" : "",
					    (unsigned long long)track[i].id,
					    state, st->u.status_ok.error ? ": " :
					    "", st->u.status_ok.error ?
					    st->u.status_ok.error : "");
					if (dg_req_state_lookup(state) != DG_REQ_DONE)
						rc = DG_EXIT_FAIL;
				} else if (over) {
					snprintf(track[i].state,
					    sizeof track[i].state, "%s", state);
				} else if (tty && track[i].bars.n) {
					char line[512];
					track[i].age_s = (double)
					    st->u.status_ok.age_ms / 1000.0;
					dg_bars_line(&track[i].bars,
					    track[i].id, track[i].age_s,
					    s_cols(), line, sizeof line);
					printf("\r\033[K%s", line);
					fflush(stdout);
				} else if (tty) {
					printf("\r\033[Krequest %llu: %-10s "
					    "%5.1f s  (%d of %d open)",
					    (unsigned long long)track[i].id,
					    state, (double)st->u.status_ok.age_ms /
					    1000.0, open, count);
					fflush(stdout);
				}
			} else {
				rc = dg_cli_check(st, &c);
				track[i].over = true;
				open--;
			}
			dg_msg_destroy(&st);
			if (tty)
				break;
		}
	}
	free(track);
	dg_client_destroy(&cl);
	return rc;
}

/* ---- status, cancel ---------------------------------------------------- */

static int
s_by_id(int argc, char *argv[], dg_op_t op, const char *usage)
{
	dg_cli_t c = { 0 };
	int rc = DG_EXIT_OK;

	int first = dg_cli_common_only(argc, argv, &c, 1, -1, usage);

	if (first < 0)
		return dg_cli_exit(first);
	/* Every operand first: a typo asks nothing of the controller. */
	for (int i = optind; i < argc; i++) {
		uint64_t id;
		if (!dg_cli_u64(argv[i], &id)) {
			fprintf(stderr, "disagg: '%s' is not a request id\n",
			    argv[i]);
			return DG_EXIT_USAGE;
		}
	}
	int unreached;
	dg_client_t *cl = dg_cli_connect(&c, &unreached);
	if (!cl)
		return unreached;
	for (int i = optind; i < argc; i++) {
		uint64_t id;
		if (!dg_cli_u64(argv[i], &id)) {
			fprintf(stderr, "disagg: '%s' is not a request id\n",
			    argv[i]);
			rc = DG_EXIT_USAGE;
			break;
		}
		dg_msg_t *m = dg_msg_new(op);
		m->u.status.request = id;
		dg_msg_t *reply = dg_client_call(cl, m, c.timeout_ms);
		dg_msg_destroy(&m);
		int e = dg_cli_check(reply, &c);
		if (e) {
			rc = e;
			dg_msg_destroy(&reply);
			if (e == DG_EXIT_UNREACHABLE)
				break;
			continue;
		}
		if (reply->op == DG_OP_STATUS_OK) {
			const dg_status_ok_msg_t *s = &reply->u.status_ok;
			if (c.json) {
				printf("{\"request\":%llu,\"state\":",
				    (unsigned long long)s->request);
				dg_json_str(stdout, s->state);
				printf(",\"room\":%llu,\"age_ms\":%lld,"
				    "\"retries\":%lld", (unsigned long long)s->room,
				    (long long)s->age_ms, (long long)s->retries);
				if (s->encoder) {
					printf(",\"encoder\":");
					dg_json_str(stdout, s->encoder);
					printf(",\"transformer\":");
					dg_json_str(stdout, s->transformer);
					printf(",\"decoder\":");
					dg_json_str(stdout, s->decoder);
				}
				if (s->error) {
					printf(",\"error\":");
					dg_json_str(stdout, s->error);
				}
				if (s->stage) {
					printf(",\"stage\":");
					dg_json_str(stdout, s->stage);
				}
				if (s->n_stages) {
					printf(",\"stages\":[");
					for (size_t k = 0; k < s->n_stages; k++) {
						printf("%s{\"role\":", k ? "," : "");
						dg_json_str(stdout, s->stages[k].role);
						printf(",\"name\":");
						dg_json_str(stdout, s->stages[k].name);
						printf("}");
					}
					printf("]");
				}
				if (s->steps)
					printf(",\"step\":%lld,\"steps\":%lld",
					    (long long)s->step,
					    (long long)s->steps);
				if (s->n_timings)
					s_json_timings(s->timings,
					    s->n_timings);
				printf("}\n");
			} else {
				printf("request %llu %s", (unsigned long long)
				    s->request, s->state);
				/* The roles by the configuration's names:
				 * "denoising at low on e0 > h0 > l0 > d0". */
				if (s->stage)
					printf(" at %s", s->stage);
				if (s->steps)
					printf(" step %lld/%lld",
					    (long long)s->step,
					    (long long)s->steps);
				for (size_t k = 0; k < s->n_stages; k++)
					printf("%s%s", k ? " > " : " on ",
					    s->stages[k].name);
				if (!s->n_stages && s->encoder)
					printf(" on %s, %s, %s", s->encoder,
					    s->transformer, s->decoder);
				printf(", %.1f s", (double)s->age_ms / 1000.0);
				if (s->retries)
					printf(", %lld retries",
					    (long long)s->retries);
				if (s->error)
					printf(": %s", s->error);
				printf("\n");
				s_print_timings(s->timings, s->n_timings);
			}
		} else if (c.json) {
			printf("{\"request\":%llu,\"cancelled\":true}\n",
			    (unsigned long long)id);
		} else {
			printf("request %llu cancelled\n",
			    (unsigned long long)id);
		}
		dg_msg_destroy(&reply);
	}
	dg_client_destroy(&cl);
	return rc;
}

int
dg_cmd_status(int argc, char *argv[])
{
	return s_by_id(argc, argv, DG_OP_STATUS,
	    "disagg status [--json] [-c endpoint] REQUEST...");
}

int
dg_cmd_cancel(int argc, char *argv[])
{
	return s_by_id(argc, argv, DG_OP_CANCEL,
	    "disagg cancel [--json] [-c endpoint] REQUEST...");
}

/* ---- instances, drain, undrain ---------------------------------------- */

int
dg_cmd_instances(int argc, char *argv[])
{
	dg_cli_t c = { 0 };

	int first = dg_cli_common_only(argc, argv, &c, 0, 0,
	    "disagg instances [--json] [-c endpoint]");

	if (first < 0)
		return dg_cli_exit(first);
	int unreached;
	dg_client_t *cl = dg_cli_connect(&c, &unreached);
	if (!cl)
		return unreached;
	dg_msg_t *m = dg_msg_new(DG_OP_INSTANCES);
	dg_msg_t *reply = dg_client_call(cl, m, c.timeout_ms);
	dg_msg_destroy(&m);
	int rc = dg_cli_check(reply, &c);
	if (rc == DG_EXIT_OK) {
		const dg_instances_ok_msg_t *ok = &reply->u.instances_ok;
		printf(c.json ? "{" : "");
		dg_cli_rows(&c, "instances", dg_rows_instances(), ok->instances,
		    ok->n_instances);
		printf(c.json ? "}\n" : "");
	}
	dg_msg_destroy(&reply);
	dg_client_destroy(&cl);
	return rc;
}

/* A question for the controller; the reply of op `want`, or NULL. */
static dg_msg_t *
s_ask(dg_client_t *cl, const dg_cli_t *c, dg_op_t op, const char *name,
    dg_op_t want)
{
	dg_msg_t *m = dg_msg_new(op);

	if (!m)
		return NULL;
	m->u.threads.name = name;       /* queues: a name_msg */
	dg_msg_t *r = dg_client_call(cl, m, c->timeout_ms);
	dg_msg_destroy(&m);
	if (r && r->op != want)
		dg_msg_destroy(&r);
	return r;
}

/* What an operator must hear after draining `name`, in `buf` ("" when
 * nothing): requests that wait at the controller while no other
 * instance of its role is up (they wait until one is), and rooms still
 * queued in it (they finish there first). */
static void
s_drain_warning(dg_client_t *cl, const dg_cli_t *c, const char *name,
    char *buf, size_t size)
{
	dg_msg_t *list = s_ask(cl, c, DG_OP_INSTANCES, NULL,
	    DG_OP_INSTANCES_OK);
	dg_msg_t *q = s_ask(cl, c, DG_OP_QUEUES, "controller",
	    DG_OP_QUEUES_OK);
	const dg_instance_row_t *me = NULL;
	size_t others = 0, len = 0;

	buf[0] = '\0';
	for (size_t i = 0; list && i < list->u.instances_ok.n_instances; i++)
		if (strcmp(list->u.instances_ok.instances[i].name, name) == 0)
			me = &list->u.instances_ok.instances[i];
	for (size_t i = 0; me && i < list->u.instances_ok.n_instances; i++) {
		const dg_instance_row_t *r = &list->u.instances_ok.instances[i];
		others += r != me && strcmp(r->role, me->role) == 0 &&
		    dg_inst_state_lookup(r->state) == DG_INST_UP;
	}
	uint64_t waiting = q ? q->u.queues_ok.n_rooms +
	    q->u.queues_ok.omitted : 0;
	if (me && waiting > 0 && others == 0)
		len += (size_t)snprintf(buf, size, "%llu request%s wait%s for a "
		    "%s, and no other %s is up: they wait until one is (disagg "
		    "undrain %s)", (unsigned long long)waiting, waiting == 1 ?
		    "" : "s", waiting == 1 ? "s" : "", me->role, me->role, name);
	int64_t queued = me ? me->incoming + me->waiting + me->ready : 0;
	if (queued > 0 && len < size)
		snprintf(buf + len, size - len, "%s%s still holds %lld room%s "
		    "not yet running; they finish there first", len ? "; " : "",
		    name, (long long)queued, queued == 1 ? "" : "s");
	dg_msg_destroy(&list);
	dg_msg_destroy(&q);
}

static int
s_drain(int argc, char *argv[], bool drain)
{
	dg_cli_t c = { 0 };
	int rc = DG_EXIT_OK;
	bool exit_too = false;

	/* --exit is drain's own: take it out before the common parser. */
	for (int i = 1; drain && i < argc; i++) {
		if (strcmp(argv[i], "--exit") == 0) {
			exit_too = true;
			memmove(&argv[i], &argv[i + 1],
			    (size_t)(argc - i) * sizeof *argv);
			argc--;
			break;
		}
	}
	int first = dg_cli_common_only(argc, argv, &c, 1, -1, drain ?
	    "disagg drain [--exit] [--json] [-c endpoint] NAME..." :
	    "disagg undrain [--json] [-c endpoint] NAME...");

	if (first < 0)
		return dg_cli_exit(first);
	int unreached;
	dg_client_t *cl = dg_cli_connect(&c, &unreached);
	if (!cl)
		return unreached;
	for (int i = optind; i < argc; i++) {
		dg_msg_t *m = dg_msg_new(drain ? DG_OP_DRAIN : DG_OP_UNDRAIN);
		m->u.drain.name = argv[i];
		m->u.drain.exit = exit_too;
		dg_msg_t *reply = dg_client_call(cl, m, c.timeout_ms);
		dg_msg_destroy(&m);
		int e = dg_cli_check(reply, &c);
		char warning[512] = "";
		if (e == DG_EXIT_OK && drain)
			s_drain_warning(cl, &c, argv[i], warning,
			    sizeof warning);
		if (e == DG_EXIT_OK && !c.json) {
			printf("%s %s\n", argv[i], !drain ? "undrained" :
			    exit_too ? "draining; it exits once idle" :
			    "draining");
			if (*warning)
				fprintf(stderr, "disagg: warning: %s\n", warning);
		} else if (e == DG_EXIT_OK) {
			printf("{\"name\":");
			dg_json_str(stdout, argv[i]);
			printf(",\"ok\":true");
			if (*warning) {
				printf(",\"warning\":");
				dg_json_str(stdout, warning);
			}
			printf("}\n");
		}
		if (e)
			rc = e;
		dg_msg_destroy(&reply);
		if (e == DG_EXIT_UNREACHABLE)
			break;
	}
	dg_client_destroy(&cl);
	return rc;
}

int
dg_cmd_drain(int argc, char *argv[])
{
	return s_drain(argc, argv, true);
}

int
dg_cmd_undrain(int argc, char *argv[])
{
	return s_drain(argc, argv, false);
}
