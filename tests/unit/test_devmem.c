/*  test_devmem.c: where a pool lives and the staging of device tensors
 *  through it.  The staging logic runs on the host stand-in (memcpy,
 *  deferred until sync as on a CUDA stream); the same calls on a real
 *  device are skipped without one, as on every build and CI machine.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "devmem.h"
#include "pool.h"

static void
test_choose(void **state)
{
	(void)state;
	char note[256];

	assert_int_equal(dg_mem_choose(false, 0, false, note, sizeof note),
	    DG_MEM_HOST);
	if (dg_cuda_device_count(NULL, 0) == 0) {
		/* No device: host memory, and the note says why. */
		assert_int_equal(dg_mem_choose(true, 0, true, note,
		    sizeof note), DG_MEM_HOST);
		assert_non_null(strstr(note, "no CUDA device"));
		assert_non_null(strstr(note, "pool in host memory"));
	} else {
		assert_int_equal(dg_mem_choose(true, 0, false, note,
		    sizeof note), DG_MEM_PINNED);
		assert_int_equal(dg_mem_choose(true, 0, true, note,
		    sizeof note), DG_MEM_DEVICE);
	}
	assert_int_equal(dg_mem_choose(true, 999, true, note, sizeof note),
	    DG_MEM_HOST);
}

static void
test_pool_kinds(void **state)
{
	(void)state;
	char why[256];

	dg_pool_t *pool = dg_pool_new_kind(4 << 20, 1 << 20, DG_MEM_HOST, 0,
	    why, sizeof why);
	assert_non_null(pool);
	assert_int_equal(dg_pool_kind(pool), DG_MEM_HOST);
	dg_pool_destroy(&pool);
	if (!dg_cuda_built()) {
		pool = dg_pool_new_kind(4 << 20, 1 << 20, DG_MEM_PINNED, 0, why,
		    sizeof why);
		assert_null(pool);
		assert_non_null(strstr(why, "needs a CUDA build"));
	}
}

/* A 10 MiB device tensor staged into the pool in 1 MiB pieces and back:
 * nothing lands before sync, everything after, in order. */
static void
test_staging_host(void **state)
{
	(void)state;
	const size_t n = (10u << 20) + 123;
	uint8_t *dev = malloc(n), *back = calloc(1, n);
	dg_pool_t *pool = dg_pool_new(16u << 20, 1u << 20);
	dg_extent_t ext;
	char why[256];

	assert_non_null(dev);
	assert_non_null(pool);
	for (size_t i = 0; i < n; i++)
		dev[i] = (uint8_t)(i * 2654435761u >> 13);
	assert_int_equal(dg_pool_reserve(pool, n, &ext), DG_SLOT_OK);
	uint8_t *slot = dg_pool_ptr(pool, &ext);

	dg_staging_t *st = dg_staging_new_host(1u << 20);
	assert_non_null(st);
	assert_int_equal(dg_staging_copy(st, DG_STAGE_TO_POOL, slot, dev, n), 0);
	assert_int_not_equal(memcmp(slot, dev, 4096), 0);
	assert_int_equal(dg_staging_sync(st, why, sizeof why), 0);
	assert_memory_equal(slot, dev, n);

	assert_int_equal(dg_staging_copy(st, DG_STAGE_FROM_POOL, slot, back,
	    n), 0);
	assert_int_equal(dg_staging_sync(st, why, sizeof why), 0);
	assert_memory_equal(back, dev, n);

	dg_staging_stats_t s;
	dg_staging_stats(st, &s);
	assert_int_equal(s.bytes, 2 * n);
	assert_int_equal(s.pieces, 2 * 11);
	assert_int_equal(s.syncs, 2);

	/* A copy with no buffer fails, and sync reports it once. */
	assert_int_equal(dg_staging_copy(st, DG_STAGE_TO_POOL, NULL, dev, 10),
	    -1);
	assert_int_equal(dg_staging_sync(st, why, sizeof why), -1);
	assert_non_null(strstr(why, "no destination buffer"));
	assert_int_equal(dg_staging_sync(st, why, sizeof why), 0);

	dg_staging_destroy(&st);
	assert_null(st);
	dg_pool_free(pool, &ext);
	dg_pool_destroy(&pool);
	free(dev);
	free(back);
}

static void
test_staging_cuda(void **state)
{
	(void)state;
	char why[256];

	if (dg_cuda_device_count(why, sizeof why) == 0) {
		dg_staging_t *none = dg_staging_new_cuda(0, 1 << 20, why,
		    sizeof why);
		assert_null(none);
		skip();
	}
	/* On a GPU: a pinned pool, a device buffer, a round trip. */
	const size_t n = 3u << 20;
	dg_pool_t *pool = dg_pool_new_kind(8u << 20, 1u << 20, DG_MEM_PINNED,
	    0, why, sizeof why);
	assert_non_null(pool);
	void *dev = dg_mem_alloc(DG_MEM_DEVICE, n, 0, why, sizeof why);
	assert_non_null(dev);
	dg_extent_t ext;
	assert_int_equal(dg_pool_reserve(pool, 2 * n, &ext), DG_SLOT_OK);
	uint8_t *a = dg_pool_ptr(pool, &ext), *b = a + n;
	for (size_t i = 0; i < n; i++)
		a[i] = (uint8_t)i;
	dg_staging_t *st = dg_staging_new_cuda(0, 1u << 20, why, sizeof why);
	assert_non_null(st);
	assert_int_equal(dg_staging_copy(st, DG_STAGE_FROM_POOL, a, dev, n), 0);
	assert_int_equal(dg_staging_copy(st, DG_STAGE_TO_POOL, b, dev, n), 0);
	assert_int_equal(dg_staging_sync(st, why, sizeof why), 0);
	assert_memory_equal(a, b, n);
	dg_staging_destroy(&st);
	dg_mem_free(DG_MEM_DEVICE, dev, n);
	dg_pool_free(pool, &ext);
	dg_pool_destroy(&pool);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_choose),
		cmocka_unit_test(test_pool_kinds),
		cmocka_unit_test(test_staging_host),
		cmocka_unit_test(test_staging_cuda),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
