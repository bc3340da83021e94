/*  lifecycle_impl.h: the controller core's own types, shared by
 *  lifecycle.c (events) and lifecycle_views.c (what it shows).  Private
 *  to lib/.  */
#ifndef DG_LIFECYCLE_IMPL_H
#define DG_LIFECYCLE_IMPL_H

#include "lifecycle.h"
#include "metrics.h"

/* One place of the chain for one request. */
typedef struct {
	char inst[DG_NAME_MAX];         /* "" until placed */
	bool done;
	int64_t ms;
	/* stage.done's account of the room's time there (result.timings) */
	int64_t queue_us, in_us, compute_us, out_us, total_us;
	int64_t step, steps;            /* its last progress, 0 of 0: none */
	int64_t charged_us;             /* on its instance's backlog */
} dg_lc_place_t;

typedef struct dg_lc_req {
	uint64_t id;
	dg_route_t client;
	char cid[2 * 256 + 1];          /* the client, for per-client counts */
	char user[48];                  /* submitter's public key, or "" */
	char *key;                      /* the submit's key, or NULL */
	char *prompt, *negative;
	int64_t frames, height, width, steps, seed;
	int64_t timeout_ms;
	int64_t priority;               /* 0..DG_PRIORITY_MAX */
	dg_req_state_t state;           /* terminal ones; else from rank */
	int rank;
	uint64_t room;
	int attempt;
	int64_t created, deadline, finished;
	char error[256];
	char *output;                   /* the last stage's file, or NULL */
	uint64_t bytes;
	char digest[40];
	void *live;                     /* handle in the live list */
	void *pend;                     /* handle in the pending list */
	/* The client asked for `progress`: the last one it was sent, and
	 * whether a newer one waits in `held` for PROGRESS_EVERY_MS. */
	bool progress;
	int64_t progress_at;
	void *held;
	int held_place;
	dg_lc_place_t place[];              /* one per role of the chain */
} dg_lc_req_t;

struct _dg_lifecycle_t {
	dg_pipeline_conf_t chain;
	size_t n;                       /* places in the chain */
	const dg_controller_conf_t *conf;
	dg_lc_io_t io;
	dg_registry_t *reg;
	zhashx_t *reqs;                 /* id -> dg_lc_req_t, finished too */
	zhashx_t *rooms;                /* room id -> dg_lc_req_t */
	zhashx_t *per_client;           /* cid -> requests in flight */
	zhashx_t *keys;                 /* submitter and key -> request id */
	zlistx_t *pending;              /* dg_lc_req_t waiting for instances */
	zlistx_t *live;                 /* dg_lc_req_t not finished, by age */
	zlistx_t *finished;             /* ids, oldest first, for expiry */
	zlistx_t *held;                 /* dg_lc_req_t with progress to send */
	size_t urgent_pending;          /* pending with a priority above 0 */
	int64_t hope_at;                /* the last look for hopeless rooms */
	uint64_t next_request, next_room, rooms_reserved;
	size_t active;
	uint64_t ndone, nfailed, ncancelled, replayed;
	int64_t next_deadline;          /* no live deadline before this */
	int64_t contended_until;        /* admission was full: shares apply */
	dg_hist_t duration;             /* submit to result, seconds */
	bool draining;
};

/* A client hears of a request's progress at most this often. */
#define DG_LC_PROGRESS_EVERY_MS 100

/* lifecycle_progress.c: send what `held` holds whose time has come;
 * when the next one is due (INT64_MAX: none); forget a request's. */
void dg_lc_progress_flush(dg_lifecycle_t *self, int64_t now);
int64_t dg_lc_progress_due(const dg_lifecycle_t *self);
void dg_lc_progress_drop(dg_lifecycle_t *self, dg_lc_req_t *r);
/* result.timings and status.ok's: `out` has room for
 * DG_LC_TIMINGS_MAX, keys in `m`'s arena.  Returns how many. */
#define DG_LC_TIMINGS_MAX (6 * DG_CHAIN_MAX + 1)
size_t dg_lc_timings(dg_lifecycle_t *self, const dg_lc_req_t *r,
    int64_t now, dg_msg_t *m, dg_kv_t *out);

/* lifecycle_cost.c: a request's units of work at place s; charge its
 * places' predicted compute to their instances' backlogs (after a
 * dispatch), take it back (place < 0: all), as steps go by, learn from a
 * place's compute, and the predicted time from now to its end if placed
 * now (-1: a role's cost is not known yet). */
double dg_lc_units(const dg_lifecycle_t *self, const dg_lc_req_t *r,
    size_t s);
void dg_lc_cost_charge(dg_lifecycle_t *self, dg_lc_req_t *r);
void dg_lc_cost_uncharge(dg_lifecycle_t *self, dg_lc_req_t *r, int place);
void dg_lc_cost_step(dg_lifecycle_t *self, dg_lc_req_t *r, size_t s,
    int64_t step, int64_t steps);
void dg_lc_cost_learn(dg_lifecycle_t *self, dg_lc_req_t *r, size_t s,
    int64_t compute_us);
int64_t dg_lc_cost_finish_us(dg_lifecycle_t *self, int64_t frames,
    int64_t height, int64_t width, int64_t steps, int64_t deadline,
    int64_t priority);
/* Set each instance of place s's ahead_us (registry.h): the charges of
 * the rooms there that run before a request of `priority` due at
 * `deadline`. */
void dg_lc_cost_ahead(dg_lifecycle_t *self, size_t s, int64_t deadline,
    int64_t priority);
/* The compute a placed request still needs, at least: its places not
 * done, the one at work less the steps it has done.  -1 when a cost is
 * not known. */
int64_t dg_lc_cost_left_us(dg_lifecycle_t *self, const dg_lc_req_t *r);

/* A request by id, finished ones too; NULL when unknown. */
dg_lc_req_t *dg_lc_req_find(dg_lifecycle_t *self, uint64_t id);
bool dg_lc_terminal(const dg_lc_req_t *r);
/* The wire state of a request, and the role a live one is at ("" when
 * not placed). */
dg_req_state_t dg_lc_state(const dg_lifecycle_t *self, const dg_lc_req_t *r);
const char *dg_lc_stage_of(const dg_lifecycle_t *self, const dg_lc_req_t *r);
/* The place a live request is at (NULL when none): its step of steps is
 * what status.ok and rooms.ok show. */
const dg_lc_place_t *dg_lc_place_of(const dg_lifecycle_t *self,
    const dg_lc_req_t *r);
/* Version 1's three places of a request: the first, the middle ones
 * joined with ',' (in `m`'s arena), the last. */
void dg_lc_v1_places(dg_lifecycle_t *self, const dg_lc_req_t *r, dg_msg_t *m,
    const char **first, const char **middle, const char **last);

#endif
