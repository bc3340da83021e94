/*  lifecycle_views.c: what the controller's core shows of requests
 *  (lifecycle.h): the wire names of states and room phases, a request's
 *  state derived from its rank, status.ok, rooms.ok and queues.ok.
 *
 *  A request's progress along the chain is one number, `rank`: 0 when
 *  assigned, 2i+1 while stage i works on it, 2i while its data moves
 *  into stage i.  Reports only move it forward, so a late room.phase
 *  cannot take a request back; the wire state is derived from it, in
 *  version 1's words for chains of any length.  */
#include <stdio.h>
#include <string.h>

#include "lifecycle.h"
#include "lifecycle_impl.h"

static const char *const s_req_names[DG_REQ_STATE_COUNT] = {
	"pending", "assigned", "encoding", "phase1", "denoising", "phase2",
	"decoding", "done", "failed", "cancelled"
};
static const char *const s_phase_names[DG_ROOM_PHASE_COUNT] =
	{ "running", "sending" };

const char *
dg_req_state_name(dg_req_state_t state)
{
	return state < DG_REQ_STATE_COUNT ? s_req_names[state] : "?";
}

int
dg_req_state_lookup(const char *word)
{
	for (int i = 0; word && i < DG_REQ_STATE_COUNT; i++)
		if (strcmp(word, s_req_names[i]) == 0)
			return i;
	return -1;
}

const char *
dg_room_phase_name(dg_room_phase_t phase)
{
	return phase < DG_ROOM_PHASE_COUNT ? s_phase_names[phase] : "?";
}

int
dg_room_phase_lookup(const char *word)
{
	for (int i = 0; word && i < DG_ROOM_PHASE_COUNT; i++)
		if (strcmp(word, s_phase_names[i]) == 0)
			return i;
	return -1;
}

bool
dg_lc_terminal(const dg_lc_req_t *r)
{
	return r->state >= DG_REQ_DONE;
}

/* The wire state of a live request. */
dg_req_state_t
dg_lc_state(const dg_lifecycle_t *self, const dg_lc_req_t *r)
{
	if (dg_lc_terminal(r) || r->state == DG_REQ_PENDING)
		return r->state;
	if (r->rank <= 0)
		return DG_REQ_ASSIGNED;
	int at = r->rank / 2;
	if (r->rank % 2 == 0)
		return at == 1 ? DG_REQ_PHASE1 : DG_REQ_PHASE2;
	return at == 0 ? DG_REQ_ENCODING : (size_t)at + 1 == self->n ?
	    DG_REQ_DECODING : DG_REQ_DENOISING;
}

/* The role a live request is at ("" when not placed). */
const char *
dg_lc_stage_of(const dg_lifecycle_t *self, const dg_lc_req_t *r)
{
	const dg_lc_place_t *p = dg_lc_place_of(self, r);

	return p ? self->chain.roles[p - r->place] : "";
}

const dg_lc_place_t *
dg_lc_place_of(const dg_lifecycle_t *self, const dg_lc_req_t *r)
{
	if (dg_lc_terminal(r) || r->state == DG_REQ_PENDING)
		return NULL;
	size_t at = r->rank <= 0 ? 0 : (size_t)(r->rank / 2);
	return at < self->n ? &r->place[at] : NULL;
}

/* Version 1's three places: first, the middle ones joined, last. */
void
dg_lc_v1_places(dg_lifecycle_t *self, const dg_lc_req_t *r, dg_msg_t *m,
    const char **first, const char **middle, const char **last)
{
	*first = r->place[0].inst;
	*last = r->place[self->n - 1].inst;
	*middle = self->n > 2 ? r->place[1].inst : "";
	if (self->n > 3) {
		size_t len = 0;
		for (size_t s = 1; s + 1 < self->n; s++)
			len += strlen(r->place[s].inst) + 1;
		char *join = dg_msg_alloc(m, len + 1);
		if (join) {
			*join = '\0';
			for (size_t s = 1; s + 1 < self->n; s++) {
				if (s > 1)
					strcat(join, ",");
				strcat(join, r->place[s].inst);
			}
			*middle = join;
		}
	}
}

/* ---- views ------------------------------------------------------------- */

void
dg_lc_counts(const dg_lifecycle_t *self, dg_lc_counts_t *out)
{
	*out = (dg_lc_counts_t){
		.pending = zlistx_size(self->pending),
		.active = self->active,
		.rooms = zhashx_size(self->rooms),
		.known = zhashx_size(self->reqs),
		.done = self->ndone, .failed = self->nfailed,
		.cancelled = self->ncancelled, .replayed = self->replayed,
	};
}

static bool
s_on_instance(const dg_lifecycle_t *self, const dg_lc_req_t *r,
    const char *name)
{
	for (size_t s = 0; s < self->n; s++)
		if (strcmp(r->place[s].inst, name) == 0)
			return true;
	return false;
}

dg_msg_t *
dg_lc_rooms_reply(dg_lifecycle_t *self, int64_t now, const char *name,
    uint64_t seq)
{
	dg_msg_t *ok = dg_msg_new(DG_OP_ROOMS_OK);
	size_t total = 0, n = 0;

	if (!ok)
		return NULL;
	for (dg_lc_req_t *r = zlistx_first(self->live); r;
	    r = zlistx_next(self->live))
		if (r->room && (!name || !*name || s_on_instance(self, r, name)))
			total++;
	size_t cap = total > DG_PROTO_MAX_ITEMS ? DG_PROTO_MAX_ITEMS : total;
	dg_room_row_t *rows = dg_msg_alloc(ok, (cap + 1) * sizeof *rows);
	dg_stage_row_t *places = dg_msg_alloc(ok,
	    (cap * self->n + 1) * sizeof *places);
	if (!rows || !places) {
		dg_msg_destroy(&ok);
		return NULL;
	}
	/* In request order, so that a listing reads oldest first. */
	for (dg_lc_req_t *r = zlistx_first(self->live); r && n < cap;
	    r = zlistx_next(self->live)) {
		if (!r->room || (name && *name && !s_on_instance(self, r, name)))
			continue;
		dg_stage_row_t *pl = &places[n * self->n];
		for (size_t s = 0; s < self->n; s++)
			pl[s] = (dg_stage_row_t){ .role = self->chain.roles[s],
			    .name = *r->place[s].inst ? r->place[s].inst : "-" };
		const char *first, *middle, *last;
		dg_lc_v1_places(self, r, ok, &first, &middle, &last);
		rows[n++] = (dg_room_row_t){
			.room = r->room, .request = r->id,
			.state = dg_req_state_name(dg_lc_state(self, r)),
			.encoder = first, .transformer = *middle ? middle : "-",
			.decoder = last, .bytes = r->bytes,
			.age_ms = now - r->created,
			.stage = dg_lc_stage_of(self, r),
			.stages = pl, .n_stages = self->n,
		};
		const dg_lc_place_t *at = dg_lc_place_of(self, r);
		if (at) {
			rows[n - 1].step = at->step;
			rows[n - 1].steps = at->steps;
		}
	}
	ok->seq = seq;
	ok->u.rooms_ok.rooms = rows;
	ok->u.rooms_ok.n_rooms = n;
	ok->u.rooms_ok.omitted = total - n;
	return ok;
}

dg_msg_t *
dg_lc_queues_reply(dg_lifecycle_t *self, int64_t now, const char *self_name,
    uint64_t seq)
{
	dg_msg_t *ok = dg_msg_new(DG_OP_QUEUES_OK);
	size_t total = zlistx_size(self->pending), n = 0;

	if (!ok)
		return NULL;
	size_t cap = total > DG_PROTO_MAX_ITEMS ? DG_PROTO_MAX_ITEMS : total;
	dg_queue_row_t *rows = dg_msg_alloc(ok, (cap + 1) * sizeof *rows);
	if (!rows) {
		dg_msg_destroy(&ok);
		return NULL;
	}
	for (dg_lc_req_t *r = zlistx_first(self->pending); r && n < cap;
	    r = zlistx_next(self->pending))
		rows[n++] = (dg_queue_row_t){ .room = 0, .request = r->id,
		    .queue = "pending", .age_ms = now - r->created };
	ok->seq = seq;
	ok->u.queues_ok.name = self_name;
	ok->u.queues_ok.rooms = rows;
	ok->u.queues_ok.n_rooms = n;
	ok->u.queues_ok.omitted = total - n;
	return ok;
}
