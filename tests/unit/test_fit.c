/*  test_fit.c: what the controller refuses at submit because no pool of
 *  a role can ever hold it (lib/fit.c).  A request of 1001 frames at
 *  2048x2048 was accepted and held a transformer until its deadline,
 *  and every smaller request behind it waited.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "fit.h"

static dg_config_t *
s_config(const char *text)
{
	dg_config_t *cfg = dg_config_parse_string("t.ini", text);
	assert_non_null(cfg);
	for (size_t i = 0; i < dg_config_error_count(cfg); i++)
		print_message("%s\n", dg_config_error(cfg, i));
	assert_int_equal(dg_config_error_count(cfg), 0);
	return cfg;
}

static const char s_three[] =
    "[encoder e0]\npeer = ipc://@e0\npool = 64M\n"
    "[transformer t0]\npeer = ipc://@t0\npool = 64M\n"
    "[transformer t1]\npeer = ipc://@t1\npool = 256M\n"
    "[decoder d0]\npeer = ipc://@d0\npool = 2G\n";

static dg_request_t
s_req(int64_t frames, int64_t side)
{
	return (dg_request_t){ .prompt = "p", .negative_prompt = "",
	    .frames = frames, .height = side, .width = side, .steps = 4 };
}

static void
test_too_large_for_every_pool(void **state)
{
	char why[256];
	(void)state;

	dg_config_t *cfg = s_config(s_three);
	dg_request_t req = s_req(1001, 2048);
	assert_int_equal(dg_fit_check(cfg, &req, why, sizeof why), -1);
	/* Context (4 MiB) in, latents (16 x 251 x 256 x 256 f32) out. */
	assert_string_equal(why, "needs 1008 MiB in a transformer pool; "
	    "the largest is 256 MiB");
	dg_config_destroy(&cfg);
}

/* The largest pool of the role decides; the small one's instance just
 * never gets it. */
static void
test_fits_the_largest(void **state)
{
	char why[256] = "";
	(void)state;

	dg_config_t *cfg = s_config(s_three);
	dg_request_t req = s_req(81, 2048);       /* 84 MiB: t1 alone */
	assert_int_equal(dg_fit_check(cfg, &req, why, sizeof why), 0);
	req = s_req(81, 480);
	assert_int_equal(dg_fit_check(cfg, &req, why, sizeof why), 0);
	dg_config_destroy(&cfg);
}

/* What the reference stages refuse is refused at submit too. */
static void
test_reference_limits(void **state)
{
	char why[256];
	(void)state;

	dg_config_t *cfg = s_config(s_three);
	dg_request_t req = s_req(80, 480);
	assert_int_equal(dg_fit_check(cfg, &req, why, sizeof why), -1);
	assert_string_equal(why, "frames must be 4k+1 (1, 5, ..., 81), got 80");
	dg_config_destroy(&cfg);
}

/* A stage the controller cannot plan (Python, a plugin) judges for
 * itself at assign; null stages' tensors are 64 bytes. */
static void
test_unknown_stages_judge_themselves(void **state)
{
	char why[256];
	(void)state;

	dg_config_t *cfg = s_config(
	    "[encoder e0]\npeer = ipc://@e0\npool = 64M\n"
	    "[transformer t0]\npeer = ipc://@t0\npool = 64M\n"
	    "stage = python:tinywan.stages:Transformer\n"
	    "[decoder d0]\npeer = ipc://@d0\npool = 64M\nstage = null\n");
	dg_request_t req = s_req(1001, 2048);
	assert_int_equal(dg_fit_check(cfg, &req, why, sizeof why), 0);
	dg_config_destroy(&cfg);
}

/* Sizes in the words of `pool`; equal words for unequal sizes fall back
 * to bytes. */
static void
test_sizes_said(void **state)
{
	char why[128];
	(void)state;

	dg_fit_say(why, sizeof why, 2000u << 20, "transformer",
	    "the largest", 256u << 20);
	assert_string_equal(why, "needs 2.0 GiB in a transformer pool; the "
	    "largest is 256 MiB");
	dg_fit_say(why, sizeof why, (256u << 20) + 4096, "encoder", "e0's",
	    256u << 20);
	assert_string_equal(why, "needs 268439552 bytes in an encoder pool; "
	    "e0's is 256 MiB");
	assert_int_equal(dg_fit_capacity(10000, 4096), 12288);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_too_large_for_every_pool),
		cmocka_unit_test(test_fits_the_largest),
		cmocka_unit_test(test_reference_limits),
		cmocka_unit_test(test_unknown_stages_judge_themselves),
		cmocka_unit_test(test_sizes_said),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
