/*  test_autoscale.c: the autoscaler's decisions (lib/autoscale.c): a
 *  queue starts instances up to max, idleness drains one at a time only
 *  after a cooldown below the band, the chain's shares follow the
 *  service times, and min, max and cooldown hold.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "autoscale.h"

static dg_autoscale_conf_t
s_conf(int64_t min, int64_t max, double target, int64_t cooldown_ms)
{
	dg_autoscale_conf_t c = { .min = min, .max = max,
	    .target = (int64_t)(target * 1e6), .cooldown_ms = cooldown_ms };
	return c;
}

/* One place scaled by `c`; the other places of a 3-chain are not. */
static dg_autoscale_t *
s_one(const dg_autoscale_conf_t *c)
{
	dg_autoscale_t *a = dg_autoscale_new(3);
	assert_non_null(a);
	dg_autoscale_set(a, 1, c);
	return a;
}

static dg_scale_decision_t
s_decide(dg_autoscale_t *a, int64_t now, dg_scale_load_t mid)
{
	dg_scale_load_t load[3] = { { .live = 1, .workers = 1 }, mid,
	    { .live = 1, .workers = 1 } };
	dg_scale_decision_t out[3];

	dg_autoscale_decide(a, now, load, out);
	assert_int_equal(out[0].action, DG_SCALE_HOLD);
	assert_int_equal(out[2].action, DG_SCALE_HOLD);
	return out[1];
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(dg_scale_name(DG_SCALE_HOLD), "hold");
	assert_string_equal(dg_scale_name(DG_SCALE_OUT), "out");
	assert_string_equal(dg_scale_name(DG_SCALE_IN), "in");
	assert_string_equal(dg_scale_name(DG_SCALE_COUNT), "?");
}

/* A burst: 14 rooms on one single-worker instance start instances up
 * to max at once, with the queue and utilisation as the reason. */
static void
test_burst_out(void **state)
{
	(void)state;
	dg_autoscale_conf_t c = s_conf(1, 3, 0.8, 1000);
	dg_autoscale_t *a = s_one(&c);
	dg_scale_decision_t d = s_decide(a, 0, (dg_scale_load_t){ .live = 1,
	    .workers = 1, .rooms = 14 });

	assert_int_equal(d.action, DG_SCALE_OUT);
	assert_int_equal(d.from, 1);
	assert_int_equal(d.to, 3);
	assert_string_equal(d.reason, "queue 14 rooms, utilisation 14.00 > "
	    "0.80");
	/* Within the cooldown, even a longer queue waits. */
	d = s_decide(a, 500, (dg_scale_load_t){ .live = 1, .starting = 2,
	    .workers = 1, .rooms = 30 });
	assert_int_equal(d.action, DG_SCALE_HOLD);
	assert_int_equal(d.from, 3);
	dg_autoscale_destroy(&a);
	assert_null(a);
}

/* At or under the target nothing starts, though the queue bound would
 * round up. */
static void
test_under_target_holds(void **state)
{
	(void)state;
	dg_autoscale_conf_t c = s_conf(1, 4, 0.8, 0);
	dg_autoscale_t *a = s_one(&c);
	dg_scale_decision_t d = s_decide(a, 0, (dg_scale_load_t){ .live = 2,
	    .workers = 2, .rooms = 3 });

	assert_int_equal(d.action, DG_SCALE_HOLD);
	assert_true(d.utilisation < 0.8);
	dg_autoscale_destroy(&a);
}

/* Idle: one instance is drained only after a whole cooldown below the
 * band, then the next only after another. */
static void
test_idle_in(void **state)
{
	(void)state;
	dg_autoscale_conf_t c = s_conf(1, 3, 0.8, 2000);
	dg_autoscale_t *a = s_one(&c);
	dg_scale_load_t idle = { .live = 3, .workers = 1 };

	assert_int_equal(s_decide(a, 0, idle).action, DG_SCALE_HOLD);
	assert_int_equal(s_decide(a, 1999, idle).action, DG_SCALE_HOLD);
	dg_scale_decision_t d = s_decide(a, 2000, idle);
	assert_int_equal(d.action, DG_SCALE_IN);
	assert_int_equal(d.to, 2);
	assert_non_null(strstr(d.reason, "queue 0 rooms"));
	idle.live = 2;
	assert_int_equal(s_decide(a, 2100, idle).action, DG_SCALE_HOLD);
	assert_int_equal(s_decide(a, 4099, idle).action, DG_SCALE_HOLD);
	assert_int_equal(s_decide(a, 4100, idle).action, DG_SCALE_IN);
	/* Never below min. */
	idle.live = 1;
	for (int64_t t = 5000; t < 20000; t += 1000)
		assert_int_equal(s_decide(a, t, idle).action, DG_SCALE_HOLD);
	dg_autoscale_destroy(&a);
}

/* The band: a load that fits one instance less only above the band's
 * lower edge keeps both; a blip of load restarts the wait. */
static void
test_hysteresis(void **state)
{
	(void)state;
	dg_autoscale_conf_t c = s_conf(1, 3, 0.8, 1000);
	dg_autoscale_t *a = s_one(&c);
	/* 2 instances, 4 workers each, 4 rooms: with one less 1.0 > 0.6. */
	dg_scale_load_t l = { .live = 2, .workers = 4, .rooms = 4 };

	for (int64_t t = 0; t <= 5000; t += 500)
		assert_int_equal(s_decide(a, t, l).action, DG_SCALE_HOLD);
	l.rooms = 2;            /* 0.5 with one less: below the band */
	assert_int_equal(s_decide(a, 6000, l).action, DG_SCALE_HOLD);
	l.rooms = 4;
	assert_int_equal(s_decide(a, 6500, l).action, DG_SCALE_HOLD);
	l.rooms = 2;
	assert_int_equal(s_decide(a, 6600, l).action, DG_SCALE_HOLD);
	assert_int_equal(s_decide(a, 7500, l).action, DG_SCALE_HOLD);
	assert_int_equal(s_decide(a, 7600, l).action, DG_SCALE_IN);
	/* Nor does a start in progress let it drain. */
	dg_autoscale_destroy(&a);
	a = s_one(&c);
	l = (dg_scale_load_t){ .live = 2, .starting = 1, .workers = 1 };
	for (int64_t t = 0; t <= 5000; t += 500)
		assert_int_equal(s_decide(a, t, l).action, DG_SCALE_HOLD);
	dg_autoscale_destroy(&a);
}

/* The chain: at the throughput of the busiest place each scaled role
 * wants its service time's share, E = N/(1+t_t/t_e) for two roles. */
static void
test_chain_shares(void **state)
{
	(void)state;
	dg_autoscale_conf_t c = s_conf(1, 16, 1.0, 0);
	dg_autoscale_t *a = dg_autoscale_new(3);
	for (size_t i = 0; i < 3; i++)
		dg_autoscale_set(a, i, &c);
	/* 4 requests/s; 0.25 s, 2 s and 0.5 s per room, one worker each:
	 * 1, 8 and 2 instances; the transformer has a queue. */
	dg_scale_load_t load[3] = {
		{ .live = 1, .workers = 1, .rps = 4, .service_s = 0.25 },
		{ .live = 1, .workers = 1, .rps = 0.5, .service_s = 2,
		  .rooms = 6 },
		{ .live = 1, .workers = 1, .rps = 0.5, .service_s = 0.5,
		  .rooms = 2 },
	};
	dg_scale_decision_t out[3];
	dg_autoscale_decide(a, 0, load, out);
	assert_int_equal(out[0].wanted, 1);
	assert_int_equal(out[0].action, DG_SCALE_HOLD);
	assert_int_equal(out[1].wanted, 8);
	assert_int_equal(out[1].action, DG_SCALE_OUT);
	assert_int_equal(out[1].to, 8);
	assert_int_equal(out[2].wanted, 2);
	assert_int_equal(out[2].action, DG_SCALE_OUT);
	/* Two workers halve the share. */
	load[1].workers = 2;
	load[1].live = 8;
	dg_autoscale_decide(a, 1, load, out);
	assert_int_equal(out[1].wanted, 4);
	dg_autoscale_destroy(&a);
}

/* The chain's throughput is smoothed: one report of a spike does not
 * start instances that the queue does not ask for either, a sustained
 * rate does. */
static void
test_smoothing(void **state)
{
	(void)state;
	dg_autoscale_conf_t c = s_conf(1, 8, 1.0, 0);
	dg_autoscale_t *a = dg_autoscale_new(1);
	dg_autoscale_set(a, 0, &c);
	dg_scale_load_t l = { .live = 1, .workers = 1, .service_s = 1,
	    .rooms = 1 };
	dg_scale_decision_t d;

	dg_autoscale_decide(a, 0, &l, &d);
	assert_int_equal(d.wanted, 1);
	l.rps = 10;             /* one report: 10 rooms in its 100 ms */
	dg_autoscale_decide(a, 250, &l, &d);
	assert_int_equal(d.wanted, 1);
	l.rps = 0;
	dg_autoscale_decide(a, 500, &l, &d);
	assert_int_equal(d.wanted, 1);
	/* 3 rooms/s for long: 3 instances of a 1 s stage. */
	l.rps = 3;
	for (int64_t t = 750; t <= 60000; t += 250)
		dg_autoscale_decide(a, t, &l, &d);
	assert_int_equal(d.wanted, 3);
	dg_autoscale_destroy(&a);
}

/* Min is kept even without load; above max one drains; places not set
 * are left alone. */
static void
test_bounds(void **state)
{
	(void)state;
	dg_autoscale_conf_t c = s_conf(2, 3, 0.8, 60000);
	dg_autoscale_t *a = s_one(&c);
	dg_scale_decision_t d = s_decide(a, 0, (dg_scale_load_t){ .live = 1,
	    .workers = 1 });
	assert_int_equal(d.action, DG_SCALE_OUT);
	assert_int_equal(d.to, 2);
	assert_string_equal(d.reason, "below min 2");
	d = s_decide(a, 100, (dg_scale_load_t){ .live = 5, .workers = 1,
	    .rooms = 50 });
	assert_int_equal(d.action, DG_SCALE_IN);
	assert_int_equal(d.to, 4);
	assert_int_equal(d.wanted, 3);
	dg_autoscale_destroy(&a);

	a = dg_autoscale_new(2);
	dg_scale_load_t load[2] = { { .live = 1, .rooms = 100 }, { 0 } };
	dg_scale_decision_t out[2];
	dg_autoscale_decide(a, 0, load, out);
	assert_int_equal(out[0].action, DG_SCALE_HOLD);
	assert_int_equal(out[1].action, DG_SCALE_HOLD);
	dg_autoscale_set(a, 5, &c);     /* past the chain: ignored */
	dg_autoscale_destroy(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_burst_out),
		cmocka_unit_test(test_under_target_holds),
		cmocka_unit_test(test_idle_in),
		cmocka_unit_test(test_hysteresis),
		cmocka_unit_test(test_chain_shares),
		cmocka_unit_test(test_smoothing),
		cmocka_unit_test(test_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
