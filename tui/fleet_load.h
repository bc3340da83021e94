/*  fleet_load.h: the open-loop load of `disagg bench fleet`: a job mix,
 *  and a seeded plan of arrivals (Poisson or bursts) that every policy
 *  of one invocation replays identically.  */
#ifndef DG_FLEET_LOAD_H
#define DG_FLEET_LOAD_H

#include <stddef.h>
#include <stdint.h>

/* One kind of job: its denoising steps and its share of the arrivals. */
typedef struct {
	int64_t steps;
	double share;           /* normalised: the shares sum to 1 */
} dg_fleet_kind_t;

typedef struct {
	dg_fleet_kind_t *kinds;
	size_t n;
} dg_fleet_mix_t;

/* "STEPS:SHARE,..." (5:0.7,40:0.3); the shares are normalised.  0, or
 * -1 with the reason in `why`. */
int dg_fleet_mix_parse(const char *text, int64_t max_steps,
    dg_fleet_mix_t *mix, char *why, size_t whysize);
void dg_fleet_mix_free(dg_fleet_mix_t *mix);
double dg_fleet_mix_mean_steps(const dg_fleet_mix_t *mix);

typedef struct {
	int64_t at_ms;          /* from the start of the load */
	int64_t steps;
} dg_fleet_arrival_t;

typedef struct {
	dg_fleet_arrival_t *v;
	size_t n, cap;
} dg_fleet_plan_t;

/* The arrivals of `duration_ms`: Poisson at `rate` per second when
 * `burst` is 0, else `burst` at once every `every_ms`.  Each job's kind
 * is drawn from `mix`.  Only `seed` decides the draws.  0, or -1 when
 * memory ran out. */
int dg_fleet_plan_make(dg_fleet_plan_t *plan, const dg_fleet_mix_t *mix,
    double rate, int64_t duration_ms, long burst, int64_t every_ms,
    uint64_t seed);
void dg_fleet_plan_free(dg_fleet_plan_t *plan);

#endif
