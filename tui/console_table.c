/*  console_table.c: every view of the console as a table of text cells,
 *  built from the last replies, then filtered and sorted.  The curses
 *  screen and batch mode print the same lines, so what a test reads in
 *  a batch snapshot is what an operator sees.  */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "console.h"

const char *const dg_view_names[DG_VIEW_COUNT] = {
	"overview", "queues", "rooms", "threads", "sockets", "events"
};
const char *const dg_view_titles[DG_VIEW_COUNT] = {
	"Overview", "Queues", "Rooms", "Threads", "Sockets", "Events"
};

static const dg_ct_col_t s_overview_cols[] = {
	{ "ROLE", 11, false, false }, { "NAME", 10, false, false },
	{ "HOST", 12, false, false }, { "STATE", 9, false, false },
	{ "INCOMING", 8, true, true }, { "WAITING", 7, true, true },
	{ "READY", 5, true, true }, { "RUNNING", 7, true, true },
	{ "SENDING", 7, true, true }, { "ROOMS", 5, true, true },
	{ "FREE", 6, true, true }, { "REQ/S", 7, true, true },
	{ "P50MS", 7, true, true }, { "P99MS", 7, true, true },
	{ "HB", 6, true, true },
};
static const dg_ct_col_t s_queue_cols[] = {
	{ "QUEUE", 9, false, false }, { "ROOM", 8, true, true },
	{ "REQUEST", 8, true, true }, { "AGE", 8, true, true },
};
static const dg_ct_col_t s_room_cols[] = {
	{ "ROOM", 8, true, true }, { "REQUEST", 8, true, true },
	{ "STATE", 11, false, false }, { "ENCODER", 10, false, false },
	{ "TRANSFORMER", 11, false, false }, { "DECODER", 10, false, false },
	{ "BYTES", 8, true, true }, { "AGE", 8, true, true },
};
static const dg_ct_col_t s_thread_cols[] = {
	{ "THREAD", 16, false, false }, { "STATE", 8, false, false },
	{ "ROOM", 8, true, true }, { "CPU", 9, true, true },
	{ "PROGRESS", 9, true, true },
};
static const dg_ct_col_t s_socket_cols[] = {
	{ "KIND", 6, false, false }, { "TYPE", 12, false, false },
	{ "ENDPOINT", 40, false, false }, { "MODE", 7, false, false },
	{ "MSGS-IN", 9, true, true }, { "MSGS-OUT", 9, true, true },
	{ "BYTES-IN", 9, true, true }, { "BYTES-OUT", 9, true, true },
	{ "STATE", 22, false, false },
};
static const dg_ct_col_t s_event_cols[] = {
	{ "TIME", 12, false, true }, { "KIND", 9, false, false },
	{ "NAME", 10, false, false }, { "REQUEST", 8, true, true },
	{ "ROOM", 8, true, true }, { "MESSAGE", 60, false, false },
};

#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

int
dg_view_lookup(const char *name)
{
	for (int v = 0; v < DG_VIEW_COUNT; v++)
		if (strcmp(name, dg_view_names[v]) == 0 ||
		    (name[0] == '1' + v && name[1] == '\0'))
			return v;
	return -1;
}

/* ---- building ---------------------------------------------------------- */

static dg_ct_row_t *
s_row(dg_ctable_t *t)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		dg_ct_row_t *rows = realloc(t->rows, cap * sizeof *rows);
		if (!rows)
			return NULL;
		t->rows = rows;
		t->cap = cap;
	}
	dg_ct_row_t *r = &t->rows[t->nrows];
	memset(r, 0, sizeof *r);
	r->order = t->nrows++;
	return r;
}

static void s_cell(dg_ct_row_t *r, int col, double num, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
s_cell(dg_ct_row_t *r, int col, double num, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&r->cell[col], fmt, ap) < 0)
		r->cell[col] = NULL;
	va_end(ap);
	r->num[col] = num;
}

/* "850ms", "12.4s", "3m05s", "2h10m": short enough for a narrow column. */
static const char *
s_age(char *buf, size_t size, int64_t ms)
{
	if (ms < 0)
		snprintf(buf, size, "-");
	else if (ms < 1000)
		snprintf(buf, size, "%lldms", (long long)ms);
	else if (ms < 60000)
		snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, size, "%lldm%02llds", (long long)(ms / 60000),
		    (long long)(ms / 1000 % 60));
	else
		snprintf(buf, size, "%lldh%02lldm", (long long)(ms / 3600000),
		    (long long)(ms / 60000 % 60));
	return buf;
}

static const char *
s_bytes(char *buf, size_t size, uint64_t n)
{
	static const char units[] = "KMGTP";
	double v = (double)n;
	int u = -1;

	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	if (u < 0)
		snprintf(buf, size, "%llu", (unsigned long long)n);
	else
		snprintf(buf, size, "%.1f%c", v, units[u]);
	return buf;
}

static const char *
s_id(char *buf, size_t size, uint64_t id)
{
	if (id)
		snprintf(buf, size, "%llu", (unsigned long long)id);
	else
		snprintf(buf, size, "-");
	return buf;
}

/* A reply that is an error, or none yet: say so instead of rows. */
static bool
s_no_rows(dg_ctable_t *t, const dg_msg_t *m, const char *what)
{
	if (!m) {
		snprintf(t->note, sizeof t->note, "waiting for %s ...", what);
		return true;
	}
	if (m->op == DG_OP_ERROR) {
		snprintf(t->note, sizeof t->note, "%s: %s: %s", what,
		    m->u.error.code ? m->u.error.code : "error",
		    m->u.error.message ? m->u.error.message : "");
		return true;
	}
	return false;
}

static void
s_overview(dg_console_t *con, dg_ctable_t *t)
{
	const dg_msg_t *m = con->instances;
	char a[32];

	t->cols = s_overview_cols;
	t->ncols = NCOLS(s_overview_cols);
	if (s_no_rows(t, m, "the instance list"))
		return;
	const dg_instance_row_t *rows = m->op == DG_OP_SNAPSHOT ?
	    m->u.snapshot.instances : m->u.instances_ok.instances;
	size_t n = m->op == DG_OP_SNAPSHOT ? m->u.snapshot.n_instances :
	    m->u.instances_ok.n_instances;
	if (n == 0)
		snprintf(t->note, sizeof t->note, "no instance has registered");
	for (size_t i = 0; i < n; i++) {
		const dg_instance_row_t *in = &rows[i];
		dg_ct_row_t *r = s_row(t);
		if (!r)
			return;
		snprintf(r->name, sizeof r->name, "%s", in->name);
		s_cell(r, 0, 0, "%s", in->role);
		s_cell(r, 1, 0, "%s", in->name);
		s_cell(r, 2, 0, "%s", in->host && *in->host ? in->host : "-");
		s_cell(r, 3, 0, "%s", in->state);
		s_cell(r, 4, (double)in->incoming, "%lld", (long long)in->incoming);
		s_cell(r, 5, (double)in->waiting, "%lld", (long long)in->waiting);
		s_cell(r, 6, (double)in->ready, "%lld", (long long)in->ready);
		s_cell(r, 7, (double)in->running, "%lld", (long long)in->running);
		s_cell(r, 8, (double)in->sending, "%lld", (long long)in->sending);
		s_cell(r, 9, (double)in->rooms, "%lld", (long long)in->rooms);
		s_cell(r, 10, (double)in->free_slots, "%llu",
		    (unsigned long long)in->free_slots);
		s_cell(r, 11, in->rps, "%.1f", in->rps);
		s_cell(r, 12, (double)in->p50_us, "%.1f",
		    (double)in->p50_us / 1000.0);
		s_cell(r, 13, (double)in->p99_us, "%.1f",
		    (double)in->p99_us / 1000.0);
		s_cell(r, 14, (double)in->heartbeat_age_ms, "%s",
		    s_age(a, sizeof a, in->heartbeat_age_ms));
	}
}

static void
s_queues(dg_console_t *con, dg_ctable_t *t)
{
	static const char *const order[] = { "incoming", "waiting", "ready",
	    "running", "sending" };
	const dg_msg_t *m = con->view_reply[DG_VIEW_QUEUES];
	char a[32];

	t->cols = s_queue_cols;
	t->ncols = NCOLS(s_queue_cols);
	if (s_no_rows(t, m, "the queues"))
		return;
	const dg_queues_ok_msg_t *q = &m->u.queues_ok;
	if (q->n_rooms == 0)
		snprintf(t->note, sizeof t->note, "%s: every queue is empty",
		    q->name ? q->name : con->view_for[DG_VIEW_QUEUES]);
	for (size_t i = 0; i < q->n_rooms; i++) {
		const dg_queue_row_t *x = &q->rooms[i];
		dg_ct_row_t *r = s_row(t);
		if (!r)
			return;
		double rank = 5;
		for (int k = 0; k < 5; k++)
			if (x->queue && strcmp(x->queue, order[k]) == 0)
				rank = k;
		r->room = x->room;
		r->request = x->request;
		s_cell(r, 0, rank, "%s", x->queue ? x->queue : "?");
		s_cell(r, 1, (double)x->room, "%s", s_id(a, sizeof a, x->room));
		s_cell(r, 2, (double)x->request, "%s",
		    s_id(a, sizeof a, x->request));
		s_cell(r, 3, (double)x->age_ms, "%s",
		    s_age(a, sizeof a, x->age_ms));
	}
}

static void
s_rooms(dg_console_t *con, dg_ctable_t *t)
{
	const dg_msg_t *m = con->view_reply[DG_VIEW_ROOMS];
	char a[32];

	t->cols = s_room_cols;
	t->ncols = NCOLS(s_room_cols);
	if (s_no_rows(t, m, "the room table"))
		return;
	const dg_rooms_ok_msg_t *rr = &m->u.rooms_ok;
	if (rr->n_rooms == 0)
		snprintf(t->note, sizeof t->note, "no live room");
	for (size_t i = 0; i < rr->n_rooms; i++) {
		const dg_room_row_t *x = &rr->rooms[i];
		dg_ct_row_t *r = s_row(t);
		if (!r)
			return;
		r->room = x->room;
		r->request = x->request;
		s_cell(r, 0, (double)x->room, "%s", s_id(a, sizeof a, x->room));
		s_cell(r, 1, (double)x->request, "%s",
		    s_id(a, sizeof a, x->request));
		s_cell(r, 2, 0, "%s", x->state ? x->state : "");
		s_cell(r, 3, 0, "%s", x->encoder ? x->encoder : "-");
		s_cell(r, 4, 0, "%s", x->transformer ? x->transformer : "-");
		s_cell(r, 5, 0, "%s", x->decoder ? x->decoder : "-");
		s_cell(r, 6, (double)x->bytes, "%s",
		    s_bytes(a, sizeof a, x->bytes));
		s_cell(r, 7, (double)x->age_ms, "%s",
		    s_age(a, sizeof a, x->age_ms));
	}
}

static void
s_threads(dg_console_t *con, dg_ctable_t *t)
{
	const dg_msg_t *m = con->view_reply[DG_VIEW_THREADS];
	char a[32];

	t->cols = s_thread_cols;
	t->ncols = NCOLS(s_thread_cols);
	if (s_no_rows(t, m, "the threads"))
		return;
	const dg_threads_ok_msg_t *th = &m->u.threads_ok;
	for (size_t i = 0; i < th->n_threads; i++) {
		const dg_thread_row_t *x = &th->threads[i];
		dg_ct_row_t *r = s_row(t);
		if (!r)
			return;
		r->room = x->room;
		s_cell(r, 0, 0, "%s", x->name ? x->name : "?");
		s_cell(r, 1, 0, "%s", x->state ? x->state : "?");
		s_cell(r, 2, (double)x->room, "%s", s_id(a, sizeof a, x->room));
		s_cell(r, 3, (double)x->cpu_us, "%.2fs",
		    (double)x->cpu_us / 1e6);
		s_cell(r, 4, (double)x->progress_age_ms, "%s",
		    s_age(a, sizeof a, x->progress_age_ms));
	}
}

static void
s_sockets(dg_console_t *con, dg_ctable_t *t)
{
	const dg_msg_t *m = con->view_reply[DG_VIEW_SOCKETS];
	char a[32], b[32];

	t->cols = s_socket_cols;
	t->ncols = NCOLS(s_socket_cols);
	if (s_no_rows(t, m, "the sockets"))
		return;
	const dg_sockets_ok_msg_t *s = &m->u.sockets_ok;
	for (size_t i = 0; i < s->n_sockets; i++) {
		const dg_socket_row_t *x = &s->sockets[i];
		dg_ct_row_t *r = s_row(t);
		if (!r)
			return;
		s_cell(r, 0, 0, "zmq");
		s_cell(r, 1, 0, "%s", x->type ? x->type : "?");
		s_cell(r, 2, 0, "%s", x->endpoint ? x->endpoint : "");
		s_cell(r, 3, 0, "%s", x->bind ? "bind" : "connect");
		s_cell(r, 4, (double)x->msgs_in, "%llu",
		    (unsigned long long)x->msgs_in);
		s_cell(r, 5, (double)x->msgs_out, "%llu",
		    (unsigned long long)x->msgs_out);
		s_cell(r, 6, (double)x->bytes_in, "%s",
		    s_bytes(a, sizeof a, x->bytes_in));
		s_cell(r, 7, (double)x->bytes_out, "%s",
		    s_bytes(b, sizeof b, x->bytes_out));
		s_cell(r, 8, 0, "%s", "");
	}
	for (size_t i = 0; i < s->n_rails; i++) {
		const dg_rail_row_t *x = &s->rails[i];
		dg_ct_row_t *r = s_row(t);
		if (!r)
			return;
		s_cell(r, 0, 1, "fabric");
		s_cell(r, 1, 0, "%s", x->provider ? x->provider : "?");
		s_cell(r, 2, 0, "%s", x->peer ? x->peer : "");
		s_cell(r, 3, 0, "rail %lld", (long long)x->rail);
		for (int k = 4; k < 8; k++)
			s_cell(r, k, 0, "-");
		if (x->quarantined)
			s_cell(r, 8, 1, "quarantined %s left",
			    s_age(a, sizeof a, x->quarantine_left_ms));
		else
			s_cell(r, 8, 0, "ok");
	}
	if (t->nrows == 0)
		snprintf(t->note, sizeof t->note, "%s reports no socket",
		    con->view_for[DG_VIEW_SOCKETS]);
}

static void
s_events(dg_console_t *con, dg_ctable_t *t)
{
	uint64_t end = con->paused ? con->events_frozen : con->nevents;
	uint64_t first = end > DG_EVENTS_MAX ? end - DG_EVENTS_MAX : 0;
	char a[32], b[32];

	t->cols = s_event_cols;
	t->ncols = NCOLS(s_event_cols);
	if (!con->sub)
		snprintf(t->note, sizeof t->note, "events need the controller's "
		    "PUB endpoint: give it with -p ENDPOINT or -f FILE");
	else if (end == 0)
		snprintf(t->note, sizeof t->note, "no event yet (joins, deaths, "
		    "drains and failures show here as they happen)");
	for (uint64_t i = first; i < end; i++) {
		const dg_event_row_t *e = &con->events[i % DG_EVENTS_MAX];
		dg_ct_row_t *r = s_row(t);
		if (!r)
			return;
		time_t sec = (time_t)(e->ts_ms / 1000);
		struct tm tm;
		localtime_r(&sec, &tm);
		snprintf(r->name, sizeof r->name, "%s", e->name);
		r->room = e->room;
		r->request = e->request;
		s_cell(r, 0, (double)e->ts_ms, "%02d:%02d:%02d.%03d", tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (int)(e->ts_ms % 1000));
		s_cell(r, 1, 0, "%s", e->kind);
		s_cell(r, 2, 0, "%s", e->name[0] ? e->name : "-");
		s_cell(r, 3, (double)e->request, "%s",
		    s_id(a, sizeof a, e->request));
		s_cell(r, 4, (double)e->room, "%s", s_id(b, sizeof b, e->room));
		s_cell(r, 5, 0, "%s", e->message);
	}
}

/* ---- filter and sort --------------------------------------------------- */

static const dg_console_t *s_sort_con;
static dg_view_t s_sort_view;

static int
s_compare(const void *pa, const void *pb)
{
	const dg_ct_row_t *a = pa, *b = pb;
	int col = s_sort_con->sort_col[s_sort_view];
	int c = 0;

	if (col >= 0) {
		/* Numeric columns compare by value, the rest by text; the
		 * reply's order breaks ties so that rows do not jump. */
		if (a->num[col] != b->num[col])
			c = a->num[col] < b->num[col] ? -1 : 1;
		else if (a->cell[col] && b->cell[col])
			c = strcmp(a->cell[col], b->cell[col]);
	}
	if (c == 0)
		c = a->order < b->order ? -1 : a->order > b->order;
	return s_sort_con->sort_rev[s_sort_view] ? -c : c;
}

static void
s_free_row(dg_ct_row_t *r)
{
	for (int c = 0; c < DG_CT_MAXCOLS; c++) {
		free(r->cell[c]);
		r->cell[c] = NULL;
	}
}

static void
s_filter(dg_ctable_t *t, const char *text)
{
	size_t keep = 0;
	char line[512];

	if (!*text)
		return;
	for (size_t i = 0; i < t->nrows; i++) {
		dg_ctable_line(t, &t->rows[i], line, sizeof line);
		if (strcasestr(line, text))
			t->rows[keep++] = t->rows[i];
		else
			s_free_row(&t->rows[i]);
	}
	if (keep == 0 && t->nrows > 0)
		snprintf(t->note, sizeof t->note, "no row matches the filter "
		    "'%s' (\\ to change it)", text);
	t->nrows = keep;
}

void
dg_ctable_build(dg_console_t *con, dg_view_t view, dg_ctable_t *t)
{
	memset(t, 0, sizeof *t);
	switch (view) {
	case DG_VIEW_OVERVIEW: s_overview(con, t); break;
	case DG_VIEW_QUEUES: s_queues(con, t); break;
	case DG_VIEW_ROOMS: s_rooms(con, t); break;
	case DG_VIEW_THREADS: s_threads(con, t); break;
	case DG_VIEW_SOCKETS: s_sockets(con, t); break;
	default: s_events(con, t); break;
	}
	s_filter(t, con->filter[view]);
	if (con->sort_col[view] >= t->ncols)
		con->sort_col[view] = -1;
	s_sort_con = con;
	s_sort_view = view;
	if (t->nrows > 1)
		qsort(t->rows, t->nrows, sizeof *t->rows, s_compare);
}

void
dg_ctable_clear(dg_ctable_t *t)
{
	for (size_t i = 0; i < t->nrows; i++)
		s_free_row(&t->rows[i]);
	free(t->rows);
	memset(t, 0, sizeof *t);
}

void
dg_ctable_line(const dg_ctable_t *t, const dg_ct_row_t *row, char *buf,
    size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int c = 0; c < t->ncols && len + 1 < size; c++) {
		const dg_ct_col_t *col = &t->cols[c];
		const char *text = row ? row->cell[c] : col->title;
		bool last = c == t->ncols - 1;
		int w = col->width;
		if (!text)
			text = "";
		/* A cell wider than its column keeps its text: truncating
		 * an endpoint or a name would hide what it is. */
		int n = snprintf(buf + len, size - len, last && !col->right ?
		    "%s%-*s" : col->right ? "%s%*s" : "%s%-*s", c ? " " : "",
		    last && !col->right ? 0 : w, text);
		if (n < 0)
			break;
		len += (size_t)n < size - len ? (size_t)n : size - len - 1;
	}
}

void
dg_ctable_row_key(const dg_ct_row_t *row, char *buf, size_t size)
{
	if (row->name[0] && !row->room)
		snprintf(buf, size, "%s", row->name);
	else if (row->room)
		snprintf(buf, size, "room %llu", (unsigned long long)row->room);
	else
		snprintf(buf, size, "#%zu", row->order);
}

long
dg_ctable_find(const dg_ctable_t *t, const char *key)
{
	char k[64];

	if (!key || !*key)
		return -1;
	for (size_t i = 0; i < t->nrows; i++) {
		dg_ctable_row_key(&t->rows[i], k, sizeof k);
		if (strcmp(k, key) == 0)
			return (long)i;
	}
	return -1;
}

long
dg_ctable_search(const dg_ctable_t *t, size_t from, const char *text,
    bool forward)
{
	char line[512];

	if (!*text || t->nrows == 0)
		return -1;
	for (size_t k = 1; k <= t->nrows; k++) {
		size_t i = forward ? (from + k) % t->nrows :
		    (from + t->nrows - k % t->nrows) % t->nrows;
		dg_ctable_line(t, &t->rows[i], line, sizeof line);
		if (strcasestr(line, text))
			return (long)i;
	}
	return -1;
}

const char *
dg_ctable_sort_name(const dg_console_t *con, dg_view_t view)
{
	static const dg_ct_col_t *const cols[DG_VIEW_COUNT] = {
		s_overview_cols, s_queue_cols, s_room_cols, s_thread_cols,
		s_socket_cols, s_event_cols
	};
	int c = con->sort_col[view];

	if (c < 0)
		return "natural";
	return cols[view][c].title;
}
