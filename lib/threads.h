/*  threads.h: the thread registry, so an operator can see what each
 *  thread of a daemon is doing (`disagg threads NAME`, the console's
 *  Threads view).
 *
 *  Every thread we create registers a name ("main", "progress",
 *  "watchdog", "worker0"...) and then says, as it goes, whether it is
 *  idle, busy or blocked, on which room, and that it made progress.  Those
 *  updates sit on hot paths (the fabric progress loop, every batch of a
 *  worker), so they are a few relaxed atomic stores into the thread's own
 *  slot: no lock, no system call (the clock is CLOCK_MONOTONIC_COARSE,
 *  read from the vDSO).
 *
 *  A snapshot lists every task of the process from /proc/self/task, so
 *  threads we did not create (ZeroMQ's I/O and reaper threads, a
 *  provider's) appear too, with the kernel's view of them, and joins
 *  what the registered ones said.  CPU time comes from the kernel
 *  (schedstat, else utime + stime of stat).  */
#ifndef DG_THREADS_H
#define DG_THREADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	DG_THREAD_IDLE = 0,     /* waiting for work */
	DG_THREAD_BUSY,         /* working */
	DG_THREAD_BLOCKED       /* stuck where it should not be (a wedged
	                           provider call, a full queue...) */
} dg_thread_state_t;

/* Registered at once: every thread a daemon starts, with `workers` at
 * its bound (256) and the control, transfer and Python threads.  One
 * that finds no slot is not watched, and its daemon logs that. */
#define DG_THREADS_MAX 320
#define DG_THREAD_NAME 16       /* like the kernel's comm, NUL included */

typedef struct dg_thread dg_thread_t;

/* Register the calling thread as `name` (cut to 15 bytes, and given to
 * the kernel too, so ps and gdb show it).  Returns its slot, or NULL when
 * the registry is full: every call below accepts NULL and then does
 * nothing, so a thread works the same unregistered. */
dg_thread_t *dg_thread_register(const char *name);
/* Forget the calling thread (before it exits). */
void dg_thread_unregister(void);

/* The calling thread's state and current room (0: none); counts as
 * progress.  Cheap: call it on every change. */
void dg_thread_set(dg_thread_state_t state, uint64_t room);
/* The calling thread made progress. */
void dg_thread_progress(void);
/* Another thread's state, e.g. the watchdog marking the progress thread
 * blocked; not progress. */
void dg_thread_mark(dg_thread_t *thread, dg_thread_state_t state);

const char *dg_thread_state_name(dg_thread_state_t state);

typedef struct {
	int tid;
	char name[DG_THREAD_NAME];      /* registered name, else the comm */
	bool registered;
	dg_thread_state_t code;         /* when registered */
	char state[16];                 /* idle/busy/blocked; else the
	                                   kernel's: running, sleeping... */
	char kernel[16];                /* the kernel's state, always */
	uint64_t room;
	uint64_t cpu_us;
	int64_t progress_age_ms;        /* -1: not registered */
} dg_thread_info_t;

/* Every task of this process, in tid order (the main thread first).
 * Returns how many were written (at most max). */
size_t dg_threads_snapshot(dg_thread_info_t *out, size_t max);

/* The longest a busy registered thread whose name begins with `prefix`
 * has gone without progress, in ms (0 when none is busy).  From the
 * registry alone, without /proc: cheap enough for every heartbeat. */
int64_t dg_threads_stalled_ms(const char *prefix);

#endif
