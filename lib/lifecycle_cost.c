/*  lifecycle_cost.c: what the controller core does with the cost model
 *  (cost.h; ARCHITECTURE.md, "Goodput"): each place of a placed request
 *  charges its predicted compute to its instance's backlog until it is
 *  done there (less as its steps go by), each stage.done teaches the
 *  instance's estimate, and a request's predicted finish decides whether
 *  it can make its deadline at all.  */
#define _GNU_SOURCE
#include <czmq.h>

#include "lifecycle_impl.h"

double
dg_lc_units(const dg_lifecycle_t *self, const dg_lc_req_t *r, size_t s)
{
	return dg_cost_units(r->frames, r->height, r->width, r->steps, s,
	    self->n);
}

static void
s_set_charge(dg_lifecycle_t *self, dg_lc_req_t *r, size_t s, int64_t us)
{
	dg_lc_place_t *p = &r->place[s];
	dg_inst_t *in = *p->inst ? dg_registry_find(self->reg, p->inst) : NULL;

	if (in)
		in->backlog_us += us - p->charged_us;
	p->charged_us = in ? us : 0;
}

void
dg_lc_cost_charge(dg_lifecycle_t *self, dg_lc_req_t *r)
{
	for (size_t s = 0; s < self->n; s++) {
		dg_inst_t *in = dg_registry_find(self->reg, r->place[s].inst);
		if (in)
			s_set_charge(self, r, s, dg_registry_predict(self->reg,
			    in, dg_lc_units(self, r, s)));
	}
}

void
dg_lc_cost_uncharge(dg_lifecycle_t *self, dg_lc_req_t *r, int place)
{
	for (size_t s = 0; s < self->n; s++)
		if (place < 0 || (size_t)place == s)
			s_set_charge(self, r, s, 0);
}

void
dg_lc_cost_step(dg_lifecycle_t *self, dg_lc_req_t *r, size_t s,
    int64_t step, int64_t steps)
{
	/* What is left of it: the steps not done yet. */
	dg_inst_t *in = dg_registry_find(self->reg, r->place[s].inst);
	if (!in || steps < 1)
		return;
	int64_t whole = dg_registry_predict(self->reg, in,
	    dg_lc_units(self, r, s));
	s_set_charge(self, r, s, whole * (steps - step) / steps);
}

void
dg_lc_cost_learn(dg_lifecycle_t *self, dg_lc_req_t *r, size_t s,
    int64_t compute_us)
{
	dg_inst_t *in = dg_registry_find(self->reg, r->place[s].inst);

	if (in && compute_us > 0)
		dg_cost_observe(&in->cost, dg_lc_units(self, r, s),
		    compute_us);
}

/* Whether `r`'s room at place s runs before a request of `priority` and
 * `deadline` there: a stage's slack order puts it first (a higher
 * priority, or as high and due no later), and a running one that is not
 * first makes way at its next step (preemption) -- but at the first and
 * the last place, which do not denoise, it runs to its end. */
static bool
s_before(const dg_lifecycle_t *self, const dg_lc_req_t *r, size_t s,
    int64_t deadline, int64_t priority)
{
	if (r->rank == 2 * (int)s + 1 && (s == 0 || s + 1 == self->n))
		return true;
	return r->priority > priority ||
	    (r->priority == priority && r->deadline <= deadline);
}

void
dg_lc_cost_ahead(dg_lifecycle_t *self, size_t s, int64_t deadline,
    int64_t priority)
{
	for (size_t k = 0; k < dg_registry_count(self->reg); k++) {
		dg_inst_t *in = dg_registry_at(self->reg, k);
		if (in->index == (int)s)
			in->ahead_us = 0;
	}
	/* One pass over the live requests: each charge goes to its
	 * instance when it runs first. */
	for (dg_lc_req_t *r = zlistx_first(self->live); r;
	    r = zlistx_next(self->live)) {
		const dg_lc_place_t *p = &r->place[s];
		if (!r->room || p->done || p->charged_us <= 0 ||
		    !s_before(self, r, s, deadline, priority))
			continue;
		dg_inst_t *in = dg_registry_find(self->reg, p->inst);
		if (in)
			in->ahead_us += p->charged_us;
	}
}

int64_t
dg_lc_cost_left_us(dg_lifecycle_t *self, const dg_lc_req_t *r)
{
	int64_t left = 0;

	for (size_t s = 0; s < self->n; s++) {
		const dg_lc_place_t *p = &r->place[s];
		dg_inst_t *in = dg_registry_find(self->reg, p->inst);
		if (p->done)
			continue;
		int64_t us = in ? dg_registry_predict(self->reg, in,
		    dg_lc_units(self, r, s)) : 0;
		if (us <= 0)
			return -1;
		if (p->steps > 0)
			us = us * (p->steps - p->step) / p->steps;
		left += us;
	}
	return left;
}

int64_t
dg_lc_cost_finish_us(dg_lifecycle_t *self, int64_t frames, int64_t height,
    int64_t width, int64_t steps, int64_t deadline, int64_t priority)
{
	int64_t total = 0;

	/* Nothing to judge until every role has a cost that reaches this
	 * request (and an instance up): then no pass over the live
	 * requests either. */
	for (size_t s = 0; s < self->n; s++)
		if (dg_registry_best_finish(self->reg, s, dg_cost_units(frames,
		    height, width, steps, s, self->n)) < 0)
			return -1;
	for (size_t s = 0; s < self->n; s++) {
		dg_lc_cost_ahead(self, s, deadline, priority);
		int64_t f = dg_registry_best_finish(self->reg, s,
		    dg_cost_units(frames, height, width, steps, s, self->n));
		if (f < 0)
			return -1;
		total += f;
	}
	return total;
}
