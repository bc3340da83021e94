/*  console_rooms.c: the Rooms view, every live room, and the room it
 *  follows (Enter on any row with a room): a pane under the table with
 *  the room's row and its request's status, asked for at each poll.
 *  The stages a room went through are the stage columns of the rooms
 *  description, so no role is named here.  */
#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "console.h"

typedef struct {
	dg_panel_t super;
	uint64_t room, request;         /* followed; 0: none */
	dg_msg_t *status;               /* status.ok of the request */
} s_rooms_t;

#define S_PANE 5        /* screen rows of the pane, and one per stage timed */

static void
s_build(dg_panel_t *p, const dg_console_t *con)
{
	(void)con;
	if (dg_panel_no_rows(p, p->reply, "the room table"))
		return;
	const dg_rooms_ok_msg_t *r = &p->reply->u.rooms_ok;
	if (r->n_rooms == 0)
		snprintf(p->note, sizeof p->note, "no live room");
	dg_panel_add_rows(p, p->desc, r->rooms, r->n_rooms);
}

/* Append to `buf` what printf makes of the rest. */
static void s_cat(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
s_cat(char *buf, size_t size, const char *fmt, ...)
{
	size_t len = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	if (len + 1 < size)
		vsnprintf(buf + len, size - len, fmt, ap);
	va_end(ap);
}

static const char *
s_cell(const dg_panel_t *p, const dg_prow_t *r, const char *key)
{
	int c = dg_panel_col(p, key);

	return c >= 0 && r->cell[c] ? r->cell[c] : "";
}

/* "  state denoising at high   placed on e0 > h0 > l0 > d0   bytes 4.8M
 *  age 3s": roles by the configuration's names. */
static void
s_room_line(const dg_panel_t *p, const dg_prow_t *r, char *line,
    size_t size)
{
	snprintf(line, size, "  state %s at %s step %s   placed on %s   "
	    "bytes %s   age %s", s_cell(p, r, "state"), s_cell(p, r, "stage"),
	    s_cell(p, r, "step"), s_cell(p, r, "stages"),
	    s_cell(p, r, "bytes"), s_cell(p, r, "age_ms"));
}

/* The value of `role`.`part` in status.ok's timings, or -1. */
static int64_t
s_timing(const dg_status_ok_msg_t *s, const char *role, const char *part)
{
	char key[DG_NAME_MAX + 16];

	snprintf(key, sizeof key, "%s.%s", role, part);
	for (size_t i = 0; i < s->n_timings; i++)
		if (strcmp(s->timings[i].key, key) == 0)
			return s->timings[i].value;
	return -1;
}

/* The stages that have timings so far: their version-1 keys (a role's
 * name, no dot, not "total"), in the chain's order. */
static size_t
s_timed(const dg_msg_t *st)
{
	size_t n = 0;

	if (!st || st->op != DG_OP_STATUS_OK)
		return 0;
	for (size_t i = 0; i < st->u.status_ok.n_timings; i++) {
		const char *k = st->u.status_ok.timings[i].key;
		n += !strchr(k, '.') && strcmp(k, "total") != 0;
	}
	return n;
}

/* "  transformer  queue 9.0  in 20.6  compute 121.5  out 0.4  total
 * 187.0 ms": where the k-th timed stage's time went. */
static void
s_timing_line(const dg_status_ok_msg_t *s, size_t k, char *line,
    size_t size)
{
	static const char *const parts[] = { "queue_us", "in_us",
	    "compute_us", "out_us", "total_us" };
	static const char *const words[] = { "queue", "in", "compute", "out",
	    "total" };
	const char *role = NULL;

	for (size_t i = 0; i < s->n_timings && !role; i++) {
		const char *key = s->timings[i].key;
		if (!strchr(key, '.') && strcmp(key, "total") != 0 && k-- == 0)
			role = key;
	}
	snprintf(line, size, "  %-12s", role ? role : "?");
	for (size_t i = 0; role && i < 5; i++) {
		int64_t us = s_timing(s, role, parts[i]);
		if (us >= 0)
			s_cat(line, size, "  %s %.1f", words[i],
			    (double)us / 1000.0);
	}
	s_cat(line, size, " ms");
}

/* "  stages: encoder e0 -> high h0 -> low l0 -> decoder d0", from the
 * request's status. */
static bool
s_stages_line(const dg_msg_t *st, char *line, size_t size)
{
	const dg_status_ok_msg_t *s = &st->u.status_ok;

	if (st->op != DG_OP_STATUS_OK || s->n_stages == 0)
		return false;
	snprintf(line, size, "  stages:");
	for (size_t i = 0; i < s->n_stages; i++)
		s_cat(line, size, "%s %s %s", i ? " ->" : "",
		    s->stages[i].role, s->stages[i].name);
	return true;
}

/* The followed room: its row and its request's status. */
static void
s_pane(s_rooms_t *self, int y, int h)
{
	const dg_panel_t *p = &self->super;
	char key[64], line[512];

	snprintf(key, sizeof key, "room %llu", (unsigned long long)self->room);
	long i = dg_panel_find(p, key);
	snprintf(line, sizeof line, " Room %llu, request %llu (Esc stops "
	    "following) ", (unsigned long long)self->room,
	    (unsigned long long)self->request);
	dg_draw_title_line(y++, line);
	h--;
	if (i >= 0 && h > 0) {
		s_room_line(p, &p->rows[i], line, sizeof line);
		dg_draw_put(y++, 0, A_NORMAL, line);
		h--;
	} else if (h > 0) {
		dg_draw_put(y++, 0, A_BOLD, "  the room is no longer live");
		h--;
	}
	const dg_msg_t *st = self->status;
	if (h <= 0 || !st)
		return;
	if (st->op == DG_OP_ERROR) {
		snprintf(line, sizeof line, "  request: %s: %s",
		    st->u.error.code, st->u.error.message);
		dg_draw_put(y, 0, A_NORMAL, line);
		return;
	}
	const dg_status_ok_msg_t *s = &st->u.status_ok;
	snprintf(line, sizeof line, "  request %llu %s, %.1f s old, %lld "
	    "retries%s%s", (unsigned long long)s->request, s->state,
	    (double)s->age_ms / 1000.0, (long long)s->retries,
	    s->error ? ": " : "", s->error ? s->error : "");
	dg_draw_put(y++, 0, A_NORMAL, line);
	if (--h > 0 && s_stages_line(st, line, sizeof line)) {
		dg_draw_put(y++, 0, A_NORMAL, line);
		h--;
	}
	/* Where the time went at each stage done so far. */
	for (size_t k = 0; h > 0 && k < s_timed(st); k++, h--) {
		s_timing_line(s, k, line, sizeof line);
		dg_draw_put(y++, 0, A_NORMAL, line);
	}
}

static void
s_draw(dg_panel_t *p, dg_console_t *con, int y, int h, int64_t now)
{
	s_rooms_t *self = (s_rooms_t *)p;
	int pane = self->room ? S_PANE + (int)s_timed(self->status) : 0;

	if (h - pane < 2)
		pane = 0;
	dg_draw_table(p, con, y, h - pane, now);
	if (pane)
		s_pane(self, y + h - pane, pane);
}

/* The followed request's status comes with each poll of the view. */
static void
s_poll(dg_panel_t *p, dg_console_t *con)
{
	s_rooms_t *self = (s_rooms_t *)p;

	if (!self->request || dg_console_outstanding(con, DG_PEND_STATUS, 0))
		return;
	dg_msg_t *m = dg_msg_new(DG_OP_STATUS);
	if (m)
		m->u.status.request = self->request;
	dg_console_request(con, m, DG_PEND_STATUS, 0, DG_CALL_MS, NULL);
}

static void
s_done(dg_panel_t *p)
{
	dg_msg_destroy(&((s_rooms_t *)p)->status);
}

/* At 80 columns the bytes go first, then the chain; where a room is
 * and how far stay. */
static const dg_fit_t s_fit[] = {
	{ "room", 0, NULL, 0 },
	{ "request", 1, NULL, 0 },
	{ "state", 1, NULL, 0 },
	{ "stage", 2, NULL, 0 },
	{ "step", 2, NULL, 0 },
	{ "age_ms", 3, NULL, 0 },
	{ "stages", 4, NULL, 0 },
	{ "bytes", 5, NULL, 0 },
	{ NULL, 0, NULL, 0 }
};

const dg_panel_class_t dg_rooms_class = {
	.name = "rooms", .title = "Rooms", .size = sizeof(s_rooms_t),
	.rows = dg_rows_rooms, .op = DG_OP_ROOMS, .build = s_build,
	.fit = s_fit,
	.draw = s_draw, .poll = s_poll, .done = s_done,
};

void
dg_rooms_follow(dg_panel_t *rooms, uint64_t room, uint64_t request)
{
	s_rooms_t *self = (s_rooms_t *)rooms;

	self->room = room;
	self->request = request;
	dg_msg_destroy(&self->status);
	if (room)
		snprintf(rooms->sel_key, sizeof rooms->sel_key, "room %llu",
		    (unsigned long long)room);
}

uint64_t
dg_rooms_followed(const dg_panel_t *rooms, bool request)
{
	const s_rooms_t *self = (const s_rooms_t *)rooms;

	return request ? self->request : self->room;
}

void
dg_rooms_set_status(dg_panel_t *rooms, dg_msg_t **m_p)
{
	s_rooms_t *self = (s_rooms_t *)rooms;

	dg_msg_destroy(&self->status);
	self->status = *m_p;
	*m_p = NULL;
}
