/*  fit.c: whether a request can ever fit a stage's pool (fit.h).  */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fit.h"
#include "stage_ref.h"

static uint64_t
s_align(uint64_t v)
{
	return (v + 255) & ~255ULL;
}

uint64_t
dg_fit_plan_bytes(const dg_tensor_plan_t *plan)
{
	uint64_t total = 0;

	for (size_t i = 0; i < plan->n; i++)
		total = s_align(total) + plan->t[i].bytes;
	return total ? total : 1;
}

static uint64_t
s_slots(uint64_t bytes, uint64_t slot)
{
	return slot ? (bytes + slot - 1) / slot * slot : bytes;
}

uint64_t
dg_fit_need(const dg_tensor_plan_t *in, const dg_tensor_plan_t *out,
    uint64_t slot)
{
	uint64_t need = 0;

	if (in->n)
		need += s_slots(dg_fit_plan_bytes(in), slot);
	if (out->n)
		need += s_slots(dg_fit_plan_bytes(out), slot);
	return need;
}

uint64_t
dg_fit_capacity(uint64_t pool, uint64_t slot)
{
	return s_slots(pool, slot);
}

/* 256 MiB, 1.9 GiB, 512 bytes: what an operator writes in `pool`. */
static void
s_size(char *out, size_t outsize, uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = -1;

	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(out, outsize, "%" PRIu64 " bytes", bytes);
	else if (v < 10 && v != (double)(uint64_t)v)
		snprintf(out, outsize, "%.1f %s", v, units[u]);
	else
		snprintf(out, outsize, "%.0f %s", v, units[u]);
}

void
dg_fit_say(char *why, size_t whysize, uint64_t need, const char *role,
    const char *which, uint64_t capacity)
{
	char a[32], b[32];

	s_size(a, sizeof a, need);
	s_size(b, sizeof b, capacity);
	/* The same words for different sizes would read as a lie. */
	if (!strcmp(a, b))
		snprintf(a, sizeof a, "%" PRIu64 " bytes", need);
	snprintf(why, whysize, "needs %s in a%s %s pool; %s is %s", a,
	    strchr("aeiou", role[0]) && role[0] ? "n" : "", role, which, b);
}

int
dg_fit_check(const dg_config_t *cfg, const dg_request_t *req, char *why,
    size_t whysize)
{
	const dg_pipeline_conf_t *chain = dg_config_pipeline(cfg);

	for (size_t i = 0; i < chain->nroles; i++) {
		bool fits = false, unknown = false, any = false;
		uint64_t largest = 0, need_there = 0;
		for (size_t k = 0; k < dg_config_stage_count(cfg); k++) {
			const dg_stage_conf_t *st = dg_config_stage_at(cfg, k);
			if (st->index != (int)i)
				continue;
			dg_tensor_plan_t in, out;
			int rc = dg_stage_ref_plan(st->stage, st->expert, req,
			    &in, &out, why, whysize);
			if (rc < 0)
				return -1;
			if (rc == 0) {
				unknown = true;
				continue;
			}
			any = true;
			uint64_t need = dg_fit_need(&in, &out,
			    (uint64_t)st->slot);
			uint64_t cap = dg_fit_capacity((uint64_t)st->pool,
			    (uint64_t)st->slot);
			if (need <= cap)
				fits = true;
			if (cap >= largest) {
				largest = cap;
				need_there = need;
			}
		}
		/* A stage we cannot plan may hold it: that stage judges. */
		if (fits || unknown || !any)
			continue;
		dg_fit_say(why, whysize, need_there, chain->roles[i],
		    "the largest", largest);
		return -1;
	}
	return 0;
}
