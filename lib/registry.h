/*  registry.h: the controller's table of stage instances (ARCHITECTURE.md,
 *  "The controller").
 *
 *  Instances introduce themselves (hello), report their queues
 *  (heartbeat, stats), leave (bye) or fall silent; an operator drains
 *  them.  The registry keeps what the controller knows of each and picks
 *  one per role of the chain by policy.  It does no I/O and reads no
 *  clock: every call that depends on time takes `now`.  Instances are
 *  never forgotten (a dead one keeps its row, for the console), so the
 *  table only grows with the number of distinct names.  */
#ifndef DG_REGISTRY_H
#define DG_REGISTRY_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "cost.h"
#include "policy.h"
#include "proto.h"

/* Instance states.  The wire names (heartbeat.state, instances.ok) are
 * in one table: dg_inst_state_name and dg_inst_state_lookup. */
typedef enum {
	DG_INST_UP = 0,
	DG_INST_DRAINING,
	DG_INST_DRAINED,
	DG_INST_UNHEALTHY,
	DG_INST_DEAD,
	DG_INST_STATE_COUNT
} dg_inst_state_t;

const char *dg_inst_state_name(dg_inst_state_t state);
int dg_inst_state_lookup(const char *word);     /* -1 when unknown */

typedef struct {
	char name[DG_NAME_MAX];
	char role[DG_NAME_MAX];
	int index;                      /* place of its role in the chain */
	char host[DG_NAME_MAX];
	char peer[DG_ENDPOINT_MAX];
	int64_t pid;
	uint64_t id;                    /* changes at each hello */
	zframe_t *identity;             /* its DEALER's, to reach it */
	dg_inst_state_t state;
	bool drain_asked;               /* by an operator: keep it draining */
	int64_t incoming, waiting, ready, running, sending, rooms;
	uint64_t free_slots;
	int64_t stalled_ms;
	int64_t optimistic;             /* rooms sent since its last report */
	int64_t last_seen;
	double rps;
	int64_t p50_us, p99_us;
	uint64_t done, failed;
	int64_t workers;                /* from its hello */
	dg_cost_t cost;                 /* learned; kept across restarts */
	/* The predicted compute of the rooms placed on it and not done
	 * there, by the cost model: the lifecycle charges and uncharges. */
	int64_t backlog_us;
	/* Of that, what would run before the request being placed now (by
	 * priority, then deadline, as a stage's order = slack runs them,
	 * and what is running): set by the lifecycle just before it asks
	 * (dg_registry_pick, dg_registry_best_finish); -1: the whole
	 * backlog. */
	int64_t ahead_us;
} dg_inst_t;

typedef struct _dg_registry_t dg_registry_t;

/* `chain` names the roles, first to last (the configuration's). */
dg_registry_t *dg_registry_new(const dg_pipeline_conf_t *chain);
void dg_registry_destroy(dg_registry_t **self_p);

size_t dg_registry_count(const dg_registry_t *self);
dg_inst_t *dg_registry_at(dg_registry_t *self, size_t i);
dg_inst_t *dg_registry_find(dg_registry_t *self, const char *name);
size_t dg_registry_chain_length(const dg_registry_t *self);
const char *dg_registry_role(const dg_registry_t *self, size_t index);

typedef enum {
	DG_HELLO_JOINED = 0,            /* new, or back after it died */
	DG_HELLO_RESTARTED,             /* alive, but a new process: its old
	                                   rooms are gone */
	DG_HELLO_BAD_ROLE               /* a role not in the chain */
} dg_hello_result_t;

/* An instance's hello; `identity` is copied.  *inst_p is its row (NULL
 * for DG_HELLO_BAD_ROLE, or when out of memory). */
dg_hello_result_t dg_registry_hello(dg_registry_t *self, int64_t now,
    const dg_hello_msg_t *h, zframe_t *identity, dg_inst_t **inst_p);

/* A heartbeat: NULL for an instance that must say hello (unknown, or
 * declared dead).  *changed says whether its state changed. */
dg_inst_t *dg_registry_heartbeat(dg_registry_t *self, int64_t now,
    const dg_heartbeat_msg_t *h, bool *changed);
void dg_registry_stats(dg_registry_t *self, const dg_stats_msg_t *s);
/* Mark it dead (bye, or silence); forget its identity. */
void dg_registry_dead(dg_registry_t *self, dg_inst_t *in);
/* The next live instance silent longer than `dead_after_ms`, from the
 * start of the table; NULL when none.  The caller marks it dead. */
dg_inst_t *dg_registry_next_silent(dg_registry_t *self, int64_t now,
    int64_t dead_after_ms);
/* When the next instance falls silent for good, or INT64_MAX. */
int64_t dg_registry_next_deadline(const dg_registry_t *self,
    int64_t dead_after_ms);
/* This process did not run for `gap` ms (it was stopped, or its loop
 * blocked): the instances' silence meanwhile says nothing of them. */
void dg_registry_paused(dg_registry_t *self, int64_t now, int64_t gap);
/* An operator's drain or undrain of a live instance. */
void dg_registry_drain(dg_registry_t *self, dg_inst_t *in, bool drain);

/* One instance of chain place `index` by `policy` for a request of
 * `units` of work there (cost.h); NULL when none is eligible.  The
 * caller counts it in `optimistic` once it sends work. */
dg_inst_t *dg_registry_pick(dg_registry_t *self, size_t index, int policy,
    double units);

/* The microseconds `units` of work take on `in`: its own estimate, else
 * the mean of its role's instances that have one, else 0 (unknown). */
int64_t dg_registry_predict(const dg_registry_t *self, const dg_inst_t *in,
    double units);
/* When a request of `units` would be done at place `index` if placed
 * now on the instance that would finish it first: the backlog ahead of
 * it there (ahead_us) over its workers, plus the work.  -1 when no instance is
 * eligible or no cost of the role is known yet. */
int64_t dg_registry_best_finish(dg_registry_t *self, size_t index,
    double units);

/* A row for instances.ok and snapshots; its strings are the registry's. */
void dg_registry_row(const dg_inst_t *in, int64_t now,
    dg_instance_row_t *row);

#endif
