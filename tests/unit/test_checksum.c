/*  test_checksum.c: verify = on catches what a receiver must not accept:
 *  a flipped byte, a short tensor, a missing tensor.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "checksum.h"

static void
test_verify(void **state)
{
	(void)state;
	static uint8_t pool[3 * 4096];
	dg_tensor_row_t want[2] = {
		{ .name = "context", .dtype = "bf16", .bytes = 5000, .offset = 0 },
		{ .name = "latents", .dtype = "f32", .bytes = 4096, .offset = 8192 },
	};
	dg_tensor_row_t got[2];
	char why[256];

	for (size_t i = 0; i < sizeof pool; i++)
		pool[i] = (uint8_t)(i * 37 + 11);
	for (int i = 0; i < 2; i++) {
		got[i] = want[i];
		got[i].checksum = dg_checksum(pool + want[i].offset,
		    want[i].bytes);
	}
	assert_int_equal(dg_checksum_verify(pool, want, got, 2, 2, why,
	    sizeof why), 0);

	pool[8192 + 4095] ^= 0x01;
	assert_int_equal(dg_checksum_verify(pool, want, got, 2, 2, why,
	    sizeof why), -1);
	assert_non_null(strstr(why, "tensor 'latents': checksum"));
	pool[8192 + 4095] ^= 0x01;

	got[0].bytes = 4999;
	assert_int_equal(dg_checksum_verify(pool, want, got, 2, 2, why,
	    sizeof why), -1);
	assert_non_null(strstr(why, "sender wrote 4999 bytes, 5000 expected"));
	got[0].bytes = 5000;

	assert_int_equal(dg_checksum_verify(pool, want, got, 2, 1, why,
	    sizeof why), -1);
	assert_non_null(strstr(why, "1 tensors, 2 expected"));

	/* The empty tensor has a checksum too, and it is stable. */
	assert_int_equal(dg_checksum(pool, 0), dg_checksum(NULL, 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
