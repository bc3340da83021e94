/*  test_cost.c: the cost model (lib/cost.c): the work of a request at
 *  each place of a chain, the first sample taken as it is, later ones
 *  followed within a few requests, and nothing predicted before any.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cost.h"

static void
test_units(void **state)
{
	(void)state;
	/* 5 frames of 64x64: 20480 pixels; 40 steps where it denoises. */
	assert_true(dg_cost_units(5, 64, 64, 40, 0, 3) == 20480.0);
	assert_true(dg_cost_units(5, 64, 64, 40, 1, 3) == 20480.0 * 40);
	assert_true(dg_cost_units(5, 64, 64, 40, 2, 3) == 20480.0);
	/* Both experts of a four-place chain denoise. */
	assert_true(dg_cost_units(5, 64, 64, 40, 2, 4) == 20480.0 * 40);
}

static void
test_learns(void **state)
{
	dg_cost_t c = { 0 };
	(void)state;

	assert_int_equal(dg_cost_predict(&c, 1000), 0);
	dg_cost_observe(&c, 1000, 5000);        /* 5 us a unit */
	assert_int_equal(dg_cost_predict(&c, 2000), 10000);
	/* The GPU slows to 10 us a unit: followed, not jumped to. */
	dg_cost_observe(&c, 1000, 10000);
	int64_t p = dg_cost_predict(&c, 1000);
	assert_true(p > 5000 && p < 10000);
	for (int i = 0; i < 30; i++)
		dg_cost_observe(&c, 1000, 10000);
	p = dg_cost_predict(&c, 1000);
	assert_true(p > 9900 && p <= 10000);
	/* Ten times beyond what it learned from, it does not guess. */
	assert_true(dg_cost_covers(&c, 10000) && !dg_cost_covers(&c, 10001));
	assert_true(dg_cost_covers(&c, 100) && !dg_cost_covers(&c, 99));
	assert_int_equal(dg_cost_predict(&c, 20000), 0);
	/* Nonsense is ignored. */
	dg_cost_observe(&c, 0, 1);
	dg_cost_observe(&c, 1000, -1);
	assert_int_equal(dg_cost_predict(&c, 1000), p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_learns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
