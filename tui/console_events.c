/*  console_events.c: the Events view, the controller's events: those
 *  it kept from before the console connected (the `events` request),
 *  then those that come on PUB.  They are not a reply to keep but a
 *  stream, so the panel keeps the newest S_KEEP in a ring (older ones
 *  scroll away, as in a terminal) and describes its own rows for the
 *  console.
 *
 *  Each event is shown once, in order: the kept ones past the last id
 *  seen are asked for at every refresh (which also fills what a SUB
 *  still connecting missed), live ones that come meanwhile are held,
 *  and the kept ones, then the held ones, are added past the last id
 *  seen.  Ids start again with a new epoch (a restarted controller),
 *  which a live id that goes back may show: the next reply's epoch
 *  tells, and a new one has every kept one asked for again.  */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "console.h"

#define S_KEEP 500

typedef struct {
	int64_t ts_ms;
	char *kind, *name, *message;    /* never NULL unless memory was short */
	uint64_t request, room;
	uint64_t id;                    /* the controller's; 0: none */
} s_event_t;

typedef struct {
	dg_panel_t super;
	s_event_t ring[S_KEEP];         /* event i is ring[i % S_KEEP] */
	uint64_t n;                     /* events ever received */
	uint64_t frozen;                /* n when the console paused */
	/* merging the kept events with the live ones */
	bool unserved;                  /* the controller keeps none */
	bool syncing;                   /* asked: live ones are held */
	uint64_t after;                 /* what the question said */
	uint64_t epoch;                 /* of the ids below; 0: unknown */
	uint64_t last_id;               /* the newest id shown */
	s_event_t held[S_KEEP];
	size_t nheld;
} s_events_t;

/* "13:04:05.123", local time. */
static const char *
s_time(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	int64_t ms = dg_col_i64(col, row);
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;

	*sort = (double)ms;
	localtime_r(&sec, &tm);
	snprintf(buf, size, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (int)(ms % 1000));
	return buf;
}

#define T s_event_t
static const dg_col_t s_cols[] = {
	{ "TIME", "ts_ms", .type = DG_COL_INT, .offset = offsetof(T, ts_ms),
	  .console = { .width = 12, .cell = s_time } },
	{ "KIND", "kind", .type = DG_COL_STR, .offset = offsetof(T, kind),
	  .console = { .width = 9 } },
	{ "NAME", "name", .type = DG_COL_STR, .offset = offsetof(T, name),
	  .console = { .width = 10, .cell = dg_cell_dash } },
	{ "REQUEST", "request", .type = DG_COL_UINT,
	  .offset = offsetof(T, request), .right = true,
	  .console = { .width = 8, .cell = dg_cell_id } },
	{ "ROOM", "room", .type = DG_COL_UINT, .offset = offsetof(T, room),
	  .right = true, .console = { .width = 8, .cell = dg_cell_id } },
	{ "MESSAGE", "message", .type = DG_COL_STR,
	  .offset = offsetof(T, message), .console = { .width = 60 } },
};
#undef T

static const dg_rows_t s_rows = {
	.name = "events", .size = sizeof(s_event_t), .cols = s_cols,
	.ncols = sizeof s_cols / sizeof s_cols[0], .name_key = "name",
	.room_key = "room", .request_key = "request",
};

static const dg_rows_t *
s_desc(void)
{
	return &s_rows;
}

static void
s_build(dg_panel_t *p, const dg_console_t *con)
{
	s_events_t *self = (s_events_t *)p;
	uint64_t end = con->paused ? self->frozen : self->n;
	uint64_t first = end > S_KEEP ? end - S_KEEP : 0;
	size_t start = (size_t)(first % S_KEEP), count = (size_t)(end - first);
	size_t before_wrap = count < S_KEEP - start ? count : S_KEEP - start;

	if (!con->sub)
		snprintf(p->note, sizeof p->note, "events need the "
		    "controller's PUB endpoint: give it with -p ENDPOINT or "
		    "-f FILE");
	else if (end == 0)
		snprintf(p->note, sizeof p->note, "no event yet (joins, "
		    "deaths, drains and failures show here as they happen)");
	dg_panel_add_rows(p, &s_rows, &self->ring[start], before_wrap);
	dg_panel_add_rows(p, &s_rows, self->ring, count - before_wrap);
}

static void
s_free_event(s_event_t *e)
{
	free(e->kind);
	free(e->name);
	free(e->message);
	memset(e, 0, sizeof *e);
}

static void
s_done(dg_panel_t *p)
{
	s_events_t *self = (s_events_t *)p;

	for (size_t i = 0; i < S_KEEP; i++)
		s_free_event(&self->ring[i]);
	for (size_t i = 0; i < self->nheld; i++)
		s_free_event(&self->held[i]);
}

/* The message narrows rather than goes: it is the event. */
static const dg_fit_t s_fit[] = {
	{ "ts_ms", 0, NULL, 0 },
	{ "kind", 1, NULL, 0 },
	{ "message", 1, "MESSAGE", 20 },
	{ "name", 2, NULL, 0 },
	{ "request", 3, NULL, 0 },
	{ "room", 4, NULL, 0 },
	{ NULL, 0, NULL, 0 }
};

const dg_panel_class_t dg_events_class = {
	.name = "events", .title = "Events", .size = sizeof(s_events_t),
	.rows = s_desc, .live = true, .tails = true, .colour_key = "kind",
	.fit = s_fit,
	.build = s_build, .done = s_done,
};

static void
s_copy(s_event_t *r, const dg_event_msg_t *e)
{
	s_free_event(r);
	r->id = e->id;
	r->ts_ms = e->ts_ms;
	r->kind = strdup(e->kind ? e->kind : "?");
	r->name = strdup(e->name ? e->name : "");
	r->message = strdup(e->message ? e->message : "");
	r->request = e->request;
	r->room = e->room;
}

/* Into the view, unless it is there already.  A controller that gives
 * no ids (an older one) has each event shown as it comes. */
static void
s_add(s_events_t *self, const dg_event_msg_t *e)
{
	if (e->id && e->id <= self->last_id)
		return;
	if (e->id)
		self->last_id = e->id;
	s_copy(&self->ring[self->n++ % S_KEEP], e);
}

static dg_event_msg_t
s_msg(const s_event_t *r)
{
	return (dg_event_msg_t){ .kind = r->kind, .ts_ms = r->ts_ms,
	    .name = r->name, .request = r->request, .room = r->room,
	    .message = r->message, .id = r->id };
}

void
dg_events_live(dg_panel_t *events, const dg_event_msg_t *e)
{
	s_events_t *self = (s_events_t *)events;

	/* An id that goes back: the controller restarted and its ids
	 * start again, or (as often) an event the kept ones already gave,
	 * whose PUB copy came after the reply: the two sockets keep no
	 * order between them.  Which one, the epoch of the next reply
	 * says (dg_events_kept()): asked past the last id with the epoch
	 * kept, the same run answers with what is new, and a new run with
	 * its epoch, which then asks for all.  Forgetting the epoch here
	 * asked for all at once, and a late copy showed every kept event
	 * twice. */
	if (!self->syncing && e->id && e->id <= self->last_id)
		self->syncing = true;
	/* Held until the kept ones are in: they come first. */
	if (!self->syncing) {
		s_add(self, e);
		return;
	}
	if (self->nheld < S_KEEP)
		s_copy(&self->held[self->nheld++], e);
}

void
dg_events_kept(dg_panel_t *events, const dg_msg_t *m)
{
	s_events_t *self = (s_events_t *)events;

	if (m && m->op == DG_OP_EVENTS_OK) {
		const dg_events_ok_msg_t *k = &m->u.events_ok;
		if (k->epoch != self->epoch) {
			self->epoch = k->epoch;
			self->last_id = 0;
			/* Asked past an id of another run: ask for all,
			 * the live ones still held. */
			if (self->after) {
				self->after = 0;
				return;
			}
		}
		for (size_t i = 0; i < k->n_events; i++)
			s_add(self, &k->events[i]);
	}
	/* Lost: asked again at the next poll, the live ones meanwhile
	 * shown as they come.  An error: this controller keeps none (or
	 * cannot say), and the live ones are all. */
	self->unserved = m && m->op != DG_OP_EVENTS_OK;
	self->syncing = false;
	for (size_t i = 0; i < self->nheld; i++) {
		dg_event_msg_t e = s_msg(&self->held[i]);
		s_add(self, &e);
		s_free_event(&self->held[i]);
	}
	self->nheld = 0;
}

dg_msg_t *
dg_events_ask(dg_panel_t *events)
{
	s_events_t *self = (s_events_t *)events;
	dg_msg_t *m = self->unserved ? NULL : dg_msg_new(DG_OP_EVENTS);

	if (!m)
		return NULL;
	self->after = self->epoch ? self->last_id : 0;
	m->u.events.after = self->after;
	self->syncing = true;
	return m;
}

void
dg_events_resync(dg_panel_t *events)
{
	((s_events_t *)events)->unserved = false;
}

void
dg_events_freeze(dg_panel_t *events)
{
	s_events_t *self = (s_events_t *)events;

	self->frozen = self->n;
}
