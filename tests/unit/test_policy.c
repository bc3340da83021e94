/*  test_policy.c: instance choice spreads work as each policy promises,
 *  and never picks an instance that may not take work.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "policy.h"

static void
test_none_eligible(void **state)
{
	(void)state;
	dg_candidate_t c[3] = { { .eligible = false }, { .eligible = false },
	    { .eligible = false } };
	dg_policy_state_t st = { .rng = 1 };

	for (int p = DG_POLICY_ROUND_ROBIN; p <= DG_POLICY_P2C; p++)
		assert_int_equal(dg_policy_pick(p, c, 3, &st), -1);
	assert_int_equal(dg_policy_pick(DG_POLICY_LEAST_LOADED, c, 0, &st), -1);
}

static void
test_round_robin(void **state)
{
	(void)state;
	dg_candidate_t c[4] = { { .eligible = true }, { .eligible = false },
	    { .eligible = true }, { .eligible = true } };
	dg_policy_state_t st = { .rng = 1 };
	int seen[4] = { 0 };

	for (int i = 0; i < 300; i++)
		seen[dg_policy_pick(DG_POLICY_ROUND_ROBIN, c, 4, &st)]++;
	assert_int_equal(seen[0], 100);
	assert_int_equal(seen[1], 0);
	assert_int_equal(seen[2], 100);
	assert_int_equal(seen[3], 100);
}

/* Each pick counts as waiting until the next report: a burst between two
 * heartbeats spreads evenly, and the busier instance gets less. */
static void
test_least_loaded(void **state)
{
	(void)state;
	dg_candidate_t c[3] = {
		{ .eligible = true, .waiting = 0, .running = 2 },
		{ .eligible = true, .waiting = 0, .running = 0 },
		{ .eligible = true, .waiting = 3, .running = 0 },
	};
	dg_policy_state_t st = { .rng = 1 };
	int seen[3] = { 0 };

	assert_int_equal(dg_policy_score(&c[0]), 2);
	assert_int_equal(dg_policy_score(&c[2]), 12);
	for (int i = 0; i < 30; i++) {
		int k = dg_policy_pick(DG_POLICY_LEAST_LOADED, c, 3, &st);
		assert_true(k >= 0);
		c[k].optimistic++;
		seen[k]++;
	}
	/* Final scores end within one pick (4 points) of each other. */
	int64_t lo = dg_policy_score(&c[0]), hi = lo;
	for (int i = 1; i < 3; i++) {
		int64_t s = dg_policy_score(&c[i]);
		lo = s < lo ? s : lo;
		hi = s > hi ? s : hi;
	}
	assert_true(hi - lo <= 4);
	assert_true(seen[1] > seen[2]);

	/* Equal scores: ties rotate instead of piling onto the first. */
	dg_candidate_t eq[3] = { { .eligible = true }, { .eligible = true },
	    { .eligible = true } };
	int first = dg_policy_pick(DG_POLICY_LEAST_LOADED, eq, 3, &st);
	int second = dg_policy_pick(DG_POLICY_LEAST_LOADED, eq, 3, &st);
	assert_int_not_equal(first, second);
}

static void
test_p2c(void **state)
{
	(void)state;
	enum { N = 16 };
	dg_candidate_t c[N];
	dg_policy_state_t st = { .rng = 12345 };
	int seen[N] = { 0 };

	for (int i = 0; i < N; i++)
		c[i] = (dg_candidate_t){ .eligible = i != 5, .running = i };
	for (int i = 0; i < 16000; i++)
		seen[dg_policy_pick(DG_POLICY_P2C, c, N, &st)]++;
	/* Never the ineligible one; never the busiest (it always loses
	 * its duel); the idlest wins every duel it is drawn into. */
	assert_int_equal(seen[5], 0);
	assert_int_equal(seen[N - 1], 0);
	assert_true(seen[0] > seen[N - 2]);
	assert_true(seen[0] > 16000 / N);
}

/* earliest-finish: the lowest predicted finish, whatever the room
 * counts say (a short queue of long jobs loses to a longer one of short
 * ones); least-loaded among equals, so with nothing learned (every
 * finish 0) it is least-loaded. */
static void
test_earliest_finish(void **state)
{
	dg_candidate_t c[3] = {
		{ .eligible = true, .waiting = 1, .finish_us = 900000 },
		{ .eligible = true, .waiting = 6, .finish_us = 300000 },
		{ .eligible = false, .finish_us = 1 },
	};
	dg_policy_state_t st = { 0, 1 };
	(void)state;

	assert_int_equal(dg_policy_pick(DG_POLICY_EARLIEST_FINISH, c, 3, &st),
	    1);
	c[1].finish_us = 900000;
	assert_int_equal(dg_policy_pick(DG_POLICY_EARLIEST_FINISH, c, 3, &st),
	    0);
	c[0].finish_us = c[1].finish_us = 0;
	assert_int_equal(dg_policy_pick(DG_POLICY_EARLIEST_FINISH, c, 3, &st),
	    dg_policy_pick(DG_POLICY_LEAST_LOADED, c, 3, &st));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_none_eligible),
		cmocka_unit_test(test_round_robin),
		cmocka_unit_test(test_least_loaded),
		cmocka_unit_test(test_p2c),
		cmocka_unit_test(test_earliest_finish),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
