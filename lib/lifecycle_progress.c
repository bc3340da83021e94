/*  lifecycle_progress.c: how far a request has come, as the controller
 *  core keeps and tells it (ARCHITECTURE.md, "Progress"): a stage's
 *  `progress` words, the client's `progress` messages at most every
 *  DG_LC_PROGRESS_EVERY_MS, and result.timings, the account of where a
 *  request's time went at each stage.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <stdio.h>
#include <string.h>

#include "lifecycle_impl.h"

static void
s_send(dg_lifecycle_t *self, int64_t now, dg_lc_req_t *r)
{
	const dg_lc_place_t *p = &r->place[r->held_place];
	dg_msg_t *m = dg_msg_new(DG_OP_PROGRESS);

	r->progress_at = now;
	if (!m)
		return;
	m->u.progress = (dg_progress_msg_t){ .request = r->id,
	    .role = self->chain.roles[r->held_place], .step = p->step,
	    .steps = p->steps };
	self->io.to_client(self->io.arg, &r->client, m, false);
	dg_msg_destroy(&m);
}

void
dg_lc_progress(dg_lifecycle_t *self, int64_t now, const dg_msg_t *m)
{
	const dg_progress_msg_t *p = &m->u.progress;
	char key[24];
	dg_lc_req_t *r;
	int s = dg_pipeline_index(&self->chain, p->role);

	snprintf(key, sizeof key, "%llu", (unsigned long long)p->room);
	r = zhashx_lookup(self->rooms, key);
	/* A word from a room the request has left, or about a place it has
	 * passed, is old news. */
	if (!r || r->id != p->request || dg_lc_terminal(r) || s < 0 ||
	    r->place[s].done || p->steps < 1 || p->step < 1 ||
	    p->step > p->steps)
		return;
	r->place[s].step = p->step;
	r->place[s].steps = p->steps;
	dg_lc_cost_step(self, r, (size_t)s, p->step, p->steps);
	if (!r->progress || !r->client.identity)
		return;
	r->held_place = s;
	if (now - r->progress_at >= DG_LC_PROGRESS_EVERY_MS &&
	    !r->held) {
		s_send(self, now, r);
		return;
	}
	if (!r->held)
		r->held = zlistx_add_end(self->held, r);
}

void
dg_lc_progress_flush(dg_lifecycle_t *self, int64_t now)
{
	/* Held in the order they were held back, so the first is due
	 * first: every one waits out the same interval. */
	dg_lc_req_t *r;

	while ((r = zlistx_first(self->held)) &&
	    now - r->progress_at >= DG_LC_PROGRESS_EVERY_MS) {
		zlistx_delete(self->held, r->held);
		r->held = NULL;
		s_send(self, now, r);
	}
}

int64_t
dg_lc_progress_due(const dg_lifecycle_t *self)
{
	const dg_lc_req_t *r = zlistx_first(self->held);

	return r ? r->progress_at + DG_LC_PROGRESS_EVERY_MS : INT64_MAX;
}

void
dg_lc_progress_drop(dg_lifecycle_t *self, dg_lc_req_t *r)
{
	if (r->held)
		zlistx_delete(self->held, r->held);
	r->held = NULL;
}

/* "transformer.queue_us" and the like, in the message's arena. */
static const char *
s_name(dg_msg_t *m, const char *role, const char *part)
{
	char buf[DG_NAME_MAX + 16];

	snprintf(buf, sizeof buf, "%s.%s", role, part);
	return dg_msg_strdup(m, buf);
}

size_t
dg_lc_timings(dg_lifecycle_t *self, const dg_lc_req_t *r, int64_t now,
    dg_msg_t *m, dg_kv_t *out)
{
	static const char *const parts[] =
	    { "queue_us", "in_us", "compute_us", "out_us", "total_us" };
	size_t n = 0;

	for (size_t s = 0; s < self->n; s++) {
		const dg_lc_place_t *p = &r->place[s];
		if (!p->done)
			continue;
		const char *role = self->chain.roles[s];
		/* Version 1's word: the stage's own part, in ms. */
		out[n++] = (dg_kv_t){ role, p->ms };
		const int64_t us[] = { p->queue_us, p->in_us, p->compute_us,
		    p->out_us, p->total_us };
		for (size_t k = 0; k < sizeof us / sizeof us[0]; k++) {
			const char *name = s_name(m, role, parts[k]);
			if (name)
				out[n++] = (dg_kv_t){ name, us[k] };
		}
	}
	out[n++] = (dg_kv_t){ "total",
	    (dg_lc_terminal(r) ? r->finished : now) - r->created };
	return n;
}
