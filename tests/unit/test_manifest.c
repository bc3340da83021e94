/*  test_manifest.c: a stage refuses a manifest that would make it write
 *  the wrong thing or to the wrong place, and says why.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "config.h"
#include "manifest.h"

static dg_tensor_row_t s_rows[2];
static dg_bin_t s_addr = { (const uint8_t *)"addr", 4 };

static dg_manifest_msg_t
s_good(void)
{
	s_rows[0] = (dg_tensor_row_t){ .name = "context", .bytes = 4096,
	    .offset = 8192 };
	s_rows[1] = (dg_tensor_row_t){ .name = "latents", .bytes = 1024,
	    .offset = 8192 + 4096 };
	return (dg_manifest_msg_t){ .room = 7, .phase = 1, .slot = 2,
	    .gen = 3, .fabric = &s_addr, .n_fabric = 1, .key = 1,
	    .base = 0x10000, .token = 5, .chunk = 65536,
	    .tensors = s_rows, .n_tensors = 2 };
}

static void
s_refused(const dg_manifest_msg_t *m, const dg_manifest_want_t *w,
    const char *needle)
{
	char why[256] = "";

	assert_int_equal(dg_manifest_check(m, w, why, sizeof why), -1);
	if (!strstr(why, needle))
		fail_msg("'%s' does not mention '%s'", why, needle);
}

static void
test_accepts_good(void **state)
{
	(void)state;
	dg_manifest_msg_t m = s_good();
	uint64_t bytes[2] = { 4096, 1024 };
	dg_manifest_want_t w = { .room = 7, .phase = 1, .n_tensors = 2,
	    .bytes = bytes, .max_extent = 1 << 20 };
	char why[256];

	assert_int_equal(dg_manifest_check(&m, &w, why, sizeof why), 0);
	assert_int_equal(dg_manifest_check(&m, &(dg_manifest_want_t){ 0 },
	    why, sizeof why), 0);
}

static void
test_refuses(void **state)
{
	(void)state;
	dg_manifest_want_t none = { 0 };
	dg_manifest_msg_t m;

	m = s_good(); m.gen = 0;
	s_refused(&m, &none, "generation 0");
	m = s_good(); m.phase = DG_CHAIN_MAX;
	s_refused(&m, &none, "(1 to 7)");
	m = s_good();
	s_refused(&m, &(dg_manifest_want_t){ .room = 8 }, "expected 8");
	s_refused(&m, &(dg_manifest_want_t){ .phase = 2 }, "expected 2");
	m = s_good(); s_rows[1].offset = 8192 + 100;
	s_refused(&m, &none, "overlaps");
	m = s_good(); s_rows[1].offset = UINT64_MAX - 10;
	s_refused(&m, &none, "overflows");
	m = s_good(); m.base = UINT64_MAX - 100;
	s_refused(&m, &none, "overflows");
	m = s_good();
	s_refused(&m, &(dg_manifest_want_t){ .max_extent = 8192 },
	    "past the largest extent");
	uint64_t other[2] = { 4096, 2048 };
	s_refused(&m, &(dg_manifest_want_t){ .n_tensors = 2, .bytes = other },
	    "this stage makes 2048");
	s_refused(&m, &(dg_manifest_want_t){ .n_tensors = 1, .bytes = other },
	    "2 tensors, this stage makes 1");
	m = s_good(); m.n_fabric = 0;
	s_refused(&m, &none, "fabric addresses");
	m = s_good(); m.chunk = 0;
	s_refused(&m, &none, "chunk size 0");
	m = s_good(); m.token = (uint64_t)1 << 40;
	s_refused(&m, &none, "32 bits");
	m = s_good(); m.n_tensors = 0;
	s_refused(&m, &none, "no tensors");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_good),
		cmocka_unit_test(test_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
