/*  console_views.c: the console's views that are one reply's rows as
 *  the row descriptions show them (Overview, Queues, Threads, Sockets),
 *  and the list of every view.  Rooms and Events do more: they have
 *  files of their own.  */
#include <stdio.h>
#include <string.h>

#include "console.h"

/* ---- overview ---------------------------------------------------------- */

static void
s_overview_build(dg_panel_t *p, const dg_console_t *con)
{
	const dg_msg_t *m = con->instances;

	if (dg_panel_no_rows(p, m, "the instance list"))
		return;
	bool snap = m->op == DG_OP_SNAPSHOT;
	const dg_instance_row_t *rows = snap ? m->u.snapshot.instances :
	    m->u.instances_ok.instances;
	size_t n = snap ? m->u.snapshot.n_instances :
	    m->u.instances_ok.n_instances;
	if (n == 0)
		snprintf(p->note, sizeof p->note, "no instance has registered");
	dg_panel_add_rows(p, dg_rows_instances(), rows, n);
}

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
	.rows = dg_rows_instances, .colour_key = "state",
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
