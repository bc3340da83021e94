/*  threads.c: the thread registry; see threads.h.
 *
 *  A fixed array of slots.  A thread claims a free slot by a
 *  compare-and-swap on its tid (0: free) after writing its name, so a
 *  reader that sees the tid sees the name.  Everything else in a slot is
 *  written only by its own thread (or, for the state, by a watchdog) and
 *  read by the snapshot, with relaxed atomics: a snapshot is a picture,
 *  not a transaction, and it must never slow the threads it looks at.  */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "threads.h"

struct dg_thread {
	atomic_int tid;                 /* 0: free */
	char name[DG_THREAD_NAME];
	atomic_int state;
	atomic_uint_least64_t room;
	atomic_int_least64_t progress_ms;
};

static struct dg_thread s_slots[DG_THREADS_MAX];
static __thread struct dg_thread *s_self;

static int64_t
s_coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

dg_thread_t *
dg_thread_register(const char *name)
{
	int tid = (int)syscall(SYS_gettid);

	char comm[DG_THREAD_NAME];

	if (s_self)
		return s_self;
	snprintf(comm, sizeof comm, "%s", name);
	pthread_setname_np(pthread_self(), comm);
	for (int i = 0; i < DG_THREADS_MAX; i++) {
		struct dg_thread *t = &s_slots[i];
		if (atomic_load(&t->tid) != 0)
			continue;
		/* Claim with a placeholder so that nobody reads a half
		 * written name, then publish the real tid. */
		int zero = 0;
		if (!atomic_compare_exchange_strong(&t->tid, &zero, -1))
			continue;
		memcpy(t->name, comm, sizeof t->name);
		atomic_store_explicit(&t->state, DG_THREAD_IDLE,
		    memory_order_relaxed);
		atomic_store_explicit(&t->room, 0, memory_order_relaxed);
		atomic_store_explicit(&t->progress_ms, s_coarse_ms(),
		    memory_order_relaxed);
		atomic_store(&t->tid, tid);
		s_self = t;
		return t;
	}
	return NULL;
}

void
dg_thread_unregister(void)
{
	if (!s_self)
		return;
	atomic_store(&s_self->tid, 0);
	s_self = NULL;
}

void
dg_thread_set(dg_thread_state_t state, uint64_t room)
{
	struct dg_thread *t = s_self;

	if (!t)
		return;
	atomic_store_explicit(&t->state, (int)state, memory_order_relaxed);
	atomic_store_explicit(&t->room, room, memory_order_relaxed);
	atomic_store_explicit(&t->progress_ms, s_coarse_ms(),
	    memory_order_relaxed);
}

void
dg_thread_progress(void)
{
	if (s_self)
		atomic_store_explicit(&s_self->progress_ms, s_coarse_ms(),
		    memory_order_relaxed);
}

void
dg_thread_mark(dg_thread_t *thread, dg_thread_state_t state)
{
	if (thread)
		atomic_store_explicit(&thread->state, (int)state,
		    memory_order_relaxed);
}

const char *
dg_thread_state_name(dg_thread_state_t state)
{
	switch (state) {
	case DG_THREAD_IDLE: return "idle";
	case DG_THREAD_BUSY: return "busy";
	case DG_THREAD_BLOCKED: return "blocked";
	}
	return "?";
}

static const char *
s_kernel_state(char c)
{
	switch (c) {
	case 'R': return "running";
	case 'S': return "sleeping";
	case 'D': return "disk-wait";
	case 'T': return "stopped";
	case 't': return "traced";
	case 'Z': return "zombie";
	case 'X': return "dead";
	case 'I': return "idle";
	}
	return "unknown";
}

/* comm, state letter and CPU time of one task; false when it is gone. */
static bool
s_read_task(int tid, dg_thread_info_t *info)
{
	char path[64], buf[1024];
	FILE *f;

	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	if (!(f = fopen(path, "r")))
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "tid (comm) S ...": comm may hold spaces and parentheses, so
	 * it ends at the last ')'. */
	char *open = strchr(buf, '('), *close = strrchr(buf, ')');
	if (!open || !close || close < open || close[1] != ' ')
		return false;
	size_t len = (size_t)(close - open - 1);
	if (len >= sizeof info->name)
		len = sizeof info->name - 1;
	memcpy(info->name, open + 1, len);
	info->name[len] = '\0';
	snprintf(info->kernel, sizeof info->kernel, "%s",
	    s_kernel_state(close[2]));
	/* Fields after the state: ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime. */
	unsigned long long utime = 0, stime = 0;
	if (sscanf(close + 3, "%*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu", &utime, &stime) != 2)
		utime = stime = 0;
	long hz = sysconf(_SC_CLK_TCK);
	info->cpu_us = (utime + stime) * 1000000ULL /
	    (unsigned long long)(hz > 0 ? hz : 100);
	/* schedstat counts nanoseconds on the CPU, where the kernel keeps
	 * it: far finer than stat's clock ticks (10 ms). */
	snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
	if ((f = fopen(path, "r"))) {
		unsigned long long ns;
		if (fscanf(f, "%llu", &ns) == 1 && ns / 1000 >= info->cpu_us)
			info->cpu_us = ns / 1000;
		fclose(f);
	}
	return true;
}

static int
s_cmp_tid(const void *a, const void *b)
{
	const dg_thread_info_t *x = a, *y = b;
	return (x->tid > y->tid) - (x->tid < y->tid);
}

size_t
dg_threads_snapshot(dg_thread_info_t *out, size_t max)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *de;
	size_t n = 0;
	int64_t now = s_coarse_ms();

	if (!dir)
		return 0;
	while (n < max && (de = readdir(dir))) {
		int tid = atoi(de->d_name);
		if (tid <= 0)
			continue;
		dg_thread_info_t *info = &out[n];
		memset(info, 0, sizeof *info);
		info->tid = tid;
		if (!s_read_task(tid, info))
			continue;       /* it ended meanwhile */
		snprintf(info->state, sizeof info->state, "%s", info->kernel);
		info->progress_age_ms = -1;
		for (int i = 0; i < DG_THREADS_MAX; i++) {
			struct dg_thread *t = &s_slots[i];
			if (atomic_load(&t->tid) != tid)
				continue;
			info->registered = true;
			info->code = (dg_thread_state_t)atomic_load_explicit(
			    &t->state, memory_order_relaxed);
			snprintf(info->name, sizeof info->name, "%s", t->name);
			snprintf(info->state, sizeof info->state, "%s",
			    dg_thread_state_name((dg_thread_state_t)
			    atomic_load_explicit(&t->state,
			    memory_order_relaxed)));
			info->room = atomic_load_explicit(&t->room,
			    memory_order_relaxed);
			int64_t age = now - atomic_load_explicit(
			    &t->progress_ms, memory_order_relaxed);
			info->progress_age_ms = age > 0 ? age : 0;
			break;
		}
		n++;
	}
	closedir(dir);
	qsort(out, n, sizeof *out, s_cmp_tid);
	return n;
}

int64_t
dg_threads_stalled_ms(const char *prefix)
{
	int64_t now = s_coarse_ms(), worst = 0;
	size_t plen = strlen(prefix);

	for (int i = 0; i < DG_THREADS_MAX; i++) {
		struct dg_thread *t = &s_slots[i];
		if (atomic_load(&t->tid) <= 0 ||
		    strncmp(t->name, prefix, plen) != 0 ||
		    atomic_load_explicit(&t->state, memory_order_relaxed) !=
		    DG_THREAD_BUSY)
			continue;
		int64_t age = now - atomic_load_explicit(&t->progress_ms,
		    memory_order_relaxed);
		if (age > worst)
			worst = age;
	}
	return worst;
}
