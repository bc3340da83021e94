/*  bench_rooms.c: `disagg bench rooms`: what holding many rooms costs
 *  one stage daemon, and how long they take to fail over when it dies.
 *
 *  It starts a pipeline of its own, with the code of `disagg up`, in a
 *  run folder of its own: e0, two transformers t0 and t1, d0, all null
 *  stages, ipc endpoints in that folder.  t1 is drained while N requests
 *  go in, so every room lands on t0, whose step_ms times the requests'
 *  step count keeps each batch in its workers for a day; the other
 *  rooms wait in its ready queue.  With all N held it reads t0's threads
 *  and resident memory (against the same with no rooms) and times
 *  `threads` requests that t0's own control loop answers through the
 *  controller.  Then it undrains t1, SIGKILLs t0 and follows, in the
 *  controller's room list and in the results, how many requests moved
 *  to t1 and how many ended.  Every wait has a deadline, so a failover
 *  that leaves rooms behind is reported with its count, not waited on
 *  for ever.  */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_rooms.h"
#include "bench_topo.h"
#include "client.h"
#include "lifecycle.h"

#define S_ROOMS_DEFAULT 10000
/* The controller lists its rooms in one frame of at most 4 MiB, and the
 * failover is followed in that list. */
#define S_ROOMS_MAX     20000
#define S_PROBES        200     /* admin round trips, each state */
#define S_STEP_MS       1000    /* t0's step: progress well within stall_ms */
#define S_STEPS         100000  /* the most a request may ask: about a day */
#define S_SLOT          4096    /* the smallest slot; a room takes one per
                                   tensor */
#define S_WINDOW        512     /* submits not yet answered */
#define S_POLL_MS       100     /* between two looks at the controller */
#define S_CALL_MS       5000    /* one admin request */
#define S_HEARTBEAT_MS  200
/* Generous: a daemon loading thousands of rooms on a busy machine has
 * gone 2 s without a heartbeat, and a t0 declared dead drops them. */
#define S_DEAD_MS       10000

enum { F_MOVED = 1, F_ENDED = 2 };

typedef struct {
	bool found;
	char state[16];
	int64_t rooms, incoming, waiting, ready, running, sending;
	int64_t silent_ms;              /* since its last heartbeat */
} s_inst_t;

typedef struct {
	long rooms;
	char run[PATH_MAX];
	bool made_run;                  /* ours to remove after a clean run */
	char endpoint[PATH_MAX + 16];
	pid_t ctl_pid, t0_pid;
	dg_client_t *cl;
	zhashx_t *index;                /* request id -> position + 1 */
	uint8_t *flags;                 /* per request, F_* */
	uint64_t seq_lo, seq_hi;        /* the submits' seqs */
	long accepted, refused, ended, done, failed, moved;
	long ended_early;               /* results before the kill */
	s_inst_t last;                  /* t0, as the controller last said */
	int64_t silent_max;             /* t0's longest silence seen */
	char not_up[16];                /* a state other than up seen, or "" */
	bool killed;
	int64_t killed_at, moved_at, ended_at;  /* zclock_mono; 0: not yet */
	char first_error[256];
} s_bench_t;


static void
s_usage(FILE *out)
{
	fprintf(out,
	    "usage: disagg bench rooms [--rooms N] [-d dir]\n"
	    "\n"
	    "Start a pipeline of null stages with two transformers, hold N "
	    "rooms\n"
	    "(default %d) in transformer t0, and report its threads and "
	    "resident\n"
	    "memory with 0 and N rooms, the round trip of an admin request "
	    "its\n"
	    "control loop answers, and, after t0 is killed, how many requests "
	    "move\n"
	    "to t1 and end, and how fast.\n"
	    "\n"
	    "  --rooms N     rooms to hold, 1..%d (default %d)\n"
	    "  -d, --dir DIR run folder for the topology, pids and logs "
	    "(default: a\n"
	    "                new one in $TMPDIR, removed after a clean run)\n",
	    S_ROOMS_DEFAULT, S_ROOMS_MAX, S_ROOMS_DEFAULT);
}

/* ---- the pipeline ------------------------------------------------------ */

/* Room for every room twice over (old rooms and new ones overlap in a
 * failover), two slots each at most: 16 KiB a room. */
static long
s_pool_mib(const s_bench_t *b)
{
	long mib = (b->rooms * 4 * S_SLOT + (1 << 20) - 1) >> 20;
	return mib > 16 ? mib : 16;
}

/* The ready queue holds all but a batch or two, and an assign past
 * queue_depth is refused. */
static long
s_depth(const s_bench_t *b)
{
	return b->rooms * 2 > 1024 ? b->rooms * 2 : 1024;
}

static int
s_write_ini(const s_bench_t *b, const char *path)
{
	long pool_mib = s_pool_mib(b), depth = s_depth(b);
	static const struct {
		const char *section;
		int workers;
		bool holds;
	} stages[] = {
		{ "encoder e0", 1, false },
		{ "transformer t0", 2, true },
		{ "transformer t1", 1, false },
		{ "decoder d0", 1, false },
	};
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fprintf(f,
	    "; rooms.ini: written by `disagg bench rooms` for one run.  t0\n"
	    "; holds the rooms (step_ms times each request's %d steps), t1 is\n"
	    "; where they go when t0 dies.  Every limit on rooms in flight is\n"
	    "; raised to %ld: max_pending and max_pending_per_client (one\n"
	    "; client submits them all), queue_depth (the ready queue holds\n"
	    "; them), and the pools.\n"
	    "\n"
	    "[controller]\n"
	    "listen  = ipc://%s/ctl.sock\n"
	    "publish = ipc://%s/pub.sock\n"
	    "policy  = least-loaded\n"
	    "max_pending = %ld\n"
	    "max_pending_per_client = %ld\n"
	    "heartbeat_ms = %dms\n"
	    "dead_after_ms = %dms\n"
	    "drain_timeout_ms = 2s\n"
	    "\n"
	    "[fabric]\n"
	    "provider = shm\n",
	    S_STEPS, b->rooms, b->run, b->run, b->rooms, b->rooms,
	    S_HEARTBEAT_MS, S_DEAD_MS);
	for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
		const char *name = strchr(stages[i].section, ' ') + 1;
		fprintf(f,
		    "\n[%s]\n"
		    "peer  = ipc://%s/%s.sock\n"
		    "stage = null\n"
		    "pool  = %ldM\n"
		    "slot  = %dK\n"
		    "workers = %d\n"
		    "max_batch = 64\n"
		    "queue_depth = %ld\n"
		    "drain_timeout_ms = 2s\n", stages[i].section, b->run, name,
		    pool_mib, S_SLOT / 1024, stages[i].workers, depth);
		if (stages[i].holds)
			fprintf(f, "step_ms = %dms\n", S_STEP_MS);
		/* The null decoder writes nothing, but the folder is made. */
		if (strcmp(name, "d0") == 0)
			fprintf(f, "output_dir = %s/out\n", b->run);
	}
	return fclose(f) == 0 ? 0 : -1;
}

/* The pid `up` recorded for `name`, or 0. */
static pid_t
s_pid_of(const s_bench_t *b, const char *name)
{
	char path[PATH_MAX + 16], line[256], n[64];
	int pid = 0, p;

	snprintf(path, sizeof path, "%s/pids", b->run);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "%63s %d", n, &p) == 2 && strcmp(n, name) == 0)
			pid = p;
	fclose(f);
	return (pid_t)pid;
}

/* Threads of a process, from /proc: -1 when it is gone. */
static long
s_threads(pid_t pid)
{
	char path[64];
	long n = 0;
	struct dirent *de;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return -1;
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* VmRSS in KiB, -1 when unknown. */
static long
s_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* ---- the controller ---------------------------------------------------- */

static void s_error(s_bench_t *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The first thing that went wrong, for the report. */
static void
s_error(s_bench_t *b, const char *fmt, ...)
{
	va_list ap;

	if (*b->first_error)
		return;
	va_start(ap, fmt);
	vsnprintf(b->first_error, sizeof b->first_error, fmt, ap);
	va_end(ap);
}

/* A message that was not the reply awaited: a submit's answer or a
 * result. */
static void
s_take(s_bench_t *b, dg_msg_t *m)
{
	char key[24];

	if (m->op == DG_OP_SUBMIT_OK) {
		long i = b->accepted++;
		snprintf(key, sizeof key, "%llu",
		    (unsigned long long)m->u.submit_ok.request);
		zhashx_update(b->index, key, (void *)(intptr_t)(i + 1));
	} else if (m->op == DG_OP_ERROR && m->seq >= b->seq_lo &&
	    m->seq <= b->seq_hi) {
		b->refused++;
		s_error(b, "submit refused: %s: %s", m->u.error.code,
		    m->u.error.message ? m->u.error.message : "");
	} else if (m->op == DG_OP_RESULT) {
		snprintf(key, sizeof key, "%llu",
		    (unsigned long long)m->u.result.request);
		intptr_t i = (intptr_t)zhashx_lookup(b->index, key);
		if (i <= 0 || (b->flags[i - 1] & F_ENDED))
			return;
		b->flags[i - 1] |= F_ENDED;
		b->ended++;
		b->ended_at = zclock_mono();
		if (!b->killed)
			b->ended_early++;
		if (dg_req_state_lookup(m->u.result.status) == DG_REQ_DONE) {
			b->done++;
			/* t0 finishes nothing: a request done after the kill
			 * ran on t1. */
			if (b->killed && !(b->flags[i - 1] & F_MOVED)) {
				b->flags[i - 1] |= F_MOVED;
				b->moved++;
				b->moved_at = b->ended_at;
			}
		} else {
			b->failed++;
			s_error(b, "request %llu %s: %s",
			    (unsigned long long)m->u.result.request,
			    m->u.result.status ? m->u.result.status : "?",
			    m->u.result.error ? m->u.result.error : "");
		}
	}
}

/* Read what arrives until `until` (zclock_mono). */
static void
s_pump(s_bench_t *b, int64_t until)
{
	for (;;) {
		int64_t left = until - zclock_mono();
		dg_msg_t *m = dg_client_next(b->cl, left > 0 ? (int)left : 0);
		if (!m)
			return;
		s_take(b, m);
		dg_msg_destroy(&m);
	}
}

/* One admin request; the reply if it is `want`, else NULL with the
 * reason noted. */
static dg_msg_t *
s_call(s_bench_t *b, dg_msg_t *m, dg_op_t want)
{
	if (!m)
		return NULL;
	dg_msg_t *r = dg_client_call(b->cl, m, S_CALL_MS);
	const char *what = dg_op_name(m->op);
	dg_msg_destroy(&m);
	if (!r) {
		s_error(b, "the controller did not answer '%s' within %d ms",
		    what, S_CALL_MS);
		return NULL;
	}
	if (r->op != want) {
		if (r->op == DG_OP_ERROR)
			s_error(b, "%s: %s: %s", what, r->u.error.code,
			    r->u.error.message ? r->u.error.message : "");
		dg_msg_destroy(&r);
		return NULL;
	}
	return r;
}

static int
s_instance(s_bench_t *b, const char *name, s_inst_t *out)
{
	dg_msg_t *r = s_call(b, dg_msg_new(DG_OP_INSTANCES),
	    DG_OP_INSTANCES_OK);

	memset(out, 0, sizeof *out);
	if (!r)
		return -1;
	const dg_instances_ok_msg_t *ok = &r->u.instances_ok;
	for (size_t i = 0; i < ok->n_instances; i++) {
		const dg_instance_row_t *x = &ok->instances[i];
		if (!x->name || strcmp(x->name, name) != 0)
			continue;
		out->found = true;
		snprintf(out->state, sizeof out->state, "%s",
		    x->state ? x->state : "?");
		out->rooms = x->rooms;
		out->incoming = x->incoming;
		out->waiting = x->waiting;
		out->ready = x->ready;
		out->running = x->running;
		out->sending = x->sending;
		out->silent_ms = x->heartbeat_age_ms;
	}
	dg_msg_destroy(&r);
	return 0;
}

static int
s_drain(s_bench_t *b, const char *name, bool drain)
{
	dg_msg_t *m = dg_msg_new(drain ? DG_OP_DRAIN : DG_OP_UNDRAIN);

	if (m && drain)
		m->u.drain.name = name;
	else if (m)
		m->u.undrain.name = name;
	dg_msg_t *r = s_call(b, m, drain ? DG_OP_DRAIN_OK : DG_OP_UNDRAIN_OK);
	int rc = r ? 0 : -1;
	dg_msg_destroy(&r);
	return rc;
}

/* Until instance `name` is in `state` or the deadline; 0 when it is. */
static int
s_wait_state(s_bench_t *b, const char *name, const char *state,
    int64_t deadline)
{
	s_inst_t in;

	while (!dg_bench_stop) {
		int64_t t = zclock_mono();
		if (s_instance(b, name, &in) == 0 && in.found &&
		    strcmp(in.state, state) == 0)
			return 0;
		if (t >= deadline)
			break;
		s_pump(b, t + S_POLL_MS < deadline ? t + S_POLL_MS : deadline);
	}
	return -1;
}

static int
s_cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, c = *(const int64_t *)y;
	return (a > c) - (a < c);
}

/* `threads NAME`, relayed by the controller and answered by the stage's
 * control loop, S_PROBES times: p50 and p99 in microseconds. */
static int
s_probe(s_bench_t *b, const char *name, int64_t *p50, int64_t *p99)
{
	int64_t us[S_PROBES];

	for (int i = 0; i < S_PROBES && !dg_bench_stop; i++) {
		dg_msg_t *m = dg_msg_new(DG_OP_THREADS);
		if (m)
			m->u.threads.name = name;
		int64_t t = zclock_usecs();
		dg_msg_t *r = s_call(b, m, DG_OP_THREADS_OK);
		us[i] = zclock_usecs() - t;
		if (!r)
			return -1;
		dg_msg_destroy(&r);
	}
	if (dg_bench_stop)
		return -1;
	qsort(us, S_PROBES, sizeof us[0], s_cmp_i64);
	*p50 = us[S_PROBES / 2];
	*p99 = us[S_PROBES * 99 / 100];
	return 0;
}

/* The controller's live rooms on t1: those requests have moved.  Only
 * t1's, so that the reply stays small while most rooms are elsewhere. */
static int
s_scan_t1(s_bench_t *b)
{
	dg_msg_t *m = dg_msg_new(DG_OP_ROOMS);
	char key[24];

	if (m)
		m->u.rooms.name = "t1";
	dg_msg_t *r = s_call(b, m, DG_OP_ROOMS_OK);
	if (!r)
		return -1;
	const dg_rooms_ok_msg_t *ok = &r->u.rooms_ok;
	for (size_t i = 0; i < ok->n_rooms; i++) {
		snprintf(key, sizeof key, "%llu",
		    (unsigned long long)ok->rooms[i].request);
		intptr_t k = (intptr_t)zhashx_lookup(b->index, key);
		if (k > 0 && !(b->flags[k - 1] & F_MOVED)) {
			b->flags[k - 1] |= F_MOVED;
			b->moved++;
			b->moved_at = zclock_mono();
		}
	}
	dg_msg_destroy(&r);
	return 0;
}

/* ---- the phases -------------------------------------------------------- */

/* What the controller says of t0 now: kept, with the longest silence
 * between its heartbeats and any state other than up. */
static void
s_look(s_bench_t *b)
{
	s_inst_t in;

	if (s_instance(b, "t0", &in) < 0 || !in.found)
		return;
	b->last = in;
	if (in.silent_ms > b->silent_max)
		b->silent_max = in.silent_ms;
	if (dg_inst_state_lookup(in.state) != DG_INST_UP && !*b->not_up)
		snprintf(b->not_up, sizeof b->not_up, "%s", in.state);
}

/* Submit every request, a window at a time; 0 when all were accepted. */
static int
s_submit(s_bench_t *b, int64_t deadline)
{
	long sent = 0;
	int64_t look = 0;

	while (!dg_bench_stop && b->accepted + b->refused < b->rooms) {
		while (sent < b->rooms && sent - b->accepted - b->refused <
		    S_WINDOW) {
			dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
			if (!m)
				return -1;
			m->u.submit = (dg_submit_msg_t){ .prompt = "rooms",
			    .frames = 1, .height = 16, .width = 16,
			    .steps = S_STEPS, .seed = sent };
			uint64_t seq = dg_client_send(b->cl, m);
			dg_msg_destroy(&m);
			if (!seq) {
				s_error(b, "cannot send a submit");
				return -1;
			}
			if (!b->seq_lo)
				b->seq_lo = seq;
			b->seq_hi = seq;
			sent++;
		}
		int64_t t = zclock_mono();
		if (t >= deadline) {
			s_error(b, "%ld submits not answered in time",
			    sent - b->accepted - b->refused);
			return -1;
		}
		if (t >= look) {
			s_look(b);
			look = t + S_POLL_MS;
		}
		s_pump(b, t + 10 < deadline ? t + 10 : deadline);
		if (b->refused)
			return -1;
	}
	return b->accepted == b->rooms ? 0 : -1;
}

/* Until t0 holds every room with its input here; 0 when it does.  A t0
 * declared dead meanwhile has dropped its rooms: no use waiting. */
static int
s_wait_held(s_bench_t *b, int64_t deadline)
{
	while (!dg_bench_stop && !b->ended_early && dg_inst_state_lookup(b->not_up) != DG_INST_DEAD) {
		int64_t t = zclock_mono();
		s_look(b);
		if (b->last.rooms == b->rooms &&
		    b->last.ready + b->last.running == b->rooms)
			return 0;
		if (t >= deadline)
			break;
		s_pump(b, t + S_POLL_MS < deadline ? t + S_POLL_MS : deadline);
	}
	return -1;
}

typedef struct {
	int64_t dead_ms, moved_ms, ended_ms;    /* -1: not seen */
	int64_t waited_ms;
} s_failover_t;

/* What a run measured; [0] with no rooms, [1] with all held. */
typedef struct {
	long threads[2], rss[2], crss[2];       /* -1: not measured */
	int64_t p50[2], p99[2];                 /* microseconds */
	bool probed[2];
	int64_t held_ms;                        /* -1: never all held */
	s_failover_t fo;
} s_figures_t;

/* SIGKILL t0 and follow its rooms until all moved and ended, or the
 * deadline. */
static void
s_failover(s_bench_t *b, s_failover_t *fo)
{
	int64_t t0 = zclock_mono();
	/* Death is noticed after dead_after_ms; then the rooms have to be
	 * placed again and run on t1. */
	int64_t deadline = t0 + S_DEAD_MS + 30000 + 2 * b->rooms;
	int64_t next = t0;

	*fo = (s_failover_t){ -1, -1, -1, 0 };
	b->killed = true;
	b->killed_at = t0;
	if (kill(b->t0_pid, SIGKILL) < 0) {
		s_error(b, "cannot kill t0: %s", strerror(errno));
		return;
	}
	bool reaped = false;
	while (!dg_bench_stop) {
		int64_t t = zclock_mono();
		if (!reaped)
			reaped = waitpid(b->t0_pid, NULL, WNOHANG) != 0;
		if (t >= next) {
			s_inst_t in;
			if (fo->dead_ms < 0 && s_instance(b, "t0", &in) == 0 &&
			    in.found && dg_inst_state_lookup(in.state) == DG_INST_DEAD)
				fo->dead_ms = zclock_mono() - t0;
			(void)s_scan_t1(b);
			next = t + S_POLL_MS;
		}
		t = zclock_mono();
		if (fo->moved_ms < 0 && b->moved == b->rooms)
			fo->moved_ms = t - t0;
		if (fo->ended_ms < 0 && b->ended == b->rooms)
			fo->ended_ms = t - t0;
		if ((fo->moved_ms >= 0 && fo->ended_ms >= 0) || t >= deadline)
			break;
		s_pump(b, next < deadline ? next : deadline);
	}
	fo->waited_ms = zclock_mono() - t0;
}

/* ---- the report -------------------------------------------------------- */

/* A figure of the table, "-" when it was not measured. */
static const char *
s_cell(char *buf, size_t size, double v, bool known, int decimals)
{
	if (!known)
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%.*f", decimals, v);
	return buf;
}

/* Everything between up and down; NULL, or what went wrong. */
static const char *
s_measure(s_bench_t *b, s_figures_t *f)
{
	/* 0 rooms: t1 drained first, so that what comes next lands on t0. */
	if (s_drain(b, "t1", true) < 0 ||
	    s_wait_state(b, "t1", "drained", zclock_mono() + 10000) < 0)
		return "t1 did not drain";
	f->threads[0] = s_threads(b->t0_pid);
	f->rss[0] = s_rss_kib(b->t0_pid);
	f->crss[0] = s_rss_kib(b->ctl_pid);
	f->probed[0] = s_probe(b, "t0", &f->p50[0], &f->p99[0]) == 0;
	if (!f->probed[0])
		return "an admin request to t0 was not answered";

	/* N rooms. */
	int64_t t = zclock_mono(), deadline = t + 60000 + 10 * b->rooms;
	if (s_submit(b, deadline) < 0)
		return "not every request was accepted";
	if (s_wait_held(b, deadline) < 0)
		return b->ended_early ? "requests ended while t0 held them" :
		    dg_inst_state_lookup(b->not_up) == DG_INST_DEAD ? "t0 was declared dead "
		    "while the rooms came in" :
		    "t0 did not come to hold every room in time";
	f->held_ms = zclock_mono() - t;
	f->threads[1] = s_threads(b->t0_pid);
	f->rss[1] = s_rss_kib(b->t0_pid);
	f->crss[1] = s_rss_kib(b->ctl_pid);
	f->probed[1] = s_probe(b, "t0", &f->p50[1], &f->p99[1]) == 0;
	if (!f->probed[1])
		return "an admin request to t0 was not answered";

	/* The failover. */
	if (s_drain(b, "t1", false) < 0 ||
	    s_wait_state(b, "t1", "up", zclock_mono() + 10000) < 0)
		return "t1 did not come back up";
	s_failover(b, &f->fo);
	if (b->moved < b->rooms)
		return "not every request was re-dispatched";
	if (b->done < b->rooms)
		return "not every request was done";
	return NULL;
}

/* The figures measured, whatever stopped the run. */
static void
s_report(const s_bench_t *b, const s_figures_t *f)
{
	char x[32], y[32];
	const s_failover_t *fo = &f->fo;

	snprintf(y, sizeof y, "%ld rooms", b->rooms);
	printf("\n  %-28s %12s %12s\n", "", "0 rooms", y);
	printf("  %-28s %12s %12s\n", "t0 threads",
	    s_cell(x, sizeof x, (double)f->threads[0], f->threads[0] >= 0, 0),
	    s_cell(y, sizeof y, (double)f->threads[1], f->threads[1] >= 0, 0));
	printf("  %-28s %12s %12s\n", "t0 RSS, MiB",
	    s_cell(x, sizeof x, f->rss[0] / 1024.0, f->rss[0] >= 0, 1),
	    s_cell(y, sizeof y, f->rss[1] / 1024.0, f->rss[1] >= 0, 1));
	printf("  %-28s %12s %12s\n", "controller RSS, MiB",
	    s_cell(x, sizeof x, f->crss[0] / 1024.0, f->crss[0] >= 0, 1),
	    s_cell(y, sizeof y, f->crss[1] / 1024.0, f->crss[1] >= 0, 1));
	printf("  %-28s %12s %12s\n", "`threads t0` RTT p50, ms",
	    s_cell(x, sizeof x, f->p50[0] / 1000.0, f->probed[0], 2),
	    s_cell(y, sizeof y, f->p50[1] / 1000.0, f->probed[1], 2));
	printf("  %-28s %12s %12s\n", "`threads t0` RTT p99, ms",
	    s_cell(x, sizeof x, f->p99[0] / 1000.0, f->probed[0], 2),
	    s_cell(y, sizeof y, f->p99[1] / 1000.0, f->probed[1], 2));
	if (f->rss[0] >= 0 && f->rss[1] >= 0 && f->crss[0] >= 0 &&
	    f->crss[1] >= 0)
		printf("\n  per room (RSS difference / %ld): t0 %.2f KiB, "
		    "controller %.2f KiB\n", b->rooms,
		    (double)(f->rss[1] - f->rss[0]) / (double)b->rooms,
		    (double)(f->crss[1] - f->crss[0]) / (double)b->rooms);
	const s_inst_t *l = &b->last;
	if (f->held_ms >= 0)
		printf("  held: %lld of %ld, %.1f s after the first submit "
		    "(t0 running %lld, ready %lld)\n", (long long)l->rooms,
		    b->rooms, f->held_ms / 1000.0, (long long)l->running,
		    (long long)l->ready);
	else if (l->found)
		printf("  not all held: t0 last had %lld rooms (incoming %lld, "
		    "waiting %lld, ready %lld, running %lld)\n",
		    (long long)l->rooms, (long long)l->incoming,
		    (long long)l->waiting, (long long)l->ready,
		    (long long)l->running);
	if (l->found)
		printf("  t0's longest silence seen while they came in: %.1f s "
		    "(heartbeat %d ms, dead after %d ms)%s%s\n",
		    b->silent_max / 1000.0, S_HEARTBEAT_MS, S_DEAD_MS,
		    *b->not_up ? "; it was " : "", *b->not_up ? b->not_up : "");
	if (!b->killed)
		return;
	printf("  failover, from the SIGKILL of t0 (followed for %.1f s, a "
	    "look every %d ms):\n", fo->waited_ms / 1000.0, S_POLL_MS);
	if (fo->dead_ms >= 0)
		printf("    %-22s %.2f s\n", "t0 declared dead",
		    fo->dead_ms / 1000.0);
	else
		printf("    %-22s not seen\n", "t0 declared dead");
	printf("    %-22s %ld of %ld", "re-dispatched to t1", b->moved,
	    b->rooms);
	if (fo->moved_ms >= 0)
		printf(", all by %.2f s\n", fo->moved_ms / 1000.0);
	else if (b->moved)
		printf(", the last by %.2f s; %ld never left t0\n",
		    (b->moved_at - b->killed_at) / 1000.0, b->rooms - b->moved);
	else
		printf("\n");
	printf("    %-22s %ld of %ld", "ended", b->ended, b->rooms);
	if (fo->ended_ms >= 0)
		printf(", all by %.2f s", fo->ended_ms / 1000.0);
	else if (b->ended && b->ended_at > b->killed_at)
		printf(", the last by %.2f s", (b->ended_at - b->killed_at) /
		    1000.0);
	printf(" (%ld done, %ld failed)\n", b->done, b->failed);
}

int
dg_bench_rooms(int argc, char *argv[])
{
	enum { OPT_ROOMS = 1000 };
	static const struct option opts[] = {
		{ "rooms", required_argument, NULL, OPT_ROOMS },
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	s_bench_t b = { .rooms = S_ROOMS_DEFAULT };
	const char *dir = NULL;
	char *end;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_ROOMS:
			errno = 0;
			b.rooms = strtol(optarg, &end, 10);
			if (end == optarg || *end || errno || b.rooms < 1 ||
			    b.rooms > S_ROOMS_MAX) {
				fprintf(stderr, "disagg bench rooms: --rooms wants "
				    "1..%d, got '%s'\n", S_ROOMS_MAX, optarg);
				return DG_EXIT_USAGE;
			}
			break;
		case 'd': dir = optarg; break;
		case 'h': s_usage(stdout); return DG_EXIT_OK;
		default: s_usage(stderr); return DG_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "disagg bench rooms: unexpected argument '%s'\n",
		    argv[optind]);
		s_usage(stderr);
		return DG_EXIT_USAGE;
	}
	if (dg_bench_run_open("disagg bench rooms", "rooms", dir, "/ctl.sock",
	    b.run, sizeof b.run, &b.made_run) < 0)
		return DG_EXIT_FAIL;

	char ini[PATH_MAX + 16];
	snprintf(ini, sizeof ini, "%s/rooms.ini", b.run);
	snprintf(b.endpoint, sizeof b.endpoint, "ipc://%s/ctl.sock", b.run);
	printf("disagg bench rooms: %ld rooms in transformer t0, run folder "
	    "%s\n", b.rooms, b.run);
	printf("  null stages, shm; t0: 2 workers, max_batch 64, step_ms %d ms, "
	    "%d steps a request\n  queue_depth %ld; pools %ld MiB in %d KiB "
	    "slots; max_pending(_per_client) %ld\n  heartbeat %d ms, dead "
	    "after %d ms\n", S_STEP_MS, S_STEPS, s_depth(&b), s_pool_mib(&b),
	    S_SLOT / 1024, b.rooms, S_HEARTBEAT_MS, S_DEAD_MS);
	fflush(stdout);
	if (s_write_ini(&b, ini) < 0) {
		fprintf(stderr, "disagg bench rooms: cannot write %s: %s\n", ini,
		    strerror(errno));
		return DG_EXIT_FAIL;
	}
	if (dg_bench_up_down(b.run, true, ini) != DG_EXIT_OK) {
		fprintf(stderr, "disagg bench rooms: the pipeline did not start; "
		    "see %s (up.out and the logs)\n", b.run);
		return DG_EXIT_FAIL;
	}
	/* up's handlers only end its own wait; ours end any wait below, and
	 * the pipeline is brought down all the same. */
	dg_bench_catch_stop();

	s_figures_t f = { .threads = { -1, -1 }, .rss = { -1, -1 },
	    .crss = { -1, -1 }, .held_ms = -1, .fo = { -1, -1, -1, 0 } };
	const char *failed = NULL;
	b.ctl_pid = s_pid_of(&b, "controller");
	b.t0_pid = s_pid_of(&b, "t0");
	b.cl = dg_client_new(b.endpoint);
	b.index = zhashx_new();
	b.flags = calloc((size_t)b.rooms, 1);
	if (!b.ctl_pid || !b.t0_pid || !b.cl || !b.index || !b.flags)
		failed = "cannot find the daemons' pids or reach the controller";
	else
		failed = s_measure(&b, &f);
	if (dg_bench_stop)
		failed = "interrupted";
	s_report(&b, &f);
	if (*b.first_error)
		printf("  first error: %s\n", b.first_error);
	fflush(stdout);

	/* A t0 still holding its batches would sleep through its drain:
	 * they take a day. */
	if (!b.killed && b.t0_pid > 0 && kill(b.t0_pid, SIGKILL) == 0)
		waitpid(b.t0_pid, NULL, 0);
	if (dg_bench_up_down(b.run, false, NULL) != DG_EXIT_OK && !failed)
		failed = "the pipeline did not stop cleanly";
	if (failed) {
		printf("\ndisagg bench rooms: FAILED: %s", failed);
		if (b.killed)
			printf(" (re-dispatched %ld of %ld, %ld done)", b.moved,
			    b.rooms, b.done);
		printf("; the logs are in %s\n", b.run);
	} else {
		printf("\ndisagg bench rooms: ok: %ld rooms held by t0 (%ld "
		    "threads, %.2f KiB each), all re-dispatched by %.2f s and "
		    "done by %.2f s after its SIGKILL\n", b.rooms, f.threads[1],
		    (double)(f.rss[1] - f.rss[0]) / (double)b.rooms,
		    f.fo.moved_ms / 1000.0, f.fo.ended_ms / 1000.0);
		if (b.made_run)
			dg_bench_run_remove(b.run);
	}
	dg_client_destroy(&b.cl);
	zhashx_destroy(&b.index);
	free(b.flags);
	return failed ? DG_EXIT_FAIL : DG_EXIT_OK;
}
