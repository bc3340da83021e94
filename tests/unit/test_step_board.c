/*  test_step_board.c: the step board (lib/step_board.c): the latest word
 *  per room survives, earlier ones are not repeated, a take empties it,
 *  and four threads writing while the loop takes lose no room's last
 *  word.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <string.h>

#include "step_board.h"

#define ROOMS 40
#define STEPS 2000

typedef struct {
	int64_t step[ROOMS + 1], steps[ROOMS + 1], suspended[ROOMS + 1];
	size_t calls;
} s_seen_t;

static void
s_take(void *arg, uint64_t room, int64_t step, int64_t steps,
    int64_t suspended)
{
	s_seen_t *seen = arg;

	seen->suspended[room] = suspended;
	assert_true(room >= 1 && room <= ROOMS);
	/* Words come in order: a room never goes back. */
	assert_true(step >= seen->step[room]);
	seen->step[room] = step;
	seen->steps[room] = steps;
	seen->calls++;
}

static void
test_latest_word_per_room(void **state)
{
	dg_step_board_t *b = dg_step_board_new();
	s_seen_t seen;
	(void)state;

	memset(&seen, 0, sizeof seen);
	assert_non_null(b);
	assert_int_equal(dg_step_board_take(b, s_take, &seen), 0);
	for (int k = 1; k <= 5; k++)
		assert_int_equal(dg_step_board_set(b, 7, k, 5), 0);
	/* More rooms than the first array holds: it grows. */
	for (uint64_t r = 1; r <= ROOMS; r++)
		if (r != 7)
			assert_int_equal(dg_step_board_set(b, r, 1, 9), 0);
	assert_int_equal(dg_step_board_take(b, s_take, &seen), ROOMS);
	assert_int_equal(seen.step[7], 5);
	assert_int_equal(seen.steps[7], 5);
	assert_int_equal(seen.step[1], 1);
	assert_int_equal(seen.suspended[7], 0);
	assert_int_equal(dg_step_board_take(b, s_take, &seen), 0);
	/* A suspension survives a later step word, and goes with the take. */
	assert_int_equal(dg_step_board_suspend(b, 8, 3), 0);
	assert_int_equal(dg_step_board_set(b, 8, 4, 5), 0);
	assert_int_equal(dg_step_board_take(b, s_take, &seen), 1);
	assert_int_equal(seen.suspended[8], 3);
	assert_int_equal(seen.step[8], 4);
	dg_step_board_destroy(&b);
	assert_null(b);
	dg_step_board_destroy(&b);
}

typedef struct {
	dg_step_board_t *b;
	uint64_t first;
} s_writer_t;

static void *
s_write(void *arg)
{
	s_writer_t *w = arg;

	for (int64_t k = 1; k <= STEPS; k++)
		for (uint64_t r = w->first; r < w->first + ROOMS / 4; r++)
			assert_int_equal(dg_step_board_set(w->b, r, k, STEPS),
			    0);
	return NULL;
}

static void
test_threads_lose_no_last_word(void **state)
{
	dg_step_board_t *b = dg_step_board_new();
	s_writer_t w[4];
	pthread_t t[4];
	s_seen_t seen;
	(void)state;

	memset(&seen, 0, sizeof seen);
	for (int i = 0; i < 4; i++) {
		w[i] = (s_writer_t){ b, 1 + (uint64_t)i * ROOMS / 4 };
		assert_int_equal(pthread_create(&t[i], NULL, s_write, &w[i]),
		    0);
	}
	for (int i = 0; i < 100; i++)
		dg_step_board_take(b, s_take, &seen);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	dg_step_board_take(b, s_take, &seen);
	for (uint64_t r = 1; r <= ROOMS; r++) {
		assert_int_equal(seen.step[r], STEPS);
		assert_int_equal(seen.steps[r], STEPS);
	}
	/* Coalesced: far fewer calls than words written. */
	assert_true(seen.calls < (size_t)ROOMS * STEPS);
	dg_step_board_destroy(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_latest_word_per_room),
		cmocka_unit_test(test_threads_lose_no_last_word),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
