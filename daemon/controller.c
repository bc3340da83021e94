/*  controller.c: the controller role, a thin driver around the request
 *  lifecycle (lib/lifecycle.c; ARCHITECTURE.md, "The controller").
 *
 *  One ROUTER (`listen`) for clients, stage daemons and consoles, one
 *  PUB (`publish`) for snapshots and events.  This file owns the sockets,
 *  the clock and the journal: it decodes a message, checks who may send
 *  it, hands it to the core with the time, and carries out what the core
 *  asks through dg_lc_io_t.  Admin requests for another daemon are
 *  relayed (relay.c).  */
#define _GNU_SOURCE
#include <czmq.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "daemon.h"
#include "evring.h"
#include "fit.h"
#include "journal.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "relay.h"
#include "scaler.h"
#include "threads.h"
#include "wire.h"
#include "y4m.h"

typedef struct {
	dg_daemon_t *d;
	zsock_t *router, *pub;
	char pub_endpoint[DG_ENDPOINT_MAX];
	dg_lifecycle_t *lc;
	dg_registry_t *reg;             /* the core's */
	dg_relays_t *relays;
	dg_journal_t *journal;          /* NULL: no journal configured */
	dg_evring_t *events;            /* the newest, for later consoles */
	dg_scaler_t *scaler;            /* NULL: no [autoscale ROLE] */
	zlistx_t *held;                 /* s_held_t: replies awaiting sync */
	int64_t last_snapshot;
	int64_t last_tick;
	dg_tick_t tick;
	int64_t last_turn;              /* the loop's last handler's end */
	bool changed;
	bool beat;                      /* a heartbeat or stats since the
	                                   last snapshot */
	/* Memory handed back after a flood (s_trim). */
	uint64_t msgs_since_trim;
	int64_t last_msg, last_trim;
	size_t known_peak;
	/* GET /metrics, when [controller] metrics names where. */
	dg_metrics_t *metrics;
	dg_metrics_http_t *http;
	int64_t metrics_at;
} s_ctl_t;

/* The tick runs every TICK_MS while requests are live or replies wait
 * for the journal; otherwise only when something is due (dg_lc_next_wake:
 * an instance's silence, a deadline, a progress word, a finished
 * request to forget; a relay's timeout; the snapshot; the metrics), at
 * least every IDLE_TICK_MS.  A turn of the ROUTER that leaves work
 * brings the short tick back at once.  A tick this late past its due
 * time means the process did not run (stopped, paused, or its loop
 * blocked); a long tick that was planned is no pause. */
#define TICK_MS         20
#define IDLE_TICK_MS    5000
#define PAUSE_MS        1000
#define SNAPSHOT_SOON_MS 100
#define SNAPSHOT_BEAT_MS 1000
#define SNAPSHOT_EVERY_MS 5000

static void s_tick_soon(s_ctl_t *self);
static void s_publish_snapshot(s_ctl_t *self, int64_t now);

/* ---- replies held until the journal's sync ----------------------------- */

typedef struct {
	dg_route_t route;
	dg_buf_t buf;
} s_held_t;

static void
s_held_destroy(void **item)
{
	s_held_t *h = *item;

	if (h) {
		dg_route_clear(&h->route);
		dg_buf_free(&h->buf);
		free(h);
		*item = NULL;
	}
}

static void
s_hold(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	s_held_t *h = calloc(1, sizeof *h);

	if (!h || dg_proto_encode(m, &h->buf) < 0) {
		free(h);
		return;
	}
	dg_route_copy(&h->route, route);
	zlistx_add_end(self->held, h);
}

/* Sync the journal, then tell the clients.  A failed sync is logged:
 * the requests just accepted may not survive a restart. */
static void
s_release_held(s_ctl_t *self)
{
	if (!self->journal || zlistx_size(self->held) == 0) {
		if (self->journal && dg_journal_dirty(self->journal))
			(void)dg_journal_sync(self->journal);
		return;
	}
	if (dg_journal_sync(self->journal) < 0)
		dg_log_error("journal: sync failed: %s; the requests just "
		    "accepted may not survive a restart", strerror(errno));
	for (s_held_t *h = zlistx_first(self->held); h;
	    h = zlistx_next(self->held)) {
		zmsg_t *z = zmsg_new();
		zmsg_append(z, &(zframe_t *){ zframe_dup(h->route.identity) });
		if (h->route.delimiter)
			zmsg_append(z, &(zframe_t *){ zframe_new_empty() });
		zmsg_addmem(z, h->buf.data, h->buf.size);
		zmsg_send(&z, self->router);
	}
	zlistx_purge(self->held);
}

/* ---- what the core asks ------------------------------------------------ */

static void
s_io_to_client(void *arg, const dg_route_t *to, const dg_msg_t *m, bool held)
{
	s_ctl_t *self = arg;

	self->changed = true;
	if (held)
		s_hold(self, to, m);
	else
		dg_wire_send(self->router, to, m);
}

static void
s_io_client_error(void *arg, const dg_route_t *to, uint64_t seq,
    dg_proto_code_t code, const char *text)
{
	s_ctl_t *self = arg;
	dg_wire_send_error(self->router, to, seq, code, "%s", text);
}

static void
s_io_to_instance(void *arg, const dg_inst_t *in, const dg_msg_t *m)
{
	s_ctl_t *self = arg;

	self->changed = true;
	if (!in->identity)
		return;
	dg_route_t route = { .identity = in->identity };
	dg_wire_post(self->router, &route, m);
}

static void
s_io_publish(void *arg, dg_msg_t *m)
{
	s_ctl_t *self = arg;

	self->changed = true;
	if (m->op == DG_OP_EVENT) {
		m->u.event.ts_ms = zclock_time();
		/* Numbered before it goes, so that a console merging the
		 * kept ones with the live ones sees each once. */
		dg_evring_add(self->events, &m->u.event);
	}
	dg_wire_send(self->pub, NULL, m);
}

static int
s_io_journal_accept(void *arg, uint64_t id, int64_t timeout_ms,
    const dg_msg_t *submit)
{
	s_ctl_t *self = arg;
	return dg_journal_accept(self->journal, id, zclock_time() + timeout_ms,
	    submit);
}

static int
s_io_journal_end(void *arg, uint64_t id, const dg_msg_t *result)
{
	s_ctl_t *self = arg;
	return dg_journal_end(self->journal, id, result);
}

static int
s_io_journal_rooms(void *arg, uint64_t upto)
{
	s_ctl_t *self = arg;
	return dg_journal_reserve_rooms(self->journal, upto);
}

/* What no pool of a role can hold is refused at submit, not left to
 * wait out its deadline in a stage's incoming queue. */
static int
s_io_fits(void *arg, const dg_submit_msg_t *sub, char *why, size_t whysize)
{
	s_ctl_t *self = arg;
	const dg_request_t req = {
		.prompt = sub->prompt,
		.negative_prompt = sub->negative_prompt ?
		    sub->negative_prompt : "",
		.frames = sub->frames, .height = sub->height,
		.width = sub->width, .steps = sub->steps, .seed = sub->seed,
		.step_end = sub->steps,
	};
	return dg_fit_check(self->d->cfg, &req, why, whysize);
}

/* ---- admin ops answered here ------------------------------------------- */

/* Listings read in the chain's order, then by name. */
static const dg_pipeline_conf_t *s_chain;

static int
s_row_cmp(const void *a, const void *b)
{
	const dg_instance_row_t *x = a, *y = b;
	int i = dg_pipeline_index(s_chain, x->role);
	int j = dg_pipeline_index(s_chain, y->role);
	return i != j ? (i > j) - (i < j) : strcmp(x->name, y->name);
}

static dg_instance_row_t *
s_instance_rows(s_ctl_t *self, int64_t now, size_t *n)
{
	*n = dg_registry_count(self->reg);
	dg_instance_row_t *rows = calloc(*n + 1, sizeof *rows);

	for (size_t i = 0; rows && i < *n; i++)
		dg_registry_row(dg_registry_at(self->reg, i), now, &rows[i]);
	s_chain = dg_config_pipeline(self->d->cfg);
	if (rows)
		qsort(rows, *n, sizeof *rows, s_row_cmp);
	return rows;
}

static void
s_on_instances(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	dg_msg_t *ok = dg_msg_new(DG_OP_INSTANCES_OK);
	size_t n;
	dg_instance_row_t *rows = s_instance_rows(self, zclock_mono(), &n);

	if (ok && rows) {
		ok->seq = m->seq;
		ok->u.instances_ok.instances = rows;
		ok->u.instances_ok.n_instances = n;
		/* Where consoles and `disagg watch` subscribe. */
		ok->u.instances_ok.publish = self->pub_endpoint;
		dg_wire_send(self->router, route, ok);
	} else {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_NOMEM, "out of memory");
	}
	free(rows);
	dg_msg_destroy(&ok);
}

/* A reply the core made, or out of memory when it could not. */
static void
s_reply(s_ctl_t *self, const dg_route_t *route, uint64_t seq, dg_msg_t **ok)
{
	if (*ok)
		dg_wire_send(self->router, route, *ok);
	else
		dg_wire_send_error(self->router, route, seq,
		    DG_PROTO_E_NOMEM, "out of memory");
	dg_msg_destroy(ok);
}

/* The kept events, for a console that opened after them. */
static void
s_on_events(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	dg_msg_t *ok = dg_evring_reply(self->events, m->u.events.after,
	    m->seq);
	s_reply(self, route, m->seq, &ok);
}

static void
s_on_rooms(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	const char *name = m->u.rooms.name;

	/* A name no instance ever had is a typo, not an idle instance:
	 * not-found, as queues, drain and the others say.  A dead one
	 * keeps its row, and has no rooms. */
	if (name && *name && !dg_registry_find(self->reg, name)) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_NOT_FOUND, "no instance '%s'", name);
		return;
	}
	dg_msg_t *ok = dg_lc_rooms_reply(self->lc, zclock_mono(), name,
	    m->seq);
	s_reply(self, route, m->seq, &ok);
}

/* drain NAME; and drain --exit of the controller itself, which drains
 * and exits as on SIGTERM (how `disagg down` stops a controller it did
 * not start). */
static void
s_on_drain(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m,
    int64_t now)
{
	if (strcmp(m->u.drain.name, self->d->name) != 0 || !m->u.drain.exit) {
		dg_lc_drain(self->lc, now, route, m, true);
		return;
	}
	dg_msg_t *ok = dg_msg_new(DG_OP_DRAIN_OK);
	if (ok) {
		ok->seq = m->seq;
		ok->u.drain_ok.name = self->d->name;
		dg_wire_send(self->router, route, ok);
		dg_msg_destroy(&ok);
	}
	dg_daemon_drain(self->d, "drain --exit");
}

/* queues, threads, sockets, reload {name}: answered here for the
 * controller's own name (or none), else relayed to that daemon. */
static void
s_on_admin(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	const char *name = m->u.threads.name;   /* every one is a name_msg */
	dg_msg_t *reply = NULL;

	if (!name || !*name || strcmp(name, self->d->name) == 0) {
		switch (m->op) {
		case DG_OP_QUEUES:
			reply = dg_lc_queues_reply(self->lc, zclock_mono(),
			    self->d->name, m->seq);
			break;
		case DG_OP_THREADS:
			reply = dg_admin_threads(self->d->name, m->seq);
			break;
		case DG_OP_SOCKETS:
			reply = dg_admin_sockets(self->d->name, m->seq, NULL);
			break;
		default:
			reply = dg_admin_reload(self->d, m->seq);
			break;
		}
		s_reply(self, route, m->seq, &reply);
		return;
	}
	dg_inst_t *in = dg_registry_find(self->reg, name);
	if (!in || in->state == DG_INST_DEAD || !in->identity) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_NOT_FOUND, "no live instance '%s'", name);
		return;
	}
	dg_relays_forward(self->relays, zclock_mono(), in->name, in->identity,
	    route, m);
}

/* ---- the loop ---------------------------------------------------------- */

/* With curve = on, who may send what: the daemons' own ops only from
 * the deployment's key, drain/undrain/release/reload only from an admin
 * key.  Refusals are answered and logged. */
static bool
s_allowed(s_ctl_t *self, zsock_t *sock, dg_route_t *route, dg_msg_t *m)
{
	const char *need = NULL;

	switch (m->op) {
	case DG_OP_HELLO: case DG_OP_HEARTBEAT: case DG_OP_STATS:
	case DG_OP_BYE: case DG_OP_STAGE_DONE: case DG_OP_STAGE_FAILED:
	case DG_OP_ROOM_PHASE: case DG_OP_ASSIGN_OK: case DG_OP_RELEASE_OK:
	case DG_OP_PROGRESS: case DG_OP_QUEUES_OK: case DG_OP_THREADS_OK: case DG_OP_SOCKETS_OK:
	case DG_OP_RELOAD_OK:
		if (!dg_daemon_from_daemon(self->d, route->user))
			need = "the daemons' key";
		break;
	case DG_OP_DRAIN: case DG_OP_UNDRAIN: case DG_OP_RELEASE:
	case DG_OP_RELOAD:
		if (!dg_daemon_from_admin(self->d, route->user))
			need = "an admin key";
		break;
	default:
		break;
	}
	if (!need)
		return true;
	dg_log_warn("refused '%s' from key %s: it needs %s",
	    dg_op_name(m->op), route->user, need);
	dg_wire_send_error(sock, route, m->seq, DG_PROTO_E_DENIED,
	    "'%s' needs %s", dg_op_name(m->op), need);
	return false;
}

static void
s_on_message(s_ctl_t *self, zsock_t *sock, dg_route_t *route, dg_msg_t *m)
{
	int64_t now = zclock_mono();

	if (!s_allowed(self, sock, route, m))
		return;
	/* An idle fleet's heartbeats change little: their rows go out
	 * with a heartbeat at most every SNAPSHOT_BEAT_MS (s_on_router),
	 * not in a snapshot 100 ms after each. */
	if (m->op == DG_OP_HEARTBEAT || m->op == DG_OP_STATS)
		self->beat = true;
	else
		self->changed = true;
	self->msgs_since_trim++;
	self->last_msg = now;
	switch (m->op) {
	case DG_OP_SUBMIT: dg_lc_submit(self->lc, now, route, m); break;
	case DG_OP_STATUS: dg_lc_status(self->lc, now, route, m); break;
	case DG_OP_CANCEL:
		dg_lc_cancel(self->lc, now, route, m,
		    dg_daemon_from_admin(self->d, route->user));
		break;
	case DG_OP_HELLO: dg_lc_hello(self->lc, now, route, m); break;
	case DG_OP_HEARTBEAT: dg_lc_heartbeat(self->lc, now, route, m); break;
	case DG_OP_STATS: dg_lc_stats(self->lc, m); break;
	case DG_OP_BYE: dg_lc_bye(self->lc, now, m); break;
	case DG_OP_STAGE_DONE: dg_lc_stage_done(self->lc, now, m); break;
	case DG_OP_STAGE_FAILED: dg_lc_stage_failed(self->lc, now, m); break;
	case DG_OP_ROOM_PHASE: dg_lc_room_phase(self->lc, now, m); break;
	case DG_OP_PROGRESS: dg_lc_progress(self->lc, now, m); break;
	case DG_OP_ASSIGN_OK:
	case DG_OP_RELEASE_OK: break;
	case DG_OP_INSTANCES: s_on_instances(self, route, m); break;
	case DG_OP_DRAIN: s_on_drain(self, route, m, now); break;
	case DG_OP_UNDRAIN: dg_lc_drain(self->lc, now, route, m, false); break;
	case DG_OP_RELEASE: dg_lc_release(self->lc, now, route, m); break;
	case DG_OP_ROOMS: s_on_rooms(self, route, m); break;
	case DG_OP_EVENTS: s_on_events(self, route, m); break;
	case DG_OP_QUEUES:
	case DG_OP_THREADS:
	case DG_OP_SOCKETS:
	case DG_OP_RELOAD: s_on_admin(self, route, m); break;
	case DG_OP_QUEUES_OK:
	case DG_OP_THREADS_OK:
	case DG_OP_SOCKETS_OK:
	case DG_OP_RELOAD_OK:
	case DG_OP_ERROR:
		/* Never answer these: an error for an error would loop. */
		if (!dg_relays_reply(self->relays, route, m))
			dg_log_debug("dropped '%s' seq %llu: no request of "
			    "ours waits for it", dg_op_name(m->op),
			    (unsigned long long)m->seq);
		break;
	default:
		dg_wire_send_error(sock, route, m->seq,
		    DG_PROTO_E_UNKNOWN_OP, "the controller does not "
		    "serve '%s'", dg_op_name(m->op));
		break;
	}
}

static int
s_on_router(zloop_t *loop, zsock_t *sock, void *arg)
{
	s_ctl_t *self = arg;
	dg_route_t route = { 0 };
	dg_msg_t *m = NULL;
	dg_proto_err_t err;

	(void)loop;
	/* Drain what is queued, a bounded number per wake-up; the
	 * daemons' batches count once. */
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	for (int i = 0; i < 256; i++) {
		if (!(zsock_events(sock) & ZMQ_POLLIN))
			break;
		zmsg_t *bodies = NULL;
		int n = dg_wire_recv_batch(sock, &route, &bodies);
		if (n < 0)
			break;
		if (n == 0) {
			dg_wire_send_error(sock, &route, 0,
			    DG_PROTO_E_MALFORMED, "no frame after the "
			    "routing frames");
			zmsg_destroy(&bodies);
		}
		int rc;
		while ((rc = dg_wire_next(&bodies, &m, &err)) >= 0) {
			if (rc == 0) {
				dg_log_debug("bad frame: %s", err.message);
				dg_wire_send_decode_error(sock, &route, &err);
				continue;
			}
			s_on_message(self, sock, &route, m);
			dg_msg_destroy(&m);
		}
		dg_route_clear(&route);
	}
	s_release_held(self);
	/* Heartbeats' rows ride along with a heartbeat's own turn: no
	 * wake-up of their own. */
	int64_t now = zclock_mono();
	if (self->beat && !self->changed &&
	    now - self->last_snapshot >= SNAPSHOT_BEAT_MS)
		s_publish_snapshot(self, now);
	dg_wire_uncork();
	s_tick_soon(self);
	self->last_turn = zclock_mono();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}

static void
s_publish_snapshot(s_ctl_t *self, int64_t now)
{
	dg_msg_t *m = dg_msg_new(DG_OP_SNAPSHOT);
	size_t n;
	dg_instance_row_t *rows = s_instance_rows(self, now, &n);
	dg_lc_counts_t c;

	dg_lc_counts(self->lc, &c);
	if (m && rows) {
		m->u.snapshot.ts_ms = zclock_time();
		m->u.snapshot.instances = rows;
		m->u.snapshot.n_instances = n;
		m->u.snapshot.pending = c.pending;
		m->u.snapshot.active = c.active;
		m->u.snapshot.done = c.done;
		m->u.snapshot.failed = c.failed;
		m->u.snapshot.cancelled = c.cancelled;
		dg_wire_send(self->pub, NULL, m);
	}
	free(rows);
	dg_msg_destroy(&m);
	self->changed = false;
	self->beat = false;
	self->last_snapshot = now;
}

/* glibc keeps what a flood allocated and freed (requests, replies,
 * ZeroMQ's queues) mapped: the controller stayed at 295 MB after one
 * that took it from 16.  Give it back once the flood is over: when the
 * messages stop, or when the requests kept for `status` fall to half
 * their peak (keep_finished_ms later).  At most every 5 s, and never
 * while idle: malloc_trim walks the heap. */
#define TRIM_QUIET_MS 1000
#define TRIM_EVERY_MS 5000

static void
s_trim(s_ctl_t *self, int64_t now)
{
	dg_lc_counts_t c;

	dg_lc_counts(self->lc, &c);
	if (c.known > self->known_peak)
		self->known_peak = c.known;
	if (now - self->last_trim < TRIM_EVERY_MS)
		return;
	bool quiet = self->msgs_since_trim > 0 &&
	    now - self->last_msg >= TRIM_QUIET_MS;
	bool forgot = self->known_peak >= 1000 &&
	    c.known <= self->known_peak / 2;
	if (!quiet && !forgot)
		return;
	malloc_trim(0);
	self->last_trim = now;
	self->msgs_since_trim = 0;
	self->known_peak = c.known;
}

/* What a scrape gets: written by the loop, at most a second old. */
#define METRICS_EVERY_MS 1000

static void
s_metrics(s_ctl_t *self, int64_t now)
{
	size_t len;

	if (!self->http || (self->metrics_at &&
	    now - self->metrics_at < METRICS_EVERY_MS))
		return;
	self->metrics_at = now;
	dg_metrics_reset(self->metrics);
	dg_lc_metrics(self->lc, self->d->name, self->metrics);
	const char *text = dg_metrics_text(self->metrics, &len);
	if (text)
		dg_metrics_http_publish(self->http, text, len);
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg);

static int64_t
s_tick_due(s_ctl_t *self, int64_t now)
{
	dg_lc_counts_t c;

	dg_lc_counts(self->lc, &c);
	/* The autoscaler reaps and watches what it started: every tick. */
	if (c.active > 0 || zlistx_size(self->held) > 0 || self->scaler)
		return now + TICK_MS;
	int64_t due = now + IDLE_TICK_MS;
	int64_t t = dg_lc_next_wake(self->lc, now);
	if (t < due)
		due = t;
	if ((t = dg_relays_next(self->relays)) < due)
		due = t;
	t = self->last_snapshot + (self->changed ? SNAPSHOT_SOON_MS :
	    SNAPSHOT_EVERY_MS);
	if (t < due)
		due = t;
	if (self->http && (t = self->metrics_at + METRICS_EVERY_MS) < due)
		due = t;
	return due > now ? due : now + 1;
}

/* After a turn: a long tick comes forward when the turn left work. */
static void
s_tick_soon(s_ctl_t *self)
{
	int64_t now = zclock_mono();

	dg_tick_sooner(&self->tick, now, s_tick_due(self, now));
}

static int
s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
	s_ctl_t *self = arg;
	int64_t now = zclock_mono();

	(void)loop;
	(void)timer_id;
	/* One-shot: it is gone; the next is armed at the end. */
	dg_tick_fired(&self->tick);
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	dg_relays_expire(self->relays, now);
	/* Late past its due time: the loop did not run since its last
	 * turn, and nothing it was sent meanwhile was read. */
	if (self->last_tick && now - self->tick.at > PAUSE_MS)
		dg_lc_paused(self->lc, now, now - self->last_turn);
	self->last_tick = now;
	if (dg_lc_next_wake(self->lc, now) <= now)
		dg_lc_tick(self->lc, now);
	if ((self->changed && now - self->last_snapshot >= SNAPSHOT_SOON_MS) ||
	    (self->beat && now - self->last_snapshot >= SNAPSHOT_BEAT_MS) ||
	    now - self->last_snapshot >= SNAPSHOT_EVERY_MS)
		s_publish_snapshot(self, now);
	/* Ends and room reservations of this turn reach the disk before
	 * the assigns that depend on them leave. */
	s_release_held(self);
	if (self->scaler) {
		dg_lc_counts_t counts;
		dg_lc_counts(self->lc, &counts);
		dg_scaler_tick(self->scaler, now, counts.pending);
	}
	dg_wire_uncork();
	s_trim(self, now);
	s_metrics(self, now);
	dg_thread_set(DG_THREAD_IDLE, 0);
	now = zclock_mono();
	dg_tick_arm(&self->tick, now, s_tick_due(self, now));
	self->last_turn = now;
	return 0;
}

/* ---- the autoscaler's ways out (scaler.h) ----------------------------- */

static void
s_scale_event(void *arg, const char *name, const char *message)
{
	dg_msg_t *m = dg_msg_new(DG_OP_EVENT);

	if (!m)
		return;
	m->u.event.kind = "scale";
	m->u.event.name = name;
	m->u.event.message = message;
	s_io_publish(arg, m);
	dg_msg_destroy(&m);
}

/* A journal record read at start. */
static void
s_replay(void *arg, uint64_t id, int64_t deadline_wall, dg_msg_t *m)
{
	s_ctl_t *self = arg;
	dg_lc_replay(self->lc, zclock_mono(), id, deadline_wall - zclock_time(),
	    m);
}

/* The highest request id among the files of the last stages' output
 * folders that this host can see: the first id of this run goes past
 * it, so that a run without a journal (or with a new one) never writes
 * over an earlier run's video.  A folder on another host is the
 * journal's to cover (disagg.ini(5), journal). */
static uint64_t
s_outputs_last_id(const dg_config_t *cfg, char *where, size_t size)
{
	size_t last_place = dg_config_pipeline(cfg)->nroles - 1;
	uint64_t last = 0;

	for (size_t i = 0; i < dg_config_stage_count(cfg); i++) {
		const dg_stage_conf_t *s = dg_config_stage_at(cfg, i);
		if ((size_t)s->index != last_place)
			continue;
		/* Empty is "out", as for the stage (dg_stage_output_dir). */
		const char *dir = *s->output_dir ? s->output_dir : "out";
		uint64_t id = dg_y4m_last_request(dir);
		if (id > last) {
			last = id;
			snprintf(where, size, "%s", dir);
		}
	}
	return last;
}

/* Request ids start past both the journal's last and the outputs. */
static void
s_set_ids(s_ctl_t *self, uint64_t journal_last, uint64_t rooms)
{
	char where[DG_PATH_MAX];
	uint64_t outputs = s_outputs_last_id(self->d->cfg, where,
	    sizeof where);

	dg_lifecycle_set_ids(self->lc, outputs > journal_last ? outputs :
	    journal_last, rooms);
	if (outputs > journal_last)
		dg_log_info("request ids start after %llu: the highest of the "
		    "files in %s", (unsigned long long)outputs, where);
}

static int
s_open_journal(s_ctl_t *self, const char *path)
{
	char why[512];

	self->journal = dg_journal_open(path, s_replay, self, why, sizeof why);
	if (!self->journal) {
		dg_log_error("%s", why);
		return -1;
	}
	/* Rooms a killed predecessor placed may still live on the stages
	 * for a moment: start past any it could have used. */
	s_set_ids(self, dg_journal_last_id(self->journal),
	    dg_journal_rooms(self->journal));
	dg_lc_counts_t c;
	dg_lc_counts(self->lc, &c);
	dg_log_info("journal %s: %llu accepted, unfinished requests replayed; "
	    "request ids continue after %llu", path,
	    (unsigned long long)c.replayed,
	    (unsigned long long)dg_journal_last_id(self->journal));
	return 0;
}

static int
s_bind(s_ctl_t *self, zsock_t *sock, const char *endpoint, const char *what)
{
	if (zsock_bind(sock, "%s", endpoint) < 0) {
		dg_log_error("cannot bind %s: %s", endpoint,
		    zmq_strerror(zmq_errno()));
		return -1;
	}
	dg_daemon_bound(self->d, sock, endpoint, what);
	dg_wire_register(sock, endpoint, true);
	return 0;
}

static int
s_start(dg_daemon_t *d, void **state)
{
	s_ctl_t *self = calloc(1, sizeof *self);
	const dg_controller_conf_t *c = dg_config_controller(d->cfg);

	if (!self)
		return -1;
	*state = self;
	self->d = d;
	self->held = zlistx_new();
	if (!self->held)
		return -1;
	zlistx_set_destructor(self->held, s_held_destroy);
	/* The epoch is this run's start: a console that sees it change
	 * knows the ids started again. */
	self->events = dg_evring_new((size_t)c->keep_events,
	    (uint64_t)zclock_time());
	if (!self->events)
		return -1;
	dg_lc_io_t io = {
		.arg = self, .to_client = s_io_to_client,
		.client_error = s_io_client_error,
		.to_instance = s_io_to_instance, .publish = s_io_publish,
		.fits = s_io_fits,
	};
	if (*c->journal) {
		io.journal_accept = s_io_journal_accept;
		io.journal_end = s_io_journal_end;
		io.journal_rooms = s_io_journal_rooms;
	}
	self->lc = dg_lifecycle_new(dg_config_pipeline(d->cfg), c, &io);
	if (!self->lc)
		return -1;
	self->reg = dg_lifecycle_registry(self->lc);
	if (*c->journal && s_open_journal(self, c->journal) < 0)
		return -1;
	if (!*c->journal)
		s_set_ids(self, 0, 0);
	if (*c->metrics) {
		char why[256];
		self->metrics = dg_metrics_new();
		self->http = dg_metrics_http_new(c->metrics, why, sizeof why);
		if (!self->metrics || !self->http) {
			dg_log_error("%s", self->http ? "out of memory" : why);
			return -1;
		}
		dg_log_info("metrics: http://%s/metrics", c->metrics);
	}
	self->router = zsock_new(ZMQ_ROUTER);
	self->pub = zsock_new(ZMQ_PUB);
	if (!self->router || !self->pub)
		return -1;
	self->relays = dg_relays_new(self->router);
	if (!self->relays)
		return -1;
	zsock_set_maxmsgsize(self->router, DG_PROTO_MAX_FRAME);
	zsock_set_sndhwm(self->router, 100000);
	zsock_set_rcvhwm(self->router, 100000);
	dg_daemon_server_sock(d, self->router);
	dg_daemon_server_sock(d, self->pub);
	if (s_bind(self, self->router, c->listen, "listen") < 0 ||
	    s_bind(self, self->pub, c->publish, "publish") < 0)
		return -1;
	const char *pe = zsock_endpoint(self->pub);
	snprintf(self->pub_endpoint, sizeof self->pub_endpoint, "%s",
	    pe ? pe : c->publish);
	dg_scaler_io_t sio = { .arg = self, .event = s_scale_event,
	    .to_instance = s_io_to_instance };
	bool nomem;
	self->scaler = dg_scaler_new(d->cfg, self->reg, &sio, zclock_mono(),
	    &nomem);
	if (nomem)
		return -1;
	zloop_reader(d->loop, self->router, s_on_router, self);
	dg_tick_init(&self->tick, d->loop, s_on_tick, self);
	dg_tick_arm(&self->tick, zclock_mono(), zclock_mono() + TICK_MS);
	dg_log_info("listening on %s, publishing on %s, policy %s, chain %s",
	    c->listen, c->publish, dg_policy_name(c->policy),
	    dg_config_pipeline(d->cfg)->stages);
	return 0;
}

static void
s_drain(void *state)
{
	s_ctl_t *self = state;
	dg_lc_draining(self->lc);
	dg_scaler_stop(self->scaler);
	s_tick_soon(self);
}

/* The drain's time is up: every live request ends now, failed with
 * "controller stopped", and the loop delivers the results before the
 * process goes. */
static void
s_expire(void *state)
{
	s_ctl_t *self = state;
	dg_lc_counts_t c;

	dg_lc_counts(self->lc, &c);
	dg_log_warn("stopping: %zu live requests end failed", c.active);
	dg_wire_cork();
	dg_lc_stop(self->lc, zclock_mono(), "controller stopped");
	s_release_held(self);
	dg_wire_uncork();
}

static bool
s_idle(void *state)
{
	s_ctl_t *self = state;
	dg_lc_counts_t c;

	dg_lc_counts(self->lc, &c);
	return c.active == 0;
}

static void
s_reload(void *state)
{
	s_ctl_t *self = state;
	const dg_controller_conf_t *c = dg_config_controller(self->d->cfg);

	dg_lifecycle_set_conf(self->lc, c);
	if (dg_evring_set_keep(self->events, (size_t)c->keep_events) < 0)
		dg_log_error("keep_events: out of memory; still %zu kept",
		    dg_evring_keep(self->events));
}

static void
s_stop(void **state)
{
	s_ctl_t *self = *state;

	if (!self)
		return;
	/* Whatever is left ends now, each with its result (and its end in
	 * the journal), however many there are. */
	if (self->lc && self->router) {
		dg_lc_counts_t c;
		dg_lc_counts(self->lc, &c);
		if (c.active)
			dg_log_warn("stopping: %zu live requests end failed",
			    c.active);
		dg_wire_cork();
		dg_lc_stop(self->lc, zclock_mono(), "controller stopped");
		s_release_held(self);
		dg_wire_uncork();
	}
	/* The results just sent must leave before the process does:
	 * ZeroMQ drops what is queued on a socket closed without linger
	 * (czmq's default), and thousands may be queued for a client that
	 * reads them slowly (on a loaded host, 10 s was seen to be too
	 * short for 5,000).  Bounded: a client that reads nothing delays
	 * the exit by at most this, well inside systemd's stop timeout. */
	if (self->router)
		zsock_set_linger(self->router, 30000);
	dg_metrics_http_destroy(&self->http);
	dg_metrics_destroy(&self->metrics);
	dg_relays_destroy(&self->relays);
	dg_scaler_destroy(&self->scaler);
	dg_lifecycle_destroy(&self->lc);
	zlistx_destroy(&self->held);
	dg_journal_destroy(&self->journal);
	dg_evring_destroy(&self->events);
	dg_wire_unregister(self->router);
	dg_wire_unregister(self->pub);
	zsock_destroy(&self->router);
	zsock_destroy(&self->pub);
	free(self);
	*state = NULL;
}

const dg_role_ops_t dg_controller_ops = {
	.start = s_start,
	.drain = s_drain,
	.idle = s_idle,
	.reload = s_reload,
	.expire = s_expire,
	.stop = s_stop,
};
