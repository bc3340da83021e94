/*  cost.h: the controller's cost model (ARCHITECTURE.md, "Goodput").
 *
 *  How long an instance computes a request, learned online from what it
 *  reports (stage.done's compute_us) against the request's work at its
 *  place: frames x height x width, times the steps for a place between
 *  the first and the last (the denoising ones; the first encodes a
 *  prompt, the last decodes once).  Per instance, because two GPUs are
 *  rarely equal; an instance with no sample yet borrows its role's mean.
 *  Pure arithmetic: no clock, no I/O.  */
#ifndef DG_COST_H
#define DG_COST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	double us_per_unit;             /* the estimate; 0: none yet */
	int64_t samples;
	double lo, hi;                  /* the units it was learned from */
} dg_cost_t;

/* How far beyond what it has seen the estimate is trusted: a stage's
 * time is rarely linear in pixels over orders of magnitude (fixed costs
 * dominate small requests, a reference stage's steps take step_ms
 * whatever the size), so a request 10 times larger or smaller than
 * anything learned is not judged at all. */
#define DG_COST_REACH 10.0

/* Units of work of a request at place `index` of `places`. */
double dg_cost_units(int64_t frames, int64_t height, int64_t width,
    int64_t steps, size_t index, size_t places);

/* One room's compute time.  The first sample is taken as it is, later
 * ones move the estimate a fifth of the way (an EWMA: a GPU that slows,
 * or warms up, is followed within a few requests). */
void dg_cost_observe(dg_cost_t *c, double units, int64_t compute_us);

/* Whether the estimate reaches `units` (DG_COST_REACH). */
bool dg_cost_covers(const dg_cost_t *c, double units);

/* Microseconds for `units` at this estimate; 0 when there is none or it
 * does not reach that far. */
int64_t dg_cost_predict(const dg_cost_t *c, double units);

#endif
