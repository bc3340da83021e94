/*  lifecycle.c: the request lifecycle, the controller's I/O-free core
 *  (lifecycle.h): the events and what comes out of them.  What the
 *  views show (states, status.ok, rooms.ok) is lifecycle_views.c's.  */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "lifecycle_impl.h"
#include "log.h"

/* Room ids are reserved in the journal a block at a time, before any of
 * them is used: an assign that names one leaves after the sync. */
#define ROOM_BLOCK 4096

static char *
s_key(char *buf, uint64_t id)
{
	snprintf(buf, 24, "%llu", (unsigned long long)id);
	return buf;
}

static void
s_event(dg_lifecycle_t *self, int64_t now, const char *kind,
    const char *name, uint64_t request, uint64_t room, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

static void
s_event(dg_lifecycle_t *self, int64_t now, const char *kind,
    const char *name, uint64_t request, uint64_t room, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	(void)now;
	if (!self->io.publish)
		return;
	dg_msg_t *m = dg_msg_new(DG_OP_EVENT);
	if (!m)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	m->u.event.kind = kind;
	m->u.event.ts_ms = 0;           /* the driver stamps the wall time */
	m->u.event.name = name;
	m->u.event.request = request;
	m->u.event.room = room;
	m->u.event.message = text;
	self->io.publish(self->io.arg, m);
	dg_msg_destroy(&m);
}

static void
s_error(dg_lifecycle_t *self, const dg_route_t *to, uint64_t seq,
    dg_proto_code_t code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void
s_error(dg_lifecycle_t *self, const dg_route_t *to, uint64_t seq,
    dg_proto_code_t code, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	self->io.client_error(self->io.arg, to, seq, code, text);
}

/* ---- the object -------------------------------------------------------- */

static void
s_req_destroy(void **item)
{
	dg_lc_req_t *r = *item;

	if (!r)
		return;
	dg_route_clear(&r->client);
	free(r->prompt);
	free(r->negative);
	free(r->output);
	free(r->key);
	free(r);
	*item = NULL;
}

static void
s_id_destroy(void **item)
{
	free(*item);
	*item = NULL;
}

dg_lifecycle_t *
dg_lifecycle_new(const dg_pipeline_conf_t *chain,
    const dg_controller_conf_t *conf, const dg_lc_io_t *io)
{
	dg_lifecycle_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->chain = *chain;
	self->n = chain->nroles;
	self->conf = conf;
	self->io = *io;
	self->next_deadline = INT64_MAX;
	self->reg = dg_registry_new(chain);
	self->reqs = zhashx_new();
	self->rooms = zhashx_new();
	self->per_client = zhashx_new();
	dg_hist_init(&self->duration, dg_hist_seconds, dg_hist_seconds_n);
	self->keys = zhashx_new();
	self->pending = zlistx_new();
	self->live = zlistx_new();
	self->finished = zlistx_new();
	self->held = zlistx_new();
	if (!self->reg || !self->reqs || !self->rooms || !self->per_client ||
	    !self->keys || !self->held ||
	    !self->pending || !self->live || !self->finished) {
		dg_lifecycle_destroy(&self);
		return NULL;
	}
	zhashx_set_destructor(self->reqs, s_req_destroy);
	zhashx_set_destructor(self->keys, s_id_destroy);
	zlistx_set_destructor(self->finished, s_id_destroy);
	return self;
}

void
dg_lifecycle_destroy(dg_lifecycle_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_lifecycle_t *self = *self_p;
	zlistx_destroy(&self->pending);
	zlistx_destroy(&self->live);
	zlistx_destroy(&self->finished);
	zlistx_destroy(&self->held);
	zhashx_destroy(&self->rooms);
	zhashx_destroy(&self->per_client);
	zhashx_destroy(&self->keys);
	zhashx_destroy(&self->reqs);
	dg_registry_destroy(&self->reg);
	free(self);
	*self_p = NULL;
}

void
dg_lifecycle_set_conf(dg_lifecycle_t *self, const dg_controller_conf_t *conf)
{
	self->conf = conf;
}

void
dg_lifecycle_set_ids(dg_lifecycle_t *self, uint64_t last_request,
    uint64_t last_room)
{
	self->next_request = last_request;
	self->next_room = last_room;
	self->rooms_reserved = last_room;
}

dg_registry_t *
dg_lifecycle_registry(dg_lifecycle_t *self)
{
	return self->reg;
}

/* ---- requests ---------------------------------------------------------- */

static const char *
s_client_key(const dg_route_t *route, char *buf)
{
	size_t n = route && route->identity ? zframe_size(route->identity) : 0;
	const byte *p = n ? zframe_data(route->identity) : NULL;

	if (n > 256)
		n = 256;
	for (size_t i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", p[i]);
	buf[2 * n] = '\0';
	return buf;
}

static void
s_client_done(dg_lifecycle_t *self, const dg_lc_req_t *r)
{
	intptr_t n = (intptr_t)zhashx_lookup(self->per_client, r->cid);

	if (n > 1)
		zhashx_update(self->per_client, r->cid, (void *)(n - 1));
	else
		zhashx_delete(self->per_client, r->cid);
}

dg_lc_req_t *
dg_lc_req_find(dg_lifecycle_t *self, uint64_t id)
{
	char key[24];
	return zhashx_lookup(self->reqs, s_key(key, id));
}

/* A submit's key, scoped by its submitter (the public key; "" without
 * CurveZMQ): one client cannot reach another's requests by guessing. */
static char *
s_key_name(char *buf, size_t size, const char *owner, const char *key)
{
	snprintf(buf, size, "%s\x1f%s", owner ? owner : "", key);
	return buf;
}

static dg_lc_req_t *
s_by_key(dg_lifecycle_t *self, const char *owner, const char *key)
{
	char name[48 + DG_SUBMIT_KEY_MAX + 2];
	uint64_t *id = zhashx_lookup(self->keys,
	    s_key_name(name, sizeof name, owner, key));
	return id ? dg_lc_req_find(self, *id) : NULL;
}

static void
s_key_add(dg_lifecycle_t *self, dg_lc_req_t *r, const char *key)
{
	char name[48 + DG_SUBMIT_KEY_MAX + 2];
	uint64_t *id = malloc(sizeof *id);

	free(r->key);
	r->key = key && *key ? strdup(key) : NULL;
	if (!r->key || !id) {
		free(id);
		return;
	}
	*id = r->id;
	zhashx_update(self->keys, s_key_name(name, sizeof name, r->user,
	    r->key), id);
}

static void
s_key_drop(dg_lifecycle_t *self, dg_lc_req_t *r)
{
	char name[48 + DG_SUBMIT_KEY_MAX + 2];

	if (r->key)
		zhashx_delete(self->keys, s_key_name(name, sizeof name,
		    r->user, r->key));
}

static void
s_forget_room(dg_lifecycle_t *self, dg_lc_req_t *r)
{
	char key[24];

	if (!r->room)
		return;
	zhashx_delete(self->rooms, s_key(key, r->room));
	r->room = 0;
}

/* Tell every live instance of the room to free it. */
static void
s_send_release(dg_lifecycle_t *self, dg_lc_req_t *r, const char *why)
{
	dg_msg_t *m = r->room ? dg_msg_new(DG_OP_RELEASE) : NULL;

	if (m) {
		m->u.release.room = r->room;
		m->u.release.reason = why;
		for (size_t s = 0; s < self->n; s++) {
			dg_inst_t *in = dg_registry_find(self->reg,
			    r->place[s].inst);
			if (in && in->state != DG_INST_DEAD)
				self->io.to_instance(self->io.arg, in, m);
		}
		dg_msg_destroy(&m);
	}
	s_forget_room(self, r);
}

static void
s_unpend(dg_lifecycle_t *self, dg_lc_req_t *r)
{
	if (r->pend) {
		zlistx_delete(self->pending, r->pend);
		self->urgent_pending -= r->priority > 0;
	}
	r->pend = NULL;
}

static void
s_pend(dg_lifecycle_t *self, dg_lc_req_t *r)
{
	if (!r->pend) {
		r->pend = zlistx_add_end(self->pending, r);
		self->urgent_pending += r->priority > 0;
	}
}

/* The one terminal transition of a request: one result to its client. */
static void
s_finish(dg_lifecycle_t *self, int64_t now, dg_lc_req_t *r,
    dg_req_state_t state, const char *why)
{
	dg_kv_t timings[DG_LC_TIMINGS_MAX];

	if (dg_lc_terminal(r))
		return;
	/* The result says it all: a progress word held back would only
	 * come after it. */
	dg_lc_progress_drop(self, r);
	dg_lc_cost_uncharge(self, r, -1);
	if (state != DG_REQ_DONE)
		s_send_release(self, r, why ? why : dg_req_state_name(state));
	else
		s_forget_room(self, r);
	s_unpend(self, r);
	r->state = state;
	r->finished = now;
	if (r->live)
		zlistx_delete(self->live, r->live);
	r->live = NULL;
	if (why)
		snprintf(r->error, sizeof r->error, "%s", why);
	self->active--;
	s_client_done(self, r);
	/* Only status queries look at it from now on. */
	free(r->prompt);
	free(r->negative);
	r->prompt = r->negative = NULL;
	dg_hist_observe(&self->duration, (double)(now - r->created) / 1000);
	if (state == DG_REQ_DONE)
		self->ndone++;
	else if (state == DG_REQ_FAILED)
		self->nfailed++;
	else
		self->ncancelled++;

	dg_msg_t *m = dg_msg_new(DG_OP_RESULT);
	if (m) {
		m->u.result.request = r->id;
		m->u.result.status = dg_req_state_name(state);
		m->u.result.output = r->output ? r->output : "";
		m->u.result.bytes = r->bytes;
		m->u.result.digest = r->digest;
		m->u.result.error = state == DG_REQ_DONE ? NULL : r->error;
		m->u.result.timings = timings;
		m->u.result.n_timings = dg_lc_timings(self, r, now, m,
		    timings);
		m->u.result.key = r->key;
		/* The journal keeps the submitter with the key; the client
		 * hears its key alone. */
		m->u.result.owner = r->user;
		if (self->io.journal_end &&
		    self->io.journal_end(self->io.arg, r->id, m) < 0)
			dg_log_error("journal: cannot record the end of "
			    "request %llu: %s", (unsigned long long)r->id,
			    strerror(errno));
		/* A request replayed from the journal has no client to
		 * answer: its client asks `status` after reconnecting. */
		m->u.result.owner = NULL;
		if (r->client.identity)
			self->io.to_client(self->io.arg, &r->client, m, false);
		dg_msg_destroy(&m);
	} else if (self->io.journal_end) {
		(void)self->io.journal_end(self->io.arg, r->id, NULL);
	}
	if (state == DG_REQ_FAILED)
		s_event(self, now, "failed", NULL, r->id, 0, "request %llu "
		    "failed: %s", (unsigned long long)r->id, r->error);
	dg_log_debug("request %llu %s%s%s", (unsigned long long)r->id,
	    dg_req_state_name(state), why ? ": " : "", why ? why : "");
	uint64_t *id = malloc(sizeof *id);
	if (id) {
		*id = r->id;
		zlistx_add_end(self->finished, id);
	}
}

static void
s_reserve_rooms(dg_lifecycle_t *self)
{
	self->rooms_reserved = self->next_room + ROOM_BLOCK;
	if (self->io.journal_rooms(self->io.arg, self->rooms_reserved) < 0)
		dg_log_error("journal: cannot reserve room ids: %s",
		    strerror(errno));
}

/* One instance per role, a room, and the assign to each of them. */
static bool
s_dispatch(dg_lifecycle_t *self, int64_t now, dg_lc_req_t *r)
{
	dg_inst_t *chosen[DG_CHAIN_MAX];
	dg_stage_row_t rows[DG_CHAIN_MAX];

	/* A retry's old places give back what they were charged. */
	dg_lc_cost_uncharge(self, r, -1);
	for (size_t s = 0; s < self->n; s++) {
		if (self->conf->policy == DG_POLICY_EARLIEST_FINISH)
			dg_lc_cost_ahead(self, s, r->deadline, r->priority);
		chosen[s] = dg_registry_pick(self->reg, s, self->conf->policy,
		    dg_lc_units(self, r, s));
		if (!chosen[s])
			return false;
	}
	for (size_t s = 0; s < self->n; s++) {
		chosen[s]->optimistic++;
		/* A new room starts from scratch everywhere. */
		r->place[s] = (dg_lc_place_t){ 0 };
		snprintf(r->place[s].inst, sizeof r->place[s].inst, "%s",
		    chosen[s]->name);
		rows[s] = (dg_stage_row_t){ .role = self->chain.roles[s],
		    .name = chosen[s]->name, .peer = chosen[s]->peer };
	}
	dg_lc_cost_charge(self, r);
	r->room = ++self->next_room;
	if (self->io.journal_rooms && self->next_room >= self->rooms_reserved)
		s_reserve_rooms(self);
	r->attempt++;
	r->state = DG_REQ_ASSIGNED;
	r->rank = 0;
	char key[24];
	zhashx_insert(self->rooms, s_key(key, r->room), r);

	dg_msg_t *m = dg_msg_new(DG_OP_ASSIGN);
	if (!m)
		return true;            /* its deadline ends it */
	dg_assign_msg_t *a = &m->u.assign;
	a->request = r->id;
	a->room = r->room;
	a->attempt = r->attempt;
	a->prompt = r->prompt;
	a->negative_prompt = r->negative;
	a->frames = r->frames;
	a->height = r->height;
	a->width = r->width;
	a->steps = r->steps;
	a->seed = r->seed;
	a->deadline_ms = r->deadline - now > 1 ? r->deadline - now : 1;
	a->priority = r->priority;
	a->stages = rows;
	a->n_stages = self->n;
	for (size_t s = 0; s < self->n; s++)
		self->io.to_instance(self->io.arg, chosen[s], m);
	dg_msg_destroy(&m);
	return true;
}

/* A waiting request's priority grows a step for every AGE_MS it has
 * waited, so that a stream of urgent ones starves nothing for ever. */
#define AGE_MS 1000

static int64_t
s_urgency(const dg_lc_req_t *r, int64_t now)
{
	return r->priority + (now - r->created) / AGE_MS;
}

/* The next to place: the oldest, or with priorities in the queue the
 * most urgent (the oldest among equals). */
static dg_lc_req_t *
s_next_pending(dg_lifecycle_t *self, int64_t now)
{
	dg_lc_req_t *best = zlistx_first(self->pending);

	if (!self->urgent_pending)
		return best;
	for (dg_lc_req_t *r = best; r; r = zlistx_next(self->pending))
		if (s_urgency(r, now) > s_urgency(best, now))
			best = r;
	return best;
}

/* admission = deadline: a request the cost model says cannot make its
 * deadline if placed now fails now, before it takes GPU time. */
static bool
s_hopeless(dg_lifecycle_t *self, int64_t now, dg_lc_req_t *r)
{
	if (self->conf->admission != DG_ADMIT_DEADLINE)
		return false;
	int64_t us = dg_lc_cost_finish_us(self, r->frames, r->height,
	    r->width, r->steps, r->deadline, r->priority);
	if (us < 0 || now + us / 1000 <= r->deadline)
		return false;
	char why[160];
	snprintf(why, sizeof why, "cannot make its deadline: predicted to "
	    "take %lld ms more, %lld ms left", (long long)(us / 1000),
	    (long long)(r->deadline - now));
	s_finish(self, now, r, DG_REQ_FAILED, why);
	return true;
}

/* Place what waits while instances can take it. */
static void
s_dispatch_pending(dg_lifecycle_t *self, int64_t now)
{
	dg_lc_req_t *r;

	while ((r = s_next_pending(self, now))) {
		if (s_hopeless(self, now, r))
			continue;       /* s_finish took it off the list */
		if (!s_dispatch(self, now, r))
			return;
		s_unpend(self, r);
	}
}

/* A room failed on its way: a new room elsewhere, or the end. */
static void
s_retry_or_fail(dg_lifecycle_t *self, int64_t now, dg_lc_req_t *r,
    const char *why, bool retryable)
{
	char text[512];

	if (dg_lc_terminal(r))
		return;
	/* Out of time: the deadline is the reason, whatever failed last. */
	if (now >= r->deadline) {
		snprintf(text, sizeof text, "deadline of %lld ms passed while "
		    "%s (last: %s)", (long long)r->timeout_ms,
		    dg_req_state_name(dg_lc_state(self, r)), why);
		s_finish(self, now, r, DG_REQ_FAILED, text);
		return;
	}
	/* A draining controller only finishes what it has. */
	if (self->draining && retryable) {
		snprintf(text, sizeof text, "%s (controller draining)", why);
		s_finish(self, now, r, DG_REQ_FAILED, text);
		return;
	}
	if (!retryable || r->attempt > self->conf->max_retries) {
		if (retryable)
			snprintf(text, sizeof text, "%s (after %d attempt%s)",
			    why, r->attempt, r->attempt == 1 ? "" : "s");
		else
			snprintf(text, sizeof text, "%s", why);
		s_finish(self, now, r, DG_REQ_FAILED, text);
		return;
	}
	dg_log_info("request %llu room %llu: %s; re-dispatching (attempt "
	    "%d of %lld)", (unsigned long long)r->id,
	    (unsigned long long)r->room, why, r->attempt + 1,
	    (long long)self->conf->max_retries + 1);
	snprintf(r->error, sizeof r->error, "%s", why);
	s_send_release(self, r, why);
	r->state = DG_REQ_PENDING;
	/* Behind what already waits: first come, first placed. */
	if (zlistx_size(self->pending) > 0 || !s_dispatch(self, now, r))
		s_pend(self, r);
}

/* An instance is gone: every room on it that it had not finished fails
 * over.  All of them: collected first (retrying edits the table) into
 * a list as long as the table. */
static void
s_fail_over(dg_lifecycle_t *self, int64_t now, const char *name,
    const char *why)
{
	size_t cap = zhashx_size(self->rooms), n = 0;
	dg_lc_req_t **victims = cap ? malloc(cap * sizeof *victims) : NULL;

	if (cap && !victims) {
		/* Without memory for the list, one at a time: slower, but
		 * none is left behind. */
		bool again = true;
		while (again) {
			again = false;
			for (dg_lc_req_t *r = zhashx_first(self->rooms); r;
			    r = zhashx_next(self->rooms)) {
				for (size_t s = 0; s < self->n; s++)
					if (!strcmp(r->place[s].inst, name) &&
					    !r->place[s].done) {
						s_retry_or_fail(self, now, r, why,
						    true);
						again = true;
						break;
					}
				if (again)
					break;
			}
		}
		return;
	}
	for (dg_lc_req_t *r = zhashx_first(self->rooms); r && n < cap;
	    r = zhashx_next(self->rooms)) {
		for (size_t s = 0; s < self->n; s++) {
			if (strcmp(r->place[s].inst, name) == 0 &&
			    !r->place[s].done) {
				victims[n++] = r;
				break;
			}
		}
	}
	if (n)
		dg_log_info("%s: %zu room%s to place again", name, n,
		    n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++)
		s_retry_or_fail(self, now, victims[i], why, true);
	free(victims);
}

/* ---- client ops -------------------------------------------------------- */

static dg_lc_req_t *
s_req_new(dg_lifecycle_t *self)
{
	return calloc(1, sizeof(dg_lc_req_t) + self->n * sizeof(dg_lc_place_t));
}

/* Enter an accepted request in the tables, pending. */
static void
s_req_admit(dg_lifecycle_t *self, int64_t now, dg_lc_req_t *r,
    const dg_submit_msg_t *sub, int64_t timeout)
{
	char key[24];

	r->prompt = strdup(sub->prompt ? sub->prompt : "");
	r->negative = strdup(sub->negative_prompt ? sub->negative_prompt : "");
	r->frames = sub->frames;
	r->height = sub->height;
	r->width = sub->width;
	r->steps = sub->steps;
	r->seed = sub->seed;
	r->progress = sub->progress;
	r->priority = sub->priority;
	r->timeout_ms = timeout > 1 ? timeout : 1;
	r->created = now;
	r->deadline = r->created + r->timeout_ms;
	if (r->deadline < self->next_deadline)
		self->next_deadline = r->deadline;
	r->state = DG_REQ_PENDING;
	zhashx_insert(self->reqs, s_key(key, r->id), r);
	r->live = zlistx_add_end(self->live, r);
	self->active++;
}

/* How long after admission was last full each client is held to an
 * equal share of it (dg_lc_submit). */
#define CONTENDED_MS 1000

static const char *
s_check_submit(const dg_submit_msg_t *sub)
{
	if (!sub->prompt || !*sub->prompt)
		return "prompt is empty";
	if (sub->frames < 1 || sub->frames > 100000)
		return "frames out of range 1..100000";
	if (sub->height < 1 || sub->height > 16384 || sub->width < 1 ||
	    sub->width > 16384)
		return "height and width must be 1..16384";
	if (sub->steps < 1 || sub->steps > 100000)
		return "steps out of range 1..100000";
	if (sub->deadline_ms < 0)
		return "deadline_ms must not be negative";
	if (sub->priority < 0 || sub->priority > DG_PRIORITY_MAX)
		return "priority must be 0 to 9";
	if (sub->key && (!*sub->key || strlen(sub->key) > DG_SUBMIT_KEY_MAX))
		return "key must be 1 to 64 bytes";
	/* Past this a deadline added to a clock would overflow. */
	if (sub->deadline_ms > DG_LC_DEADLINE_MAX_MS)
		return "deadline_ms must be at most 30 days (2592000000)";
	return NULL;
}

/* A submit whose key names a request already known: its submit.ok
 * again, and its result once it has one (now, if it ended; else to
 * this connection when it ends, the old one being likely gone). */
static void
s_repeat(dg_lifecycle_t *self, const dg_route_t *from, uint64_t seq,
    dg_lc_req_t *r)
{
	dg_msg_t *ok = dg_msg_new(DG_OP_SUBMIT_OK);

	if (ok) {
		ok->seq = seq;
		ok->u.submit_ok.request = r->id;
		self->io.to_client(self->io.arg, from, ok, false);
		dg_msg_destroy(&ok);
	}
	if (!dg_lc_terminal(r)) {
		dg_route_clear(&r->client);
		dg_route_copy(&r->client, from);
		return;
	}
	dg_msg_t *res = dg_msg_new(DG_OP_RESULT);
	if (!res)
		return;
	res->u.result.request = r->id;
	res->u.result.status = dg_req_state_name(r->state);
	res->u.result.output = r->output ? r->output : "";
	res->u.result.bytes = r->bytes;
	res->u.result.digest = r->digest;
	res->u.result.error = r->state == DG_REQ_DONE ? NULL : r->error;
	res->u.result.key = r->key;
	self->io.to_client(self->io.arg, from, res, false);
	dg_msg_destroy(&res);
}

void
dg_lc_submit(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m)
{
	const dg_submit_msg_t *sub = &m->u.submit;
	const char *bad = s_check_submit(sub);

	if (self->draining) {
		s_error(self, from, m->seq, DG_PROTO_E_BUSY,
		    "controller is draining");
		return;
	}
	if (bad) {
		s_error(self, from, m->seq, DG_PROTO_E_INVALID, "%s", bad);
		return;
	}
	/* A key seen before from this submitter: the same request, whatever
	 * came of it, and nothing new starts. */
	dg_lc_req_t *same = sub->key ? s_by_key(self, from->user, sub->key) :
	    NULL;
	if (same) {
		s_repeat(self, from, m->seq, same);
		return;
	}
	char why[256];
	if (self->io.fits && self->io.fits(self->io.arg, sub, why,
	    sizeof why) < 0) {
		s_error(self, from, m->seq, DG_PROTO_E_INVALID, "%s", why);
		return;
	}
	/* Goodput: what would finish late anyway is refused now, while
	 * the client can still go elsewhere, and takes no GPU time. */
	int64_t limit = sub->deadline_ms ? sub->deadline_ms :
	    self->conf->request_timeout_ms;
	int64_t predicted = self->conf->admission == DG_ADMIT_DEADLINE ?
	    dg_lc_cost_finish_us(self, sub->frames, sub->height, sub->width,
	    sub->steps, now + limit, sub->priority) : -1;
	if (predicted >= 0 && predicted / 1000 > limit) {
		s_error(self, from, m->seq, DG_PROTO_E_DEADLINE, "predicted to "
		    "take %lld ms with the work queued now; its deadline is "
		    "%lld ms", (long long)(predicted / 1000), (long long)limit);
		return;
	}
	if ((int64_t)self->active >= self->conf->max_pending) {
		self->contended_until = now + CONTENDED_MS;
		s_error(self, from, m->seq, DG_PROTO_E_BUSY, "%zu requests in "
		    "flight (max_pending)", self->active);
		return;
	}
	/* One client's flood must not crowd out the others. */
	char cid[2 * 256 + 1];
	intptr_t mine = (intptr_t)zhashx_lookup(self->per_client,
	    s_client_key(from, cid));
	if (mine >= self->conf->max_pending_per_client) {
		s_error(self, from, m->seq, DG_PROTO_E_BUSY, "this client has "
		    "%ld requests in flight (max_pending_per_client)",
		    (long)mine);
		return;
	}
	/* While admission is full, or was a moment ago, what frees goes
	 * to the clients below an equal share of it, not to whoever asks
	 * first: a flood's fastest client would take it all. */
	if (now < self->contended_until) {
		size_t clients = zhashx_size(self->per_client) + (mine == 0);
		int64_t share = self->conf->max_pending / (int64_t)clients;
		if (mine >= (share > 0 ? share : 1)) {
			s_error(self, from, m->seq, DG_PROTO_E_BUSY, "this "
			    "client has %ld requests in flight, its share of "
			    "a full admission (max_pending %lld among %zu "
			    "clients)", (long)mine,
			    (long long)self->conf->max_pending, clients);
			return;
		}
	}
	dg_lc_req_t *r = s_req_new(self);
	if (!r) {
		s_error(self, from, m->seq, DG_PROTO_E_INTERNAL,
		    "out of memory");
		return;
	}
	r->id = ++self->next_request;
	dg_route_copy(&r->client, from);
	snprintf(r->cid, sizeof r->cid, "%s", cid);
	snprintf(r->user, sizeof r->user, "%s", from->user);
	int64_t timeout = sub->deadline_ms ? sub->deadline_ms :
	    self->conf->request_timeout_ms;
	/* The journal keeps who submitted it, for its key after a
	 * restart; what a client says of that is not taken. */
	dg_msg_t as_kept = *m;
	as_kept.u.submit.owner = from->user;
	if (self->io.journal_accept &&
	    self->io.journal_accept(self->io.arg, r->id, timeout,
	    &as_kept) < 0) {
		dg_log_error("journal: cannot record request %llu: %s",
		    (unsigned long long)r->id, strerror(errno));
		dg_route_clear(&r->client);
		free(r);
		s_error(self, from, m->seq, DG_PROTO_E_INTERNAL, "cannot "
		    "record the request in the journal");
		return;
	}
	s_req_admit(self, now, r, sub, timeout);
	s_key_add(self, r, sub->key);
	zhashx_update(self->per_client, cid, (void *)(mine + 1));

	dg_msg_t *ok = dg_msg_new(DG_OP_SUBMIT_OK);
	if (ok) {
		ok->seq = m->seq;
		ok->u.submit_ok.request = r->id;
		/* With a journal, the client hears "accepted" only once the
		 * request is on disk. */
		self->io.to_client(self->io.arg, from, ok,
		    self->io.journal_accept != NULL);
		dg_msg_destroy(&ok);
	}
	if (zlistx_size(self->pending) > 0 || !s_dispatch(self, now, r))
		s_pend(self, r);
}

void
dg_lc_replay(dg_lifecycle_t *self, int64_t now, uint64_t id,
    int64_t left_ms, dg_msg_t *m)
{
	dg_lc_req_t *r = s_req_new(self);

	if (!r) {
		dg_msg_destroy(&m);
		return;
	}
	r->id = id;
	if (m->op == DG_OP_RESULT) {
		/* Finished before the restart: kept for `status`. */
		const dg_result_msg_t *res = &m->u.result;
		int st = dg_req_state_lookup(res->status);
		r->state = st >= DG_REQ_DONE ? (dg_req_state_t)st :
		    DG_REQ_FAILED;
		r->output = res->output && *res->output ?
		    strdup(res->output) : NULL;
		r->bytes = res->bytes;
		snprintf(r->digest, sizeof r->digest, "%s",
		    res->digest ? res->digest : "");
		snprintf(r->error, sizeof r->error, "%s",
		    res->error ? res->error : "");
		snprintf(r->user, sizeof r->user, "%s",
		    res->owner ? res->owner : "");
		r->created = r->finished = now;
		char key[24];
		zhashx_insert(self->reqs, s_key(key, id), r);
		s_key_add(self, r, res->key);
		uint64_t *idp = malloc(sizeof *idp);
		if (idp) {
			*idp = id;
			zlistx_add_end(self->finished, idp);
		}
		dg_msg_destroy(&m);
		return;
	}
	/* One whose deadline passed while we were down ends at the first
	 * tick, with the journal open to record it. */
	snprintf(r->user, sizeof r->user, "%s",
	    m->u.submit.owner ? m->u.submit.owner : "");
	s_req_admit(self, now, r, &m->u.submit, left_ms);
	s_key_add(self, r, m->u.submit.key);
	if (left_ms <= 1)
		self->next_deadline = now;
	self->replayed++;
	s_pend(self, r);
	dg_msg_destroy(&m);
}

void
dg_lc_status(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m)
{
	const dg_status_msg_t *q = &m->u.status;
	dg_lc_req_t *r = q->key ? s_by_key(self, from->user, q->key) :
	    dg_lc_req_find(self, q->request);
	dg_stage_row_t rows[DG_CHAIN_MAX];

	if (!q->key && !q->request) {
		s_error(self, from, m->seq, DG_PROTO_E_INVALID, "status needs "
		    "a request id or a key");
		return;
	}
	if (!r && q->key) {
		s_error(self, from, m->seq, DG_PROTO_E_NOT_FOUND,
		    "no request of this client with key '%.64s'", q->key);
		return;
	}
	if (!r) {
		s_error(self, from, m->seq, DG_PROTO_E_NOT_FOUND,
		    "no request %llu", (unsigned long long)q->request);
		return;
	}
	dg_msg_t *ok = dg_msg_new(DG_OP_STATUS_OK);
	if (!ok)
		return;
	ok->seq = m->seq;
	dg_status_ok_msg_t *s = &ok->u.status_ok;
	s->request = r->id;
	s->state = dg_req_state_name(dg_lc_state(self, r));
	s->room = r->room;
	const char *first, *middle, *last;
	dg_lc_v1_places(self, r, ok, &first, &middle, &last);
	s->encoder = *first ? first : NULL;
	s->transformer = *middle ? middle : NULL;
	s->decoder = *last ? last : NULL;
	s->age_ms = (dg_lc_terminal(r) ? r->finished : now) - r->created;
	s->retries = r->attempt > 1 ? r->attempt - 1 : 0;
	s->error = *r->error ? r->error : NULL;
	const char *at = dg_lc_stage_of(self, r);
	s->stage = *at ? at : NULL;
	const dg_lc_place_t *p = dg_lc_place_of(self, r);
	if (p) {
		s->step = p->step;
		s->steps = p->steps;
	}
	dg_kv_t timings[DG_LC_TIMINGS_MAX];
	s->timings = timings;
	s->n_timings = dg_lc_timings(self, r, now, ok, timings);
	if (*r->place[0].inst) {
		for (size_t i = 0; i < self->n; i++)
			rows[i] = (dg_stage_row_t){ .role = self->chain.roles[i],
			    .name = r->place[i].inst };
		s->stages = rows;
		s->n_stages = self->n;
	}
	self->io.to_client(self->io.arg, from, ok, false);
	dg_msg_destroy(&ok);
}

void
dg_lc_cancel(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m, bool admin)
{
	dg_lc_req_t *r = dg_lc_req_find(self, m->u.cancel.request);

	if (!r) {
		s_error(self, from, m->seq, DG_PROTO_E_NOT_FOUND,
		    "no request %llu", (unsigned long long)m->u.cancel.request);
		return;
	}
	if (strcmp(r->user, from->user) != 0 && !admin) {
		s_error(self, from, m->seq, DG_PROTO_E_DENIED, "request %llu "
		    "is another client's: cancelling it needs an admin key",
		    (unsigned long long)r->id);
		return;
	}
	if (dg_lc_terminal(r)) {
		s_error(self, from, m->seq, DG_PROTO_E_INVALID, "request %llu "
		    "is already %s", (unsigned long long)r->id,
		    dg_req_state_name(r->state));
		return;
	}
	s_finish(self, now, r, DG_REQ_CANCELLED, "cancelled");
	dg_msg_t *ok = dg_msg_new(DG_OP_CANCEL_OK);
	if (ok) {
		ok->seq = m->seq;
		ok->u.cancel_ok.request = r->id;
		self->io.to_client(self->io.arg, from, ok, false);
		dg_msg_destroy(&ok);
	}
}

/* ---- instances' ops ---------------------------------------------------- */

void
dg_lc_hello(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m)
{
	const dg_hello_msg_t *h = &m->u.hello;
	dg_inst_t *in = dg_registry_find(self->reg, h->name);

	if (dg_pipeline_index(&self->chain, h->role) < 0) {
		s_error(self, from, m->seq, DG_PROTO_E_INVALID, "role '%s' is "
		    "not in this pipeline's chain", h->role);
		return;
	}
	/* Restarted faster than dead_after_ms: its rooms died with the old
	 * process.  Before the new row replaces the old one. */
	if (in && in->state != DG_INST_DEAD && in->pid != h->pid)
		s_fail_over(self, now, in->name, "instance restarted");
	/* A hello sent again by the same live process (its retries,
	 * queued while no controller answered) is no new join: the events
	 * a console shows say each join once. */
	bool again = in && in->state != DG_INST_DEAD && in->pid == h->pid;
	if (dg_registry_hello(self->reg, now, h, from->identity, &in) ==
	    DG_HELLO_BAD_ROLE || !in)
		return;
	if (!again) {
		dg_log_info("%s %s joined from %s (pid %lld, peer %s)",
		    h->role, h->name, h->host, (long long)h->pid, h->peer);
		s_event(self, now, "join", h->name, 0, 0, "%s %s joined",
		    h->role, h->name);
	}
	dg_msg_t *ok = dg_msg_new(DG_OP_HELLO_OK);
	if (ok) {
		ok->seq = m->seq;
		ok->u.hello_ok.heartbeat_ms = self->conf->heartbeat_ms;
		ok->u.hello_ok.dead_after_ms = self->conf->dead_after_ms;
		ok->u.hello_ok.instance = in->id;
		self->io.to_client(self->io.arg, from, ok, false);
		dg_msg_destroy(&ok);
	}
	s_dispatch_pending(self, now);
}

void
dg_lc_heartbeat(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m)
{
	bool changed;
	dg_inst_t *in = dg_registry_heartbeat(self->reg, now, &m->u.heartbeat,
	    &changed);

	if (!in) {
		/* A controller restart, or declared dead too early: ask it
		 * to introduce itself again. */
		s_error(self, from, m->seq, DG_PROTO_E_NOT_FOUND, "unknown "
		    "instance '%s': send hello", m->u.heartbeat.name);
		return;
	}
	if (!changed)
		return;
	s_event(self, now, dg_inst_state_name(in->state), in->name, 0, 0,
	    "%s %s is %s", in->role, in->name, dg_inst_state_name(in->state));
	if (in->state == DG_INST_UP)
		s_dispatch_pending(self, now);
}

void
dg_lc_stats(dg_lifecycle_t *self, const dg_msg_t *m)
{
	dg_registry_stats(self->reg, &m->u.stats);
}

static void
s_instance_gone(dg_lifecycle_t *self, int64_t now, dg_inst_t *in,
    const char *why)
{
	dg_registry_dead(self->reg, in);
	s_fail_over(self, now, in->name, why);
}

void
dg_lc_bye(dg_lifecycle_t *self, int64_t now, const dg_msg_t *m)
{
	dg_inst_t *in = dg_registry_find(self->reg, m->u.bye.name);

	if (!in)
		return;
	dg_log_info("%s %s left%s%s", in->role, in->name,
	    m->u.bye.reason ? ": " : "", m->u.bye.reason ? m->u.bye.reason : "");
	s_event(self, now, "leave", in->name, 0, 0, "%s %s left", in->role,
	    in->name);
	s_instance_gone(self, now, in, "instance left");
}

/* A report for an older room of the request is stale: NULL. */
static dg_lc_req_t *
s_room_req(dg_lifecycle_t *self, uint64_t room, uint64_t request)
{
	char key[24];
	dg_lc_req_t *r = zhashx_lookup(self->rooms, s_key(key, room));

	return r && r->id == request && !dg_lc_terminal(r) ? r : NULL;
}

static void
s_advance(dg_lc_req_t *r, int rank)
{
	if (rank > r->rank)
		r->rank = rank;
}

void
dg_lc_stage_done(dg_lifecycle_t *self, int64_t now, const dg_msg_t *m)
{
	const dg_stage_done_msg_t *sd = &m->u.stage_done;
	dg_lc_req_t *r = s_room_req(self, sd->room, sd->request);
	int s = dg_pipeline_index(&self->chain, sd->role);

	if (!r || s < 0)
		return;
	r->place[s].done = true;
	r->place[s].ms = sd->ms;
	r->place[s].queue_us = sd->queue_us;
	r->place[s].in_us = sd->in_us;
	r->place[s].compute_us = sd->compute_us;
	r->place[s].out_us = sd->out_us;
	r->place[s].total_us = sd->total_us;
	dg_lc_cost_learn(self, r, (size_t)s, sd->compute_us);
	dg_lc_cost_uncharge(self, r, s);
	if ((size_t)s + 1 < self->n) {
		/* Its output is delivered: the next stage holds it. */
		s_advance(r, 2 * (s + 1) + 1);
	} else {
		free(r->output);
		r->output = sd->output ? strdup(sd->output) : NULL;
		r->bytes = sd->bytes;
		snprintf(r->digest, sizeof r->digest, "%s",
		    sd->digest ? sd->digest : "");
	}
	for (size_t i = 0; i < self->n; i++)
		if (!r->place[i].done)
			return;
	s_finish(self, now, r, DG_REQ_DONE, NULL);
}

void
dg_lc_stage_failed(dg_lifecycle_t *self, int64_t now, const dg_msg_t *m)
{
	const dg_stage_failed_msg_t *sf = &m->u.stage_failed;
	dg_lc_req_t *r = s_room_req(self, sf->room, sf->request);
	char why[512];

	if (!r)
		return;
	snprintf(why, sizeof why, "%s: %s", sf->role, sf->reason);
	s_retry_or_fail(self, now, r, why, sf->retryable);
}

void
dg_lc_room_phase(dg_lifecycle_t *self, int64_t now, const dg_msg_t *m)
{
	const dg_room_phase_msg_t *p = &m->u.room_phase;
	dg_lc_req_t *r = s_room_req(self, p->room, p->request);
	int s = dg_pipeline_index(&self->chain, p->role);
	int phase = dg_room_phase_lookup(p->state);

	(void)now;
	if (!r || s < 0 || phase < 0)
		return;
	if (phase == DG_ROOM_RUNNING)
		s_advance(r, 2 * s + 1);
	else if ((size_t)s + 1 < self->n)
		s_advance(r, 2 * (s + 1));
}

/* ---- operators' ops ---------------------------------------------------- */

void
dg_lc_drain(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m, bool drain)
{
	const char *name = drain ? m->u.drain.name : m->u.undrain.name;
	dg_inst_t *in = dg_registry_find(self->reg, name);

	if (!in || in->state == DG_INST_DEAD) {
		s_error(self, from, m->seq, DG_PROTO_E_NOT_FOUND,
		    "no live instance '%s'", name);
		return;
	}
	dg_registry_drain(self->reg, in, drain);
	/* drain --exit: the daemon itself drains, finishes what it holds
	 * within its drain_timeout_ms and exits 0, as on SIGTERM. */
	if (drain && m->u.drain.exit) {
		dg_msg_t *d = dg_msg_new(DG_OP_DRAIN);
		if (d) {
			d->u.drain.name = in->name;
			self->io.to_instance(self->io.arg, in, d);
			dg_msg_destroy(&d);
		}
	}
	dg_log_info("%s %s: %s", in->role, in->name,
	    drain ? "draining" : "undrained");
	s_event(self, now, drain ? "drain" : "undrain", in->name, 0, 0,
	    "%s %s %s", in->role, in->name, drain ? "draining" : "undrained");
	dg_msg_t *ok = dg_msg_new(drain ? DG_OP_DRAIN_OK : DG_OP_UNDRAIN_OK);
	if (ok) {
		ok->seq = m->seq;
		ok->u.drain_ok.name = in->name;
		self->io.to_client(self->io.arg, from, ok, false);
		dg_msg_destroy(&ok);
	}
	if (!drain)
		s_dispatch_pending(self, now);
}

void
dg_lc_release(dg_lifecycle_t *self, int64_t now, const dg_route_t *from,
    const dg_msg_t *m)
{
	char key[24], why[512];
	dg_lc_req_t *r = zhashx_lookup(self->rooms, s_key(key, m->u.release.room));

	if (!r) {
		s_error(self, from, m->seq, DG_PROTO_E_NOT_FOUND,
		    "no live room %llu", (unsigned long long)m->u.release.room);
		return;
	}
	uint64_t room = r->room, request = r->id;
	snprintf(why, sizeof why, "room %llu released by an operator%s%.300s",
	    (unsigned long long)room, m->u.release.reason ? ": " : "",
	    m->u.release.reason ? m->u.release.reason : "");
	dg_log_info("request %llu: %s", (unsigned long long)request, why);
	s_finish(self, now, r, DG_REQ_FAILED, why);
	s_event(self, now, "release", NULL, request, room, "%s", why);
	dg_msg_t *ok = dg_msg_new(DG_OP_RELEASE_OK);
	if (ok) {
		ok->seq = m->seq;
		ok->u.release_ok.room = room;
		self->io.to_client(self->io.arg, from, ok, false);
		dg_msg_destroy(&ok);
	}
}

/* ---- time -------------------------------------------------------------- */

/* Requests past their deadline fail.  The earliest deadline is kept, so
 * most ticks look at no request. */
static void
s_deadlines(dg_lifecycle_t *self, int64_t now)
{
	if (now < self->next_deadline)
		return;
	int64_t next = INT64_MAX;
	size_t cap = zlistx_size(self->live), n = 0;
	dg_lc_req_t **late = cap ? malloc(cap * sizeof *late) : NULL;
	if (cap && !late)
		return;                 /* next tick */
	/* Collect first: finishing edits the list. */
	for (dg_lc_req_t *r = zlistx_first(self->live); r;
	    r = zlistx_next(self->live)) {
		if (now >= r->deadline && n < cap)
			late[n++] = r;
		else if (r->deadline < next)
			next = r->deadline;
	}
	for (size_t i = 0; i < n; i++) {
		char why[128];
		snprintf(why, sizeof why, "deadline of %lld ms passed while %s",
		    (long long)late[i]->timeout_ms,
		    dg_req_state_name(dg_lc_state(self, late[i])));
		s_finish(self, now, late[i], DG_REQ_FAILED, why);
	}
	free(late);
	self->next_deadline = next;
}

/* admission = deadline: how often placed requests are looked at for one
 * that can no longer make its deadline. */
#define HOPE_EVERY_MS 100

/* A placed request whose own compute still to do (a lower bound of
 * what it needs: no queue counted) ends past its deadline fails now,
 * and its rooms are freed for work that can make it. */
static void
s_hopeless_placed(dg_lifecycle_t *self, int64_t now)
{
	if (self->conf->admission != DG_ADMIT_DEADLINE ||
	    now - self->hope_at < HOPE_EVERY_MS)
		return;
	self->hope_at = now;
	size_t cap = zlistx_size(self->live), n = 0;
	dg_lc_req_t **late = cap ? malloc(cap * sizeof *late) : NULL;
	int64_t *need = cap ? malloc(cap * sizeof *need) : NULL;
	if (!late || !need) {
		free(late);
		free(need);
		return;                 /* next time */
	}
	/* Collect first: finishing edits the list. */
	for (dg_lc_req_t *r = zlistx_first(self->live); r;
	    r = zlistx_next(self->live)) {
		if (!r->room)
			continue;
		int64_t us = dg_lc_cost_left_us(self, r);
		if (us > 0 && now + us / 1000 > r->deadline && n < cap) {
			need[n] = us / 1000;
			late[n++] = r;
		}
	}
	for (size_t i = 0; i < n; i++) {
		char why[160];
		snprintf(why, sizeof why, "cannot make its deadline: needs %lld "
		    "ms more of compute, %lld ms left", (long long)need[i],
		    (long long)(late[i]->deadline - now));
		s_finish(self, now, late[i], DG_REQ_FAILED, why);
	}
	free(late);
	free(need);
}

static void
s_forget_finished(dg_lifecycle_t *self, int64_t now)
{
	uint64_t *id;

	while ((id = zlistx_first(self->finished))) {
		dg_lc_req_t *r = dg_lc_req_find(self, *id);
		if (r && now - r->finished < self->conf->keep_finished_ms &&
		    (int64_t)zlistx_size(self->finished) <=
		    self->conf->keep_finished)
			break;
		char key[24];
		if (r) {
			s_key_drop(self, r);
			zhashx_delete(self->reqs, s_key(key, *id));
		}
		zlistx_delete(self->finished, zlistx_cursor(self->finished));
	}
}

void
dg_lc_tick(dg_lifecycle_t *self, int64_t now)
{
	dg_inst_t *in;

	while ((in = dg_registry_next_silent(self->reg, now,
	    self->conf->dead_after_ms))) {
		int64_t silent = now - in->last_seen;
		char why[128];
		dg_log_warn("%s %s is dead: silent for %lld ms", in->role,
		    in->name, (long long)silent);
		s_event(self, now, "dead", in->name, 0, 0, "%s %s silent for "
		    "%lld ms", in->role, in->name, (long long)silent);
		snprintf(why, sizeof why, "instance %s died", in->name);
		s_instance_gone(self, now, in, why);
	}
	s_deadlines(self, now);
	s_hopeless_placed(self, now);
	s_forget_finished(self, now);
	dg_lc_progress_flush(self, now);
}

void
dg_lc_paused(dg_lifecycle_t *self, int64_t now, int64_t gap)
{
	dg_log_warn("this controller did not run for %lld ms: the instances' "
	    "silence meanwhile is not held against them", (long long)gap);
	dg_registry_paused(self->reg, now, gap);
}

int64_t
dg_lc_next_wake(dg_lifecycle_t *self, int64_t now)
{
	int64_t next = dg_registry_next_deadline(self->reg,
	    self->conf->dead_after_ms);

	if (self->next_deadline < next)
		next = self->next_deadline;
	if (dg_lc_progress_due(self) < next)
		next = dg_lc_progress_due(self);
	if (self->conf->admission == DG_ADMIT_DEADLINE &&
	    zlistx_size(self->live) > 0 &&
	    self->hope_at + HOPE_EVERY_MS < next)
		next = self->hope_at + HOPE_EVERY_MS;
	uint64_t *id = zlistx_first(self->finished);
	dg_lc_req_t *r = id ? dg_lc_req_find(self, *id) : NULL;
	if (r && (int64_t)zlistx_size(self->finished) >
	    self->conf->keep_finished)
		next = now;
	else if (r && r->finished + self->conf->keep_finished_ms < next)
		next = r->finished + self->conf->keep_finished_ms;
	return next < now ? now : next;
}

void
dg_lc_draining(dg_lifecycle_t *self)
{
	self->draining = true;
}

void
dg_lc_stop(dg_lifecycle_t *self, int64_t now, const char *why)
{
	dg_lc_req_t *r;

	self->draining = true;
	while ((r = zlistx_first(self->live)))
		s_finish(self, now, r, DG_REQ_FAILED, why);
}

