/*  console_events.c: the Events view, the controller's events as they
 *  come on PUB.  They are not a reply to keep but a stream, so the
 *  panel keeps the newest S_KEEP in a ring (older ones scroll away, as
 *  in a terminal) and describes its own rows for the console.  */
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
} s_event_t;

typedef struct {
	dg_panel_t super;
	s_event_t ring[S_KEEP];         /* event i is ring[i % S_KEEP] */
	uint64_t n;                     /* events ever received */
	uint64_t frozen;                /* n when the console paused */
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
}

const dg_panel_class_t dg_events_class = {
	.name = "events", .title = "Events", .size = sizeof(s_events_t),
	.rows = s_desc, .live = true, .tails = true, .colour_key = "kind",
	.build = s_build, .done = s_done,
};

void
dg_events_add(dg_panel_t *events, const dg_event_msg_t *e)
{
	s_events_t *self = (s_events_t *)events;
	s_event_t *r = &self->ring[self->n++ % S_KEEP];

	s_free_event(r);
	r->ts_ms = e->ts_ms;
	r->kind = strdup(e->kind ? e->kind : "?");
	r->name = strdup(e->name ? e->name : "");
	r->message = strdup(e->message ? e->message : "");
	r->request = e->request;
	r->room = e->room;
}

void
dg_events_freeze(dg_panel_t *events)
{
	s_events_t *self = (s_events_t *)events;

	self->frozen = self->n;
}
