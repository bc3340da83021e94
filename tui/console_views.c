/*  console_views.c: the console's views that are one reply's rows as
 *  the row descriptions show them (Overview, Queues, Threads, Sockets),
 *  and the list of every view.  Rooms and Events do more: they have
 *  files of their own.  The Overview adds to the instances' columns
 *  their history, as sparklines.  */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"

/* ---- overview ---------------------------------------------------------- */

/* An instance's row and its sparklines: the instance columns keep
 * their offsets, the row coming first. */
typedef struct {
	dg_instance_row_t in;
	const char *spark[DG_SERIES_COUNT];
} s_over_row_t;

#define S_SPARK 15              /* glyphs: 12 s each over 3 minutes */

/* After the column with the key `after`, its history. */
static const struct {
	const char *after, *key, *title;
	dg_series_t series;
} s_sparks[DG_SERIES_COUNT] = {
	{ "rps", "rps_history", "REQ/S LAST 3M", DG_SERIES_RPS },
	{ "p50_us", "p50_history", "P50 LAST 3M", DG_SERIES_P50 },
};

static dg_col_t s_over_cols[64];
static dg_rows_t s_over;
static pthread_once_t s_over_once = PTHREAD_ONCE_INIT;

static void
s_over_make(void)
{
	const dg_rows_t *in = dg_rows_instances();
	size_t n = 0;

	for (size_t i = 0; i < in->ncols && n + 2 <= 64; i++) {
		s_over_cols[n++] = in->cols[i];
		for (int k = 0; k < DG_SERIES_COUNT; k++)
			if (in->cols[i].key &&
			    strcmp(in->cols[i].key, s_sparks[k].after) == 0)
				s_over_cols[n++] = (dg_col_t){
				    .header = s_sparks[k].title,
				    .key = s_sparks[k].key, .type = DG_COL_STR,
				    .offset = offsetof(s_over_row_t, spark) +
				    (size_t)k * sizeof(const char *),
				    .console = { .width = S_SPARK } };
	}
	s_over = *in;
	s_over.size = sizeof(s_over_row_t);
	s_over.cols = s_over_cols;
	s_over.ncols = n;
}

static const dg_rows_t *
s_over_desc(void)
{
	pthread_once(&s_over_once, s_over_make);
	return &s_over;
}

static void
s_overview_build(dg_panel_t *p, const dg_console_t *con)
{
	size_t n;
	const dg_instance_row_t *rows = dg_console_rows(con, &n);
	const size_t glyph = 4;         /* bytes of UTF-8 at most */

	if (dg_panel_no_rows(p, con->instances, "the instance list"))
		return;
	if (n == 0)
		snprintf(p->note, sizeof p->note, "no instance has registered");
	size_t spark = S_SPARK * glyph + 1;
	s_over_row_t *over = calloc(n + 1, sizeof *over);
	char *text = calloc(n + 1, DG_SERIES_COUNT * spark);
	int64_t now = zclock_mono();
	for (size_t i = 0; over && text && i < n; i++) {
		over[i].in = rows[i];
		for (int k = 0; k < DG_SERIES_COUNT; k++) {
			char *buf = text + (i * DG_SERIES_COUNT + (size_t)k) *
			    spark;
			over[i].spark[k] = dg_history_spark(con->history,
			    rows[i].name, (dg_series_t)k, S_SPARK, now,
			    con->utf8, buf, spark);
		}
	}
	if (over && text)
		dg_panel_add_rows(p, s_over_desc(), over, n);
	free(over);
	free(text);
}

/* At 80 columns: role, name, state, the work it has, its req/s and
 * their history, p50 and the heartbeat; the rest is a scroll away. */
static const dg_fit_t s_over_fit[] = {
	{ "role", 0, NULL, 0 },
	{ "name", 0, NULL, 0 },
	{ "state", 1, NULL, 0 },
	{ "rooms", 2, NULL, 0 },
	{ "rps", 2, "REQ/S", 6 },
	{ "p50_us", 2, "P50", 6 },
	{ "rps_history", 3, NULL, 0 },
	{ "heartbeat_age_ms", 3, "HB", 5 },
	{ "running", 4, "RUN", 4 },
	{ "p99_us", 4, "P99", 6 },
	{ "free_slots", 4, "FREE", 5 },
	{ "incoming", 5, "IN", 4 },
	{ "waiting", 5, "WAIT", 4 },
	{ "ready", 5, "RDY", 4 },
	{ "sending", 5, "SEND", 4 },
	{ "p50_history", 5, NULL, 0 },
	{ "host", 6, NULL, 0 },
	{ NULL, 0, NULL, 0 }
};

/* An instance chosen here is the daemon the per-daemon views show. */
static void
s_overview_selected(dg_panel_t *p, dg_console_t *con, const dg_prow_t *row)
{
	(void)p;
	if (row->name && row->name[0])
		snprintf(con->instance, sizeof con->instance, "%s", row->name);
}

/* Enter on an instance opens its queues. */
static bool
s_overview_follow(dg_panel_t *p, dg_console_t *con, const dg_prow_t *row)
{
	(void)p;
	if (!row || !row->name || !row->name[0])
		return false;
	dg_console_show(con, DG_VIEW_QUEUES);
	return true;
}

static const dg_panel_class_t s_overview = {
	.name = "overview", .title = "Overview", .size = sizeof(dg_panel_t),
	.rows = s_over_desc, .colour_key = "state", .fit = s_over_fit,
	.build = s_overview_build, .selected = s_overview_selected,
	.follow = s_overview_follow,
};

/* ---- queues, threads, sockets ------------------------------------------ */

static void
s_queues_build(dg_panel_t *p, const dg_console_t *con)
{
	(void)con;
	if (dg_panel_no_rows(p, p->reply, "the queues"))
		return;
	const dg_queues_ok_msg_t *q = &p->reply->u.queues_ok;
	if (q->n_rooms == 0)
		snprintf(p->note, sizeof p->note, "%s: every queue is empty",
		    q->name ? q->name : p->about);
	dg_panel_add_rows(p, dg_rows_queues(), q->rooms, q->n_rooms);
}

static const dg_panel_class_t s_queues = {
	.name = "queues", .title = "Queues", .size = sizeof(dg_panel_t),
	.rows = dg_rows_queues, .op = DG_OP_QUEUES, .per_daemon = true,
	.build = s_queues_build,
};

static void
s_threads_build(dg_panel_t *p, const dg_console_t *con)
{
	(void)con;
	if (dg_panel_no_rows(p, p->reply, "the threads"))
		return;
	const dg_threads_ok_msg_t *t = &p->reply->u.threads_ok;
	dg_panel_add_rows(p, dg_rows_threads(), t->threads, t->n_threads);
}

static const dg_panel_class_t s_threads = {
	.name = "threads", .title = "Threads", .size = sizeof(dg_panel_t),
	.rows = dg_rows_threads, .op = DG_OP_THREADS, .per_daemon = true,
	.build = s_threads_build,
};

/* ZeroMQ sockets, then the fabric rails under the same columns. */
static void
s_sockets_build(dg_panel_t *p, const dg_console_t *con)
{
	(void)con;
	if (dg_panel_no_rows(p, p->reply, "the sockets"))
		return;
	const dg_sockets_ok_msg_t *s = &p->reply->u.sockets_ok;
	dg_panel_add_rows(p, dg_rows_sockets(), s->sockets, s->n_sockets);
	dg_panel_add_rows(p, dg_rows_rails(), s->rails, s->n_rails);
	if (p->nrows == 0)
		snprintf(p->note, sizeof p->note, "%s reports no socket",
		    p->about);
}

static const dg_panel_class_t s_sockets = {
	.name = "sockets", .title = "Sockets", .size = sizeof(dg_panel_t),
	.rows = dg_rows_sockets, .op = DG_OP_SOCKETS, .per_daemon = true,
	.build = s_sockets_build,
};

/* ---- every view --------------------------------------------------------- */

const dg_panel_class_t *const dg_views[DG_VIEW_COUNT] = {
	[DG_VIEW_OVERVIEW] = &s_overview,
	[DG_VIEW_QUEUES] = &s_queues,
	[DG_VIEW_ROOMS] = &dg_rooms_class,
	[DG_VIEW_THREADS] = &s_threads,
	[DG_VIEW_SOCKETS] = &s_sockets,
	[DG_VIEW_EVENTS] = &dg_events_class,
};

int
dg_view_lookup(const char *name)
{
	for (int v = 0; v < DG_VIEW_COUNT; v++)
		if (strcmp(name, dg_views[v]->name) == 0 ||
		    (name[0] == '1' + v && name[1] == '\0'))
			return v;
	return -1;
}

dg_panel_t *
dg_console_panel(const dg_console_t *con)
{
	return con->panel[con->view];
}
