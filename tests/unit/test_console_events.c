/*  test_console_events.c: the console's Events view (tui/console_events.c)
 *  shows each event once, in order, whether its PUB copy comes before
 *  the kept ones, after them, or from a restarted controller whose ids
 *  start again.  The replies come from the controller's own ring
 *  (lib/evring.c).  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../tui/console.h"
#include "evring.h"

/* MESSAGE is the last column (console_events.c, s_cols). */
#define COL_MESSAGE 5

static dg_event_msg_t
s_event(dg_evring_t *r, const char *text)
{
	dg_event_msg_t e = { .kind = "join", .ts_ms = 1000, .name = "t0",
	    .message = (char *)text };

	(void)dg_evring_add(r, &e);     /* sets e.id */
	return e;
}

/* The console's turn: ask for the kept events, the controller `r`
 * answers. */
static void
s_sync(dg_panel_t *p, const dg_evring_t *r)
{
	dg_msg_t *ask = dg_events_ask(p);
	assert_non_null(ask);
	dg_msg_t *ok = dg_evring_reply(r, ask->u.events.after, 1);
	assert_non_null(ok);
	dg_events_kept(p, ok);
	dg_msg_destroy(&ok);
	dg_msg_destroy(&ask);
}

/* The view shows exactly `want`, in order. */
static void
s_shows(dg_panel_t *p, const char *const *want, size_t n)
{
	dg_console_t con;

	memset(&con, 0, sizeof con);
	con.sub = (zsock_t *)p;         /* subscribed: never read here */
	(void)dg_panel_refresh(p, &con);
	for (size_t i = 0; i < p->nrows && i < n; i++)
		assert_string_equal(p->rows[i].cell[COL_MESSAGE], want[i]);
	assert_int_equal(p->nrows, n);
}

/* The PUB copy of an event the kept ones already gave comes after the
 * reply: no restart, nothing shown twice. */
static void
test_late_copy(void **state)
{
	(void)state;
	dg_panel_t *p = dg_panel_new(&dg_events_class);
	dg_evring_t *r = dg_evring_new(100, 555);
	assert_non_null(p);
	assert_non_null(r);
	dg_event_msg_t e[4];
	const char *names[] = { "e1", "e2", "e3", "e4", "e5" };
	for (int i = 0; i < 4; i++)
		e[i] = s_event(r, names[i]);
	s_sync(p, r);
	s_shows(p, names, 4);
	dg_events_live(p, &e[3]);       /* late: already shown */
	dg_events_live(p, &e[2]);
	s_sync(p, r);
	s_shows(p, names, 4);
	dg_event_msg_t e5 = s_event(r, names[4]);
	dg_events_live(p, &e5);
	s_sync(p, r);
	s_shows(p, names, 5);
	dg_evring_destroy(&r);
	dg_panel_destroy(&p);
}

/* Live ones that come while the question is out are held, then added
 * after the kept ones, each once. */
static void
test_held_while_asking(void **state)
{
	(void)state;
	dg_panel_t *p = dg_panel_new(&dg_events_class);
	dg_evring_t *r = dg_evring_new(100, 555);
	const char *names[] = { "e1", "e2", "e3" };
	(void)s_event(r, names[0]);
	dg_event_msg_t e2 = s_event(r, names[1]);
	dg_msg_t *ask = dg_events_ask(p);
	dg_events_live(p, &e2);         /* before the reply */
	dg_event_msg_t e3 = s_event(r, names[2]);
	dg_events_live(p, &e3);
	dg_msg_t *ok = dg_evring_reply(r, ask->u.events.after, 1);
	dg_events_kept(p, ok);
	dg_msg_destroy(&ok);
	dg_msg_destroy(&ask);
	s_shows(p, names, 3);
	dg_evring_destroy(&r);
	dg_panel_destroy(&p);
}

/* A restarted controller's ids start again under a new epoch: its
 * events show after the old run's, each once. */
static void
test_restart(void **state)
{
	(void)state;
	dg_panel_t *p = dg_panel_new(&dg_events_class);
	dg_evring_t *old = dg_evring_new(100, 555);
	const char *names[] = { "e1", "e2", "e3", "e4", "n1", "n2" };
	for (int i = 0; i < 4; i++)
		(void)s_event(old, names[i]);
	s_sync(p, old);
	dg_evring_destroy(&old);
	dg_evring_t *r = dg_evring_new(100, 777);
	dg_event_msg_t n1 = s_event(r, names[4]);
	dg_events_live(p, &n1);         /* id 1: goes back */
	s_sync(p, r);                   /* a new epoch: asks for all */
	s_sync(p, r);
	(void)s_event(r, names[5]);
	s_sync(p, r);
	s_shows(p, names, 6);
	dg_evring_destroy(&r);
	dg_panel_destroy(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_late_copy),
		cmocka_unit_test(test_held_while_asking),
		cmocka_unit_test(test_restart),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
