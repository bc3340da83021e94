/*  test_threads.c: the thread registry: a registered thread shows its
 *  name, state, room and recent progress; a busy one has CPU time from
 *  the kernel; threads we did not register appear with the kernel's
 *  name and state; an unregistered thread is named by the kernel again.  */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "threads.h"

#define MAXT 256

static const dg_thread_info_t *
s_find(const dg_thread_info_t *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

/* The test and its thread take turns through `phase`: 1 registered and
 * spun, 2 go on, 3 idle, 4 go on, 5 unregistered, 6 finish. */
typedef struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int phase;
} s_ctl_t;

#define S_CTL_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 }

static void
s_set(s_ctl_t *c, int phase)
{
	pthread_mutex_lock(&c->lock);
	c->phase = phase;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Wait for `phase`, at most 10 s; false at the deadline. */
static bool
s_await(s_ctl_t *c, int phase)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&c->lock);
	while (c->phase != phase && rc == 0)
		rc = pthread_cond_timedwait(&c->cond, &c->lock, &until);
	bool ok = c->phase == phase;
	pthread_mutex_unlock(&c->lock);
	return ok;
}

static int64_t
s_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *
s_spinner(void *arg)
{
	s_ctl_t *c = arg;
	volatile uint64_t x = 0;

	assert_non_null(dg_thread_register("spinner"));
	dg_thread_set(DG_THREAD_BUSY, 42);
	/* 50 ms of CPU, counted by the kernel, not by the wall clock. */
	int64_t t0 = s_cpu_ns();
	while (s_cpu_ns() - t0 < 50 * 1000000)
		x++;
	s_set(c, 1);
	(void)s_await(c, 2);
	dg_thread_set(DG_THREAD_IDLE, 0);
	s_set(c, 3);
	(void)s_await(c, 4);
	dg_thread_unregister();
	s_set(c, 5);
	(void)s_await(c, 6);
	return NULL;
}

static void
s_wait(s_ctl_t *c, int phase)
{
	assert_true(s_await(c, phase));
}

static void
test_busy_idle_cpu(void **state)
{
	static dg_thread_info_t t[MAXT];
	s_ctl_t c = S_CTL_INIT;
	pthread_t th;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, s_spinner, &c), 0);
	s_wait(&c, 1);
	size_t n = dg_threads_snapshot(t, MAXT);
	const dg_thread_info_t *s = s_find(t, n, "spinner");
	assert_non_null(s);
	assert_true(s->registered);
	assert_string_equal(s->state, "busy");
	assert_int_equal(s->room, 42);
	assert_true(s->cpu_us >= 20000);        /* 50 ms spun; kernel's view */
	assert_true(s->progress_age_ms >= 0 && s->progress_age_ms < 5000);
	assert_true(s->kernel[0] != '\0');

	s_set(&c, 2);
	s_wait(&c, 3);
	n = dg_threads_snapshot(t, MAXT);
	s = s_find(t, n, "spinner");
	assert_non_null(s);
	assert_string_equal(s->state, "idle");
	assert_int_equal(s->room, 0);

	/* Unregistered: still listed (the task lives), named by the kernel
	 * (the name given at registration), with no progress of its own. */
	s_set(&c, 4);
	s_wait(&c, 5);
	n = dg_threads_snapshot(t, MAXT);
	s = s_find(t, n, "spinner");
	assert_non_null(s);
	assert_false(s->registered);
	assert_int_equal(s->progress_age_ms, -1);
	s_set(&c, 6);
	pthread_join(th, NULL);
}

static void
test_main_and_unregistered(void **state)
{
	static dg_thread_info_t t[MAXT];
	pthread_t th;
	s_ctl_t c = S_CTL_INIT;

	(void)state;
	/* Another thread, never registered, for the kernel's view. */
	assert_int_equal(pthread_create(&th, NULL, s_spinner, &c), 0);
	s_wait(&c, 1);
	assert_non_null(dg_thread_register("main"));
	dg_thread_set(DG_THREAD_BLOCKED, 7);
	size_t n = dg_threads_snapshot(t, MAXT);
	assert_true(n >= 2);
	/* tid order: the main thread (tid == pid) first. */
	assert_int_equal(t[0].tid, getpid());
	assert_string_equal(t[0].name, "main");
	assert_string_equal(t[0].state, "blocked");
	assert_int_equal(t[0].room, 7);
	/* dg_thread_mark changes another slot's state, not its room. */
	dg_thread_mark(dg_thread_register("main"), DG_THREAD_IDLE);
	n = dg_threads_snapshot(t, MAXT);
	assert_string_equal(t[0].state, "idle");
	assert_int_equal(t[0].room, 7);
	dg_thread_unregister();
	/* NULL handles and unregistered threads are harmless. */
	dg_thread_mark(NULL, DG_THREAD_BUSY);
	dg_thread_set(DG_THREAD_BUSY, 1);
	dg_thread_progress();
	n = dg_threads_snapshot(t, MAXT);
	assert_false(t[0].registered);
	assert_string_equal(t[0].state, t[0].kernel);
	s_set(&c, 2);
	s_wait(&c, 3);
	s_set(&c, 4);
	s_wait(&c, 5);
	s_set(&c, 6);
	pthread_join(th, NULL);
	/* A snapshot into a short array stops there. */
	assert_int_equal(dg_threads_snapshot(t, 1), 1);
	assert_string_equal(dg_thread_state_name(DG_THREAD_BUSY), "busy");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_busy_idle_cpu),
		cmocka_unit_test(test_main_and_unregistered),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
