/*  registry.c: the controller's table of stage instances (registry.h).  */
#include <stdlib.h>
#include <string.h>

#include "registry.h"

static const char *const s_state_names[DG_INST_STATE_COUNT] =
	{ "up", "draining", "drained", "unhealthy", "dead" };

struct _dg_registry_t {
	dg_pipeline_conf_t chain;
	dg_inst_t *insts;
	size_t n, cap;
	uint64_t next_id;
	dg_policy_state_t pol[DG_CHAIN_MAX];
	/* Scratch for pick: grows with the largest role. */
	dg_candidate_t *cand;
	size_t *idx;
	size_t scratch_cap;
};

const char *
dg_inst_state_name(dg_inst_state_t state)
{
	return state < DG_INST_STATE_COUNT ? s_state_names[state] : "?";
}

int
dg_inst_state_lookup(const char *word)
{
	for (int i = 0; word && i < DG_INST_STATE_COUNT; i++)
		if (strcmp(word, s_state_names[i]) == 0)
			return i;
	return -1;
}

dg_registry_t *
dg_registry_new(const dg_pipeline_conf_t *chain)
{
	dg_registry_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->chain = *chain;
	for (int i = 0; i < DG_CHAIN_MAX; i++)
		self->pol[i].rng = 0x2545f4914f6cdd1dULL + (uint64_t)i + 1;
	return self;
}

void
dg_registry_destroy(dg_registry_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_registry_t *self = *self_p;
	for (size_t i = 0; i < self->n; i++)
		zframe_destroy(&self->insts[i].identity);
	free(self->insts);
	free(self->cand);
	free(self->idx);
	free(self);
	*self_p = NULL;
}

size_t
dg_registry_count(const dg_registry_t *self)
{
	return self->n;
}

dg_inst_t *
dg_registry_at(dg_registry_t *self, size_t i)
{
	return i < self->n ? &self->insts[i] : NULL;
}

dg_inst_t *
dg_registry_find(dg_registry_t *self, const char *name)
{
	for (size_t i = 0; name && i < self->n; i++)
		if (strcmp(self->insts[i].name, name) == 0)
			return &self->insts[i];
	return NULL;
}

size_t
dg_registry_chain_length(const dg_registry_t *self)
{
	return self->chain.nroles;
}

const char *
dg_registry_role(const dg_registry_t *self, size_t index)
{
	return index < self->chain.nroles ? self->chain.roles[index] : "?";
}

dg_hello_result_t
dg_registry_hello(dg_registry_t *self, int64_t now, const dg_hello_msg_t *h,
    zframe_t *identity, dg_inst_t **inst_p)
{
	int index = dg_pipeline_index(&self->chain, h->role);
	dg_hello_result_t rc = DG_HELLO_JOINED;

	*inst_p = NULL;
	if (index < 0)
		return DG_HELLO_BAD_ROLE;
	dg_inst_t *in = dg_registry_find(self, h->name);
	if (in && in->state != DG_INST_DEAD && in->pid != h->pid)
		rc = DG_HELLO_RESTARTED;
	if (!in) {
		if (self->n == self->cap) {
			size_t cap = self->cap ? self->cap * 2 : 16;
			dg_inst_t *a = realloc(self->insts, cap * sizeof *a);
			if (!a)
				return rc;
			self->insts = a;
			self->cap = cap;
		}
		in = &self->insts[self->n++];
		memset(in, 0, sizeof *in);
		snprintf(in->name, sizeof in->name, "%s", h->name);
	}
	zframe_destroy(&in->identity);
	in->identity = identity ? zframe_dup(identity) : NULL;
	snprintf(in->role, sizeof in->role, "%s", h->role);
	in->index = index;
	snprintf(in->host, sizeof in->host, "%s", h->host);
	snprintf(in->peer, sizeof in->peer, "%s", h->peer);
	in->pid = h->pid;
	in->workers = h->workers > 0 ? h->workers : 1;
	in->ahead_us = -1;
	in->id = ++self->next_id;
	in->state = in->drain_asked ? DG_INST_DRAINING : DG_INST_UP;
	in->last_seen = now;
	in->optimistic = 0;
	*inst_p = in;
	return rc;
}

dg_inst_t *
dg_registry_heartbeat(dg_registry_t *self, int64_t now,
    const dg_heartbeat_msg_t *h, bool *changed)
{
	dg_inst_t *in = dg_registry_find(self, h->name);

	*changed = false;
	if (!in || in->state == DG_INST_DEAD)
		return NULL;
	in->last_seen = now;
	in->incoming = h->incoming;
	in->waiting = h->waiting;
	in->ready = h->ready;
	in->running = h->running;
	in->sending = h->sending;
	in->rooms = h->rooms;
	in->free_slots = h->free_slots;
	in->stalled_ms = h->stalled_ms;
	in->optimistic = 0;
	dg_inst_state_t was = in->state;
	int said = dg_inst_state_lookup(h->state);
	if (in->drain_asked || said == DG_INST_DRAINING ||
	    said == DG_INST_DRAINED)
		in->state = h->rooms == 0 ? DG_INST_DRAINED : DG_INST_DRAINING;
	else if (said == DG_INST_UNHEALTHY)
		in->state = DG_INST_UNHEALTHY;
	else
		in->state = DG_INST_UP;
	*changed = in->state != was;
	return in;
}

void
dg_registry_stats(dg_registry_t *self, const dg_stats_msg_t *s)
{
	dg_inst_t *in = dg_registry_find(self, s->name);

	if (!in)
		return;
	in->rps = s->rps;
	in->p50_us = s->p50_us;
	in->p99_us = s->p99_us;
	in->done = s->done;
	in->failed = s->failed;
}

void
dg_registry_dead(dg_registry_t *self, dg_inst_t *in)
{
	(void)self;
	in->state = DG_INST_DEAD;
	zframe_destroy(&in->identity);
	/* Its last report no longer describes anything. */
	in->incoming = in->waiting = in->ready = in->running = 0;
	in->sending = in->rooms = 0;
	in->optimistic = 0;
}

dg_inst_t *
dg_registry_next_silent(dg_registry_t *self, int64_t now,
    int64_t dead_after_ms)
{
	for (size_t i = 0; i < self->n; i++) {
		dg_inst_t *in = &self->insts[i];
		if (in->state != DG_INST_DEAD &&
		    now - in->last_seen > dead_after_ms)
			return in;
	}
	return NULL;
}

int64_t
dg_registry_next_deadline(const dg_registry_t *self, int64_t dead_after_ms)
{
	int64_t next = INT64_MAX;

	for (size_t i = 0; i < self->n; i++) {
		const dg_inst_t *in = &self->insts[i];
		if (in->state != DG_INST_DEAD &&
		    in->last_seen + dead_after_ms + 1 < next)
			next = in->last_seen + dead_after_ms + 1;
	}
	return next;
}

void
dg_registry_paused(dg_registry_t *self, int64_t now, int64_t gap)
{
	for (size_t i = 0; gap > 0 && i < self->n; i++) {
		dg_inst_t *in = &self->insts[i];
		if (in->state == DG_INST_DEAD)
			continue;
		/* A heartbeat read since is already newer. */
		in->last_seen = in->last_seen + gap < now ?
		    in->last_seen + gap : now;
	}
}

void
dg_registry_drain(dg_registry_t *self, dg_inst_t *in, bool drain)
{
	(void)self;
	in->drain_asked = drain;
	in->state = drain ? (in->rooms ? DG_INST_DRAINING : DG_INST_DRAINED) :
	    DG_INST_UP;
}

static int
s_scratch(dg_registry_t *self)
{
	if (self->scratch_cap >= self->n)
		return 0;
	size_t cap = self->n;
	dg_candidate_t *c = realloc(self->cand, cap * sizeof *c);
	if (!c)
		return -1;
	self->cand = c;
	size_t *x = realloc(self->idx, cap * sizeof *x);
	if (!x)
		return -1;
	self->idx = x;
	self->scratch_cap = cap;
	return 0;
}

/* Whether `in`, or another of its role, has learned a cost that
 * reaches `units`. */
static bool
s_known(const dg_registry_t *self, const dg_inst_t *in, double units)
{
	if (dg_cost_covers(&in->cost, units))
		return true;
	for (size_t i = 0; i < self->n; i++)
		if (self->insts[i].index == in->index &&
		    dg_cost_covers(&self->insts[i].cost, units))
			return true;
	return false;
}

int64_t
dg_registry_predict(const dg_registry_t *self, const dg_inst_t *in,
    double units)
{
	if (dg_cost_covers(&in->cost, units))
		return dg_cost_predict(&in->cost, units);
	double sum = 0;
	int64_t known = 0;
	for (size_t i = 0; i < self->n; i++) {
		const dg_inst_t *o = &self->insts[i];
		if (o->index == in->index && dg_cost_covers(&o->cost, units)) {
			sum += o->cost.us_per_unit;
			known++;
		}
	}
	return known ? (int64_t)(sum / (double)known * units + 0.5) : 0;
}

/* Its backlog shared by its workers, then our work. */
static int64_t
s_finish_us(const dg_registry_t *self, const dg_inst_t *in, double units)
{
	int64_t w = in->workers > 0 ? in->workers : 1;
	int64_t backlog = in->ahead_us >= 0 ? in->ahead_us : in->backlog_us;

	if (backlog < 0)
		backlog = 0;
	return backlog / w + dg_registry_predict(self, in, units);
}

int64_t
dg_registry_best_finish(dg_registry_t *self, size_t index, double units)
{
	int64_t best = -1;

	for (size_t i = 0; i < self->n; i++) {
		const dg_inst_t *in = &self->insts[i];
		if (in->index != (int)index || in->state != DG_INST_UP)
			continue;
		if (!s_known(self, in, units))
			return -1;      /* not known, or not that far */
		int64_t f = s_finish_us(self, in, units);
		if (best < 0 || f < best)
			best = f;
	}
	return best;
}

dg_inst_t *
dg_registry_pick(dg_registry_t *self, size_t index, int policy,
    double units)
{
	size_t n = 0;

	if (index >= self->chain.nroles || s_scratch(self) < 0)
		return NULL;
	for (size_t i = 0; i < self->n; i++) {
		dg_inst_t *in = &self->insts[i];
		if (in->index != (int)index)
			continue;
		self->cand[n] = (dg_candidate_t){
			.eligible = in->state == DG_INST_UP,
			.waiting = in->incoming + in->waiting + in->ready,
			.running = in->running + in->sending,
			.optimistic = in->optimistic,
			.finish_us = policy == DG_POLICY_EARLIEST_FINISH ?
			    s_finish_us(self, in, units) : 0,
		};
		self->idx[n++] = i;
	}
	int k = dg_policy_pick(policy, self->cand, n, &self->pol[index]);
	if (k < 0)
		return NULL;
	return &self->insts[self->idx[k]];
}

void
dg_registry_row(const dg_inst_t *in, int64_t now, dg_instance_row_t *row)
{
	*row = (dg_instance_row_t){
		.role = in->role, .name = in->name, .host = in->host,
		.state = dg_inst_state_name(in->state), .peer = in->peer,
		.incoming = in->incoming, .waiting = in->waiting,
		.ready = in->ready, .running = in->running,
		.sending = in->sending, .rooms = in->rooms,
		.free_slots = in->free_slots, .rps = in->rps,
		.p50_us = in->p50_us, .p99_us = in->p99_us,
		.heartbeat_age_ms = now - in->last_seen,
		.stalled_ms = in->stalled_ms,
		.ms_per_mpx = in->cost.us_per_unit * 1e3,
		.backlog_ms = in->backlog_us > 0 ? in->backlog_us / 1000 : 0,
	};
}
