/*  test_window.c: durations over the last span of time.  Quantiles are
 *  those of what was added within the span, exact below 16 and within
 *  the bins' 3% above; what is older than the span no longer counts,
 *  however few came since; time can jump past the whole span.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "window.h"

static void
test_bounds(void **state)
{
	(void)state;
	assert_null(dg_window_new(999));
	assert_null(dg_window_new(3600001));
	dg_window_t *w = dg_window_new(60000);
	assert_non_null(w);
	assert_int_equal(dg_window_count(w, 5000), 0);
	assert_int_equal(dg_window_quantile(w, 5000, 0.5), 0);
	dg_window_destroy(&w);
	assert_null(w);
	dg_window_destroy(&w);
}

static void
test_quantiles(void **state)
{
	(void)state;
	dg_window_t *w = dg_window_new(60000);
	int64_t now = 1000000;

	/* 1..100 ms, one each, over 10 s. */
	for (int64_t v = 1; v <= 100; v++)
		dg_window_add(w, now + v * 100, v);
	now += 10000;
	assert_int_equal(dg_window_count(w, now), 100);
	int64_t p50 = dg_window_quantile(w, now, 0.50);
	int64_t p99 = dg_window_quantile(w, now, 0.99);
	assert_true(p50 >= 48 && p50 <= 52);
	assert_true(p99 >= 96 && p99 <= 102);
	assert_int_equal(dg_window_quantile(w, now, 0.01), 1);
	/* Exact below 16; negative counts as 0. */
	dg_window_t *x = dg_window_new(1000);
	dg_window_add(x, 0, 7);
	dg_window_add(x, 0, -3);
	assert_int_equal(dg_window_quantile(x, 0, 1.0), 7);
	assert_int_equal(dg_window_quantile(x, 0, 0.5), 0);
	/* Large values stay within 3%. */
	dg_window_add(x, 10, 123456789);
	int64_t big = dg_window_quantile(x, 10, 1.0);
	assert_true(llabs(big - 123456789) < 123456789 / 32);
	dg_window_destroy(&x);
	dg_window_destroy(&w);
}

static void
test_slides(void **state)
{
	(void)state;
	dg_window_t *w = dg_window_new(60000);
	int64_t t = 500000;

	/* A thousand slow ones, then one fast one 59 s later: both count;
	 * at 61 s only the fast one does, however few it is. */
	for (int i = 0; i < 1000; i++)
		dg_window_add(w, t, 5000);
	dg_window_add(w, t + 59000, 3);
	assert_int_equal(dg_window_count(w, t + 59000), 1001);
	assert_true(dg_window_quantile(w, t + 59000, 0.5) > 4800);
	assert_int_equal(dg_window_count(w, t + 61000), 1);
	assert_int_equal(dg_window_quantile(w, t + 61000, 0.99), 3);
	/* A jump past the whole span forgets everything, even in the slot
	 * that the new second reuses. */
	t += 3600000;
	assert_int_equal(dg_window_count(w, t), 0);
	dg_window_add(w, t, 9);
	assert_int_equal(dg_window_count(w, t), 1);
	assert_int_equal(dg_window_quantile(w, t, 0.5), 9);
	dg_window_destroy(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_quantiles),
		cmocka_unit_test(test_slides),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
