/*  test_cuda.c: the CUDA probe.  Without a device (every build and CI
 *  machine of this project) the probe must say so and not fail; the
 *  device test skips, as GPU-only tests do.  */
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

	assert_true(n >= 0);
	if (n == 0)
		assert_true(strlen(why) > 0);
	if (!dg_cuda_built())
		assert_int_equal(n, 0);
}

static void
test_device(void **state)
{
	(void)state;
	if (dg_cuda_device_count(NULL, 0) == 0)
		skip();
	assert_true(dg_cuda_built());
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
