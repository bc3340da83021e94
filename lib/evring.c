/*  evring.c: the controller's newest events (evring.h), copies in a
 *  circular array.  */
#include <stdlib.h>
#include <string.h>

#include "evring.h"

typedef struct {
	uint64_t id;
	int64_t ts_ms;
	char *kind, *name, *message;    /* NULL: absent */
	uint64_t request, room;
} s_ev_t;

struct _dg_evring_t {
	s_ev_t *ev;                     /* cap slots */
	size_t cap;                     /* keep, or 1 when keep is 0 */
	size_t keep;
	size_t first;                   /* slot of the oldest held */
	size_t n;                       /* held */
	uint64_t last_id;               /* of the newest event ever */
	uint64_t epoch;
};

static s_ev_t *
s_at(const dg_evring_t *self, size_t i)
{
	return &self->ev[(self->first + i) % self->cap];
}

dg_evring_t *
dg_evring_new(size_t keep, uint64_t epoch)
{
	dg_evring_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->epoch = epoch;
	if (dg_evring_set_keep(self, keep) < 0) {
		free(self);
		return NULL;
	}
	return self;
}

static void
s_free_ev(s_ev_t *e)
{
	free(e->kind);
	free(e->name);
	free(e->message);
	memset(e, 0, sizeof *e);
}

void
dg_evring_destroy(dg_evring_t **self_p)
{
	dg_evring_t *self = *self_p;

	if (!self)
		return;
	for (size_t i = 0; i < self->n; i++)
		s_free_ev(s_at(self, i));
	free(self->ev);
	free(self);
	*self_p = NULL;
}

int
dg_evring_set_keep(dg_evring_t *self, size_t keep)
{
	/* One slot at least, so that no index divides by 0. */
	size_t cap = keep ? keep : 1;
	s_ev_t *ev = calloc(cap, sizeof *ev);
	size_t n = self->n < keep ? self->n : keep;

	if (!ev)
		return -1;
	/* The newest n move over, oldest first; the older ones go. */
	for (size_t i = 0; i < self->n; i++) {
		if (i >= self->n - n)
			ev[i - (self->n - n)] = *s_at(self, i);
		else
			s_free_ev(s_at(self, i));
	}
	free(self->ev);
	self->ev = ev;
	self->cap = cap;
	self->keep = keep;
	self->first = 0;
	self->n = n;
	return 0;
}

size_t
dg_evring_keep(const dg_evring_t *self)
{
	return self->keep;
}

size_t
dg_evring_size(const dg_evring_t *self)
{
	return self->n;
}

static char *
s_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

uint64_t
dg_evring_add(dg_evring_t *self, dg_event_msg_t *e)
{
	e->id = ++self->last_id;
	if (!self->keep)
		return e->id;
	s_ev_t *slot;
	if (self->n == self->keep) {
		slot = s_at(self, 0);
		s_free_ev(slot);
		self->first = (self->first + 1) % self->cap;
	} else {
		slot = s_at(self, self->n);
		self->n++;
	}
	/* A copy that memory could not hold keeps its id and kind: the
	 * reader still sees that something happened. */
	*slot = (s_ev_t){ .id = e->id, .ts_ms = e->ts_ms,
	    .kind = s_dup(e->kind), .name = s_dup(e->name),
	    .message = s_dup(e->message), .request = e->request,
	    .room = e->room };
	return e->id;
}

dg_msg_t *
dg_evring_reply(const dg_evring_t *self, uint64_t after, uint64_t seq)
{
	dg_msg_t *m = dg_msg_new(DG_OP_EVENTS_OK);
	size_t skip = 0;

	if (!m)
		return NULL;
	m->seq = seq;
	m->u.events_ok.epoch = self->epoch;
	m->u.events_ok.last = self->last_id;
	/* Ids are consecutive in the ring: the first wanted is found by
	 * arithmetic. */
	if (self->n && after >= s_at(self, 0)->id)
		skip = after - s_at(self, 0)->id + 1;
	if (skip >= self->n)
		return m;
	dg_event_msg_t *rows = dg_msg_alloc(m, (self->n - skip) * sizeof *rows);
	if (!rows) {
		dg_msg_destroy(&m);
		return NULL;
	}
	for (size_t i = skip; i < self->n; i++) {
		const s_ev_t *e = s_at(self, i);
		rows[i - skip] = (dg_event_msg_t){ .kind = e->kind ? e->kind :
		    "?", .ts_ms = e->ts_ms, .name = e->name,
		    .request = e->request, .room = e->room,
		    .message = e->message, .id = e->id };
	}
	m->u.events_ok.events = rows;
	m->u.events_ok.n_events = self->n - skip;
	return m;
}
