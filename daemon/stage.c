/*  stage.c: the stage role: one place of the pipeline's chain
 *  (ARCHITECTURE.md, "The stage daemon").  The first stage of the chain
 *  takes the request's parameters, the last writes the output file, the
 *  others turn tensors into tensors.
 *
 *  Sockets: a DEALER to the controller; one ROUTER peer endpoint where
 *  downstream stages send their manifests; a DEALER per upstream peer
 *  (a handful, one per peer daemon, never one per room) to send ours.
 *  Everything is demultiplexed by (room, phase).
 *
 *  A room moves through bounded, visible queues:
 *    incoming  assigned, input memory not yet reserved (pool full);
 *    waiting   input reserved and its manifest sent upstream, data not
 *              yet here;
 *    ready     input here (and verified), waiting for a worker;
 *    running   in a worker;
 *    sending   output being written downstream (or waiting for the
 *              downstream manifest).
 *  Each step has a deadline (the request's), each failure is reported to
 *  the controller (stage.failed) and to the peer (transfer.failed), which
 *  frees its side too.  Threads: this control loop, the transfer
 *  engine's progress and watchdog threads, and `workers` compute threads,
 *  whatever the number of rooms.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "admin.h"
#include "checksum.h"
#include "lifecycle.h"
#include "daemon.h"
#include "log.h"
#include "manifest.h"
#include "pool.h"
#include "proto.h"
#include "stage_host.h"
#include "threads.h"
#include "version.h"
#include "wire.h"
#include "xfer.h"

enum { Q_INCOMING, Q_WAITING, Q_READY, Q_RUNNING, Q_SENDING, Q_COUNT };
static const char *const s_queue_names[Q_COUNT] =
	{ "incoming", "waiting", "ready", "running", "sending" };

typedef struct s_room {
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
	int queue;
	void *qhandle;
	int64_t created, queued_at, deadline;
	int64_t ready_at;               /* input here: the stage's own time */
	bool in_worker, released, failed;
	_Atomic int stop;               /* tells the plugin to give up */
	dg_stage_item_t item;
	int64_t compute_ms;
	uint64_t out_offsets[DG_STAGE_MAX_TENSORS];
} s_room_t;

/* A manifest that came before the assign it belongs to. */
typedef struct {
	dg_msg_t *msg;
	dg_route_t route;
	int64_t until;
} s_early_t;

typedef struct {
	s_room_t **rooms;
	size_t n;
} s_batch_t;

typedef struct s_stage s_stage_t;

typedef struct {
	s_stage_t *self;
	pthread_t thread;
	int index;
} s_worker_t;

struct s_stage {
	dg_daemon_t *d;
	const dg_stage_conf_t *conf;    /* refreshed on reload */
	int index;                      /* our place in the chain */
	size_t nchain;                  /* places in the chain */
	const dg_stage_ops_t *ops;
	void *plugin;
	dg_pool_t *pool;
	dg_xfer_t *xfer;
	zsock_t *ctl;                   /* DEALER to the controller */
	zsock_t *peer;                  /* our ROUTER */
	zhashx_t *ups;                  /* endpoint -> DEALER */
	zhashx_t *rooms;                /* room id -> s_room_t */
	zhashx_t *early;                /* room id -> s_early_t */
	uint64_t refused;               /* bad or excess peer messages */
	zlistx_t *queues[Q_COUNT];
	bool registered;
	int64_t last_hello, heartbeat_ms;
	bool draining;
	int64_t reexec_at;              /* restart in place at this time */
	uint64_t seq;
	uint64_t done, failed;
	int64_t lat[1024];              /* recent room durations, ms */
	size_t nlat;
	int64_t stats_at;
	uint64_t done_at_stats;

	/* Workers: batches in, finished batches out (eventfd wakes us). */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	zlistx_t *todo, *finished;
	bool stop;
	int busy;
	int donefd;
	s_worker_t *workers;
	int nworkers;
};

/* Manifests kept for rooms whose assign has not arrived yet: no more
 * than the rooms our queues can hold (5 queues of queue_depth). */
static size_t
s_early_max(const s_stage_t *self)
{
	return 5 * (size_t)self->conf->queue_depth;
}

static bool
s_first(const s_stage_t *self)
{
	return self->index == 0;
}

static bool
s_last(const s_stage_t *self)
{
	return (size_t)self->index + 1 == self->nchain;
}

static char *
s_key(char *buf, uint64_t id)
{
	snprintf(buf, 24, "%llu", (unsigned long long)id);
	return buf;
}

/* Phases are the hops of the chain: data comes to place i on hop i
 * and leaves on hop i + 1. */
static int
s_phase_in(const s_stage_t *self)
{
	return self->index;
}

static int
s_phase_out(const s_stage_t *self)
{
	return self->index + 1;
}

/* ---- messages ---------------------------------------------------------- */

static void
s_to_ctl(s_stage_t *self, dg_msg_t *m)
{
	m->seq = ++self->seq;
	dg_wire_post(self->ctl, NULL, m);
	dg_msg_destroy(&m);
}

static void
s_phase(s_stage_t *self, s_room_t *r, dg_room_phase_t phase)
{
	dg_msg_t *m = dg_msg_new(DG_OP_ROOM_PHASE);

	if (!m)
		return;
	m->u.room_phase.room = r->room;
	m->u.room_phase.request = r->request;
	m->u.room_phase.role = self->conf->role;
	m->u.room_phase.state = dg_room_phase_name(phase);
	s_to_ctl(self, m);
}

static int s_on_peer_cb(zloop_t *loop, zsock_t *sock, void *arg);

static zsock_t *
s_up(s_stage_t *self, const char *endpoint)
{
	zsock_t *s = zhashx_lookup(self->ups, endpoint);

	if (s)
		return s;
	s = zsock_new(ZMQ_DEALER);
	if (!s)
		return NULL;
	zsock_set_identity(s, self->d->name);
	zsock_set_sndhwm(s, 100000);
	zsock_set_rcvhwm(s, 100000);
	zsock_set_maxmsgsize(s, DG_PROTO_MAX_FRAME);
	dg_daemon_client_sock(self->d, s);
	if (zsock_connect(s, "%s", endpoint) < 0) {
		dg_log_error("cannot connect to peer %s", endpoint);
		zsock_destroy(&s);
		return NULL;
	}
	zhashx_insert(self->ups, endpoint, s);
	dg_wire_register(s, endpoint, false);
	/* transfer.done and transfer.failed come back on it. */
	zloop_reader(self->d->loop, s, s_on_peer_cb, self);
	return s;
}

/* ---- rooms and queues -------------------------------------------------- */

static void
s_enqueue(s_stage_t *self, s_room_t *r, int q)
{
	if (r->qhandle)
		zlistx_delete(self->queues[r->queue], r->qhandle);
	r->queue = q;
	r->queued_at = zclock_mono();
	r->qhandle = zlistx_add_end(self->queues[q], r);
}

static void
s_room_free(s_stage_t *self, s_room_t *r)
{
	char key[24];

	if (r->receiving)
		dg_xfer_cancel(self->xfer, r->recv_id);
	if (r->sending)
		dg_xfer_cancel(self->xfer, r->send_id);
	if (r->has_in)
		dg_pool_free(self->pool, &r->in_ext);
	if (r->has_out)
		dg_pool_free(self->pool, &r->out_ext);
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
s_room_end(s_stage_t *self, s_room_t *r)
{
	if (r->in_worker) {
		r->released = true;
		atomic_store(&r->stop, 1);
		return;
	}
	s_room_free(self, r);
}

static void
s_fail(s_stage_t *self, s_room_t *r, bool retryable, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
s_fail(s_stage_t *self, s_room_t *r, bool retryable, const char *fmt, ...)
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
		m->u.stage_failed.role = self->conf->role;
		m->u.stage_failed.reason = why;
		m->u.stage_failed.retryable = retryable;
		s_to_ctl(self, m);
	}
	/* The peers free their side at once instead of at their deadline. */
	dg_msg_t *f = dg_msg_new(DG_OP_TRANSFER_FAILED);
	if (f) {
		f->u.transfer_failed.room = r->room;
		f->u.transfer_failed.reason = why;
		if (r->down) {
			f->u.transfer_failed.phase = s_phase_out(self);
			f->u.transfer_failed.gen = r->down->u.manifest.gen;
			dg_wire_post(self->peer, &r->down_route, f);
		}
		if (*r->up_ep && r->has_in) {
			zsock_t *up = s_up(self, r->up_ep);
			f->u.transfer_failed.phase = s_phase_in(self);
			f->u.transfer_failed.gen = r->in_ext.gen;
			if (up)
				dg_wire_post(up, NULL, f);
		}
		dg_msg_destroy(&f);
	}
	s_room_end(self, r);
}

static void
s_finished(s_stage_t *self, s_room_t *r)
{
	/* This stage's own part: from its input being here (the assign,
	 * for the encoder) to its output delivered, so the timings of a
	 * result add up instead of nesting. */
	int64_t ms = zclock_mono() - (r->ready_at ? r->ready_at : r->created);
	dg_msg_t *m = dg_msg_new(DG_OP_STAGE_DONE);

	self->done++;
	self->lat[self->nlat++ % 1024] = ms;
	if (m) {
		m->u.stage_done.room = r->room;
		m->u.stage_done.request = r->request;
		m->u.stage_done.role = self->conf->role;
		m->u.stage_done.ms = ms;
		if (s_last(self)) {
			m->u.stage_done.output = r->item.output;
			m->u.stage_done.bytes = r->item.output_bytes;
			m->u.stage_done.digest = r->item.digest;
		}
		s_to_ctl(self, m);
	}
	s_room_end(self, r);
}

/* ---- the path of a room ------------------------------------------------ */

static uint64_t
s_align(uint64_t v)
{
	return (v + 255) & ~255ULL;
}

static uint64_t
s_plan_bytes(const dg_tensor_plan_t *p)
{
	uint64_t total = 0;
	for (size_t i = 0; i < p->n; i++)
		total = s_align(total) + p->t[i].bytes;
	return total ? total : 1;
}

static int64_t
s_left_ms(const s_room_t *r)
{
	int64_t left = r->deadline - zclock_mono();
	return left > 1 ? left : 1;
}

/* Reserve input memory and ask upstream for the data. */
static bool
s_try_receive(s_stage_t *self, s_room_t *r)
{
	char why[256];

	if (dg_pool_reserve(self->pool, s_plan_bytes(&r->in_plan),
	    &r->in_ext) != DG_SLOT_OK)
		return false;
	/* Its output too, now: a room holding its input while it waits for
	 * output space could fill the pool with inputs and wait for ever. */
	if (r->out_plan.n && dg_pool_reserve(self->pool,
	    s_plan_bytes(&r->out_plan), &r->out_ext) != DG_SLOT_OK) {
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
	if (dg_xfer_expect(self->xfer, &r->in_ext, &m->u.manifest,
	    s_left_ms(r), &r->recv_id, why, sizeof why) < 0) {
		dg_msg_destroy(&m);
		s_fail(self, r, true, "cannot receive: %s", why);
		return true;
	}
	r->receiving = true;
	zsock_t *up = s_up(self, r->up_ep);
	m->seq = ++self->seq;
	if (!up || dg_wire_post(up, NULL, m) < 0) {
		dg_msg_destroy(&m);
		s_fail(self, r, true, "cannot send the manifest to %s",
		    r->up_ep);
		return true;
	}
	dg_msg_destroy(&m);
	s_enqueue(self, r, Q_WAITING);
	return true;
}

/* Start writing the output downstream once both it and the manifest
 * are here. */
static void
s_try_send(s_stage_t *self, s_room_t *r)
{
	char why[256];

	if (r->queue != Q_SENDING || r->sending || !r->down)
		return;
	const dg_manifest_msg_t *m = &r->down->u.manifest;
	uint64_t bytes[DG_STAGE_MAX_TENSORS];
	for (size_t i = 0; i < r->out_plan.n; i++)
		bytes[i] = r->out_plan.t[i].bytes;
	dg_manifest_want_t want = { .room = r->room,
	    .phase = s_phase_out(self), .n_tensors = r->out_plan.n,
	    .bytes = bytes };
	if (dg_manifest_check(m, &want, why, sizeof why) < 0) {
		s_fail(self, r, false, "manifest from downstream: %s", why);
		return;
	}
	s_phase(self, r, DG_ROOM_SENDING);
	if (dg_xfer_send(self->xfer, m, &r->out_ext, r->out_offsets,
	    s_left_ms(r), &r->send_id, why, sizeof why) < 0) {
		s_fail(self, r, true, "cannot send: %s", why);
		return;
	}
	r->sending = true;
}

/* Input complete: the data is here and the sender said what it wrote. */
static void
s_try_ready(s_stage_t *self, s_room_t *r)
{
	char why[256];

	if (r->queue != Q_WAITING || !r->data_here || !r->done_msg)
		return;
	if (dg_config_fabric(self->d->cfg)->verify) {
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
	r->ready_at = zclock_mono();
	s_enqueue(self, r, Q_READY);
}

/* Hand ready rooms to idle workers, up to max_batch per batch. */
static void
s_pump(s_stage_t *self)
{
	/* Incoming rooms wait for pool space: try again now. */
	s_room_t *r = zlistx_first(self->queues[Q_INCOMING]);
	while (r) {
		s_room_t *next = zlistx_next(self->queues[Q_INCOMING]);
		if (!s_try_receive(self, r))
			break;
		r = next;
	}
	int64_t max_batch = self->conf->max_batch;
	while (self->busy < self->nworkers &&
	    zlistx_size(self->queues[Q_READY]) > 0) {
		s_batch_t *b = calloc(1, sizeof *b);
		if (!b)
			return;
		b->rooms = calloc((size_t)max_batch, sizeof *b->rooms);
		if (!b->rooms) {
			free(b);
			return;
		}
		r = zlistx_first(self->queues[Q_READY]);
		while (r && (int64_t)b->n < max_batch) {
			s_room_t *next = zlistx_next(self->queues[Q_READY]);
			if (self->ops->plan && r->out_plan.n && !r->has_out) {
				if (dg_pool_reserve(self->pool,
				    s_plan_bytes(&r->out_plan), &r->out_ext) !=
				    DG_SLOT_OK)
					break;  /* wait for space */
				r->has_out = true;
			}
			b->rooms[b->n++] = r;
			r = next;
		}
		if (b->n == 0) {
			free(b->rooms);
			free(b);
			return;
		}
		for (size_t i = 0; i < b->n; i++) {
			s_room_t *x = b->rooms[i];
			s_enqueue(self, x, Q_RUNNING);
			x->in_worker = true;
			s_phase(self, x, DG_ROOM_RUNNING);
			/* Lay the item out for the plugin. */
			dg_stage_item_t *it = &x->item;
			memset(it, 0, sizeof *it);
			it->req = &x->req;
			it->in_plan = &x->in_plan;
			it->out_plan = &x->out_plan;
			it->stop = &x->stop;
			char *base = dg_pool_base(self->pool);
			for (size_t k = 0; k < x->in_plan.n; k++)
				it->in[k] = base + x->in_rows[k].offset;
			uint64_t off = 0;
			for (size_t k = 0; k < x->out_plan.n; k++) {
				off = s_align(off);
				x->out_offsets[k] = x->out_ext.offset + off;
				it->out[k] = base + x->out_offsets[k];
				off += x->out_plan.t[k].bytes;
			}
		}
		pthread_mutex_lock(&self->lock);
		zlistx_add_end(self->todo, b);
		self->busy++;
		pthread_cond_signal(&self->cond);
		pthread_mutex_unlock(&self->lock);
	}
}

static void *
s_worker(void *arg)
{
	s_worker_t *w = arg;
	s_stage_t *self = w->self;
	char name[16];

	snprintf(name, sizeof name, "worker%d", w->index);
	dg_thread_register(name);
	pthread_mutex_lock(&self->lock);
	for (;;) {
		while (!self->stop && zlistx_size(self->todo) == 0)
			pthread_cond_wait(&self->cond, &self->lock);
		if (self->stop)
			break;
		s_batch_t *b = zlistx_first(self->todo);
		zlistx_delete(self->todo, zlistx_cursor(self->todo));
		pthread_mutex_unlock(&self->lock);

		/* A batch shows its first room. */
		dg_thread_set(DG_THREAD_BUSY, b->rooms[0]->room);
		dg_stage_item_t *items = calloc(b->n, sizeof *items);
		int64_t t0 = zclock_mono();
		if (items) {
			for (size_t i = 0; i < b->n; i++)
				items[i] = b->rooms[i]->item;
			int rc = self->ops->run(self->plugin, items, b->n);
			for (size_t i = 0; i < b->n; i++) {
				b->rooms[i]->item = items[i];
				if (rc < 0 && !*items[i].error)
					snprintf(b->rooms[i]->item.error,
					    sizeof items[i].error,
					    "stage run failed");
			}
			free(items);
		} else {
			for (size_t i = 0; i < b->n; i++)
				snprintf(b->rooms[i]->item.error,
				    sizeof b->rooms[i]->item.error,
				    "out of memory");
		}
		int64_t ms = zclock_mono() - t0;
		for (size_t i = 0; i < b->n; i++)
			b->rooms[i]->compute_ms = ms;
		dg_thread_set(DG_THREAD_IDLE, 0);

		pthread_mutex_lock(&self->lock);
		zlistx_add_end(self->finished, b);
		uint64_t one = 1;
		if (write(self->donefd, &one, sizeof one) < 0)
			dg_log_error("worker: eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&self->lock);
	dg_thread_unregister();
	return NULL;
}

/* Batches back from the workers. */
static int
s_on_workers(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
	s_stage_t *self = arg;
	uint64_t n;

	(void)loop;
	(void)item;
	if (read(self->donefd, &n, sizeof n) < 0 && errno != EAGAIN)
		return 0;
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	for (;;) {
		pthread_mutex_lock(&self->lock);
		s_batch_t *b = zlistx_first(self->finished);
		if (b) {
			zlistx_delete(self->finished, zlistx_cursor(self->finished));
			self->busy--;
		}
		pthread_mutex_unlock(&self->lock);
		if (!b)
			break;
		for (size_t i = 0; i < b->n; i++) {
			s_room_t *r = b->rooms[i];
			r->in_worker = false;
			if (r->released) {
				s_room_free(self, r);
				continue;
			}
			if (*r->item.error) {
				s_fail(self, r, false, "%s", r->item.error);
				continue;
			}
			/* The input is consumed: give its memory back now. */
			if (r->has_in) {
				dg_pool_free(self->pool, &r->in_ext);
				r->has_in = false;
			}
			if (s_last(self)) {
				s_finished(self, r);
				continue;
			}
			bool verify = dg_config_fabric(self->d->cfg)->verify;
			r->nsums = r->out_plan.n;
			for (size_t k = 0; k < r->out_plan.n; k++)
				r->sums[k] = verify ? dg_checksum(r->item.out[k],
				    r->out_plan.t[k].bytes) : 0;
			s_enqueue(self, r, Q_SENDING);
			s_try_send(self, r);
		}
		free(b->rooms);
		free(b);
	}
	s_pump(self);
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}

/* ---- transfer events --------------------------------------------------- */

static s_room_t *
s_room_by_xfer(s_stage_t *self, uint64_t room)
{
	char key[24];
	return zhashx_lookup(self->rooms, s_key(key, room));
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
		s_room_t *r = s_room_by_xfer(self, ev.room);
		if (!r || r->released)
			continue;
		if (ev.dir == DG_XFER_RECV && r->receiving &&
		    r->recv_id == ev.id) {
			r->receiving = false;
			if (ev.status != DG_XFER_DONE) {
				s_fail(self, r, ev.status != DG_XFER_STALE,
				    "receive: %s", ev.reason);
				continue;
			}
			r->data_here = true;
			s_try_ready(self, r);
		} else if (ev.dir == DG_XFER_SEND && r->sending &&
		    r->send_id == ev.id) {
			r->sending = false;
			if (ev.status != DG_XFER_DONE) {
				s_fail(self, r, true, "send: %s", ev.reason);
				continue;
			}
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
				m->u.transfer_done.bytes = ev.bytes;
				m->u.transfer_done.tensors = rows;
				m->u.transfer_done.n_tensors = mf->n_tensors;
				dg_wire_post(self->peer, &r->down_route, m);
				dg_msg_destroy(&m);
			}
			s_finished(self, r);
		}
	}
	s_pump(self);
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}

/* ---- peer messages ----------------------------------------------------- */

static void
s_take_manifest(s_stage_t *self, s_room_t *r, dg_msg_t **mp,
    dg_route_t *route)
{
	dg_msg_destroy(&r->down);
	dg_route_clear(&r->down_route);
	r->down = *mp;
	*mp = NULL;
	r->down_route = *route;
	route->identity = NULL;
	s_try_send(self, r);
}

static void
s_on_manifest(s_stage_t *self, dg_msg_t **mp, dg_route_t *route)
{
	dg_msg_t *m = *mp;
	char key[24];

	if (m->u.manifest.phase != s_phase_out(self) || s_last(self)) {
		dg_wire_send_error(self->peer, route, m->seq,
		    DG_PROTO_E_INVALID, "%s %s sends no phase %lld data",
		    self->conf->role, self->d->name,
		    (long long)m->u.manifest.phase);
		return;
	}
	char why[256];
	if (dg_manifest_check(&m->u.manifest, &(dg_manifest_want_t){
	    .phase = s_phase_out(self) }, why, sizeof why) < 0) {
		self->refused++;
		dg_wire_send_error(self->peer, route, m->seq,
		    DG_PROTO_E_INVALID, "manifest refused: %s", why);
		return;
	}
	s_room_t *r = zhashx_lookup(self->rooms, s_key(key, m->u.manifest.room));
	if (r) {
		s_take_manifest(self, r, mp, route);
		return;
	}
	/* The manifest outran our assign: keep it a while, but not without
	 * bound, or anyone who can reach the peer endpoint could fill our
	 * memory with manifests for rooms that will never exist. */
	if (zhashx_size(self->early) >= s_early_max(self) &&
	    !zhashx_lookup(self->early, key)) {
		self->refused++;
		dg_wire_send_error(self->peer, route, m->seq, DG_PROTO_E_BUSY,
		    "%zu manifests already wait for rooms not yet assigned",
		    zhashx_size(self->early));
		return;
	}
	s_early_t *e = calloc(1, sizeof *e);
	if (!e)
		return;
	e->msg = m;
	*mp = NULL;
	e->route = *route;
	route->identity = NULL;
	e->until = zclock_mono() + 30000;
	zhashx_update(self->early, key, e);
}

static void
s_on_transfer_done(s_stage_t *self, const dg_msg_t *m)
{
	char key[24];
	s_room_t *r = zhashx_lookup(self->rooms,
	    s_key(key, m->u.transfer_done.room));

	if (!r || !r->has_in || r->in_ext.gen != m->u.transfer_done.gen)
		return;
	r->nsums = m->u.transfer_done.n_tensors < DG_STAGE_MAX_TENSORS ?
	    m->u.transfer_done.n_tensors : DG_STAGE_MAX_TENSORS;
	for (size_t i = 0; i < r->nsums; i++)
		r->sums[i] = m->u.transfer_done.tensors[i].checksum;
	r->done_msg = true;
	s_try_ready(self, r);
}

static void
s_on_transfer_failed(s_stage_t *self, const dg_msg_t *m)
{
	char key[24];
	s_room_t *r = zhashx_lookup(self->rooms,
	    s_key(key, m->u.transfer_failed.room));

	if (!r || r->released)
		return;
	s_fail(self, r, true, "peer: %s", m->u.transfer_failed.reason);
}

static int
s_on_peer_cb(zloop_t *loop, zsock_t *sock, void *arg)
{
	s_stage_t *self = arg;

	(void)loop;
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	for (int i = 0; i < 256 && (zsock_events(sock) & ZMQ_POLLIN); i++) {
		dg_route_t route = { 0 };
		zmsg_t *bodies = NULL;
		dg_msg_t *m = NULL;
		dg_proto_err_t err;
		int n = dg_wire_recv_batch(sock, &route, &bodies);
		if (n < 0)
			break;
		if (n == 0 && zsock_type(sock) == ZMQ_ROUTER)
			dg_wire_send_error(sock, &route, 0,
			    DG_PROTO_E_MALFORMED, "no frame after the "
			    "routing frames");
		/* With curve = on only the deployment's daemons may ask us
		 * to write into their memory. */
		bool trusted = zsock_type(sock) != ZMQ_ROUTER ||
		    dg_daemon_from_daemon(self->d, route.user);
		int rc;
		while ((rc = dg_wire_next(&bodies, &m, &err)) >= 0) {
			if (rc == 0) {
				if (zsock_type(sock) == ZMQ_ROUTER)
					dg_wire_send_decode_error(sock, &route,
					    &err);
			} else if (!trusted) {
				self->refused++;
				dg_log_warn("peer: refused '%s' from key %s: "
				    "not a daemon of this deployment",
				    dg_op_name(m->op),
				    route.user);
				dg_wire_send_error(sock, &route, m->seq,
				    DG_PROTO_E_DENIED, "a stage's peer "
				    "endpoint serves only the deployment's "
				    "daemons");
			} else if (m->op == DG_OP_MANIFEST) {
				/* The room keeps the route it answers on, and
				 * the batch's next message needs one too. */
				dg_route_t own;
				dg_route_copy(&own, &route);
				s_on_manifest(self, &m, &own);
				dg_route_clear(&own);
			} else if (m->op == DG_OP_TRANSFER_DONE) {
				s_on_transfer_done(self, m);
			} else if (m->op == DG_OP_TRANSFER_FAILED) {
				s_on_transfer_failed(self, m);
			} else if (m->op != DG_OP_ERROR &&
			    zsock_type(sock) == ZMQ_ROUTER) {
				dg_wire_send_error(sock, &route, m->seq,
				    DG_PROTO_E_UNKNOWN_OP, "a stage's peer "
				    "endpoint does not serve '%s'",
				    dg_op_name(m->op));
			}
			dg_msg_destroy(&m);
		}
		zmsg_destroy(&bodies);
		dg_route_clear(&route);
	}
	s_pump(self);
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}

/* ---- controller messages ----------------------------------------------- */

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
	h->workers = self->nworkers;
	h->version = DG_VERSION;
	self->last_hello = zclock_mono();
	s_to_ctl(self, m);
}

static void
s_on_assign(s_stage_t *self, const dg_msg_t *m)
{
	const dg_assign_msg_t *a = &m->u.assign;
	char key[24], why[256];

	if (zhashx_lookup(self->rooms, s_key(key, a->room)))
		return;                 /* a duplicate */
	s_room_t *r = calloc(1, sizeof *r);
	if (!r)
		return;
	r->room = a->room;
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
	dg_stage_steps(self->conf->expert, self->conf->boundary, a->steps,
	    &r->req.step_begin, &r->req.step_end);
	r->created = zclock_mono();
	r->deadline = r->created + a->deadline_ms;
	/* The controller's chain must be ours: our place, by role and
	 * name, with the place before it to ask for our input. */
	bool ours = a->n_stages == self->nchain &&
	    strcmp(a->stages[self->index].role, self->conf->role) == 0 &&
	    strcmp(a->stages[self->index].name, self->d->name) == 0;
	if (ours && !s_first(self))
		snprintf(r->up_ep, sizeof r->up_ep, "%s",
		    a->stages[self->index - 1].peer);
	zhashx_insert(self->rooms, key, r);
	if (!ours) {
		s_fail(self, r, false, "the assign's chain of %zu stages does "
		    "not place %s %s at %d: the controller's configuration is "
		    "not this daemon's", a->n_stages, self->conf->role,
		    self->d->name, self->index);
		return;
	}

	if (self->draining) {
		s_fail(self, r, true, "%s is draining", self->d->name);
		return;
	}
	/* Bounded queues: past queue_depth the controller places it
	 * elsewhere (a retryable failure) instead of it waiting here. */
	if ((int64_t)zlistx_size(self->queues[Q_INCOMING]) >=
	    self->conf->queue_depth ||
	    (int64_t)zlistx_size(self->queues[Q_READY]) >=
	    self->conf->queue_depth) {
		s_fail(self, r, true, "%s: queues full (queue_depth %lld)",
		    self->d->name, (long long)self->conf->queue_depth);
		return;
	}
	if (self->ops->plan(self->plugin, &r->req, &r->in_plan, &r->out_plan,
	    why, sizeof why) < 0) {
		s_fail(self, r, false, "invalid: %s", why);
		return;
	}
	/* A manifest that came first. */
	s_early_t *e = zhashx_lookup(self->early, key);
	if (e) {
		s_take_manifest(self, r, &e->msg, &e->route);
		zhashx_delete(self->early, key);
	}
	if (s_first(self) || r->in_plan.n == 0) {
		s_enqueue(self, r, Q_READY);
		r->data_here = r->done_msg = true;
	} else {
		s_enqueue(self, r, Q_INCOMING);
	}
	s_pump(self);
}

static void
s_on_release(s_stage_t *self, const dg_msg_t *m)
{
	char key[24];
	s_room_t *r = zhashx_lookup(self->rooms, s_key(key, m->u.release.room));

	zhashx_delete(self->early, key);
	if (r) {
		dg_log_debug("room=%llu released: %s",
		    (unsigned long long)r->room,
		    m->u.release.reason ? m->u.release.reason : "");
		r->failed = true;       /* no more reports for it */
		s_room_end(self, r);
	}
	s_pump(self);
}

/* ---- admin ops, relayed by the controller ------------------------------ */

static dg_msg_t *
s_queues_reply(s_stage_t *self, uint64_t seq)
{
	dg_msg_t *ok = dg_msg_new(DG_OP_QUEUES_OK);
	size_t n = 0, cap = 0;
	int64_t now = zclock_mono();

	if (!ok)
		return NULL;
	for (int q = 0; q < Q_COUNT; q++)
		cap += zlistx_size(self->queues[q]);
	if (cap > DG_PROTO_MAX_ITEMS)
		cap = DG_PROTO_MAX_ITEMS;       /* the peer would refuse more */
	dg_queue_row_t *rows = dg_msg_alloc(ok, (cap + 1) * sizeof *rows);
	if (!rows) {
		dg_msg_destroy(&ok);
		return NULL;
	}
	for (int q = 0; q < Q_COUNT; q++) {
		for (s_room_t *r = zlistx_first(self->queues[q]); r && n < cap;
		    r = zlistx_next(self->queues[q]))
			rows[n++] = (dg_queue_row_t){ .room = r->room,
			    .request = r->request, .queue = s_queue_names[q],
			    .age_ms = now - r->queued_at };
	}
	ok->seq = seq;
	ok->u.queues_ok.name = self->d->name;
	ok->u.queues_ok.rooms = rows;
	ok->u.queues_ok.n_rooms = n;
	return ok;
}

/* The reply keeps the request's seq: the controller matches it to the
 * client that asked. */
static void
s_on_admin(s_stage_t *self, const dg_msg_t *m)
{
	dg_msg_t *reply = NULL;

	switch (m->op) {
	case DG_OP_QUEUES: reply = s_queues_reply(self, m->seq); break;
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

/* The longest a busy worker has gone without progress (0: none busy):
 * liveness by progress, not by mere existence. */
static int64_t
s_stalled_ms(s_stage_t *self)
{
	dg_thread_info_t info[64];
	size_t n = dg_threads_snapshot(info, 64);
	int64_t worst = 0;

	(void)self;
	for (size_t i = 0; i < n; i++)
		if (info[i].registered && strncmp(info[i].name, "worker", 6) == 0 &&
		    strcmp(info[i].state, "busy") == 0 &&
		    info[i].progress_age_ms > worst)
			worst = info[i].progress_age_ms;
	return worst;
}

static void
s_drop_rooms(s_stage_t *self, const char *why)
{
	size_t n = zhashx_size(self->rooms), k = 0;
	s_room_t **all = calloc(n + 1, sizeof *all);

	if (!all)
		return;
	for (s_room_t *r = zhashx_first(self->rooms); r && k < n;
	    r = zhashx_next(self->rooms))
		all[k++] = r;
	for (size_t i = 0; i < k; i++) {
		all[i]->failed = true;  /* no reports for them */
		s_room_end(self, all[i]);
	}
	if (k)
		dg_log_warn("dropped %zu rooms: %s", k, why);
	free(all);
	zhashx_purge(self->early);
}

static void
s_on_ctl_msg(s_stage_t *self, dg_msg_t *m)
{
	switch (m->op) {
	case DG_OP_HELLO_OK:
		if (!self->registered)
			dg_log_info("registered with the controller");
		self->registered = true;
		self->heartbeat_ms = m->u.hello_ok.heartbeat_ms;
		break;
	case DG_OP_ASSIGN: s_on_assign(self, m); break;
	case DG_OP_RELEASE: s_on_release(self, m); break;
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
			if (self->registered)
				s_drop_rooms(self, "the controller restarted");
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
	s_pump(self);
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}

/* ---- timers ------------------------------------------------------------ */

static int
s_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
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
		if (!dg_xfer_wedged(self->xfer))
			return;
		dg_log_error("the fabric is wedged: failing %zu rooms and "
		    "restarting in place", zhashx_size(self->rooms));
		/* Goodbye first: the controller then places those rooms'
		 * requests elsewhere, or keeps them until we are back,
		 * instead of on us again while we go. */
		dg_msg_t *m = dg_msg_new(DG_OP_BYE);
		if (m) {
			m->u.bye.name = self->d->name;
			m->u.bye.reason = "fabric wedged; restarting";
			s_to_ctl(self, m);
		}
		s_room_t *r;
		s_room_t *all[256];
		size_t n;
		do {
			n = 0;
			for (r = zhashx_first(self->rooms); r && n < 256;
			    r = zhashx_next(self->rooms))
				if (!r->failed)
					all[n++] = r;
			for (size_t i = 0; i < n; i++)
				s_fail(self, all[i], true, "%s: fabric wedged; "
				    "restarting", self->d->name);
		} while (n == 256);
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

static int
s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
	s_stage_t *self = arg;
	int64_t now = zclock_mono();

	(void)loop;
	(void)timer_id;
	s_restart_if_wedged(self, now);
	if (self->reexec_at)
		return 0;
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	if (!self->registered && now - self->last_hello >= 1000)
		s_hello(self);
	if (now - self->stats_at >= self->heartbeat_ms) {
		dg_msg_t *h = dg_msg_new(DG_OP_HEARTBEAT);
		if (h) {
			dg_pool_stats_t ps;
			dg_pool_stats(self->pool, &ps);
			dg_heartbeat_msg_t *hb = &h->u.heartbeat;
			hb->name = self->d->name;
			hb->stalled_ms = s_stalled_ms(self);
			hb->state = self->draining ? (zhashx_size(self->rooms) ?
			    "draining" : "drained") :
			    dg_xfer_wedged(self->xfer) ||
			    hb->stalled_ms > self->conf->stall_ms ?
			    "unhealthy" : "up";
			hb->incoming = (int64_t)zlistx_size(self->queues[Q_INCOMING]);
			hb->waiting = (int64_t)zlistx_size(self->queues[Q_WAITING]);
			hb->ready = (int64_t)zlistx_size(self->queues[Q_READY]);
			hb->running = (int64_t)zlistx_size(self->queues[Q_RUNNING]);
			hb->sending = (int64_t)zlistx_size(self->queues[Q_SENDING]);
			hb->rooms = (int64_t)zhashx_size(self->rooms);
			hb->free_slots = ps.slots_free;
			s_to_ctl(self, h);
		}
		dg_msg_t *st = dg_msg_new(DG_OP_STATS);
		if (st) {
			int64_t sorted[1024];
			size_t n = self->nlat < 1024 ? self->nlat : 1024;
			memcpy(sorted, self->lat, n * sizeof *sorted);
			qsort(sorted, n, sizeof *sorted, s_cmp_i64);
			double secs = (double)(now - self->stats_at) / 1000.0;
			st->u.stats.name = self->d->name;
			st->u.stats.done = self->done;
			st->u.stats.failed = self->failed;
			st->u.stats.rps = secs > 0 ? (double)(self->done -
			    self->done_at_stats) / secs : 0;
			st->u.stats.p50_us = n ? sorted[n / 2] * 1000 : 0;
			st->u.stats.p99_us = n ? sorted[n * 99 / 100] * 1000 : 0;
			s_to_ctl(self, st);
		}
		self->stats_at = now;
		self->done_at_stats = self->done;
	}
	/* Rooms past their deadline with no word from the controller
	 * (a lost release): free them here.  The grace lets the
	 * controller's own deadline act first. */
	s_room_t *late[64];
	size_t n = 0;
	for (s_room_t *r = zhashx_first(self->rooms); r && n < 64;
	    r = zhashx_next(self->rooms))
		if (now > r->deadline + 2000 && !r->in_worker)
			late[n++] = r;
	for (size_t i = 0; i < n; i++)
		s_fail(self, late[i], false, "deadline passed in %s",
		    s_queue_names[late[i]->queue]);
	for (s_early_t *e = zhashx_first(self->early); e;
	    e = zhashx_next(self->early)) {
		if (now > e->until) {
			zhashx_delete(self->early, zhashx_cursor(self->early));
			break;          /* the cursor is gone: next tick */
		}
	}
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}

/* ---- set-up ------------------------------------------------------------ */

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

static void
s_sock_destroy(void **item)
{
	zsock_t *s = *item;
	dg_wire_unregister(s);
	zsock_destroy(&s);
	*item = NULL;
}

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

static int
s_start(dg_daemon_t *d, void **state)
{
	s_stage_t *self = calloc(1, sizeof *self);
	char why[256];

	if (!self)
		return -1;
	*state = self;
	self->d = d;
	self->conf = dg_config_stage(d->cfg, d->name);
	self->index = self->conf->index;
	self->nchain = dg_config_pipeline(d->cfg)->nroles;
	self->heartbeat_ms = dg_config_controller(d->cfg)->heartbeat_ms;
	self->donefd = -1;
	pthread_mutex_init(&self->lock, NULL);
	pthread_cond_init(&self->cond, NULL);
	self->todo = zlistx_new();
	self->finished = zlistx_new();
	self->rooms = zhashx_new();
	self->early = zhashx_new();
	self->ups = zhashx_new();
	zhashx_set_destructor(self->early, s_early_destroy);
	zhashx_set_destructor(self->ups, s_sock_destroy);
	for (int q = 0; q < Q_COUNT; q++)
		self->queues[q] = zlistx_new();

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
	self->pool = dg_xfer_pool_for(self->conf, prov, why, sizeof why);
	if (!self->pool) {
		dg_log_error("pool: %s", why);
		return -1;
	}
	/* The pool first: a stage may want to know where its memory is. */
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
		.stage = self->conf->stage,
		.python_path = self->conf->python_path,
		.memory = self->conf->memory == DG_MEMORY_CUDA ? "cuda" : "host",
		.config_file = dg_config_file(d->cfg),
		.options = opts, .option_lines = opt_lines,
		.pool_base = dg_pool_base(self->pool),
		.pool_bytes = dg_pool_size(self->pool),
		.expert = dg_expert_name(self->conf->expert),
		.place = self->index, .places = (int)self->nchain,
	};
	if (self->ops->init(&env, &self->plugin, why, sizeof why) < 0) {
		dg_log_error("stage '%s' init: %s", self->conf->stage, why);
		self->ops = NULL;
		return -1;
	}
	self->xfer = dg_xfer_new(&fabric, self->pool, *self->conf->host ?
	    self->conf->host : "127.0.0.1", why, sizeof why);
	if (!self->xfer) {
		dg_log_error("fabric: %s", why);
		return -1;
	}

	self->ctl = zsock_new(ZMQ_DEALER);
	self->peer = zsock_new(ZMQ_ROUTER);
	if (!self->ctl || !self->peer)
		return -1;
	zsock_set_identity(self->ctl, d->name);
	zsock_set_sndhwm(self->ctl, 100000);
	zsock_set_rcvhwm(self->ctl, 100000);
	zsock_set_maxmsgsize(self->ctl, DG_PROTO_MAX_FRAME);
	zsock_set_maxmsgsize(self->peer, DG_PROTO_MAX_FRAME);
	zsock_set_sndhwm(self->peer, 100000);
	zsock_set_rcvhwm(self->peer, 100000);
	dg_daemon_client_sock(d, self->ctl);
	dg_daemon_server_sock(d, self->peer);
	const char *listen = dg_config_controller(d->cfg)->listen;
	if (zsock_connect(self->ctl, "%s", listen) < 0) {
		dg_log_error("cannot connect to the controller at %s", listen);
		return -1;
	}
	if (zsock_bind(self->peer, "%s", self->conf->peer) < 0) {
		dg_log_error("cannot bind %s: %s", self->conf->peer,
		    zmq_strerror(zmq_errno()));
		return -1;
	}
	dg_wire_register(self->ctl, listen, false);
	dg_daemon_bound(d, self->peer, self->conf->peer, "peer");
	dg_wire_register(self->peer, self->conf->peer, true);
	self->donefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (self->donefd < 0)
		return -1;
	self->nworkers = (int)self->conf->workers;
	self->workers = calloc((size_t)self->nworkers, sizeof *self->workers);
	if (!self->workers)
		return -1;
	for (int i = 0; i < self->nworkers; i++) {
		self->workers[i].self = self;
		self->workers[i].index = i;
		if (pthread_create(&self->workers[i].thread, NULL, s_worker,
		    &self->workers[i]) != 0) {
			self->nworkers = i;
			return -1;
		}
	}
	zloop_reader(d->loop, self->ctl, s_on_ctl, self);
	zloop_reader(d->loop, self->peer, s_on_peer_cb, self);
	zmq_pollitem_t xi = { .fd = dg_xfer_fd(self->xfer), .events = ZMQ_POLLIN };
	zloop_poller(d->loop, &xi, s_on_xfer, self);
	zmq_pollitem_t wi = { .fd = self->donefd, .events = ZMQ_POLLIN };
	zloop_poller(d->loop, &wi, s_on_workers, self);
	zloop_timer(d->loop, 20, 0, s_on_tick, self);
	s_hello(self);
	dg_log_info("%s stage '%s', peer %s, %d workers, fabric %s",
	    self->conf->role, self->ops->name, self->conf->peer,
	    self->nworkers, dg_xfer_provider(self->xfer));
	return 0;
}

static void
s_drain(void *state)
{
	s_stage_t *self = state;
	self->draining = true;
}

static bool
s_idle(void *state)
{
	s_stage_t *self = state;
	return zhashx_size(self->rooms) == 0;
}

static void
s_reload(void *state)
{
	s_stage_t *self = state;
	self->conf = dg_config_stage(self->d->cfg, self->d->name);
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
		}
	}
	pthread_mutex_lock(&self->lock);
	self->stop = true;
	pthread_cond_broadcast(&self->cond);
	pthread_mutex_unlock(&self->lock);
	for (int i = 0; i < self->nworkers; i++)
		pthread_join(self->workers[i].thread, NULL);
	free(self->workers);
	/* Rooms left: free them; batches never run are dropped. */
	s_room_t *r;
	while (self->rooms && (r = zhashx_first(self->rooms))) {
		r->in_worker = false;
		s_room_free(self, r);
	}
	s_batch_t *b;
	while (self->todo && (b = zlistx_first(self->todo))) {
		zlistx_delete(self->todo, zlistx_cursor(self->todo));
		free(b->rooms);
		free(b);
	}
	while (self->finished && (b = zlistx_first(self->finished))) {
		zlistx_delete(self->finished, zlistx_cursor(self->finished));
		free(b->rooms);
		free(b);
	}
	dg_xfer_destroy(&self->xfer);
	dg_pool_destroy(&self->pool);
	if (self->ops && self->ops->fini)
		self->ops->fini(self->plugin);
	for (int q = 0; q < Q_COUNT; q++)
		zlistx_destroy(&self->queues[q]);
	zlistx_destroy(&self->todo);
	zlistx_destroy(&self->finished);
	zhashx_destroy(&self->rooms);
	zhashx_destroy(&self->early);
	zhashx_destroy(&self->ups);
	dg_wire_unregister(self->ctl);
	dg_wire_unregister(self->peer);
	zsock_destroy(&self->ctl);
	zsock_destroy(&self->peer);
	if (self->donefd >= 0)
		close(self->donefd);
	pthread_mutex_destroy(&self->lock);
	pthread_cond_destroy(&self->cond);
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
