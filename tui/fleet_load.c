/*  fleet_load.c: the job mix and the plan of arrivals of `disagg bench
 *  fleet`.
 *
 *  The plan is drawn whole before any policy runs, from a generator of
 *  our own (splitmix64) rather than rand(), so that a seed gives the
 *  same arrivals on every libc, and every policy meets the same load.  */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_load.h"

int
dg_fleet_mix_parse(const char *text, int64_t max_steps, dg_fleet_mix_t *mix,
    char *why, size_t whysize)
{
	const char *p = text;
	double total = 0;
	size_t cap = 0;

	mix->kinds = NULL;
	mix->n = 0;
	while (*p) {
		char *end;
		errno = 0;
		long long steps = strtoll(p, &end, 10);
		if (end == p || *end != ':' || errno || steps < 1 ||
		    steps > max_steps) {
			snprintf(why, whysize, "each job of the mix is STEPS:SHARE "
			    "with 1..%lld steps", (long long)max_steps);
			goto fail;
		}
		p = end + 1;
		double share = strtod(p, &end);
		if (end == p || (*end && *end != ',') || !(share > 0) ||
		    !isfinite(share)) {
			snprintf(why, whysize, "each job of the mix is STEPS:SHARE "
			    "with a share above 0");
			goto fail;
		}
		p = *end ? end + 1 : end;
		if (mix->n == cap) {
			cap = cap ? 2 * cap : 4;
			dg_fleet_kind_t *k = realloc(mix->kinds, cap * sizeof *k);
			if (!k) {
				snprintf(why, whysize, "out of memory");
				goto fail;
			}
			mix->kinds = k;
		}
		mix->kinds[mix->n++] = (dg_fleet_kind_t){ steps, share };
		total += share;
	}
	if (!mix->n) {
		snprintf(why, whysize, "the mix is empty");
		goto fail;
	}
	for (size_t i = 0; i < mix->n; i++)
		mix->kinds[i].share /= total;
	return 0;
fail:
	dg_fleet_mix_free(mix);
	return -1;
}

void
dg_fleet_mix_free(dg_fleet_mix_t *mix)
{
	free(mix->kinds);
	mix->kinds = NULL;
	mix->n = 0;
}

double
dg_fleet_mix_mean_steps(const dg_fleet_mix_t *mix)
{
	double mean = 0;

	for (size_t i = 0; i < mix->n; i++)
		mean += mix->kinds[i].share * (double)mix->kinds[i].steps;
	return mean;
}

/* splitmix64: small, fast, and the same everywhere. */
static uint64_t
s_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double
s_uniform(uint64_t *state)
{
	return (double)(s_next(state) >> 11) * 0x1.0p-53;
}

static int64_t
s_steps(const dg_fleet_mix_t *mix, uint64_t *state)
{
	double u = s_uniform(state), acc = 0;

	for (size_t i = 0; i + 1 < mix->n; i++) {
		acc += mix->kinds[i].share;
		if (u < acc)
			return mix->kinds[i].steps;
	}
	return mix->kinds[mix->n - 1].steps;
}

static int
s_push(dg_fleet_plan_t *plan, int64_t at_ms, int64_t steps)
{
	if (plan->n == plan->cap) {
		size_t cap = plan->cap ? 2 * plan->cap : 256;
		dg_fleet_arrival_t *v = realloc(plan->v, cap * sizeof *v);
		if (!v)
			return -1;
		plan->v = v;
		plan->cap = cap;
	}
	plan->v[plan->n++] = (dg_fleet_arrival_t){ at_ms, steps };
	return 0;
}

int
dg_fleet_plan_make(dg_fleet_plan_t *plan, const dg_fleet_mix_t *mix,
    double rate, int64_t duration_ms, long burst, int64_t every_ms,
    uint64_t seed)
{
	uint64_t state = seed;

	memset(plan, 0, sizeof *plan);
	if (burst > 0) {
		for (int64_t t = 0; t < duration_ms; t += every_ms)
			for (long i = 0; i < burst; i++)
				if (s_push(plan, t, s_steps(mix, &state)) < 0)
					goto fail;
		return 0;
	}
	/* Exponential gaps of mean 1/rate; times kept in double so that
	 * rounding to milliseconds does not drift the rate. */
	for (double t = 0;;) {
		t += -log1p(-s_uniform(&state)) * 1000.0 / rate;
		if (t >= (double)duration_ms)
			break;
		if (s_push(plan, (int64_t)t, s_steps(mix, &state)) < 0)
			goto fail;
	}
	return 0;
fail:
	dg_fleet_plan_free(plan);
	return -1;
}

void
dg_fleet_plan_free(dg_fleet_plan_t *plan)
{
	free(plan->v);
	memset(plan, 0, sizeof *plan);
}
