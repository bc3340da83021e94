/*  console_batch.c: `disagg console -b -n N`: no terminal, N text
 *  snapshots of one view on stdout, one per refresh interval, separated
 *  by blank lines (top -b, htop -n).  The lines are the ones the screen
 *  shows, from the same tables.  */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "console.h"

#define S_WAIT_MS 2500          /* for the replies of one snapshot */

/* Wait for the outstanding replies, at most until `deadline`. */
static void
s_settle(dg_console_t *con, int64_t deadline)
{
	while (!dg_console_idle(con) && !dg_console_stopping() &&
	    zclock_mono() < deadline)
		dg_console_pump(con, deadline, false);
}

static void
s_print(dg_console_t *con, dg_view_t view)
{
	dg_panel_t *p = con->panel[view];
	char line[1024], when[32];
	int64_t now = zclock_mono();
	time_t sec = time(NULL);
	struct tm tm;

	localtime_r(&sec, &tm);
	strftime(when, sizeof when, "%H:%M:%S", &tm);
	printf("%s  %s  %s  %s", p->cls->title, when, con->endpoint,
	    dg_console_connected(con, now) ? "connected" : "disconnected");
	if (p->cls->per_daemon)
		printf("  daemon %s", p->about[0] ? p->about : "-");
	if (con->have_counters)
		printf("  pending %llu active %llu done %llu failed %llu "
		    "cancelled %llu", (unsigned long long)con->pending_n,
		    (unsigned long long)con->active_n,
		    (unsigned long long)con->done_n,
		    (unsigned long long)con->failed_n,
		    (unsigned long long)con->cancelled_n);
	printf("\n");
	dg_panel_refresh(p, con);
	dg_panel_line(p, NULL, line, sizeof line);
	printf("%s\n", line);
	for (size_t i = 0; i < p->nrows; i++) {
		dg_panel_line(p, &p->rows[i], line, sizeof line);
		/* Trailing blanks help no script. */
		size_t len = strlen(line);
		while (len && line[len - 1] == ' ')
			line[--len] = '\0';
		printf("%s\n", line);
	}
	if (p->nrows == 0 && p->note[0])
		printf("(%s)\n", p->note);
	fflush(stdout);
}

int
dg_console_batch(dg_console_t *con, dg_view_t view)
{
	int64_t next = zclock_mono();
	bool reached = false;

	con->view = view;
	for (int i = 0; i < con->iterations && !dg_console_stopping(); i++) {
		while (zclock_mono() < next && !dg_console_stopping())
			dg_console_pump(con, next, false);
		next += dg_console_interval_ms(con);
		int64_t deadline = zclock_mono() + S_WAIT_MS;
		dg_console_poll(con);
		s_settle(con, deadline);
		/* The per-daemon views need the instance list first. */
		if (!con->panel[view]->reply && con->panel[view]->cls->op) {
			dg_console_poll(con);
			s_settle(con, deadline);
		}
		if (i)
			printf("\n");
		s_print(con, view);
		reached = dg_console_connected(con, zclock_mono());
	}
	return reached ? DG_EXIT_OK : DG_EXIT_UNREACHABLE;
}
