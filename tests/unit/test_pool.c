/*  test_pool.c: the slot pool: space comes back exactly once, extents do
 *  not overlap, the state machine refuses every edge it does not have,
 *  a stale handle cannot touch a recycled extent, and all of it holds
 *  with threads racing on one extent or churning the whole pool.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"

#define NTHREADS        8

/* Every log line lands here: counted, and kept off the test output. */
static _Atomic int s_lines[4];

static void
s_sink(int level, const char *line, void *arg)
{
	(void)line;
	(void)arg;
	if (level >= 0 && level < 4)
		atomic_fetch_add(&s_lines[level], 1);
}

static void
s_lines_reset(void)
{
	for (int i = 0; i < 4; i++)
		atomic_store(&s_lines[i], 0);
}

static int
s_setup(void **state)
{
	(void)state;
	dg_log_set_sink(s_sink, NULL);
	dg_log_set_level(DG_LOG_INFO);
	return 0;
}

static int
s_teardown(void **state)
{
	(void)state;
	dg_log_set_sink(NULL, NULL);
	return 0;
}

static dg_pool_t *
s_pool(size_t bytes, size_t slot_size)
{
	dg_pool_t *pool = dg_pool_new(bytes, slot_size);
	assert_non_null(pool);
	return pool;
}

static dg_pool_stats_t
s_stats(const dg_pool_t *pool)
{
	dg_pool_stats_t st;
	dg_pool_stats(pool, &st);
	return st;
}

static dg_extent_t
s_reserve(dg_pool_t *pool, uint64_t bytes)
{
	dg_extent_t ext;
	assert_int_equal(dg_pool_reserve(pool, bytes, &ext), DG_SLOT_OK);
	assert_int_equal(dg_pool_state(pool, &ext), DG_SLOT_RESERVED);
	return ext;
}

/* Walk a fresh extent forward to `state` along the happy path. */
static void
s_walk(dg_pool_t *pool, const dg_extent_t *ext, int state)
{
	for (int s = DG_SLOT_RESERVED; s < state; s++)
		assert_int_equal(dg_pool_transition(pool, ext, s, s + 1),
		    DG_SLOT_OK);
	assert_int_equal(dg_pool_state(pool, ext), state);
}

/* The edges pool.h lists, written out rather than computed, so the test
 * does not share a mistake with the code.  FREE -> RESERVED is not here:
 * only dg_pool_reserve takes it. */
static const bool s_edge[DG_SLOT_NSTATES][DG_SLOT_NSTATES] = {
	[DG_SLOT_RESERVED] = { [DG_SLOT_FILLING] = true, [DG_SLOT_FREE] = true },
	[DG_SLOT_FILLING] = { [DG_SLOT_READY] = true, [DG_SLOT_FREE] = true },
	[DG_SLOT_READY] = { [DG_SLOT_IN_USE] = true, [DG_SLOT_FREE] = true },
	[DG_SLOT_IN_USE] = { [DG_SLOT_FREE] = true },
};

static void
s_fill(void *p, size_t len, unsigned seed)
{
	uint8_t *b = p;
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static bool
s_intact(const void *p, size_t len, unsigned seed)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < len; i++)
		if (b[i] != (uint8_t)(seed * 131 + i * 7 + (i >> 8)))
			return false;
	return true;
}

/* ---- construction ------------------------------------------------------ */

static void
test_new_geometry(void **state)
{
	(void)state;
	long page = sysconf(_SC_PAGESIZE);

	/* 256 MiB must come up at once: nothing may be written eagerly. */
	dg_pool_t *pool = s_pool(256u << 20, 4096);
	assert_int_equal(dg_pool_slots(pool), 65536);
	assert_int_equal(dg_pool_size(pool), 256u << 20);
	assert_int_equal(dg_pool_slot_size(pool), 4096);
	assert_int_equal((uintptr_t)dg_pool_base(pool) % (uintptr_t)page, 0);
	dg_extent_t all = s_reserve(pool, 256u << 20);
	uint8_t *p = dg_pool_ptr(pool, &all);
	assert_ptr_equal(p, dg_pool_base(pool));
	p[0] = 1;
	p[(256u << 20) - 1] = 2;
	assert_int_equal(dg_pool_free(pool, &all), DG_SLOT_OK);
	dg_pool_stats_t st = s_stats(pool);
	assert_int_equal(st.slots, 65536);
	assert_int_equal(st.slots_free, 65536);
	dg_pool_destroy(&pool);
	assert_null(pool);
	dg_pool_destroy(&pool);         /* twice is harmless */

	/* Slots need not be a power of two; the size rounds up. */
	pool = s_pool(10000, 3000);
	assert_int_equal(dg_pool_slots(pool), 4);
	assert_int_equal(dg_pool_size(pool), 12000);
	assert_int_equal((uintptr_t)dg_pool_base(pool) % (uintptr_t)page, 0);
	dg_pool_destroy(&pool);
}

static void
test_new_refuses_absurd(void **state)
{
	(void)state;
	assert_null(dg_pool_new(0, 4096));
	assert_null(dg_pool_new(4096, 0));
	/* 2^32 slots do not fit a uint32 slot index. */
	assert_null(dg_pool_new((size_t)UINT32_MAX + 1, 1));
	assert_null(dg_pool_new(SIZE_MAX, 1));
	/* One slot, but no machine has that much memory. */
	assert_null(dg_pool_new(1, SIZE_MAX));
	assert_null(dg_pool_new(SIZE_MAX, SIZE_MAX / 2));
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(dg_slot_state_name(DG_SLOT_FREE), "free");
	assert_string_equal(dg_slot_state_name(DG_SLOT_RESERVED), "reserved");
	assert_string_equal(dg_slot_state_name(DG_SLOT_FILLING), "filling");
	assert_string_equal(dg_slot_state_name(DG_SLOT_READY), "ready");
	assert_string_equal(dg_slot_state_name(DG_SLOT_IN_USE), "in_use");
	assert_string_equal(dg_slot_state_name(DG_SLOT_NSTATES), "?");
	assert_string_equal(dg_slot_state_name(-1), "?");
	assert_string_equal(dg_slot_rc_name(DG_SLOT_OK), "ok");
	assert_string_equal(dg_slot_rc_name(DG_SLOT_STALE), "stale");
	assert_string_equal(dg_slot_rc_name(DG_SLOT_ILLEGAL), "illegal");
	assert_string_equal(dg_slot_rc_name(DG_SLOT_NOSPACE), "nospace");
	assert_string_equal(dg_slot_rc_name(DG_SLOT_INVALID), "invalid");
	assert_string_equal(dg_slot_rc_name(1), "?");
}

/* ---- the state machine ------------------------------------------------- */

static void
test_happy_path(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool(8 * 4096, 4096);
	dg_extent_t ext = s_reserve(pool, 3 * 4096);
	assert_int_equal(ext.nslots, 3);
	assert_int_not_equal(ext.gen, 0);

	for (int s = DG_SLOT_RESERVED; s <= DG_SLOT_IN_USE; s++) {
		dg_pool_stats_t st = s_stats(pool);
		for (int k = 0; k < DG_SLOT_NSTATES; k++)
			assert_int_equal(st.extents[k], k == s);
		assert_int_equal(st.slots_free, 5);
		assert_int_equal(dg_pool_state(pool, &ext), s);
		/* A manifest naming it finds the same extent in every state. */
		dg_extent_t found;
		assert_int_equal(dg_pool_lookup(pool, ext.slot, ext.gen,
		    &found), DG_SLOT_OK);
		assert_memory_equal(&found, &ext, sizeof ext);
		int next = s == DG_SLOT_IN_USE ? DG_SLOT_FREE : s + 1;
		assert_int_equal(dg_pool_transition(pool, &ext, s, next),
		    DG_SLOT_OK);
	}
	dg_pool_stats_t st = s_stats(pool);
	assert_int_equal(st.slots_free, 8);
	assert_int_equal(st.reserved, 1);
	assert_int_equal(st.freed, 1);
	assert_int_equal(st.refused_illegal, 0);
	assert_int_equal(st.refused_stale, 0);
	for (int k = 0; k < DG_SLOT_NSTATES; k++)
		assert_int_equal(st.extents[k], 0);
	dg_pool_destroy(&pool);
}

/* A room released or failed midway: from every live state, both by the
 * explicit edge and by dg_pool_free, and the slots really come back. */
static void
test_early_free(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool(4 * 512, 512);

	for (int s = DG_SLOT_RESERVED; s <= DG_SLOT_IN_USE; s++) {
		for (int how = 0; how < 2; how++) {
			/* The whole pool each time: it is only possible if
			 * the last round gave everything back. */
			dg_extent_t ext = s_reserve(pool, 4 * 512);
			s_walk(pool, &ext, s);
			assert_int_equal(s_stats(pool).slots_free, 0);
			dg_slot_rc_t rc = how ?
			    dg_pool_free(pool, &ext) :
			    dg_pool_transition(pool, &ext, s, DG_SLOT_FREE);
			assert_int_equal(rc, DG_SLOT_OK);
			assert_int_equal(dg_pool_state(pool, &ext),
			    DG_SLOT_STALE);
			assert_int_equal(s_stats(pool).slots_free, 4);
		}
	}
	dg_pool_stats_t st = s_stats(pool);
	assert_int_equal(st.reserved, 8);
	assert_int_equal(st.freed, 8);
	assert_int_equal(st.refused_illegal + st.refused_stale, 0);
	dg_pool_destroy(&pool);
}

/* All 25 (from, to) pairs, plus two out of range, from each live state:
 * everything but the state's own edges is refused, and a refusal changes
 * nothing and is counted once. */
static void
test_illegal_table(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool(4 * 64, 64);
	const int bogus[] = { -1, DG_SLOT_NSTATES, 1000 };

	for (int s = DG_SLOT_RESERVED; s <= DG_SLOT_IN_USE; s++) {
		dg_extent_t ext = s_reserve(pool, 100);
		s_walk(pool, &ext, s);
		uint64_t refused = s_stats(pool).refused_illegal;
		int tried = 0;

		for (int from = 0; from < DG_SLOT_NSTATES + 3; from++) {
			for (int to = 0; to < DG_SLOT_NSTATES + 3; to++) {
				int f = from < DG_SLOT_NSTATES ? from :
				    bogus[from - DG_SLOT_NSTATES];
				int t = to < DG_SLOT_NSTATES ? to :
				    bogus[to - DG_SLOT_NSTATES];
				if (f == s && t >= 0 && t < DG_SLOT_NSTATES &&
				    s_edge[f][t])
					continue;
				dg_slot_rc_t rc = dg_pool_transition(pool,
				    &ext, (dg_slot_state_t)f,
				    (dg_slot_state_t)t);
				if (rc != DG_SLOT_ILLEGAL)
					fail_msg("in %s: %d -> %d gave %s",
					    dg_slot_state_name(s), f, t,
					    dg_slot_rc_name(rc));
				tried++;
				assert_int_equal(dg_pool_state(pool, &ext), s);
				dg_extent_t found;
				assert_int_equal(dg_pool_lookup(pool,
				    ext.slot, ext.gen, &found), DG_SLOT_OK);
				assert_memory_equal(&found, &ext, sizeof ext);
				assert_int_equal(s_stats(pool).refused_illegal,
				    refused + (uint64_t)tried);
			}
		}
		/* 64 pairs, less the state's own one or two edges. */
		assert_int_equal(tried, 64 - (s == DG_SLOT_IN_USE ? 1 : 2));
		dg_pool_stats_t st = s_stats(pool);
		assert_int_equal(st.refused_stale, 0);
		assert_int_equal(st.slots_free, 2);
		assert_int_equal(st.extents[s], 1);
		/* Refusals did not wedge it: its own edges still work. */
		assert_int_equal(dg_pool_free(pool, &ext), DG_SLOT_OK);
	}
	assert_int_equal(s_stats(pool).slots_free, 4);
	dg_pool_destroy(&pool);
}

/* Every operation on a dead handle is refused as stale; returns how many
 * of them count as refused transitions. */
static uint64_t
s_all_stale(dg_pool_t *pool, const dg_extent_t *ext)
{
	uint64_t ops = 0;
	dg_extent_t found;

	for (int f = 0; f < DG_SLOT_NSTATES; f++)
		for (int t = 0; t < DG_SLOT_NSTATES; t++, ops++)
			assert_int_equal(dg_pool_transition(pool, ext, f, t),
			    DG_SLOT_STALE);
	assert_int_equal(dg_pool_free(pool, ext), DG_SLOT_STALE);
	ops++;
	assert_int_equal(dg_pool_state(pool, ext), DG_SLOT_STALE);
	assert_null(dg_pool_ptr(pool, ext));
	assert_int_equal(dg_pool_lookup(pool, ext->slot, ext->gen, &found),
	    DG_SLOT_STALE);
	return ops;
}

/* A handle kept past its free cannot touch whoever has the slots now. */
static void
test_stale_after_reuse(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool(4 * 256, 256);
	dg_extent_t old = s_reserve(pool, 4 * 256);
	s_walk(pool, &old, DG_SLOT_READY);
	assert_int_equal(dg_pool_free(pool, &old), DG_SLOT_OK);
	/* Freed and not yet reused: already dead. */
	uint64_t ops = s_all_stale(pool, &old);
	assert_int_equal(s_stats(pool).slots_free, 4);

	/* The whole pool again: it can only be the same slots. */
	dg_extent_t now = s_reserve(pool, 4 * 256);
	assert_int_equal(now.slot, old.slot);
	assert_int_not_equal(now.gen, old.gen);
	s_fill(dg_pool_ptr(pool, &now), 4 * 256, 9);
	ops += s_all_stale(pool, &old);

	/* The new owner saw none of it. */
	dg_pool_stats_t st = s_stats(pool);
	assert_int_equal(st.refused_stale, ops);
	assert_int_equal(st.refused_illegal, 0);
	assert_int_equal(st.freed, 1);
	assert_int_equal(st.slots_free, 0);
	assert_int_equal(dg_pool_state(pool, &now), DG_SLOT_RESERVED);
	assert_true(s_intact(dg_pool_ptr(pool, &now), 4 * 256, 9));
	dg_extent_t found;
	assert_int_equal(dg_pool_lookup(pool, now.slot, now.gen, &found),
	    DG_SLOT_OK);
	assert_memory_equal(&found, &now, sizeof now);
	assert_int_equal(dg_pool_free(pool, &now), DG_SLOT_OK);
	dg_pool_destroy(&pool);
}

/* The old head slot now sits in the middle of someone else's extent. */
static void
test_stale_inside_other_extent(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool(4 * 64, 64);
	dg_extent_t a = s_reserve(pool, 64);
	dg_extent_t b = s_reserve(pool, 64);
	assert_int_equal(b.slot, 1);
	assert_int_equal(dg_pool_free(pool, &a), DG_SLOT_OK);
	assert_int_equal(dg_pool_free(pool, &b), DG_SLOT_OK);
	dg_extent_t big = s_reserve(pool, 4 * 64);
	assert_int_equal(big.slot, 0);

	assert_int_equal(dg_pool_state(pool, &b), DG_SLOT_STALE);
	assert_int_equal(dg_pool_transition(pool, &b, DG_SLOT_RESERVED,
	    DG_SLOT_FILLING), DG_SLOT_STALE);
	assert_int_equal(dg_pool_free(pool, &b), DG_SLOT_STALE);
	assert_null(dg_pool_ptr(pool, &b));
	dg_extent_t found;
	assert_int_equal(dg_pool_lookup(pool, b.slot, b.gen, &found),
	    DG_SLOT_STALE);
	/* Slot 1 is not a head, whatever generation is asked for. */
	assert_int_equal(dg_pool_lookup(pool, 1, big.gen, &found),
	    DG_SLOT_STALE);
	assert_int_equal(s_stats(pool).slots_free, 0);
	assert_int_equal(dg_pool_state(pool, &big), DG_SLOT_RESERVED);
	assert_int_equal(dg_pool_free(pool, &big), DG_SLOT_OK);
	dg_pool_destroy(&pool);
}

static void
test_double_free(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool(4 * 64, 64);
	dg_extent_t keep = s_reserve(pool, 64);
	dg_extent_t ext = s_reserve(pool, 2 * 64);
	s_walk(pool, &ext, DG_SLOT_FILLING);

	assert_int_equal(dg_pool_free(pool, &ext), DG_SLOT_OK);
	assert_int_equal(dg_pool_free(pool, &ext), DG_SLOT_STALE);
	assert_int_equal(dg_pool_transition(pool, &ext, DG_SLOT_FILLING,
	    DG_SLOT_FREE), DG_SLOT_STALE);
	dg_pool_stats_t st = s_stats(pool);
	assert_int_equal(st.freed, 1);
	assert_int_equal(st.refused_stale, 2);
	assert_int_equal(st.slots_free, 3);     /* not 5 */
	assert_int_equal(st.extents[DG_SLOT_RESERVED], 1);
	assert_int_equal(st.extents[DG_SLOT_FILLING], 0);

	/* Freed by the edge, then by dg_pool_free: also once. */
	ext = s_reserve(pool, 3 * 64);
	assert_int_equal(dg_pool_transition(pool, &ext, DG_SLOT_RESERVED,
	    DG_SLOT_FREE), DG_SLOT_OK);
	assert_int_equal(dg_pool_free(pool, &ext), DG_SLOT_STALE);
	st = s_stats(pool);
	assert_int_equal(st.freed, 2);
	assert_int_equal(st.slots_free, 3);
	assert_int_equal(dg_pool_free(pool, &keep), DG_SLOT_OK);
	assert_int_equal(s_stats(pool).slots_free, 4);
	dg_pool_destroy(&pool);
}

/* Handles that never came from this pool: refused, and the real extent
 * they were copied from is untouched. */
static void
test_invalid_extents(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool(8 * 64, 64);
	dg_extent_t pad = s_reserve(pool, 64);
	dg_extent_t ext = s_reserve(pool, 2 * 64 + 1);
	assert_int_equal(ext.slot, 1);
	assert_int_equal(ext.nslots, 3);
	dg_extent_t bad[9];
	for (int i = 0; i < 9; i++)
		bad[i] = ext;
	bad[0].slot = 8;                /* past the end */
	bad[0].offset = 8 * 64;
	bad[1].slot = UINT32_MAX;
	bad[2].nslots = 2;              /* not what was reserved */
	bad[3].nslots = 4;
	bad[4].nslots = 0;
	bad[5].gen = 0;
	bad[6].gen = ext.gen + 1000;    /* never handed out */
	bad[7].offset += 1;
	bad[8].bytes = 3 * 64;          /* claims more than it asked for */

	for (int i = 0; i < 9; i++) {
		assert_int_equal(dg_pool_transition(pool, &bad[i],
		    DG_SLOT_RESERVED, DG_SLOT_FILLING), DG_SLOT_INVALID);
		assert_int_equal(dg_pool_free(pool, &bad[i]), DG_SLOT_INVALID);
		assert_int_equal(dg_pool_state(pool, &bad[i]),
		    DG_SLOT_INVALID);
		assert_null(dg_pool_ptr(pool, &bad[i]));
	}
	assert_int_equal(dg_pool_free(pool, NULL), DG_SLOT_INVALID);
	assert_int_equal(dg_pool_transition(pool, NULL, DG_SLOT_RESERVED,
	    DG_SLOT_FILLING), DG_SLOT_INVALID);
	assert_int_equal(dg_pool_state(pool, NULL), DG_SLOT_INVALID);

	dg_extent_t found;
	assert_int_equal(dg_pool_lookup(pool, 8, ext.gen, &found),
	    DG_SLOT_INVALID);
	assert_int_equal(dg_pool_lookup(pool, ext.slot, 0, &found),
	    DG_SLOT_INVALID);
	assert_int_equal(dg_pool_lookup(pool, ext.slot, ext.gen + 1000,
	    &found), DG_SLOT_INVALID);

	dg_pool_stats_t st = s_stats(pool);
	assert_int_equal(st.slots_free, 4);
	assert_int_equal(st.freed, 0);
	assert_int_equal(st.refused_illegal + st.refused_stale, 0);
	assert_int_equal(dg_pool_state(pool, &ext), DG_SLOT_RESERVED);
	assert_int_equal(dg_pool_free(pool, &ext), DG_SLOT_OK);
	assert_int_equal(dg_pool_free(pool, &pad), DG_SLOT_OK);
	dg_pool_destroy(&pool);
}

/* ---- space ------------------------------------------------------------- */

static void
test_reserve_sizes(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool(8 * 1000, 1000);
	dg_extent_t e;

	e = s_reserve(pool, 1);
	assert_int_equal(e.nslots, 1);
	assert_int_equal(e.bytes, 1);
	assert_int_equal(e.offset, (uint64_t)e.slot * 1000);
	assert_int_equal(dg_pool_free(pool, &e), DG_SLOT_OK);

	e = s_reserve(pool, 1000);
	assert_int_equal(e.nslots, 1);
	assert_int_equal(dg_pool_free(pool, &e), DG_SLOT_OK);

	e = s_reserve(pool, 1001);
	assert_int_equal(e.nslots, 2);
	assert_int_equal(e.bytes, 1001);
	assert_int_equal(dg_pool_free(pool, &e), DG_SLOT_OK);

	e = s_reserve(pool, 8000);
	assert_int_equal(e.nslots, 8);
	assert_int_equal(e.slot, 0);
	assert_int_equal(s_stats(pool).slots_free, 0);
	dg_extent_t none;
	assert_int_equal(dg_pool_reserve(pool, 1, &none), DG_SLOT_NOSPACE);
	assert_int_equal(dg_pool_free(pool, &e), DG_SLOT_OK);

	assert_int_equal(dg_pool_reserve(pool, 8001, &none), DG_SLOT_NOSPACE);
	assert_int_equal(dg_pool_reserve(pool, UINT64_MAX, &none),
	    DG_SLOT_NOSPACE);
	assert_int_equal(dg_pool_reserve(pool, 0, &none), DG_SLOT_INVALID);
	assert_int_equal(dg_pool_reserve(pool, 1, NULL), DG_SLOT_INVALID);
	dg_pool_stats_t st = s_stats(pool);
	assert_int_equal(st.nospace, 3);
	assert_int_equal(st.reserved, 4);
	assert_int_equal(st.slots_free, 8);
	dg_pool_destroy(&pool);
}

static void
test_fragmentation(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool(16 * 128, 128);
	dg_extent_t one[16];
	dg_extent_t e;

	for (int i = 0; i < 16; i++) {
		one[i] = s_reserve(pool, 128);
		assert_int_equal(one[i].slot, i);
	}
	for (int i = 1; i < 16; i += 2)
		assert_int_equal(dg_pool_free(pool, &one[i]), DG_SLOT_OK);
	/* Eight slots free, none of them side by side. */
	assert_int_equal(s_stats(pool).slots_free, 8);
	assert_int_equal(dg_pool_reserve(pool, 129, &e), DG_SLOT_NOSPACE);
	for (int i = 1; i < 16; i += 2) {
		one[i] = s_reserve(pool, 1);
		assert_int_equal(one[i].slot % 2, 1);
	}
	assert_int_equal(dg_pool_reserve(pool, 1, &e), DG_SLOT_NOSPACE);

	/* Freeing eight neighbours makes one run of eight again. */
	for (int i = 4; i < 12; i++)
		assert_int_equal(dg_pool_free(pool, &one[i]), DG_SLOT_OK);
	assert_int_equal(dg_pool_reserve(pool, 9 * 128, &e), DG_SLOT_NOSPACE);
	dg_extent_t big = s_reserve(pool, 8 * 128);
	assert_int_equal(big.slot, 4);
	assert_int_equal(big.nslots, 8);
	assert_int_equal(dg_pool_free(pool, &big), DG_SLOT_OK);
	for (int i = 0; i < 16; i++)
		if (i < 4 || i >= 12)
			assert_int_equal(dg_pool_free(pool, &one[i]),
			    DG_SLOT_OK);
	/* And everything coalesces back into the whole pool. */
	big = s_reserve(pool, 16 * 128);
	assert_int_equal(big.slot, 0);
	assert_int_equal(dg_pool_free(pool, &big), DG_SLOT_OK);
	dg_pool_stats_t st = s_stats(pool);
	assert_int_equal(st.slots_free, 16);
	assert_int_equal(st.nospace, 3);
	dg_pool_destroy(&pool);
}

/* What a room writes stays put through its states and through its
 * neighbours coming and going, up to the last byte of its last slot. */
static void
test_bytes_survive(void **state)
{
	(void)state;
	const size_t slot = 1000;
	dg_pool_t *pool = s_pool(12 * slot, slot);
	dg_extent_t a = s_reserve(pool, 2500);
	dg_extent_t b = s_reserve(pool, 1);
	dg_extent_t c = s_reserve(pool, 3000);
	s_fill(dg_pool_ptr(pool, &a), a.nslots * slot, 1);
	s_fill(dg_pool_ptr(pool, &b), b.nslots * slot, 2);
	s_fill(dg_pool_ptr(pool, &c), c.nslots * slot, 3);
	assert_ptr_equal(dg_pool_ptr(pool, &a),
	    (uint8_t *)dg_pool_base(pool) + a.offset);

	s_walk(pool, &a, DG_SLOT_IN_USE);
	assert_int_equal(dg_pool_free(pool, &b), DG_SLOT_OK);
	dg_extent_t d = s_reserve(pool, 4 * slot);
	s_fill(dg_pool_ptr(pool, &d), d.nslots * slot, 4);
	dg_extent_t e = s_reserve(pool, 1);
	s_fill(dg_pool_ptr(pool, &e), e.nslots * slot, 5);
	/* The pool is full past the cursor: this one wraps into b's slot. */
	dg_extent_t f = s_reserve(pool, 2);
	assert_int_equal(f.slot, b.slot);
	s_fill(dg_pool_ptr(pool, &f), f.nslots * slot, 6);

	assert_true(s_intact(dg_pool_ptr(pool, &a), a.nslots * slot, 1));
	assert_true(s_intact(dg_pool_ptr(pool, &c), c.nslots * slot, 3));
	assert_true(s_intact(dg_pool_ptr(pool, &d), d.nslots * slot, 4));
	assert_true(s_intact(dg_pool_ptr(pool, &e), e.nslots * slot, 5));
	assert_true(s_intact(dg_pool_ptr(pool, &f), f.nslots * slot, 6));
	assert_int_equal(dg_pool_free(pool, &f), DG_SLOT_OK);
	assert_int_equal(dg_pool_free(pool, &a), DG_SLOT_OK);
	assert_int_equal(dg_pool_free(pool, &c), DG_SLOT_OK);
	assert_int_equal(dg_pool_free(pool, &d), DG_SLOT_OK);
	assert_int_equal(dg_pool_free(pool, &e), DG_SLOT_OK);
	assert_int_equal(s_stats(pool).slots_free, 12);
	dg_pool_destroy(&pool);
}

static void
test_contains(void **state)
{
	(void)state;
	dg_extent_t e = { .slot = 3, .nslots = 2, .gen = 7,
	    .offset = 3 * 4096, .bytes = 5000 };
	uint64_t end = e.offset + e.bytes;

	assert_true(dg_pool_contains(&e, e.offset, 1));
	assert_true(dg_pool_contains(&e, e.offset, e.bytes));
	assert_true(dg_pool_contains(&e, e.offset + 100, 4900));
	assert_true(dg_pool_contains(&e, end - 1, 1));
	assert_true(dg_pool_contains(&e, end, 0));
	assert_false(dg_pool_contains(&e, end, 1));
	assert_false(dg_pool_contains(&e, end - 1, 2));
	assert_false(dg_pool_contains(&e, e.offset, e.bytes + 1));
	assert_false(dg_pool_contains(&e, e.offset - 1, 1));
	assert_false(dg_pool_contains(&e, 0, 4096));
	/* Past the bytes asked for, though still inside the last slot. */
	assert_false(dg_pool_contains(&e, e.offset + 5000, 100));
	/* offset + len wraps to something small and harmless-looking. */
	assert_false(dg_pool_contains(&e, e.offset + 10, UINT64_MAX));
	assert_false(dg_pool_contains(&e, e.offset + 10, UINT64_MAX - 9));
	assert_false(dg_pool_contains(&e, UINT64_MAX, 1));
	assert_false(dg_pool_contains(&e, UINT64_MAX - 10, 20));
	assert_false(dg_pool_contains(&e, UINT64_MAX, UINT64_MAX));
	assert_false(dg_pool_contains(NULL, 0, 0));
}

/* ---- logging ----------------------------------------------------------- */

static void
test_refusals_logged_sparingly(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool(4 * 64, 64);
	dg_extent_t e = s_reserve(pool, 64);

	s_lines_reset();
	assert_int_equal(dg_pool_transition(pool, &e, DG_SLOT_READY,
	    DG_SLOT_IN_USE), DG_SLOT_ILLEGAL);
	assert_int_equal(atomic_load(&s_lines[DG_LOG_WARN]), 1);
	/* A flood: the first ten and then one per thousand. */
	for (int i = 1; i < 2500; i++)
		dg_pool_transition(pool, &e, DG_SLOT_FILLING, DG_SLOT_READY);
	assert_int_equal(s_stats(pool).refused_illegal, 2500);
	assert_int_equal(atomic_load(&s_lines[DG_LOG_WARN]), 12);

	/* Stale is routine: not at info, only at debug. */
	assert_int_equal(dg_pool_free(pool, &e), DG_SLOT_OK);
	s_lines_reset();
	assert_int_equal(dg_pool_free(pool, &e), DG_SLOT_STALE);
	assert_int_equal(atomic_load(&s_lines[DG_LOG_WARN]) +
	    atomic_load(&s_lines[DG_LOG_INFO]), 0);
	dg_log_set_level(DG_LOG_DEBUG);
	for (int i = 0; i < 20; i++)
		assert_int_equal(dg_pool_free(pool, &e), DG_SLOT_STALE);
	dg_log_set_level(DG_LOG_INFO);
	assert_int_equal(atomic_load(&s_lines[DG_LOG_DEBUG]), 9);
	assert_int_equal(s_stats(pool).refused_stale, 21);
	dg_pool_destroy(&pool);
}

/* ---- threads ----------------------------------------------------------- */

#define RACE_ROUNDS     150

struct race {
	dg_pool_t *pool;
	pthread_barrier_t go;
	dg_extent_t ext;                /* this round's, set by main */
	int start[RACE_ROUNDS];         /* state main left it in */
	_Atomic int ok[RACE_ROUNDS][4], illegal[RACE_ROUNDS][4];
	_Atomic int stale[RACE_ROUNDS][4];
	_Atomic int free_ok[RACE_ROUNDS], free_stale[RACE_ROUNDS];
	_Atomic int moved[RACE_ROUNDS];
};

static void
s_tally(struct race *r, int round, int step, dg_slot_rc_t rc)
{
	if (rc == DG_SLOT_OK)
		atomic_fetch_add(&r->ok[round][step], 1);
	else if (rc == DG_SLOT_ILLEGAL)
		atomic_fetch_add(&r->illegal[round][step], 1);
	else if (rc == DG_SLOT_STALE)
		atomic_fetch_add(&r->stale[round][step], 1);
}

/* Every thread tries every step of the happy path at the same moment. */
static void *
s_race_steps(void *arg)
{
	struct race *r = arg;

	for (int round = 0; round < RACE_ROUNDS; round++) {
		pthread_barrier_wait(&r->go);
		dg_extent_t ext = r->ext;
		for (int step = 0; step < 4; step++) {
			int from = DG_SLOT_RESERVED + step;
			int to = step == 3 ? DG_SLOT_FREE : from + 1;
			s_tally(r, round, step,
			    dg_pool_transition(r->pool, &ext, from, to));
			pthread_barrier_wait(&r->go);
		}
	}
	return NULL;
}

static void
test_race_one_winner_per_step(void **state)
{
	(void)state;
	static struct race r;
	pthread_t th[NTHREADS];

	memset(&r, 0, sizeof r);
	r.pool = s_pool(16 * 64, 64);
	pthread_barrier_init(&r.go, NULL, NTHREADS + 1);
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, s_race_steps,
		    &r), 0);
	for (int round = 0; round < RACE_ROUNDS; round++) {
		r.ext = s_reserve(r.pool, 1 + (uint64_t)(round % 3) * 64);
		pthread_barrier_wait(&r.go);
		for (int step = 0; step < 4; step++)
			pthread_barrier_wait(&r.go);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&r.go);

	for (int round = 0; round < RACE_ROUNDS; round++) {
		for (int step = 0; step < 4; step++) {
			assert_int_equal(r.ok[round][step], 1);
			/* Losers of the last step find it freed: stale.
			 * Before that they find it moved on: illegal. */
			assert_int_equal(step == 3 ? r.stale[round][step] :
			    r.illegal[round][step], NTHREADS - 1);
		}
	}
	dg_pool_stats_t st = s_stats(r.pool);
	assert_int_equal(st.freed, RACE_ROUNDS);
	assert_int_equal(st.slots_free, 16);
	assert_int_equal(st.refused_illegal, 3 * RACE_ROUNDS * (NTHREADS - 1));
	assert_int_equal(st.refused_stale, RACE_ROUNDS * (NTHREADS - 1));
	dg_pool_destroy(&r.pool);
}

struct racer {
	struct race *r;
	int id;
};

/* Half the threads free the extent while the other half push it along
 * the happy path: it is freed exactly once whatever state it is in. */
static void *
s_race_free_or_move(void *arg)
{
	struct racer *me = arg;
	struct race *r = me->r;

	for (int round = 0; round < RACE_ROUNDS; round++) {
		pthread_barrier_wait(&r->go);
		dg_extent_t ext = r->ext;
		if (me->id % 2 == 0) {
			dg_slot_rc_t rc = dg_pool_free(r->pool, &ext);
			if (rc == DG_SLOT_OK)
				atomic_fetch_add(&r->free_ok[round], 1);
			else if (rc == DG_SLOT_STALE)
				atomic_fetch_add(&r->free_stale[round], 1);
		} else {
			for (int s = r->start[round]; s < DG_SLOT_IN_USE; s++)
				if (dg_pool_transition(r->pool, &ext, s,
				    s + 1) == DG_SLOT_OK)
					atomic_fetch_add(&r->moved[round], 1);
		}
		pthread_barrier_wait(&r->go);
	}
	return NULL;
}

static void
test_race_free(void **state)
{
	(void)state;
	static struct race r;
	pthread_t th[NTHREADS];
	struct racer who[NTHREADS];

	memset(&r, 0, sizeof r);
	r.pool = s_pool(16 * 64, 64);
	pthread_barrier_init(&r.go, NULL, NTHREADS + 1);
	for (int i = 0; i < NTHREADS; i++) {
		who[i] = (struct racer){ &r, i };
		assert_int_equal(pthread_create(&th[i], NULL,
		    s_race_free_or_move, &who[i]), 0);
	}
	for (int round = 0; round < RACE_ROUNDS; round++) {
		r.start[round] = DG_SLOT_RESERVED + round % 4;
		r.ext = s_reserve(r.pool, 64 * (1 + (uint64_t)(round % 16)));
		s_walk(r.pool, &r.ext, r.start[round]);
		pthread_barrier_wait(&r.go);
		pthread_barrier_wait(&r.go);
		/* Freed, and its slots back, before anyone else reserves. */
		assert_int_equal(dg_pool_state(r.pool, &r.ext),
		    DG_SLOT_STALE);
		assert_int_equal(s_stats(r.pool).slots_free, 16);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&r.go);

	int frees = NTHREADS / 2;
	for (int round = 0; round < RACE_ROUNDS; round++) {
		assert_int_equal(r.free_ok[round], 1);
		assert_int_equal(r.free_stale[round], frees - 1);
		/* Each forward step is taken at most once. */
		assert_true(r.moved[round] <=
		    DG_SLOT_IN_USE - r.start[round]);
	}
	dg_pool_stats_t st = s_stats(r.pool);
	assert_int_equal(st.reserved, RACE_ROUNDS);
	assert_int_equal(st.freed, RACE_ROUNDS);
	assert_int_equal(st.slots_free, 16);
	for (int k = 0; k < DG_SLOT_NSTATES; k++)
		assert_int_equal(st.extents[k], 0);
	dg_pool_destroy(&r.pool);
}

/* Rooms coming and going on every thread: no two live extents overlap
 * (each checks its own pattern before letting go), and at the end every
 * slot is back. */
#define CHURN_SLOTS     64
#define CHURN_SLOT_SIZE 256
#define CHURN_ITERS     400
#define CHURN_HELD      3

struct churner {
	dg_pool_t *pool;
	unsigned seed;
	int id;
	int nospace;
	bool ok;
};

static void *
s_churn(void *arg)
{
	struct churner *me = arg;
	dg_extent_t held[CHURN_HELD];
	bool live[CHURN_HELD] = { false };

	me->ok = true;
	for (int it = 0; it < CHURN_ITERS + CHURN_HELD; it++) {
		int k = it < CHURN_ITERS ? (int)(rand_r(&me->seed) % CHURN_HELD) :
		    it - CHURN_ITERS;
		dg_extent_t *e = &held[k];
		unsigned tag = (unsigned)(me->id * 1000 + k);
		if (!live[k]) {
			if (it >= CHURN_ITERS)
				continue;
			uint64_t bytes = 1 + rand_r(&me->seed) %
			    (4 * CHURN_SLOT_SIZE);
			dg_slot_rc_t rc = dg_pool_reserve(me->pool, bytes, e);
			if (rc == DG_SLOT_NOSPACE) {
				me->nospace++;
				continue;
			}
			if (rc != DG_SLOT_OK) {
				me->ok = false;
				continue;
			}
			s_fill(dg_pool_ptr(me->pool, e), e->nslots *
			    CHURN_SLOT_SIZE, tag);
			live[k] = true;
			continue;
		}
		int st = dg_pool_state(me->pool, e);
		if (st < DG_SLOT_RESERVED ||
		    !s_intact(dg_pool_ptr(me->pool, e),
		    e->nslots * CHURN_SLOT_SIZE, tag))
			me->ok = false;
		dg_slot_rc_t rc;
		if (it >= CHURN_ITERS || st == DG_SLOT_IN_USE ||
		    rand_r(&me->seed) % 4 == 0) {
			rc = rand_r(&me->seed) % 2 ? dg_pool_free(me->pool, e) :
			    dg_pool_transition(me->pool, e, st, DG_SLOT_FREE);
			live[k] = false;
		} else
			rc = dg_pool_transition(me->pool, e, st, st + 1);
		if (rc != DG_SLOT_OK)
			me->ok = false;
	}
	return NULL;
}

static void
test_churn(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool(CHURN_SLOTS * CHURN_SLOT_SIZE,
	    CHURN_SLOT_SIZE);
	pthread_t th[NTHREADS];
	struct churner who[NTHREADS];

	for (int i = 0; i < NTHREADS; i++) {
		who[i] = (struct churner){ .pool = pool, .seed = 77u + (unsigned)i,
		    .id = i };
		assert_int_equal(pthread_create(&th[i], NULL, s_churn,
		    &who[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		assert_true(who[i].ok);
	}
	dg_pool_stats_t st = s_stats(pool);
	assert_int_equal(st.slots_free, st.slots);
	assert_int_equal(st.reserved, st.freed);
	assert_true(st.reserved > NTHREADS * CHURN_ITERS / 4);
	assert_int_equal(st.refused_illegal, 0);
	assert_int_equal(st.refused_stale, 0);
	for (int k = 0; k < DG_SLOT_NSTATES; k++)
		assert_int_equal(st.extents[k], 0);
	/* No leak of fragments either: the whole pool in one piece. */
	dg_extent_t all = s_reserve(pool, CHURN_SLOTS * CHURN_SLOT_SIZE);
	assert_int_equal(dg_pool_free(pool, &all), DG_SLOT_OK);
	dg_pool_destroy(&pool);
}

/* ---- scale ------------------------------------------------------------- */

#define ROOMS           10000
#define ROOM_THREADS    4

struct rooms {
	dg_pool_t *pool;
	dg_extent_t *ext;
	int first, n;
	bool ok;
};

static void *
s_rooms(void *arg)
{
	struct rooms *me = arg;

	me->ok = true;
	for (int i = me->first; i < me->first + me->n; i++) {
		if (dg_pool_reserve(me->pool, 4096, &me->ext[i]) != DG_SLOT_OK) {
			me->ok = false;
			continue;
		}
		uint8_t *p = dg_pool_ptr(me->pool, &me->ext[i]);
		p[0] = (uint8_t)i;
		p[4095] = (uint8_t)(i >> 8);
	}
	return NULL;
}

static void
test_ten_thousand_rooms(void **state)
{
	(void)state;
	dg_pool_t *pool = s_pool((size_t)ROOMS * 4096, 4096);
	dg_extent_t *ext = calloc(ROOMS, sizeof *ext);
	bool *seen = calloc(ROOMS, sizeof *seen);
	pthread_t th[ROOM_THREADS];
	struct rooms who[ROOM_THREADS];
	assert_non_null(ext);
	assert_non_null(seen);

	for (int i = 0; i < ROOM_THREADS; i++) {
		who[i] = (struct rooms){ pool, ext, i * (ROOMS / ROOM_THREADS),
		    ROOMS / ROOM_THREADS, false };
		assert_int_equal(pthread_create(&th[i], NULL, s_rooms,
		    &who[i]), 0);
	}
	for (int i = 0; i < ROOM_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_true(who[i].ok);
	}
	/* All live at once, each on its own slot, with its own bytes. */
	for (int i = 0; i < ROOMS; i++) {
		assert_false(seen[ext[i].slot]);
		seen[ext[i].slot] = true;
		uint8_t *p = dg_pool_ptr(pool, &ext[i]);
		assert_int_equal(p[0], (uint8_t)i);
		assert_int_equal(p[4095], (uint8_t)(i >> 8));
		if (i % 2)
			s_walk(pool, &ext[i], DG_SLOT_FILLING);
	}
	dg_extent_t more;
	assert_int_equal(dg_pool_reserve(pool, 1, &more), DG_SLOT_NOSPACE);
	dg_pool_stats_t st = s_stats(pool);
	assert_int_equal(st.slots_free, 0);
	assert_int_equal(st.extents[DG_SLOT_RESERVED], ROOMS / 2);
	assert_int_equal(st.extents[DG_SLOT_FILLING], ROOMS / 2);

	for (int i = 0; i < ROOMS; i++)
		assert_int_equal(dg_pool_free(pool, &ext[i]), DG_SLOT_OK);
	st = s_stats(pool);
	assert_int_equal(st.slots_free, ROOMS);
	assert_int_equal(st.reserved, ROOMS);
	assert_int_equal(st.freed, ROOMS);
	for (int k = 0; k < DG_SLOT_NSTATES; k++)
		assert_int_equal(st.extents[k], 0);
	more = s_reserve(pool, (uint64_t)ROOMS * 4096);
	assert_int_equal(dg_pool_free(pool, &more), DG_SLOT_OK);
	free(ext);
	free(seen);
	dg_pool_destroy(&pool);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_geometry),
		cmocka_unit_test(test_new_refuses_absurd),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_happy_path),
		cmocka_unit_test(test_early_free),
		cmocka_unit_test(test_illegal_table),
		cmocka_unit_test(test_stale_after_reuse),
		cmocka_unit_test(test_stale_inside_other_extent),
		cmocka_unit_test(test_double_free),
		cmocka_unit_test(test_invalid_extents),
		cmocka_unit_test(test_reserve_sizes),
		cmocka_unit_test(test_fragmentation),
		cmocka_unit_test(test_bytes_survive),
		cmocka_unit_test(test_contains),
		cmocka_unit_test(test_refusals_logged_sparingly),
		cmocka_unit_test(test_race_one_winner_per_step),
		cmocka_unit_test(test_race_free),
		cmocka_unit_test(test_churn),
		cmocka_unit_test(test_ten_thousand_rooms),
	};
	return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
