/*  test_cuda.c: the CUDA probe.  A build without CUDA says so, with a
 *  reason naming the fix; a CUDA build without a device says why; with
 *  a device (only on a GPU machine; skipped elsewhere, as GPU-only tests
 *  are) the count is positive and asking again gives the same.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "cuda.h"

static void
test_probe(void **state)
{
	(void)state;
	char why[256] = "";
	int n = dg_cuda_device_count(why, sizeof why);

#ifdef DG_CUDA
	assert_true(dg_cuda_built());
	assert_true(n >= 0);
	if (n == 0)
		assert_true(strlen(why) > 0);
#else
	/* This object is built as the library is: without CUDA=1, no
	 * device, and the reason says how to get one. */
	assert_false(dg_cuda_built());
	assert_int_equal(n, 0);
	assert_non_null(strstr(why, "make CUDA=1"));
#endif
	/* A NULL reason is allowed. */
	assert_int_equal(dg_cuda_device_count(NULL, 0), n);
}

static void
test_device(void **state)
{
	(void)state;
	int n = dg_cuda_device_count(NULL, 0);
	if (n == 0)
		skip();
	assert_true(dg_cuda_built());
	assert_true(n >= 1);
	assert_int_equal(dg_cuda_device_count(NULL, 0), n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_device),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
