/*  policy.h: choosing a stage instance for a request (ARCHITECTURE.md, "The instance registry").
 *
 *    round-robin    the next eligible instance after the last one chosen
 *                   (LightX2V's);
 *    least-loaded   the lowest score 4·waiting + running, counting the
 *                   requests sent since its last report as waiting (an
 *                   optimistic local increment, so a burst between two
 *                   heartbeats spreads out), ties broken by rotation
 *                   (vLLM's coordinator);
 *    p2c            the less loaded of two eligible instances drawn at
 *                   random (power of two choices, for large fleets);
 *    earliest-finish  where the request would finish first: the
 *                   instance's predicted backlog (its placed rooms' work,
 *                   by the cost model, cost.h) shared by its workers,
 *                   plus the request's own work there; least-loaded
 *                   among equals, so with no costs learned yet it is
 *                   least-loaded.
 *
 *  Draining, dead and unhealthy instances are not eligible.  A pure
 *  function of its inputs and the cursor, so it is unit-tested alone.  */
#ifndef DG_POLICY_H
#define DG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	bool eligible;
	int64_t waiting;        /* incoming + waiting + ready */
	int64_t running;        /* running + sending */
	int64_t optimistic;     /* sent since its last report */
	int64_t finish_us;      /* earliest-finish: its wait and our work */
} dg_candidate_t;

typedef struct {
	uint64_t cursor;        /* rotation for round-robin and ties */
	uint64_t rng;           /* p2c's random state (any non-zero seed) */
} dg_policy_state_t;

/* Index of the chosen candidate, or -1 when none is eligible. */
int dg_policy_pick(int policy, const dg_candidate_t *c, size_t n,
    dg_policy_state_t *st);

int64_t dg_policy_score(const dg_candidate_t *c);

#endif
