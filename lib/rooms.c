/*  rooms.c: the room lifecycle, a stage daemon's I/O-free core
 *  (rooms.h).  Everything is demultiplexed by (room, phase): the phase
 *  is the hop of the chain, data coming to place i on hop i and leaving
 *  on hop i + 1.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "config.h"
#include "lifecycle.h"
#include "log.h"
#include "manifest.h"
#include "fit.h"
#include "rooms.h"
#include "window.h"
#include "stage_host.h"

static const char *const s_queue_names[DG_QUEUE_COUNT] =
	{ "incoming", "waiting", "ready", "running", "sending" };

struct dg_room {
	uint64_t room, request;
	int64_t attempt;
	dg_request_t req;
	char *prompt, *negative;
	char up_ep[DG_ENDPOINT_MAX];    /* where our manifest goes */
	dg_tensor_plan_t in_plan, out_plan;
	dg_extent_t in_ext, out_ext;
	bool has_in, has_out;
	dg_tensor_row_t in_rows[DG_STAGE_MAX_TENSORS];
	int64_t in_shape[DG_STAGE_MAX_TENSORS][DG_STAGE_MAX_DIMS];
	uint64_t recv_id, send_id;
	bool receiving, sending;
	bool data_here, done_msg;
	uint64_t sums[DG_STAGE_MAX_TENSORS];
	size_t nsums;
	dg_msg_t *down;                 /* the downstream manifest */
	dg_route_t down_route;          /* its sender, for transfer.done */
	dg_room_queue_t queue;
	void *qhandle;
	int64_t created, queued_at, deadline;
	int64_t ready_at;               /* input here: the stage's own time */
	/* Where its time went (stage.done): input reserved, handed to a
	 * worker, back from it, its send started (0: not yet); the
	 * upstream's write as it timed it, the plugin's run, our write. */
	int64_t reserved_at, run_at, ran_at, send_at;
	int64_t in_us, compute_us, out_us;
	int64_t step, steps;            /* its last progress, 0 of 0: none */
	int64_t priority;               /* the assign's, 0..9 */
	int64_t suspended_at;           /* its worker suspended it: the step */
	int64_t resumed_wait;           /* ms waited ready after suspensions */
	dg_room_batch_t *batch;         /* while in a worker */
	bool in_worker, released, failed;
	/* Rooms that took pool space while this one waited for it: past
	 * conf.overtake nothing passes it (s_pass). */
	int64_t overtaken, mark;
	_Atomic int stop;               /* tells the plugin to give up */
	dg_stage_item_t item;
	uint64_t out_offsets[DG_STAGE_MAX_TENSORS];
	/* Zero copy: laid out once; placed, its output goes straight into
	 * the receiver's extent (out_at), held by `lease` until sent. */
	bool laid, placed;
	void *lease;
	void *out_at[DG_STAGE_MAX_TENSORS];
};

/* A manifest that came before the assign it belongs to. */
typedef struct {
	dg_msg_t *msg;
	dg_route_t route;
	int64_t until;
} s_early_t;

/* The span of the p50 and p99 of `stats`: rooms that ended in the last
 * minute, however many (every room is counted in done or failed). */
#define LAT_SPAN_MS 60000

struct _dg_rooms_t {
	dg_rooms_conf_t conf;
	char role[DG_NAME_MAX], name[DG_NAME_MAX];
	dg_pool_t *pool;
	dg_rooms_io_t io;
	zhashx_t *rooms;                /* room id -> dg_room_t */
	zhashx_t *early;                /* room id -> s_early_t */
	/* Output memory of rooms that ended while their send was out: the
	 * engine may still read it until the send's own event, so it goes
	 * back to the pool then, not at once.  Send id -> dg_extent_t. */
	zhashx_t *sent_from;
	zlistx_t *queues[DG_QUEUE_COUNT];
	bool draining;
	uint64_t done, failed, refused, suspensions;
	dg_window_t *lat;               /* room durations, LAT_SPAN_MS */
};

/* Manifests kept for rooms whose assign has not arrived yet: no more
 * than our queues can hold, and for at most this long. */
#define EARLY_MS 30000

const char *
dg_room_queue_name(dg_room_queue_t q)
{
	return q < DG_QUEUE_COUNT ? s_queue_names[q] : "?";
}

dg_stage_item_t *
dg_room_item(dg_room_t *room)
{
	return &room->item;
}

uint64_t
dg_room_id(const dg_room_t *room)
{
	return room->room;
}

static char *
s_key(char *buf, uint64_t id)
{
	snprintf(buf, 24, "%llu", (unsigned long long)id);
	return buf;
}

static bool
s_first(const dg_rooms_t *self)
{
	return self->conf.index == 0;
}

static bool
s_last(const dg_rooms_t *self)
{
	return (size_t)self->conf.index + 1 == self->conf.places;
}

static int
s_phase_in(const dg_rooms_t *self)
{
	return self->conf.index;
}

static int
s_phase_out(const dg_rooms_t *self)
{
	return self->conf.index + 1;
}

static size_t
s_early_max(const dg_rooms_t *self)
{
	return DG_QUEUE_COUNT * (size_t)self->conf.queue_depth;
}

/* ---- the object -------------------------------------------------------- */

static void
s_early_destroy(void **item)
{
	s_early_t *e = *item;

	if (!e)
		return;
	dg_msg_destroy(&e->msg);
	dg_route_clear(&e->route);
	free(e);
	*item = NULL;
}

dg_rooms_t *
dg_rooms_new(const dg_rooms_conf_t *conf, dg_pool_t *pool,
    const dg_rooms_io_t *io)
{
	dg_rooms_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->pool = pool;
	self->io = *io;
	dg_rooms_set_conf(self, conf);
	self->rooms = zhashx_new();
	self->early = zhashx_new();
	self->sent_from = zhashx_new();
	self->lat = dg_window_new(LAT_SPAN_MS);
	bool ok = self->rooms && self->early && self->sent_from && self->lat;
	for (int q = 0; q < DG_QUEUE_COUNT; q++)
		ok &= (self->queues[q] = zlistx_new()) != NULL;
	if (!ok) {
		dg_rooms_destroy(&self);
		return NULL;
	}
	zhashx_set_destructor(self->early, s_early_destroy);
	return self;
}

void
dg_rooms_set_conf(dg_rooms_t *self, const dg_rooms_conf_t *conf)
{
	self->conf = *conf;
	snprintf(self->role, sizeof self->role, "%s", conf->role);
	snprintf(self->name, sizeof self->name, "%s", conf->name);
	self->conf.role = self->role;
	self->conf.name = self->name;
}

static void s_room_free(dg_rooms_t *self, dg_room_t *r);

void
dg_rooms_destroy(dg_rooms_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_rooms_t *self = *self_p;
	dg_room_t *r;
	while (self->rooms && (r = zhashx_first(self->rooms))) {
		r->in_worker = false;
		s_room_free(self, r);
	}
	for (int q = 0; q < DG_QUEUE_COUNT; q++)
		zlistx_destroy(&self->queues[q]);
	dg_window_destroy(&self->lat);
	/* The engine is gone (or going): nothing reads them any more. */
	for (dg_extent_t *e = self->sent_from ?
	    zhashx_first(self->sent_from) : NULL; e;
	    e = zhashx_next(self->sent_from)) {
		dg_pool_free(self->pool, e);
		free(e);
	}
	zhashx_destroy(&self->sent_from);
	zhashx_destroy(&self->rooms);
	zhashx_destroy(&self->early);
	free(self);
	*self_p = NULL;
}

/* ---- rooms and queues -------------------------------------------------- */

static void
s_enqueue(dg_rooms_t *self, int64_t now, dg_room_t *r, dg_room_queue_t q)
{
	if (r->qhandle)
		zlistx_delete(self->queues[r->queue], r->qhandle);
	r->queue = q;
	r->queued_at = now;
	r->qhandle = zlistx_add_end(self->queues[q], r);
}

static void
s_room_free(dg_rooms_t *self, dg_room_t *r)
{
	char key[24];

	bool kept = false;
	if (r->receiving)
		kept = self->io.cancel(self->io.arg, r->recv_id) == 1;
	if (r->sending)
		(void)self->io.cancel(self->io.arg, r->send_id);
	if (r->lease)
		self->io.lease_drop(self->io.arg, r->lease);
	r->lease = NULL;
	if (r->has_in && !kept)
		dg_pool_free(self->pool, &r->in_ext);
	dg_extent_t *sent = r->sending && r->has_out ?
	    malloc(sizeof *sent) : NULL;
	if (sent) {
		*sent = r->out_ext;
		zhashx_insert(self->sent_from, s_key(key, r->send_id), sent);
	} else if (r->has_out) {
		dg_pool_free(self->pool, &r->out_ext);
	}
	if (r->qhandle)
		zlistx_delete(self->queues[r->queue], r->qhandle);
	dg_msg_destroy(&r->down);
	dg_route_clear(&r->down_route);
	zhashx_delete(self->rooms, s_key(key, r->room));
	free(r->prompt);
	free(r->negative);
	free(r);
}

/* Remove a room, unless a worker still holds it: then when it returns. */
static void
s_room_end(dg_rooms_t *self, dg_room_t *r)
{
	if (r->in_worker) {
		r->released = true;
		atomic_store(&r->stop, DG_STAGE_STOP);
		return;
	}
	s_room_free(self, r);
}

static void
s_phase(dg_rooms_t *self, dg_room_t *r, dg_room_phase_t phase)
{
	dg_msg_t *m = dg_msg_new(DG_OP_ROOM_PHASE);

	if (!m)
		return;
	m->u.room_phase.room = r->room;
	m->u.room_phase.request = r->request;
	m->u.room_phase.role = self->conf.role;
	m->u.room_phase.state = dg_room_phase_name(phase);
	self->io.to_controller(self->io.arg, m);
	dg_msg_destroy(&m);
}

static void
s_fail(dg_rooms_t *self, dg_room_t *r, bool retryable, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
s_fail(dg_rooms_t *self, dg_room_t *r, bool retryable, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (r->failed)
		return;
	r->failed = true;
	self->failed++;
	dg_log_warn("room=%llu request=%llu: %s", (unsigned long long)r->room,
	    (unsigned long long)r->request, why);
	dg_msg_t *m = dg_msg_new(DG_OP_STAGE_FAILED);
	if (m) {
		m->u.stage_failed.room = r->room;
		m->u.stage_failed.request = r->request;
		m->u.stage_failed.role = self->conf.role;
		m->u.stage_failed.reason = why;
		m->u.stage_failed.retryable = retryable;
		self->io.to_controller(self->io.arg, m);
		dg_msg_destroy(&m);
	}
	/* The peers free their side at once instead of at their deadline. */
	dg_msg_t *f = dg_msg_new(DG_OP_TRANSFER_FAILED);
	if (f) {
		f->u.transfer_failed.room = r->room;
		f->u.transfer_failed.reason = why;
		if (r->down) {
			f->u.transfer_failed.phase = s_phase_out(self);
			f->u.transfer_failed.gen = r->down->u.manifest.gen;
			self->io.to_downstream(self->io.arg, &r->down_route, f);
		}
		if (*r->up_ep && r->has_in) {
			f->u.transfer_failed.phase = s_phase_in(self);
			f->u.transfer_failed.gen = r->in_ext.gen;
			(void)self->io.to_upstream(self->io.arg, r->up_ep, f);
		}
		dg_msg_destroy(&f);
	}
	s_room_end(self, r);
}

static void
s_finished(dg_rooms_t *self, int64_t now, dg_room_t *r)
{
	/* This stage's own part: from its input being here (the assign,
	 * for the first stage) to its output delivered, so the timings of
	 * a result add up instead of nesting. */
	int64_t ms = now - (r->ready_at ? r->ready_at : r->created);
	dg_msg_t *m = dg_msg_new(DG_OP_STAGE_DONE);
	/* Waiting here: for input memory, for a worker, and for the next
	 * stage's memory (its manifest).  What total leaves over is the
	 * wait for the stage before to compute. */
	int64_t queue_ms = (r->reserved_at ? r->reserved_at - r->created : 0) +
	    (r->run_at ? r->run_at - (r->ready_at ? r->ready_at : r->created) :
	    0) + (r->send_at ? r->send_at - r->ran_at : 0) + r->resumed_wait;

	self->done++;
	dg_window_add(self->lat, now, ms);
	if (m) {
		m->u.stage_done.room = r->room;
		m->u.stage_done.request = r->request;
		m->u.stage_done.role = self->conf.role;
		m->u.stage_done.ms = ms;
		m->u.stage_done.queue_us = queue_ms * 1000;
		m->u.stage_done.in_us = r->in_us;
		m->u.stage_done.compute_us = r->compute_us;
		m->u.stage_done.out_us = r->out_us;
		m->u.stage_done.total_us = (now - r->created) * 1000;
		if (s_last(self)) {
			m->u.stage_done.output = r->item.output;
			m->u.stage_done.bytes = r->item.output_bytes;
			m->u.stage_done.digest = r->item.digest;
		}
		self->io.to_controller(self->io.arg, m);
		dg_msg_destroy(&m);
	}
	s_room_end(self, r);
}

/* ---- the path of a room ------------------------------------------------ */

static uint64_t
s_align(uint64_t v)
{
	return (v + 255) & ~255ULL;
}

static int64_t
s_left_ms(const dg_room_t *r, int64_t now)
{
	int64_t left = r->deadline - now;
	return left > 1 ? left : 1;
}

/* Reserve input memory and ask upstream for the data.  False when the
 * pool has no room for it yet. */
static bool
s_try_receive(dg_rooms_t *self, int64_t now, dg_room_t *r)
{
	char why[256];

	if (dg_pool_reserve(self->pool, dg_fit_plan_bytes(&r->in_plan),
	    &r->in_ext) != DG_SLOT_OK)
		return false;
	/* Its output too, now: a room holding its input while it waits for
	 * output space could fill the pool with inputs and wait for ever. */
	if (r->out_plan.n && dg_pool_reserve(self->pool,
	    dg_fit_plan_bytes(&r->out_plan), &r->out_ext) != DG_SLOT_OK) {
		dg_pool_free(self->pool, &r->in_ext);
		return false;
	}
	r->has_out = r->out_plan.n > 0;
	r->has_in = true;
	uint64_t off = 0;
	for (size_t i = 0; i < r->in_plan.n; i++) {
		const dg_tensor_spec_t *t = &r->in_plan.t[i];
		off = s_align(off);
		memcpy(r->in_shape[i], t->shape, sizeof t->shape);
		r->in_rows[i] = (dg_tensor_row_t){
			.name = t->name, .dtype = t->dtype,
			.shape = r->in_shape[i], .n_shape = (size_t)t->ndim,
			.bytes = t->bytes, .offset = r->in_ext.offset + off,
		};
		off += t->bytes;
	}
	dg_msg_t *m = dg_msg_new(DG_OP_MANIFEST);
	if (!m) {
		s_fail(self, r, true, "out of memory");
		return true;
	}
	m->u.manifest.room = r->room;
	m->u.manifest.phase = s_phase_in(self);
	m->u.manifest.tensors = r->in_rows;
	m->u.manifest.n_tensors = r->in_plan.n;
	if (self->io.expect(self->io.arg, &r->in_ext, &m->u.manifest,
	    s_left_ms(r, now), &r->recv_id, why, sizeof why) < 0) {
		dg_msg_destroy(&m);
		s_fail(self, r, true, "cannot receive: %s", why);
		return true;
	}
	r->receiving = true;
	if (self->io.to_upstream(self->io.arg, r->up_ep, m) < 0) {
		dg_msg_destroy(&m);
		s_fail(self, r, true, "cannot send the manifest to %s",
		    r->up_ep);
		return true;
	}
	dg_msg_destroy(&m);
	r->reserved_at = now;
	s_enqueue(self, now, r, DG_QUEUE_WAITING);
	return true;
}

/* The manifest from downstream as our output must match it. */
static int
s_down_check(dg_rooms_t *self, const dg_room_t *r, char *why, size_t whysize)
{
	uint64_t bytes[DG_STAGE_MAX_TENSORS];

	for (size_t i = 0; i < r->out_plan.n; i++)
		bytes[i] = r->out_plan.t[i].bytes;
	dg_manifest_want_t want = { .room = r->room,
	    .phase = s_phase_out(self), .n_tensors = r->out_plan.n,
	    .bytes = bytes };
	return dg_manifest_check(&r->down->u.manifest, &want, why, whysize);
}

/* Start writing the output downstream once both it and the manifest
 * are here. */
static void
s_try_send(dg_rooms_t *self, int64_t now, dg_room_t *r)
{
	char why[256];

	if (r->queue != DG_QUEUE_SENDING || r->sending || !r->down)
		return;
	const dg_manifest_msg_t *m = &r->down->u.manifest;
	if (s_down_check(self, r, why, sizeof why) < 0) {
		s_fail(self, r, false, "manifest from downstream: %s", why);
		return;
	}
	s_phase(self, r, DG_ROOM_SENDING);
	int64_t timeout = s_left_ms(r, now);
	if (self->conf.transfer_timeout_ms > 0 &&
	    timeout > self->conf.transfer_timeout_ms)
		timeout = self->conf.transfer_timeout_ms;
	void *lease = r->lease;
	r->lease = NULL;
	if (r->placed ? self->io.send_placed(self->io.arg, m, lease, timeout,
	    &r->send_id, why, sizeof why) < 0 :
	    self->io.send(self->io.arg, m, &r->out_ext, r->out_offsets,
	    timeout, &r->send_id, why, sizeof why) < 0) {
		s_fail(self, r, true, "cannot send: %s", why);
		return;
	}
	r->send_at = now;
	r->sending = true;
}

/* Input complete: the data is here and the sender said what it wrote. */
static void
s_try_ready(dg_rooms_t *self, int64_t now, dg_room_t *r)
{
	char why[256];

	if (r->queue != DG_QUEUE_WAITING || !r->data_here || !r->done_msg)
		return;
	if (self->conf.verify) {
		dg_tensor_row_t got[DG_STAGE_MAX_TENSORS];
		for (size_t i = 0; i < r->in_plan.n && i < r->nsums; i++) {
			got[i] = r->in_rows[i];
			got[i].checksum = r->sums[i];
		}
		if (dg_checksum_verify(dg_pool_base(self->pool), r->in_rows,
		    got, r->in_plan.n, r->nsums, why, sizeof why) < 0) {
			s_fail(self, r, true, "verify: %s", why);
			return;
		}
	}
	dg_pool_transition(self->pool, &r->in_ext, DG_SLOT_READY,
	    DG_SLOT_IN_USE);
	r->ready_at = now;
	s_enqueue(self, now, r, DG_QUEUE_READY);
}

/* Zero copy: with the receiver's manifest here and its pool mapped, the
 * plugin writes into the receiver's extent (ARCHITECTURE.md, "Zero copy
 * on one host"); else into ours, and the send copies. */
static void
s_place(dg_rooms_t *self, dg_room_t *x)
{
	char why[256];

	if (!x->down || !self->io.lease || !x->out_plan.n ||
	    s_down_check(self, x, why, sizeof why) < 0)
		return;
	x->lease = self->io.lease(self->io.arg, &x->down->u.manifest,
	    x->out_at);
	x->placed = x->lease != NULL;
}

/* Lay a room's item out for the plugin. */
static void
s_lay_out(dg_rooms_t *self, dg_room_t *x)
{
	dg_stage_item_t *it = &x->item;
	char *base = dg_pool_base(self->pool);

	memset(it, 0, sizeof *it);
	it->req = &x->req;
	it->in_plan = &x->in_plan;
	it->out_plan = &x->out_plan;
	it->stop = &x->stop;
	for (size_t k = 0; x->has_in && k < x->in_plan.n; k++)
		it->in[k] = base + x->in_rows[k].offset;
	/* Once only: a room resumed after a preemption goes on writing
	 * where it began. */
	if (!x->laid) {
		x->laid = true;
		s_place(self, x);
	}
	uint64_t off = 0;
	for (size_t k = 0; k < x->out_plan.n; k++) {
		off = s_align(off);
		x->out_offsets[k] = x->out_ext.offset + off;
		it->out[k] = x->placed ? x->out_at[k] : base + x->out_offsets[k];
		off += x->out_plan.t[k].bytes;
	}
}

/* A room that waits for pool space lets smaller ones behind it take
 * what is free, so one large request never holds back the queue; but
 * only conf.overtake of them, so that it is not starved either: then
 * nothing passes it until in-flight rooms give back enough.  `passed`
 * counts the rooms that went ahead in this turn; `mark` what it was
 * when `r` was first passed over. */
static bool
s_may_pass(dg_rooms_t *self, dg_room_t *r, int64_t passed)
{
	if (r->mark < 0)
		r->mark = passed;
	return r->overtaken + passed - r->mark < self->conf.overtake;
}

/* The rooms still waiting in `q` were each passed by the rooms that went
 * ahead after them in this turn. */
static void
s_count_passes(dg_rooms_t *self, dg_room_queue_t q, int64_t passed)
{
	for (dg_room_t *r = zlistx_first(self->queues[q]); r;
	    r = zlistx_next(self->queues[q])) {
		if (r->mark >= 0 && passed > r->mark) {
			r->overtaken += passed - r->mark;
			if (r->overtaken >= self->conf.overtake)
				dg_log_debug("room=%llu: passed by %lld smaller "
				    "rooms; none passes it now",
				    (unsigned long long)r->room,
				    (long long)r->overtaken);
		}
		r->mark = -1;
	}
}

/* order = slack: a ready room's priority grows a step for every AGE_MS
 * it waits, so that urgent work never starves the rest for ever. */
#define AGE_MS 1000

static int
s_by_urgency(const void *a, const void *b, void *arg)
{
	const dg_room_t *x = *(dg_room_t *const *)a;
	const dg_room_t *y = *(dg_room_t *const *)b;
	int64_t now = *(const int64_t *)arg;
	int64_t ux = x->priority + (now - x->queued_at) / AGE_MS;
	int64_t uy = y->priority + (now - y->queued_at) / AGE_MS;

	if (ux != uy)
		return ux > uy ? -1 : 1;
	if (x->deadline != y->deadline)
		return x->deadline < y->deadline ? -1 : 1;
	return x->queued_at < y->queued_at ? -1 : x->queued_at > y->queued_at;
}

/* Lay the ready queue out in the order rooms should run: the most
 * urgent, then the earliest deadline (whose slack is least, every room
 * of this stage costing about the same), then the first come.  Rooms
 * keep their time in the queue. */
static void
s_sort_ready(dg_rooms_t *self, int64_t now)
{
	zlistx_t *q = self->queues[DG_QUEUE_READY];
	size_t n = zlistx_size(q), i = 0;

	if (self->conf.order != DG_ORDER_SLACK || n < 2)
		return;
	dg_room_t **v = malloc(n * sizeof *v);
	if (!v)
		return;                 /* as they came, this once */
	for (dg_room_t *r = zlistx_first(q); r && i < n; r = zlistx_next(q))
		v[i++] = r;
	qsort_r(v, i, sizeof *v, s_by_urgency, &now);
	for (size_t k = 0; k < i; k++) {
		zlistx_delete(q, v[k]->qhandle);
		v[k]->qhandle = zlistx_add_end(q, v[k]);
	}
	free(v);
}

/* Whether any room of `r`'s batch was asked to yield already. */
static bool
s_yielding(const dg_room_t *r)
{
	for (size_t i = 0; r->batch && i < r->batch->n; i++)
		if (atomic_load(&r->batch->rooms[i]->stop) == DG_STAGE_YIELD)
			return true;
	return false;
}

/* Whether `a` should run before `b`: a higher priority (its own:
 * aging moves the queue, never a running room), or as high and due
 * sooner.  Earliest deadline first, preemptive: what it costs is a step
 * of the running room at most, and each preemption is by a room that
 * came later and is due sooner, so it cannot go on for ever. */
static bool
s_sooner(const dg_room_t *a, const dg_room_t *b)
{
	return a->priority > b->priority ||
	    (a->priority == b->priority && a->deadline < b->deadline);
}

/* No worker is free and a ready room should run before a running one:
 * ask the running batch that should run last to yield.  One batch at a
 * time: the next is asked once this one made way.  It yields at its
 * next step boundary, if its stage can (dg_stage_take_time, a Python
 * stage's item.suspend); one that cannot runs on. */
static void
s_preempt(dg_rooms_t *self)
{
	zlistx_t *ready = self->queues[DG_QUEUE_READY];
	zlistx_t *running = self->queues[DG_QUEUE_RUNNING];
	dg_room_t *urgent = NULL, *victim = NULL;

	if (!self->conf.preempt || self->io.worker_free(self->io.arg) ||
	    zlistx_size(ready) == 0)
		return;
	for (dg_room_t *u = zlistx_first(ready); u; u = zlistx_next(ready))
		if (!urgent || s_sooner(u, urgent))
			urgent = u;
	for (dg_room_t *r = zlistx_first(running); r;
	    r = zlistx_next(running)) {
		if (!r->in_worker || r->released || !r->batch)
			continue;
		if (s_yielding(r))
			return;         /* one is making way already */
		if (s_sooner(urgent, r) && (!victim || s_sooner(victim, r)))
			victim = r;
	}
	for (size_t i = 0; victim && i < victim->batch->n; i++)
		atomic_store(&victim->batch->rooms[i]->stop, DG_STAGE_YIELD);
}

/* A first-place room may wait a little for the manifest from
 * downstream: it comes a moment after the assign, and with it the
 * output goes straight into the receiver's memory instead of being
 * copied there once computed.  The wait is bounded, so a receiver that
 * is slow to reserve does not hold the work back. */
static bool
s_awaits_manifest(const dg_rooms_t *self, int64_t now, const dg_room_t *r)
{
	return self->conf.index == 0 && !s_last(self) && !r->down &&
	    !r->laid && self->conf.manifest_wait_ms > 0 &&
	    now - r->queued_at < self->conf.manifest_wait_ms;
}

void
dg_rooms_pump(dg_rooms_t *self, int64_t now)
{
	/* Incoming rooms wait for pool space: try again now. */
	int64_t passed = 0;
	bool waiting = false;
	dg_room_t *r = zlistx_first(self->queues[DG_QUEUE_INCOMING]);
	while (r) {
		dg_room_t *next = zlistx_next(self->queues[DG_QUEUE_INCOMING]);
		if (s_try_receive(self, now, r)) {
			passed += waiting;
		} else {
			waiting = true;
			if (!s_may_pass(self, r, passed))
				break;
		}
		r = next;
	}
	s_count_passes(self, DG_QUEUE_INCOMING, passed);
	/* Ready rooms of the first stage reserve their output here. */
	passed = 0;
	waiting = false;
	int64_t max_batch = self->conf.max_batch;
	bool blocked = false;
	if (self->io.worker_free(self->io.arg))
		s_sort_ready(self, now);
	while (!blocked && self->io.worker_free(self->io.arg) &&
	    zlistx_size(self->queues[DG_QUEUE_READY]) > 0) {
		dg_room_batch_t *b = calloc(1, sizeof *b);
		if (!b)
			break;
		b->rooms = calloc((size_t)max_batch, sizeof *b->rooms);
		if (!b->rooms) {
			free(b);
			break;
		}
		r = zlistx_first(self->queues[DG_QUEUE_READY]);
		while (r && (int64_t)b->n < max_batch) {
			dg_room_t *next = zlistx_next(self->queues[DG_QUEUE_READY]);
			if (s_awaits_manifest(self, now, r)) {
				r = next;
				continue;
			}
			if (r->out_plan.n && !r->has_out) {
				if (dg_pool_reserve(self->pool,
				    dg_fit_plan_bytes(&r->out_plan),
				    &r->out_ext) != DG_SLOT_OK) {
					waiting = true;
					if (!s_may_pass(self, r, passed)) {
						blocked = true;
						break;
					}
					r = next;
					continue;
				}
				r->has_out = true;
			}
			passed += waiting;
			b->rooms[b->n++] = r;
			r = next;
		}
		if (b->n == 0) {
			free(b->rooms);
			free(b);
			break;
		}
		for (size_t i = 0; i < b->n; i++) {
			dg_room_t *x = b->rooms[i];
			s_enqueue(self, now, x, DG_QUEUE_RUNNING);
			x->batch = b;
			/* A resumed run: its wait since it was suspended is
			 * queueing too; its first run stays the start. */
			if (x->run_at)
				x->resumed_wait += now - x->queued_at;
			else
				x->run_at = now;
			x->in_worker = true;
			s_phase(self, x, DG_ROOM_RUNNING);
			s_lay_out(self, x);
		}
		self->io.run(self->io.arg, b);
	}
	s_count_passes(self, DG_QUEUE_READY, passed);
	s_preempt(self);
}

void
dg_rooms_batch_done(dg_rooms_t *self, int64_t now, dg_room_batch_t *b)
{
	for (size_t i = 0; i < b->n; i++) {
		dg_room_t *r = b->rooms[i];
		r->in_worker = false;
		r->ran_at = now;
		r->compute_us += (int64_t)(b->compute_s * 1e6);
		if (r->released) {
			s_room_free(self, r);
			continue;
		}
		if (*r->item.error) {
			s_fail(self, r, false, "%s", r->item.error);
			continue;
		}
		r->batch = NULL;
		if (r->suspended_at > 0) {
			/* Preempted: its input and output stay, and it waits
			 * its turn again, to run on from where it stopped. */
			r->req.resume_step = r->suspended_at;
			r->suspended_at = 0;
			atomic_store(&r->stop, 0);
			self->suspensions++;
			s_enqueue(self, now, r, DG_QUEUE_READY);
			continue;
		}
		/* The input is consumed: give its memory back now. */
		if (r->has_in) {
			dg_pool_free(self->pool, &r->in_ext);
			r->has_in = false;
		}
		if (s_last(self)) {
			s_finished(self, now, r);
			continue;
		}
		r->nsums = r->out_plan.n;
		for (size_t k = 0; k < r->out_plan.n; k++)
			r->sums[k] = self->conf.verify ?
			    dg_checksum(r->item.out[k], r->out_plan.t[k].bytes) :
			    0;
		s_enqueue(self, now, r, DG_QUEUE_SENDING);
		s_try_send(self, now, r);
	}
	free(b->rooms);
	free(b);
}

/* ---- transfers --------------------------------------------------------- */

static dg_room_t *
s_find(dg_rooms_t *self, uint64_t room)
{
	char key[24];
	return zhashx_lookup(self->rooms, s_key(key, room));
}

void
dg_rooms_suspended(dg_rooms_t *self, uint64_t room, int64_t step)
{
	dg_room_t *r = s_find(self, room);

	if (r && r->in_worker && !r->released)
		r->suspended_at = step;
}

uint64_t
dg_rooms_suspensions(const dg_rooms_t *self)
{
	return self->suspensions;
}

void
dg_rooms_step(dg_rooms_t *self, uint64_t room, int64_t step, int64_t steps)
{
	dg_room_t *r = s_find(self, room);

	/* A worker's word about a room that has ended since is stale. */
	if (!r || r->released || !r->in_worker || steps < 1 || step < 1 ||
	    step > steps || (step == r->step && steps == r->steps))
		return;
	r->step = step;
	r->steps = steps;
	dg_msg_t *m = dg_msg_new(DG_OP_PROGRESS);
	if (!m)
		return;
	m->u.progress = (dg_progress_msg_t){ .request = r->request,
	    .room = r->room, .role = self->conf.role, .step = step,
	    .steps = steps };
	self->io.to_controller(self->io.arg, m);
	dg_msg_destroy(&m);
}

void
dg_rooms_xfer_event(dg_rooms_t *self, int64_t now, const dg_xfer_event_t *ev)
{
	dg_room_t *r = s_find(self, ev->room);

	if (ev->dir == DG_XFER_SEND) {
		char key[24];
		dg_extent_t *kept = zhashx_lookup(self->sent_from,
		    s_key(key, ev->id));
		if (kept) {
			dg_pool_free(self->pool, kept);
			zhashx_delete(self->sent_from, key);
			free(kept);
		}
	}
	if (!r || r->released)
		return;
	if (ev->dir == DG_XFER_RECV && r->receiving && r->recv_id == ev->id) {
		r->receiving = false;
		if (ev->kept)
			r->has_in = false;      /* the engine frees it */
		if (ev->status != DG_XFER_DONE) {
			s_fail(self, r, ev->status != DG_XFER_STALE,
			    "receive: %s", ev->reason);
			return;
		}
		r->data_here = true;
		s_try_ready(self, now, r);
	} else if (ev->dir == DG_XFER_SEND && r->sending &&
	    r->send_id == ev->id) {
		r->sending = false;
		if (ev->status != DG_XFER_DONE) {
			s_fail(self, r, true, "send: %s", ev->reason);
			return;
		}
		r->out_us = ev->us;
		dg_msg_t *m = dg_msg_new(DG_OP_TRANSFER_DONE);
		dg_tensor_row_t rows[DG_STAGE_MAX_TENSORS];
		if (m) {
			const dg_manifest_msg_t *mf = &r->down->u.manifest;
			for (size_t k = 0; k < mf->n_tensors; k++) {
				rows[k] = mf->tensors[k];
				rows[k].checksum = r->sums[k];
			}
			m->u.transfer_done.room = r->room;
			m->u.transfer_done.phase = mf->phase;
			m->u.transfer_done.gen = mf->gen;
			m->u.transfer_done.bytes = ev->bytes;
			m->u.transfer_done.tensors = rows;
			m->u.transfer_done.n_tensors = mf->n_tensors;
			m->u.transfer_done.us = ev->us;
			self->io.to_downstream(self->io.arg, &r->down_route, m);
			dg_msg_destroy(&m);
		}
		s_finished(self, now, r);
	}
}

static void
s_take_manifest(dg_rooms_t *self, int64_t now, dg_room_t *r, dg_msg_t **mp,
    dg_route_t *route)
{
	dg_msg_destroy(&r->down);
	dg_route_clear(&r->down_route);
	r->down = *mp;
	*mp = NULL;
	r->down_route = *route;
	route->identity = NULL;
	s_try_send(self, now, r);
}

dg_proto_code_t
dg_rooms_manifest(dg_rooms_t *self, int64_t now, dg_msg_t **mp,
    dg_route_t *route, char *why, size_t whysize)
{
	dg_msg_t *m = *mp;
	char key[24], reason[256];

	if (m->u.manifest.phase != s_phase_out(self) || s_last(self)) {
		snprintf(why, whysize, "%s %s sends no phase %lld data",
		    self->conf.role, self->conf.name,
		    (long long)m->u.manifest.phase);
		return DG_PROTO_E_INVALID;
	}
	if (dg_manifest_check(&m->u.manifest, &(dg_manifest_want_t){
	    .phase = s_phase_out(self) }, reason, sizeof reason) < 0) {
		self->refused++;
		snprintf(why, whysize, "manifest refused: %s", reason);
		return DG_PROTO_E_INVALID;
	}
	dg_room_t *r = s_find(self, m->u.manifest.room);
	if (r) {
		s_take_manifest(self, now, r, mp, route);
		return DG_PROTO_OK;
	}
	/* The manifest outran our assign: keep it a while, but not without
	 * bound, or anyone who can reach the peer endpoint could fill our
	 * memory with manifests for rooms that will never exist. */
	s_key(key, m->u.manifest.room);
	if (zhashx_size(self->early) >= s_early_max(self) &&
	    !zhashx_lookup(self->early, key)) {
		self->refused++;
		snprintf(why, whysize, "%zu manifests already wait for rooms "
		    "not yet assigned", zhashx_size(self->early));
		return DG_PROTO_E_BUSY;
	}
	s_early_t *e = calloc(1, sizeof *e);
	if (!e) {
		snprintf(why, whysize, "out of memory");
		return DG_PROTO_E_NOMEM;
	}
	e->msg = m;
	*mp = NULL;
	e->route = *route;
	route->identity = NULL;
	e->until = now + EARLY_MS;
	zhashx_update(self->early, key, e);
	return DG_PROTO_OK;
}

void
dg_rooms_transfer_done(dg_rooms_t *self, int64_t now, const dg_msg_t *m)
{
	dg_room_t *r = s_find(self, m->u.transfer_done.room);

	if (!r || !r->has_in || r->in_ext.gen != m->u.transfer_done.gen)
		return;
	r->nsums = m->u.transfer_done.n_tensors < DG_STAGE_MAX_TENSORS ?
	    m->u.transfer_done.n_tensors : DG_STAGE_MAX_TENSORS;
	for (size_t i = 0; i < r->nsums; i++)
		r->sums[i] = m->u.transfer_done.tensors[i].checksum;
	r->in_us = m->u.transfer_done.us;
	r->done_msg = true;
	s_try_ready(self, now, r);
}

void
dg_rooms_transfer_failed(dg_rooms_t *self, int64_t now, const dg_msg_t *m)
{
	dg_room_t *r = s_find(self, m->u.transfer_failed.room);

	(void)now;
	if (!r || r->released)
		return;
	s_fail(self, r, true, "peer: %s", m->u.transfer_failed.reason);
}

/* ---- the controller's events ------------------------------------------- */

void
dg_rooms_assign(dg_rooms_t *self, int64_t now, const dg_msg_t *m)
{
	const dg_assign_msg_t *a = &m->u.assign;
	char key[24], why[256];

	if (zhashx_lookup(self->rooms, s_key(key, a->room)))
		return;                 /* a duplicate */
	dg_room_t *r = calloc(1, sizeof *r);
	if (!r)
		return;
	r->room = a->room;
	r->mark = -1;
	r->request = a->request;
	r->attempt = a->attempt;
	r->prompt = strdup(a->prompt);
	r->negative = strdup(a->negative_prompt ? a->negative_prompt : "");
	r->req = (dg_request_t){
		.request = a->request, .room = a->room, .prompt = r->prompt,
		.negative_prompt = r->negative, .frames = a->frames,
		.height = a->height, .width = a->width, .steps = a->steps,
		.seed = a->seed,
	};
	dg_stage_steps(self->conf.expert, self->conf.boundary, a->steps,
	    &r->req.step_begin, &r->req.step_end);
	r->created = now;
	r->deadline = now + a->deadline_ms;
	r->priority = a->priority;
	/* The controller's chain must be ours: our place, by role and
	 * name, with the place before it to ask for our input. */
	int at = self->conf.index;
	bool ours = a->n_stages == self->conf.places &&
	    strcmp(a->stages[at].role, self->conf.role) == 0 &&
	    strcmp(a->stages[at].name, self->conf.name) == 0;
	if (ours && !s_first(self))
		snprintf(r->up_ep, sizeof r->up_ep, "%s", a->stages[at - 1].peer);
	zhashx_insert(self->rooms, key, r);
	if (!ours) {
		s_fail(self, r, false, "the assign's chain of %zu stages does "
		    "not place %s %s at %d: the controller's configuration is "
		    "not this daemon's", a->n_stages, self->conf.role,
		    self->conf.name, at);
		return;
	}
	if (self->draining) {
		s_fail(self, r, true, "%s is draining", self->conf.name);
		return;
	}
	/* Bounded queues: past queue_depth the controller places it
	 * elsewhere (a retryable failure) instead of it waiting here. */
	if ((int64_t)zlistx_size(self->queues[DG_QUEUE_INCOMING]) >=
	    self->conf.queue_depth ||
	    (int64_t)zlistx_size(self->queues[DG_QUEUE_READY]) >=
	    self->conf.queue_depth) {
		s_fail(self, r, true, "%s: queues full (queue_depth %lld)",
		    self->conf.name, (long long)self->conf.queue_depth);
		return;
	}
	if (self->io.plan(self->io.arg, &r->req, &r->in_plan, &r->out_plan,
	    why, sizeof why) < 0) {
		s_fail(self, r, false, "invalid: %s", why);
		return;
	}
	/* One that can never fit would wait in incoming until its deadline
	 * (the controller refuses those it can plan itself at submit). */
	uint64_t need = dg_fit_need(&r->in_plan, &r->out_plan,
	    dg_pool_slot_size(self->pool));
	if (need > dg_pool_size(self->pool)) {
		char whose[DG_NAME_MAX + 8];
		snprintf(whose, sizeof whose, "%s's", self->conf.name);
		dg_fit_say(why, sizeof why, need, self->conf.role, whose,
		    dg_pool_size(self->pool));
		s_fail(self, r, false, "invalid: %s", why);
		return;
	}
	/* A manifest that came first. */
	s_early_t *e = zhashx_lookup(self->early, key);
	if (e) {
		s_take_manifest(self, now, r, &e->msg, &e->route);
		zhashx_delete(self->early, key);
	}
	if (s_first(self) || r->in_plan.n == 0) {
		s_enqueue(self, now, r, DG_QUEUE_READY);
		r->data_here = r->done_msg = true;
	} else {
		s_enqueue(self, now, r, DG_QUEUE_INCOMING);
	}
}

void
dg_rooms_release(dg_rooms_t *self, int64_t now, const dg_msg_t *m)
{
	char key[24];
	dg_room_t *r = s_find(self, m->u.release.room);

	(void)now;
	zhashx_delete(self->early, s_key(key, m->u.release.room));
	if (r) {
		dg_log_debug("room=%llu released: %s",
		    (unsigned long long)r->room,
		    m->u.release.reason ? m->u.release.reason : "");
		r->failed = true;       /* no more reports for it */
		s_room_end(self, r);
	}
}

void
dg_rooms_drain(dg_rooms_t *self)
{
	self->draining = true;
}

/* Every room, collected first (ending one edits the table). */
static dg_room_t **
s_all(dg_rooms_t *self, size_t *n)
{
	size_t cap = zhashx_size(self->rooms);
	dg_room_t **all = calloc(cap + 1, sizeof *all);

	*n = 0;
	if (!all)
		return NULL;
	for (dg_room_t *r = zhashx_first(self->rooms); r && *n < cap;
	    r = zhashx_next(self->rooms))
		all[(*n)++] = r;
	return all;
}

void
dg_rooms_fail_all(dg_rooms_t *self, int64_t now, const char *why)
{
	size_t n;
	dg_room_t **all = s_all(self, &n);

	(void)now;
	for (size_t i = 0; all && i < n; i++)
		s_fail(self, all[i], true, "%s", why);
	free(all);
}

size_t
dg_rooms_drop_all(dg_rooms_t *self)
{
	size_t n;
	dg_room_t **all = s_all(self, &n);

	for (size_t i = 0; all && i < n; i++) {
		all[i]->failed = true;  /* no reports for them */
		s_room_end(self, all[i]);
	}
	free(all);
	zhashx_purge(self->early);
	return all ? n : 0;
}

void
dg_rooms_tick(dg_rooms_t *self, int64_t now)
{
	/* Rooms past their deadline with no word from the controller (a
	 * lost release): free them here.  The grace lets the controller's
	 * own deadline act first. */
	size_t cap = zhashx_size(self->rooms), n = 0;
	dg_room_t **late = cap ? malloc(cap * sizeof *late) : NULL;
	for (dg_room_t *r = late ? zhashx_first(self->rooms) : NULL;
	    r && n < cap; r = zhashx_next(self->rooms))
		if (now > r->deadline + 2000 && !r->in_worker && !r->failed)
			late[n++] = r;
	for (size_t i = 0; i < n; i++)
		s_fail(self, late[i], false, "deadline passed in %s",
		    s_queue_names[late[i]->queue]);
	free(late);
	/* Manifests whose assign never came. */
	zlistx_t *old = zlistx_new();
	for (s_early_t *e = old ? zhashx_first(self->early) : NULL; e;
	    e = zhashx_next(self->early))
		if (now > e->until)
			zlistx_add_end(old, (void *)zhashx_cursor(self->early));
	for (const char *k = old ? zlistx_first(old) : NULL; k;
	    k = zlistx_next(old))
		zhashx_delete(self->early, k);
	zlistx_destroy(&old);
}

/* ---- views ------------------------------------------------------------- */

size_t
dg_rooms_count(const dg_rooms_t *self)
{
	return zhashx_size(self->rooms);
}

size_t
dg_rooms_queued(const dg_rooms_t *self, dg_room_queue_t q)
{
	return q < DG_QUEUE_COUNT ? zlistx_size(self->queues[q]) : 0;
}

uint64_t
dg_rooms_done(const dg_rooms_t *self)
{
	return self->done;
}

uint64_t
dg_rooms_failed(const dg_rooms_t *self)
{
	return self->failed;
}

uint64_t
dg_rooms_refused(const dg_rooms_t *self)
{
	return self->refused;
}

int64_t
dg_rooms_latency(const dg_rooms_t *self, int64_t now, double q)
{
	return dg_window_quantile(self->lat, now, q);
}

dg_msg_t *
dg_rooms_queues_reply(dg_rooms_t *self, int64_t now, uint64_t seq)
{
	dg_msg_t *ok = dg_msg_new(DG_OP_QUEUES_OK);
	size_t n = 0, total = 0;

	if (!ok)
		return NULL;
	for (int q = 0; q < DG_QUEUE_COUNT; q++)
		total += zlistx_size(self->queues[q]);
	/* The peer would refuse more; the reply says how many are left
	 * out. */
	size_t cap = total > DG_PROTO_MAX_ITEMS ? DG_PROTO_MAX_ITEMS : total;
	dg_queue_row_t *rows = dg_msg_alloc(ok, (cap + 1) * sizeof *rows);
	if (!rows) {
		dg_msg_destroy(&ok);
		return NULL;
	}
	for (int q = 0; q < DG_QUEUE_COUNT; q++) {
		for (dg_room_t *r = zlistx_first(self->queues[q]); r && n < cap;
		    r = zlistx_next(self->queues[q]))
			rows[n++] = (dg_queue_row_t){ .room = r->room,
			    .request = r->request, .queue = s_queue_names[q],
			    .age_ms = now - r->queued_at, .step = r->step,
			    .steps = r->steps };
	}
	ok->seq = seq;
	ok->u.queues_ok.name = self->conf.name;
	ok->u.queues_ok.rooms = rows;
	ok->u.queues_ok.n_rooms = n;
	ok->u.queues_ok.omitted = total - n;
	return ok;
}
