/*  stage.c: the stage role, a driver around the room lifecycle
 *  (lib/rooms.c; ARCHITECTURE.md, "The stage daemon").
 *
 *  One place of the pipeline's chain: the first stage takes the
 *  request's parameters, the last writes the output file, the others
 *  turn tensors into tensors.  This file owns the clock, the DEALER to
 *  the controller (hello, heartbeat, stats, bye; assign and release
 *  in), the transfer engine and the plugin; the sockets to other stages
 *  are peers.c's and the compute threads workers.c's.  Threads: this
 *  control loop, the transfer engine's progress and watchdog threads,
 *  and `workers` compute threads, whatever the number of rooms.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "daemon.h"
#include "log.h"
#include "peers.h"
#include "pool.h"
#include "proto.h"
#include "registry.h"
#include "rooms.h"
#include "stage_host.h"
#include "threads.h"
#include "version.h"
#include "wire.h"
#include "workers.h"
#include "xfer.h"
#include "stage_metrics.h"
#include "step_board.h"

/* What an idle stage's heartbeat says, to tell one that says nothing new. */
typedef struct {
	const char *state;              /* a wire name: one table's pointer */
	uint64_t free_slots, done, failed;
	bool quiet;                     /* the last two said the same */
} s_beat_said_t;

typedef struct {
	dg_daemon_t *d;
	const dg_stage_conf_t *conf;    /* refreshed on reload */
	const dg_stage_ops_t *ops;
	void *plugin;
	dg_pool_t *pool;
	dg_xfer_t *xfer;
	dg_rooms_t *rooms;
	dg_workers_t *workers;
	dg_peers_t *peers;
	zsock_t *ctl;                   /* DEALER to the controller */
	bool registered;
	int64_t last_hello, heartbeat_ms;
	int64_t quiet_beat_ms;          /* s_beat_every(): nothing to say */
	s_beat_said_t said;            /* what the last heartbeat said */
	bool draining;
	int64_t reexec_at;              /* restart in place at this time */
	bool test_wedge;                /* dg_daemon_test_wedge() */
	uint64_t seq;
	int64_t stats_at;
	uint64_t done_at_stats;
	dg_stage_metrics_t *metrics;    /* GET /metrics, when configured */
	int64_t steps_at;               /* the step board's last take */
	dg_tick_t tick;
} s_stage_t;

/* The plugin's env->step has no argument to say whose board: a daemon
 * runs one stage, so it is this process's. */
static dg_step_board_t *s_board;

static void
s_on_step(uint64_t room, int64_t step, int64_t steps)
{
	dg_thread_progress();
	(void)dg_step_board_set(s_board, room, step, steps);
}

static void
s_on_suspend(uint64_t room, int64_t step)
{
	dg_thread_progress();
	(void)dg_step_board_suspend(s_board, room, step);
}

static void
s_step_to_rooms(void *arg, uint64_t room, int64_t step, int64_t steps,
    int64_t suspended)
{
	if (suspended)
		dg_rooms_suspended(arg, room, suspended);
	if (step > 0)
		dg_rooms_step(arg, room, step, steps);
}

/* At most every 100 ms (ARCHITECTURE.md, "Progress"), and before a
 * batch's end is handled, so that its last step goes before stage.done. */
static void
s_take_steps(s_stage_t *self, int64_t now, bool now_or_never)
{
	if (!now_or_never && now - self->steps_at < 100)
		return;
	self->steps_at = now;
	dg_step_board_take(s_board, s_step_to_rooms, self->rooms);
}

/* ---- what the core asks ------------------------------------------------ */

static void
s_to_ctl(s_stage_t *self, dg_msg_t *m)
{
	m->seq = ++self->seq;
	dg_wire_post(self->ctl, NULL, m);
}

static void
s_io_to_controller(void *arg, dg_msg_t *m)
{
	s_stage_t *self = arg;

	if (m->op == DG_OP_STAGE_DONE && self->metrics)
		dg_stage_metrics_room(self->metrics, &m->u.stage_done);
	s_to_ctl(self, m);
}

static int
s_io_to_upstream(void *arg, const char *endpoint, dg_msg_t *m)
{
	s_stage_t *self = arg;
	return dg_peers_to_upstream(self->peers, endpoint, m);
}

static void
s_io_to_downstream(void *arg, const dg_route_t *to, dg_msg_t *m)
{
	s_stage_t *self = arg;
	dg_peers_to_downstream(self->peers, to, m);
}

static int
s_io_expect(void *arg, const dg_extent_t *ext, dg_manifest_msg_t *m,
    int64_t timeout_ms, uint64_t *id, char *why, size_t whysize)
{
	s_stage_t *self = arg;
	return dg_xfer_expect(self->xfer, ext, m, timeout_ms, id, why, whysize);
}

static int
s_io_send(void *arg, const dg_manifest_msg_t *m, const dg_extent_t *ext,
    const uint64_t *src, int64_t timeout_ms, uint64_t *id, char *why,
    size_t whysize)
{
	s_stage_t *self = arg;
	return dg_xfer_send(self->xfer, m, ext, src, timeout_ms, id, why,
	    whysize);
}

static int
s_io_cancel(void *arg, uint64_t id)
{
	s_stage_t *self = arg;
	return dg_xfer_cancel(self->xfer, id);
}

static void *
s_io_lease(void *arg, const dg_manifest_msg_t *m, void **ptrs)
{
	s_stage_t *self = arg;
	return dg_xfer_lease(self->xfer, m, ptrs);
}

static void
s_io_lease_drop(void *arg, void *lease)
{
	s_stage_t *self = arg;
	dg_xfer_lease_t *l = lease;
	dg_xfer_lease_drop(self->xfer, &l);
}

static int
s_io_send_placed(void *arg, const dg_manifest_msg_t *m, void *lease,
    int64_t timeout_ms, uint64_t *id, char *why, size_t whysize)
{
	s_stage_t *self = arg;
	dg_xfer_lease_t *l = lease;
	return dg_xfer_send_placed(self->xfer, m, &l, timeout_ms, id, why,
	    whysize);
}

static int
s_io_plan(void *arg, const dg_request_t *req, dg_tensor_plan_t *in,
    dg_tensor_plan_t *out, char *why, size_t whysize)
{
	s_stage_t *self = arg;
	return self->ops->plan(self->plugin, req, in, out, why, whysize);
}

static bool
s_io_worker_free(void *arg)
{
	s_stage_t *self = arg;
	return dg_workers_free(self->workers);
}

static void
s_io_run(void *arg, dg_room_batch_t *b)
{
	s_stage_t *self = arg;
	dg_workers_run(self->workers, b);
}

/* How long a first-place room waits for the manifest that lets it write
 * in place (lib/rooms.h manifest_wait_ms); ticks bound it to 20 ms. */
#define DG_MANIFEST_WAIT_MS 5

static void
s_rooms_conf(s_stage_t *self, dg_rooms_conf_t *c)
{
	*c = (dg_rooms_conf_t){
		.role = self->conf->role, .name = self->d->name,
		.index = self->conf->index,
		.places = dg_config_pipeline(self->d->cfg)->nroles,
		.expert = self->conf->expert, .boundary = self->conf->boundary,
		.queue_depth = self->conf->queue_depth,
		.overtake = self->conf->overtake,
		.transfer_timeout_ms =
		    dg_config_fabric(self->d->cfg)->transfer_timeout_ms,
		.max_batch = self->conf->max_batch,
		.verify = dg_config_fabric(self->d->cfg)->verify,
		.order = self->conf->order,
		/* fifo knows no priority: nothing preempts either. */
		.preempt = self->ops && self->ops->abi >= 5 &&
		    self->conf->order == DG_ORDER_SLACK,
		.manifest_wait_ms = dg_config_fabric(self->d->cfg)->zero_copy ?
		    DG_MANIFEST_WAIT_MS : 0,
	};
}

/* ---- events from the loop ---------------------------------------------- */

/* The tick runs every TICK_MS while the stage has rooms (their
 * deadlines, the step board, a restart in place), and otherwise only
 * when something is due: the next heartbeat, the next hello, at least
 * every IDLE_TICK_MS.  An idle stage so wakes twice a second, not 70
 * times; a turn that leaves rooms brings the short tick back at once. */
#define TICK_MS         20
#define IDLE_TICK_MS    1000
#define HELLO_EVERY_MS  1000

static int s_on_tick(zloop_t *loop, int timer_id, void *arg);

/* How long after the last heartbeat the next is due.  A stage with
 * no room whose last two heartbeats said the same (state, free slots,
 * requests done and failed) has only its life to report, and reports
 * it half as often: min(2 x heartbeat_ms, dead_after_ms / 3), so three
 * can still go before the controller calls it dead.  Each heartbeat
 * wakes two of the controller's threads, and on an idle fleet they are
 * nearly all of its cost (ARCHITECTURE.md, "Threads").  A room brings
 * heartbeat_ms back at once; any other change shows in the next. */
static int64_t
s_beat_every(const s_stage_t *self)
{
	if (!self->said.quiet || self->draining ||
	    dg_rooms_count(self->rooms) > 0)
		return self->heartbeat_ms;
	return self->quiet_beat_ms;
}

/* hello.ok's (or, until then, the configuration's) two durations. */
static void
s_set_beats(s_stage_t *self, int64_t heartbeat_ms, int64_t dead_after_ms)
{
	int64_t quiet = 2 * heartbeat_ms;

	if (quiet > dead_after_ms / 3)
		quiet = dead_after_ms / 3;
	self->heartbeat_ms = heartbeat_ms;
	self->quiet_beat_ms = quiet > heartbeat_ms ? quiet : heartbeat_ms;
}

static int64_t
s_tick_due(s_stage_t *self, int64_t now)
{
	if (self->reexec_at || self->draining ||
	    dg_rooms_count(self->rooms) > 0)
		return now + TICK_MS;
	int64_t due = now + IDLE_TICK_MS;
	if (self->stats_at + s_beat_every(self) < due)
		due = self->stats_at + s_beat_every(self);
	if (!self->registered && self->last_hello + HELLO_EVERY_MS < due)
		due = self->last_hello + HELLO_EVERY_MS;
	return due > now ? due : now + 1;
}

/* Every turn ends by moving what can move, and by bringing a long tick
 * forward when the turn left work. */
static void
s_turn_end(s_stage_t *self)
{
	int64_t now = zclock_mono();

	dg_rooms_pump(self->rooms, now);
	dg_tick_sooner(&self->tick, now, s_tick_due(self, now));
}

static void
s_on_peer_msg(void *arg, dg_msg_t **mp, dg_route_t *route, bool from_router)
{
	s_stage_t *self = arg;
	dg_msg_t *m = *mp;
	int64_t now = zclock_mono();
	char why[320];

	switch (m->op) {
	case DG_OP_MANIFEST: {
		uint64_t seq = m->seq;
		dg_proto_code_t code = dg_rooms_manifest(self->rooms, now, mp,
		    route, why, sizeof why);
		if (code != DG_PROTO_OK)
			dg_peers_error(self->peers, route, seq, code, why);
		break;
	}
	case DG_OP_TRANSFER_DONE:
		dg_rooms_transfer_done(self->rooms, now, m);
		break;
	case DG_OP_TRANSFER_FAILED:
		dg_rooms_transfer_failed(self->rooms, now, m);
		break;
	case DG_OP_ERROR:
		break;
	default:
		if (from_router) {
			snprintf(why, sizeof why, "a stage's peer endpoint does "
			    "not serve '%s'", dg_op_name(m->op));
			dg_peers_error(self->peers, route, m->seq,
			    DG_PROTO_E_UNKNOWN_OP, why);
		}
		break;
	}
}

static void
s_after_peers(void *arg)
{
	s_turn_end(arg);
}

static int
s_on_xfer(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
	s_stage_t *self = arg;
	dg_xfer_event_t ev;

	(void)loop;
	(void)item;
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	while (dg_xfer_next_event(self->xfer, &ev)) {
		if (self->metrics)
			dg_stage_metrics_xfer(self->metrics, &ev);
		dg_rooms_xfer_event(self->rooms, zclock_mono(), &ev);
	}
	s_turn_end(self);
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}

/* Batches back from the workers. */
static int
s_on_workers(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
	s_stage_t *self = arg;
	dg_room_batch_t *b;

	(void)loop;
	(void)item;
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	s_take_steps(self, zclock_mono(), true);
	while ((b = dg_workers_next_done(self->workers))) {
		if (self->metrics)
			dg_stage_metrics_batch(self->metrics, b);
		dg_rooms_batch_done(self->rooms, zclock_mono(), b);
	}
	s_turn_end(self);
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}

/* ---- the controller ---------------------------------------------------- */

static void
s_hello(s_stage_t *self)
{
	dg_msg_t *m = dg_msg_new(DG_OP_HELLO);
	dg_bin_t fabric[DG_XFER_MAX_RAILS];
	char host[DG_NAME_MAX];

	if (!m)
		return;
	if (*self->conf->host)
		snprintf(host, sizeof host, "%s", self->conf->host);
	else if (gethostname(host, sizeof host) < 0)
		snprintf(host, sizeof host, "localhost");
	int rails = dg_xfer_rails(self->xfer);
	for (int i = 0; i < rails; i++)
		fabric[i].data = dg_xfer_address(self->xfer, i, &fabric[i].size);
	dg_hello_msg_t *h = &m->u.hello;
	h->role = self->conf->role;
	h->name = self->d->name;
	h->host = host;
	h->pid = getpid();
	h->peer = self->conf->peer;
	h->fabric = fabric;
	h->n_fabric = (size_t)rails;
	h->provider = dg_xfer_provider(self->xfer);
	h->pool_bytes = dg_pool_size(self->pool);
	h->slots = dg_pool_slots(self->pool);
	h->workers = dg_workers_count(self->workers);
	h->version = DG_VERSION;
	self->last_hello = zclock_mono();
	s_to_ctl(self, m);
	dg_msg_destroy(&m);
}

/* The reply keeps the request's seq: the controller matches it to the
 * client that asked. */
static void
s_on_admin(s_stage_t *self, const dg_msg_t *m)
{
	dg_msg_t *reply = NULL;

	switch (m->op) {
	case DG_OP_QUEUES:
		reply = dg_rooms_queues_reply(self->rooms, zclock_mono(),
		    m->seq);
		break;
	case DG_OP_THREADS:
		reply = dg_admin_threads(self->d->name, m->seq);
		break;
	case DG_OP_SOCKETS:
		reply = dg_admin_sockets(self->d->name, m->seq, self->xfer);
		break;
	case DG_OP_RELOAD: reply = dg_admin_reload(self->d, m->seq); break;
	default: return;
	}
	if (!reply)
		reply = dg_admin_error(m->seq, DG_PROTO_E_NOMEM, "%s: out of "
		    "memory", self->d->name);
	if (reply)
		dg_wire_post(self->ctl, NULL, reply);
	dg_msg_destroy(&reply);
}

static void
s_on_ctl_msg(s_stage_t *self, dg_msg_t *m)
{
	int64_t now = zclock_mono();

	switch (m->op) {
	case DG_OP_HELLO_OK:
		if (!self->registered)
			dg_log_info("registered with the controller");
		self->registered = true;
		s_set_beats(self, m->u.hello_ok.heartbeat_ms,
		    m->u.hello_ok.dead_after_ms);
		break;
	case DG_OP_ASSIGN: dg_rooms_assign(self->rooms, now, m); break;
	case DG_OP_RELEASE: dg_rooms_release(self->rooms, now, m); break;
	case DG_OP_DRAIN: dg_daemon_drain(self->d, "drain"); break;
	case DG_OP_QUEUES:
	case DG_OP_THREADS:
	case DG_OP_SOCKETS:
	case DG_OP_RELOAD: s_on_admin(self, m); break;
	case DG_OP_ERROR:
		if (dg_proto_code_lookup(m->u.error.code) ==
		    DG_PROTO_E_NOT_FOUND) {
			/* The controller forgot us: it restarted.  Our rooms
			 * were its predecessor's; it places what it had
			 * accepted again from its journal, so drop them and
			 * free their memory now. */
			size_t n = self->registered ?
			    dg_rooms_drop_all(self->rooms) : 0;
			if (n)
				dg_log_warn("dropped %zu rooms: the controller "
				    "restarted", n);
			self->registered = false;
			s_hello(self);
		} else {
			dg_log_warn("controller: %s: %s",
			    m->u.error.code, m->u.error.message);
		}
		break;
	default:
		break;
	}
}

static int
s_on_ctl(zloop_t *loop, zsock_t *sock, void *arg)
{
	s_stage_t *self = arg;

	(void)loop;
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	for (int i = 0; i < 256 && (zsock_events(sock) & ZMQ_POLLIN); i++) {
		zmsg_t *bodies = NULL;
		dg_msg_t *m = NULL;
		dg_proto_err_t err;
		if (dg_wire_recv_batch(sock, NULL, &bodies) < 0)
			break;
		int rc;
		while ((rc = dg_wire_next(&bodies, &m, &err)) >= 0) {
			if (rc == 0)
				dg_log_warn("bad frame from the controller: %s",
				    err.message);
			else
				s_on_ctl_msg(self, m);
			dg_msg_destroy(&m);
		}
	}
	s_turn_end(self);
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}

/* ---- timers ------------------------------------------------------------ */

/* The longest a busy worker has gone without progress (0: none busy):
 * liveness by progress, not by mere existence. */
static int64_t
s_stalled_ms(s_stage_t *self)
{
	(void)self;
	return dg_threads_stalled_ms("worker");
}

/* The transfer engine is wedged inside the provider (xfer.c): its thread
 * cannot be stopped, only the process can.  Fail every room, say goodbye
 * so the controller moves the work at once, and start again in place:
 * exec replaces the image and with it the stuck thread; the pid stays,
 * so `disagg down` and supervisors keep track of it. */
static void
s_restart_if_wedged(s_stage_t *self, int64_t now)
{
	if (!self->reexec_at) {
		bool test = self->test_wedge && dg_rooms_count(self->rooms);
		if (!dg_xfer_wedged(self->xfer) && !test)
			return;
		if (test)
			dg_log_warn("DISAGG_TEST_WEDGE: acting as if the "
			    "fabric were wedged");
		dg_log_error("the fabric is wedged: failing %zu rooms and "
		    "restarting in place", dg_rooms_count(self->rooms));
		/* Goodbye first: the controller then places those rooms'
		 * requests elsewhere, or keeps them until we are back,
		 * instead of on us again while we go. */
		dg_msg_t *m = dg_msg_new(DG_OP_BYE);
		if (m) {
			m->u.bye.name = self->d->name;
			m->u.bye.reason = "fabric wedged; restarting";
			s_to_ctl(self, m);
			dg_msg_destroy(&m);
		}
		char why[128];
		snprintf(why, sizeof why, "%s: fabric wedged; restarting",
		    self->d->name);
		dg_rooms_fail_all(self->rooms, now, why);
		/* Let ZeroMQ's I/O thread deliver those first. */
		self->reexec_at = now + 300;
		return;
	}
	if (now < self->reexec_at)
		return;
	dg_daemon_reexec(self->d);
	dg_log_error("cannot restart in place: %s; exiting", strerror(errno));
	_exit(1);
}

static void
s_heartbeat(s_stage_t *self)
{
	dg_msg_t *h = dg_msg_new(DG_OP_HEARTBEAT);
	dg_pool_stats_t ps;

	if (!h)
		return;
	dg_pool_stats(self->pool, &ps);
	dg_heartbeat_msg_t *hb = &h->u.heartbeat;
	size_t rooms = dg_rooms_count(self->rooms);
	hb->name = self->d->name;
	hb->stalled_ms = s_stalled_ms(self);
	hb->state = dg_inst_state_name(self->draining ? (rooms ?
	    DG_INST_DRAINING : DG_INST_DRAINED) : dg_xfer_wedged(self->xfer) ||
	    hb->stalled_ms > self->conf->stall_ms ? DG_INST_UNHEALTHY :
	    DG_INST_UP);
	hb->incoming = (int64_t)dg_rooms_queued(self->rooms, DG_QUEUE_INCOMING);
	hb->waiting = (int64_t)dg_rooms_queued(self->rooms, DG_QUEUE_WAITING);
	hb->ready = (int64_t)dg_rooms_queued(self->rooms, DG_QUEUE_READY);
	hb->running = (int64_t)dg_rooms_queued(self->rooms, DG_QUEUE_RUNNING);
	hb->sending = (int64_t)dg_rooms_queued(self->rooms, DG_QUEUE_SENDING);
	hb->rooms = (int64_t)rooms;
	hb->free_slots = ps.slots_free;
	s_beat_said_t said = { .state = hb->state, .free_slots = ps.slots_free,
	    .done = dg_rooms_done(self->rooms),
	    .failed = dg_rooms_failed(self->rooms) };
	said.quiet = rooms == 0 && said.state == self->said.state &&
	    said.free_slots == self->said.free_slots &&
	    said.done == self->said.done && said.failed == self->said.failed;
	self->said = said;
	s_to_ctl(self, h);
	dg_msg_destroy(&h);
}

static void
s_stats(s_stage_t *self, int64_t now)
{
	dg_msg_t *st = dg_msg_new(DG_OP_STATS);

	if (!st)
		return;
	double secs = (double)(now - self->stats_at) / 1000.0;
	uint64_t done = dg_rooms_done(self->rooms);
	st->u.stats.name = self->d->name;
	st->u.stats.done = done;
	st->u.stats.failed = dg_rooms_failed(self->rooms);
	st->u.stats.rps = secs > 0 ? (double)(done - self->done_at_stats) /
	    secs : 0;
	/* Over the last minute (rooms.c), however busy. */
	st->u.stats.p50_us = dg_rooms_latency(self->rooms, now, 0.50) * 1000;
	st->u.stats.p99_us = dg_rooms_latency(self->rooms, now, 0.99) * 1000;
	s_to_ctl(self, st);
	dg_msg_destroy(&st);
	self->done_at_stats = done;
}

static void
s_tick(s_stage_t *self, int64_t now)
{
	s_restart_if_wedged(self, now);
	if (self->reexec_at)
		return;
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	if (!self->registered && now - self->last_hello >= HELLO_EVERY_MS)
		s_hello(self);
	if (now - self->stats_at >= s_beat_every(self)) {
		s_heartbeat(self);
		s_stats(self, now);
		self->stats_at = now;
	}
	dg_rooms_tick(self->rooms, now);
	s_take_steps(self, now, false);
	if (self->metrics)
		dg_stage_metrics_tick(self->metrics, now, self->rooms,
		    self->pool, self->xfer);
	s_turn_end(self);
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
}

static int
s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
	s_stage_t *self = arg;

	(void)loop;
	(void)timer_id;
	/* One-shot: it is gone; the next is armed below. */
	dg_tick_fired(&self->tick);
	s_tick(self, zclock_mono());
	int64_t now = zclock_mono();
	dg_tick_arm(&self->tick, now, s_tick_due(self, now));
	return 0;
}

/* ---- set-up ------------------------------------------------------------ */

static bool
s_all_local(const dg_config_t *cfg)
{
	for (size_t i = 0; i < dg_config_stage_count(cfg); i++) {
		const char *h = dg_config_stage_at(cfg, i)->host;
		if (*h && strcmp(h, "localhost") && strcmp(h, "127.0.0.1"))
			return false;
	}
	return true;
}

/* The plugin, with the pool it may want to know: 0 or -1. */
static int
s_plugin(s_stage_t *self)
{
	dg_daemon_t *d = self->d;
	char why[256];
	const int *opt_lines;
	const char *const *opts = dg_config_stage_options(d->cfg, self->conf,
	    &opt_lines);
	dg_stage_env_t env = {
		.abi = DG_STAGE_ABI, .role = self->conf->role,
		.name = d->name, .step_ms = self->conf->step_ms,
		.output_dir = self->conf->output_dir,
		.device = self->conf->memory == DG_MEMORY_CUDA ?
		    (int)self->conf->device : -1,
		.progress = dg_thread_progress,
		.step = s_on_step,
		.suspend = s_on_suspend,
		.stage = self->conf->stage,
		.python_path = self->conf->python_path,
		.memory = self->conf->memory == DG_MEMORY_CUDA ? "cuda" : "host",
		.config_file = dg_config_file(d->cfg),
		.options = opts, .option_lines = opt_lines,
		.pool_base = dg_pool_base(self->pool),
		.pool_bytes = dg_pool_size(self->pool),
		.expert = dg_expert_name(self->conf->expert),
		.place = self->conf->index,
		.places = (int)dg_config_pipeline(d->cfg)->nroles,
	};
	if (self->ops->init(&env, &self->plugin, why, sizeof why) < 0) {
		dg_log_error("stage '%s' init: %s", self->conf->stage, why);
		self->ops = NULL;
		return -1;
	}
	return 0;
}

static int
s_controller_sock(s_stage_t *self)
{
	dg_daemon_t *d = self->d;
	const char *listen = dg_config_controller(d->cfg)->listen;

	self->ctl = zsock_new(ZMQ_DEALER);
	if (!self->ctl)
		return -1;
	zsock_set_identity(self->ctl, d->name);
	zsock_set_sndhwm(self->ctl, 100000);
	zsock_set_rcvhwm(self->ctl, 100000);
	zsock_set_maxmsgsize(self->ctl, DG_PROTO_MAX_FRAME);
	dg_daemon_client_sock(d, self->ctl);
	if (zsock_connect(self->ctl, "%s", listen) < 0) {
		dg_log_error("cannot connect to the controller at %s", listen);
		return -1;
	}
	dg_wire_register(self->ctl, listen, false);
	zloop_reader(d->loop, self->ctl, s_on_ctl, self);
	return 0;
}

static int
s_start(dg_daemon_t *d, void **state)
{
	s_stage_t *self = calloc(1, sizeof *self);
	char why[256];

	if (!self)
		return -1;
	*state = self;
	self->d = d;
	self->test_wedge = dg_daemon_test_wedge(d);
	self->conf = dg_config_stage(d->cfg, d->name);
	s_set_beats(self, dg_config_controller(d->cfg)->heartbeat_ms,
	    dg_config_controller(d->cfg)->dead_after_ms);
	self->ops = dg_stage_find(self->conf->stage, why, sizeof why);
	if (!self->ops) {
		dg_log_error("stage '%s': %s", self->conf->stage, why);
		return -1;
	}
	dg_fabric_conf_t fabric = *dg_config_fabric(d->cfg);
	char prov[sizeof fabric.provider];
	snprintf(prov, sizeof prov, "%s", dg_xfer_provider_for(fabric.provider,
	    s_all_local(d->cfg)));
	snprintf(fabric.provider, sizeof fabric.provider, "%s", prov);
	self->pool = dg_xfer_pool_for(self->conf, prov, fabric.zero_copy, why,
	    sizeof why);
	if (!self->pool) {
		dg_log_error("pool: %s", why);
		return -1;
	}
	if (!(s_board = dg_step_board_new()))
		return -1;
	if (s_plugin(self) < 0)
		return -1;
	self->xfer = dg_xfer_new(&fabric, self->pool, *self->conf->host ?
	    self->conf->host : "127.0.0.1", why, sizeof why);
	if (!self->xfer) {
		dg_log_error("fabric: %s", why);
		return -1;
	}
	self->workers = dg_workers_new((int)self->conf->workers, self->ops,
	    self->plugin);
	if (!self->workers)
		return -1;
	dg_rooms_io_t io = {
		.arg = self, .to_controller = s_io_to_controller,
		.to_upstream = s_io_to_upstream,
		.to_downstream = s_io_to_downstream, .expect = s_io_expect,
		.send = s_io_send, .cancel = s_io_cancel, .plan = s_io_plan,
		.lease = s_io_lease, .lease_drop = s_io_lease_drop,
		.send_placed = s_io_send_placed,
		.worker_free = s_io_worker_free, .run = s_io_run,
	};
	dg_rooms_conf_t rc;
	s_rooms_conf(self, &rc);
	self->rooms = dg_rooms_new(&rc, self->pool, &io);
	if (!self->rooms)
		return -1;
	if (s_controller_sock(self) < 0)
		return -1;
	self->peers = dg_peers_new(d, self->conf->peer, s_on_peer_msg,
	    s_after_peers, self);
	if (!self->peers)
		return -1;
	if (*self->conf->metrics) {
		self->metrics = dg_stage_metrics_new(self->conf->metrics,
		    self->conf->role, d->name, why, sizeof why);
		if (!self->metrics) {
			dg_log_error("%s", why);
			return -1;
		}
		dg_log_info("metrics: http://%s/metrics", self->conf->metrics);
	}
	zmq_pollitem_t xi = { .fd = dg_xfer_fd(self->xfer), .events = ZMQ_POLLIN };
	zloop_poller(d->loop, &xi, s_on_xfer, self);
	zmq_pollitem_t wi = { .fd = dg_workers_fd(self->workers),
	    .events = ZMQ_POLLIN };
	zloop_poller(d->loop, &wi, s_on_workers, self);
	dg_tick_init(&self->tick, d->loop, s_on_tick, self);
	s_hello(self);
	dg_tick_arm(&self->tick, zclock_mono(), zclock_mono() + TICK_MS);
	dg_log_info("%s stage '%s', peer %s, %d workers, fabric %s",
	    self->conf->role, self->ops->name, self->conf->peer,
	    dg_workers_count(self->workers), dg_xfer_provider(self->xfer));
	return 0;
}

static void
s_drain(void *state)
{
	s_stage_t *self = state;
	self->draining = true;
	if (self->rooms)
		dg_rooms_drain(self->rooms);
}

static bool
s_idle(void *state)
{
	s_stage_t *self = state;
	return !self->rooms || dg_rooms_count(self->rooms) == 0;
}

static void
s_reload(void *state)
{
	s_stage_t *self = state;
	dg_rooms_conf_t rc;

	self->conf = dg_config_stage(self->d->cfg, self->d->name);
	s_rooms_conf(self, &rc);
	dg_rooms_set_conf(self->rooms, &rc);
}

static void
s_stop(void **state)
{
	s_stage_t *self = *state;

	if (!self)
		return;
	if (self->ctl && self->registered) {
		dg_msg_t *m = dg_msg_new(DG_OP_BYE);
		if (m) {
			m->u.bye.name = self->d->name;
			m->u.bye.reason = self->draining ? "drained" : "stopped";
			s_to_ctl(self, m);
			dg_msg_destroy(&m);
		}
	}
	/* Threads first: then no batch is out, and the rooms (with the
	 * batches never run) are freed with nothing else touching them. */
	dg_workers_destroy(&self->workers);
	dg_step_board_destroy(&s_board);
	dg_stage_metrics_destroy(&self->metrics);
	dg_rooms_destroy(&self->rooms);
	dg_xfer_destroy(&self->xfer);
	dg_pool_destroy(&self->pool);
	if (self->ops && self->ops->fini)
		self->ops->fini(self->plugin);
	dg_peers_destroy(&self->peers);
	dg_wire_unregister(self->ctl);
	zsock_destroy(&self->ctl);
	free(self);
	*state = NULL;
}

const dg_role_ops_t dg_stage_role_ops = {
	.start = s_start,
	.drain = s_drain,
	.idle = s_idle,
	.reload = s_reload,
	.stop = s_stop,
};
