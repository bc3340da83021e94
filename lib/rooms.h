/*  rooms.h: the room lifecycle, a stage daemon's core (ARCHITECTURE.md,
 *  "The I/O-free core").
 *
 *  A room is one request's stay in one stage daemon.  It moves through
 *  bounded, visible queues:
 *
 *    incoming  assigned, input memory not yet reserved (pool full);
 *    waiting   input reserved and its manifest sent upstream, data not
 *              yet here;
 *    ready     input here (and verified), waiting for a worker;
 *    running   in a worker;
 *    sending   output being written downstream (or waiting for the
 *              downstream manifest).
 *
 *  The first stage of the chain skips to ready; the last one ends after
 *  running.  Every room has its request's deadline; every failure is
 *  reported to the controller (stage.failed) and to the peers
 *  (transfer.failed), which free their side too.
 *
 *  No I/O and no clock: events go in with `now`; messages, transfers and
 *  batches for the workers go out through dg_rooms_io_t.  The pool (host
 *  memory bookkeeping) is the core's own.  The only bounds are the
 *  configuration's: queue_depth per queue, max_batch, the pool.  */
#ifndef DG_ROOMS_H
#define DG_ROOMS_H

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"
#include "proto.h"
#include "stage.h"
#include "wire.h"
#include "xfer.h"

/* The queues, with their wire names (queues.ok) in one table. */
typedef enum {
	DG_QUEUE_INCOMING = 0,
	DG_QUEUE_WAITING,
	DG_QUEUE_READY,
	DG_QUEUE_RUNNING,
	DG_QUEUE_SENDING,
	DG_QUEUE_COUNT
} dg_room_queue_t;

const char *dg_room_queue_name(dg_room_queue_t q);

typedef struct dg_room dg_room_t;

/* Rooms that run together in one worker. */
typedef struct {
	dg_room_t **rooms;
	size_t n;
	double compute_s;               /* the plugin's run, set by the worker */
} dg_room_batch_t;

/* The item a worker hands the plugin, and the room's id. */
dg_stage_item_t *dg_room_item(dg_room_t *room);
uint64_t dg_room_id(const dg_room_t *room);

typedef struct {
	void *arg;
	/* stage.done, stage.failed, room.phase, progress. */
	void (*to_controller)(void *arg, dg_msg_t *m);
	/* A manifest or transfer.failed for the stage before us, at its
	 * peer endpoint.  0, or -1 when it cannot be sent. */
	int (*to_upstream)(void *arg, const char *endpoint, dg_msg_t *m);
	/* transfer.done or transfer.failed for the stage after us, on the
	 * route its manifest came from. */
	void (*to_downstream)(void *arg, const dg_route_t *to, dg_msg_t *m);
	/* The transfer engine (xfer.h): receive into, send from, cancel. */
	int (*expect)(void *arg, const dg_extent_t *ext, dg_manifest_msg_t *m,
	    int64_t timeout_ms, uint64_t *id, char *why, size_t whysize);
	int (*send)(void *arg, const dg_manifest_msg_t *m,
	    const dg_extent_t *ext, const uint64_t *src, int64_t timeout_ms,
	    uint64_t *id, char *why, size_t whysize);
	/* 1 when the engine keeps a cancelled receive's extent (a local
	 * sender holds it): the caller must not free it. */
	int (*cancel)(void *arg, uint64_t id);
	/* Zero copy on one host (optional, NULL: none): hold the
	 * receiver's extent of a downstream manifest so the plugin writes
	 * its output there (ptrs[i]: tensor i); NULL when it cannot.  Then
	 * hand it over (taking the lease) or drop it. */
	void *(*lease)(void *arg, const dg_manifest_msg_t *m, void **ptrs);
	void (*lease_drop)(void *arg, void *lease);
	int (*send_placed)(void *arg, const dg_manifest_msg_t *m, void *lease,
	    int64_t timeout_ms, uint64_t *id, char *why, size_t whysize);
	/* The plugin's plan for a request: 0 or -1 with a reason. */
	int (*plan)(void *arg, const dg_request_t *req, dg_tensor_plan_t *in,
	    dg_tensor_plan_t *out, char *why, size_t whysize);
	/* Whether a worker is free; hand it a batch (it takes `b`). */
	bool (*worker_free)(void *arg);
	void (*run)(void *arg, dg_room_batch_t *b);
} dg_rooms_io_t;

typedef struct {
	const char *role;               /* ours in the chain */
	const char *name;               /* this daemon's */
	int index;                      /* our place in the chain */
	size_t places;                  /* places in the chain */
	int expert;                     /* dg_expert_t */
	int64_t boundary;
	int64_t queue_depth;
	int64_t overtake;               /* rooms that may pass one waiting */
	/* A send's deadline, from when it starts, unless the request's
	 * comes first; 0: the request's.  (A receive waits for the
	 * request's: it is armed before the data exists.) */
	int64_t transfer_timeout_ms;
	int64_t max_batch;
	bool verify;                    /* check checksums of inputs */
	int order;                      /* dg_order_t: which ready room next */
	/* The plugin can suspend a run at a step boundary (ABI 5): a
	 * ready room of a higher priority than a running one asks that
	 * one's batch to yield (DG_STAGE_YIELD). */
	bool preempt;
	/* The first place: how long a ready room waits for the manifest
	 * from downstream before it runs, so that its output can be
	 * written in place (zero copy on one host) rather than copied
	 * later; 0: it runs at once. */
	int64_t manifest_wait_ms;
} dg_rooms_conf_t;

typedef struct _dg_rooms_t dg_rooms_t;

dg_rooms_t *dg_rooms_new(const dg_rooms_conf_t *conf, dg_pool_t *pool,
    const dg_rooms_io_t *io);
/* Frees every room, and the batches never run: after the workers. */
void dg_rooms_destroy(dg_rooms_t **self_p);
/* Reloadable: queue_depth, overtake, transfer_timeout_ms, max_batch,
 * verify, order. */
void dg_rooms_set_conf(dg_rooms_t *self, const dg_rooms_conf_t *conf);

/* ---- events ------------------------------------------------------------ */

void dg_rooms_assign(dg_rooms_t *self, int64_t now, const dg_msg_t *m);
void dg_rooms_release(dg_rooms_t *self, int64_t now, const dg_msg_t *m);
/* A manifest from downstream; the room keeps it and its route (taken
 * from *mp and *route).  0, or a code and `why` to answer the sender
 * with. */
dg_proto_code_t dg_rooms_manifest(dg_rooms_t *self, int64_t now,
    dg_msg_t **mp, dg_route_t *route, char *why, size_t whysize);
void dg_rooms_transfer_done(dg_rooms_t *self, int64_t now,
    const dg_msg_t *m);
void dg_rooms_transfer_failed(dg_rooms_t *self, int64_t now,
    const dg_msg_t *m);
void dg_rooms_xfer_event(dg_rooms_t *self, int64_t now,
    const dg_xfer_event_t *ev);
/* A batch back from a worker (takes it); `ms` its compute time. */
void dg_rooms_batch_done(dg_rooms_t *self, int64_t now, dg_room_batch_t *b);
/* A worker said how far a room's request is (stage.h, env->step): it
 * goes to the controller as `progress`, and shows in queues.ok.  Steps
 * out of 1..steps, repeats and rooms no longer in a worker are dropped. */
void dg_rooms_step(dg_rooms_t *self, uint64_t room, int64_t step,
    int64_t steps);
/* A worker suspended the room after `step` steps (env->suspend): when
 * its batch comes back it waits ready again, its memory kept, and runs
 * on from there. */
void dg_rooms_suspended(dg_rooms_t *self, uint64_t room, int64_t step);
/* Rooms suspended so far, and runs resumed. */
uint64_t dg_rooms_suspensions(const dg_rooms_t *self);
/* Move what can move: incoming rooms into free memory, ready ones to
 * free workers.  Call after every turn of events. */
void dg_rooms_pump(dg_rooms_t *self, int64_t now);
/* Rooms past their deadline (plus a grace for the controller's own),
 * and manifests that waited too long for their assign. */
void dg_rooms_tick(dg_rooms_t *self, int64_t now);
/* Draining: new assigns fail (retryable) at once. */
void dg_rooms_drain(dg_rooms_t *self);
/* Every room fails (retryable) with `why`: the fabric is wedged. */
void dg_rooms_fail_all(dg_rooms_t *self, int64_t now, const char *why);
/* Every room goes without a report: the controller that placed them is
 * gone.  Returns how many. */
size_t dg_rooms_drop_all(dg_rooms_t *self);

/* ---- views ------------------------------------------------------------- */

size_t dg_rooms_count(const dg_rooms_t *self);
size_t dg_rooms_queued(const dg_rooms_t *self, dg_room_queue_t q);
uint64_t dg_rooms_done(const dg_rooms_t *self);
uint64_t dg_rooms_failed(const dg_rooms_t *self);
uint64_t dg_rooms_refused(const dg_rooms_t *self);
/* The q-quantile (0.5: p50) of the durations in ms of the rooms that
 * ended in the last 60 s before `now`; 0 when none did. */
int64_t dg_rooms_latency(const dg_rooms_t *self, int64_t now, double q);
/* queues.ok for this daemon; NULL when out of memory. */
dg_msg_t *dg_rooms_queues_reply(dg_rooms_t *self, int64_t now,
    uint64_t seq);

#endif
