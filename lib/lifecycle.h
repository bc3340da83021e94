/*  lifecycle.h: the request lifecycle, the controller's core
 *  (ARCHITECTURE.md, "The I/O-free core").
 *
 *  A state machine with no I/O: it opens no socket, reads no clock and
 *  writes no file.  Events go in, each with the time `now` (monotonic
 *  milliseconds): a decoded message and who sent it, a tick, an
 *  operator's action.  What comes out goes through the driver's
 *  dg_lc_io_t: messages to route to a client or an instance, events to
 *  publish, journal records to write.  dg_lc_next_wake says when the
 *  next tick has work.  The only limits are the configuration's
 *  (max_pending, max_pending_per_client, max_retries, keep_finished...):
 *  every list grows, so an instance that dies holding 10,000 rooms has
 *  all 10,000 placed again, and a stop ends every live request.
 *
 *  A request is placed on one instance per role of the chain (a room);
 *  the instances report its progress (room.phase, stage.done) and
 *  failures (stage.failed); it ends exactly once, with one `result` to
 *  its client: done, failed or cancelled.  */
#ifndef DG_LIFECYCLE_H
#define DG_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"
#include "registry.h"
#include "wire.h"

/* A request's state, as status.ok and rooms.ok name it.  Chains longer
 * than three keep version 1's words: "encoding" is the first stage at
 * work, "decoding" the last, "denoising" any between; "phase1" the first
 * hop, "phase2" any later one.  status.ok's `stage` names the role. */
typedef enum {
	DG_REQ_PENDING = 0,
	DG_REQ_ASSIGNED,
	DG_REQ_ENCODING,
	DG_REQ_PHASE1,
	DG_REQ_DENOISING,
	DG_REQ_PHASE2,
	DG_REQ_DECODING,
	DG_REQ_DONE,
	DG_REQ_FAILED,
	DG_REQ_CANCELLED,
	DG_REQ_STATE_COUNT
} dg_req_state_t;

const char *dg_req_state_name(dg_req_state_t state);
int dg_req_state_lookup(const char *word);      /* -1 when unknown */

/* What a stage says of a room in room.phase. */
typedef enum {
	DG_ROOM_RUNNING = 0,            /* in a worker */
	DG_ROOM_SENDING,                /* its output on the way downstream */
	DG_ROOM_PHASE_COUNT
} dg_room_phase_t;

const char *dg_room_phase_name(dg_room_phase_t phase);
int dg_room_phase_lookup(const char *word);     /* -1 when unknown */

/* The driver's side: where output goes.  Every pointer in a message is
 * valid only during the call. */
typedef struct {
	void *arg;
	/* A reply or a result for a client.  `held`: send it only after the
	 * journal's next sync (an accepted request is on disk first). */
	void (*to_client)(void *arg, const dg_route_t *to, const dg_msg_t *m,
	    bool held);
	void (*client_error)(void *arg, const dg_route_t *to, uint64_t seq,
	    dg_proto_code_t code, const char *text);
	/* An assign or a release for a live instance. */
	void (*to_instance)(void *arg, const dg_inst_t *in, const dg_msg_t *m);
	/* An event for the PUB socket. */
	void (*publish)(void *arg, dg_msg_t *m);
	/* The journal, or all NULL when none.  accept: 0, or -1 and the
	 * request is refused; the others' failures are logged. */
	int (*journal_accept)(void *arg, uint64_t id, int64_t timeout_ms,
	    const dg_msg_t *submit);
	int (*journal_end)(void *arg, uint64_t id, const dg_msg_t *result);
	int (*journal_rooms)(void *arg, uint64_t upto);
	/* Whether a submit the core finds valid can ever be served: the
	 * stages' plans against their pools (fit.h).  0, or -1 with the
	 * reason, and it is refused as invalid.  NULL: every one can. */
	int (*fits)(void *arg, const dg_submit_msg_t *sub, char *why,
	    size_t whysize);
} dg_lc_io_t;

typedef struct _dg_lifecycle_t dg_lifecycle_t;

/* The longest deadline a submit may ask: 30 days. */
#define DG_LC_DEADLINE_MAX_MS (30LL * 24 * 3600 * 1000)

/* `conf` is read at every event (a reload replaces it: set_conf). */
dg_lifecycle_t *dg_lifecycle_new(const dg_pipeline_conf_t *chain,
    const dg_controller_conf_t *conf, const dg_lc_io_t *io);
void dg_lifecycle_destroy(dg_lifecycle_t **self_p);
void dg_lifecycle_set_conf(dg_lifecycle_t *self,
    const dg_controller_conf_t *conf);
/* Ids continue after these (the journal's). */
void dg_lifecycle_set_ids(dg_lifecycle_t *self, uint64_t last_request,
    uint64_t last_room);
dg_registry_t *dg_lifecycle_registry(dg_lifecycle_t *self);

/* ---- events ------------------------------------------------------------ */

/* Client ops.  `admin`: the sender holds an admin key (may cancel
 * another client's request). */
void dg_lc_submit(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m);
void dg_lc_status(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m);
void dg_lc_cancel(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m, bool admin);

/* Instances' ops. */
void dg_lc_hello(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m);
void dg_lc_heartbeat(dg_lifecycle_t *self, int64_t now,
    const dg_route_t *from, const dg_msg_t *m);
void dg_lc_stats(dg_lifecycle_t *self, const dg_msg_t *m);
void dg_lc_bye(dg_lifecycle_t *self, int64_t now, const dg_msg_t *m);
void dg_lc_stage_done(dg_lifecycle_t *self, int64_t now, const dg_msg_t *m);
void dg_lc_stage_failed(dg_lifecycle_t *self, int64_t now,
    const dg_msg_t *m);
void dg_lc_room_phase(dg_lifecycle_t *self, int64_t now, const dg_msg_t *m);
/* progress from a stage: kept for status and rooms, and sent on to a
 * client that asked, at most every DG_LC_PROGRESS_EVERY_MS per request
 * (the newest word; words in between are dropped). */
void dg_lc_progress(dg_lifecycle_t *self, int64_t now, const dg_msg_t *m);

/* Operators' ops (the driver has checked the key).  drain: `exit` asks
 * the daemon itself to drain and exit. */
void dg_lc_drain(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m, bool drain);
void dg_lc_release(dg_lifecycle_t *self, int64_t now,
    const dg_route_t *from, const dg_msg_t *m);

/* Time: instances silent for dead_after_ms die (their rooms fail over),
 * requests past their deadline fail, finished ones are forgotten past
 * keep_finished and keep_finished_ms. */
void dg_lc_tick(dg_lifecycle_t *self, int64_t now);
/* The driver's clock jumped by `gap` ms while it did not run (a
 * SIGSTOP, a paused VM, a blocked loop): no instance is declared dead
 * for that silence, which was ours.  Requests' deadlines still hold. */
void dg_lc_paused(dg_lifecycle_t *self, int64_t now, int64_t gap);
/* The earliest `now` at which dg_lc_tick has something to do. */
int64_t dg_lc_next_wake(dg_lifecycle_t *self, int64_t now);

/* A journal record read at start: an accepted request (`m` a submit,
 * `left_ms` of its deadline left, maybe <= 0) or a finished one (`m` a
 * result).  Takes `m`. */
void dg_lc_replay(dg_lifecycle_t *self, int64_t now, uint64_t id,
    int64_t left_ms, dg_msg_t *m);

/* SIGTERM: take no new requests; what is placed finishes.  Stop: every
 * live request ends now, failed with `why`. */
void dg_lc_draining(dg_lifecycle_t *self);
void dg_lc_stop(dg_lifecycle_t *self, int64_t now, const char *why);

/* ---- views ------------------------------------------------------------- */

typedef struct {
	size_t pending;                 /* waiting for instances */
	size_t active;                  /* accepted, not finished */
	size_t rooms;                   /* placed */
	size_t known;                   /* kept for status, finished too */
	uint64_t done, failed, cancelled, replayed;
} dg_lc_counts_t;

void dg_lc_counts(const dg_lifecycle_t *self, dg_lc_counts_t *out);
/* The controller's Prometheus metrics (metrics.h), labelled
 * instance=`name`: requests by terminal status, in flight and waiting
 * for instances, their duration, instances by role and state, build
 * info. */
struct _dg_metrics_t;
void dg_lc_metrics(dg_lifecycle_t *self, const char *name,
    struct _dg_metrics_t *m);
/* rooms.ok: every live room, or those placed on instance `name`; and
 * queues.ok of the controller itself (its pending requests).  NULL when
 * out of memory.  A list longer than the protocol allows is cut, and the
 * reply says how many rows were left out. */
dg_msg_t *dg_lc_rooms_reply(dg_lifecycle_t *self, int64_t now,
    const char *name, uint64_t seq);
dg_msg_t *dg_lc_queues_reply(dg_lifecycle_t *self, int64_t now,
    const char *self_name, uint64_t seq);

#endif
