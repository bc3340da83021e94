/*  xfer_wedge.c: telling a wedged provider from a process that was not
 *  running.
 *
 *  Only some providers can wedge (libfabric 1.17's shm: spinlocks in
 *  shared memory, and writes completed in posting order); only those
 *  are ever called wedged, here and by the orphan check.  And a
 *  progress thread that did not turn for a second proves nothing when
 *  the whole process did not run either: SIGSTOP, a VM pause, a
 *  debugger, a starved machine.  The watchdog ticks every few ms, so a
 *  gap in its own ticks is such a pause; it is counted out of every
 *  delay the engine judges, and a stall counts only if the stuck thread
 *  burns CPU, as a provider spinning on a lock does and a thread that is
 *  not given the CPU does not.  */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "threads.h"
#include "xfer_impl.h"

/* Providers that can wedge: a call that never returns, or writes that
 * never complete, while this process runs. */
static const char *const s_can_wedge[] = { "shm" };

bool
dg_xfer_provider_can_wedge(const char *provider)
{
	for (size_t i = 0; i < sizeof s_can_wedge / sizeof s_can_wedge[0];
	    i++)
		if (strcmp(provider, s_can_wedge[i]) == 0)
			return true;
	return false;
}

/* A gap this long between two watchdog ticks (each 20 ms apart) means the
 * whole process did not run. */
#define PAUSE_MS        200
/* Stalled this long, the progress thread's CPU clock starts to be
 * watched; stalled WEDGED_MS while burning at least 1/SPIN_SHARE of the
 * time on it, it is spinning in the provider: wedged.  A stall that
 * burns nothing is a thread not given the CPU (or blocked): called
 * wedged only after BLOCKED_WEDGED_MS, which starvation does not last. */
#define SPIN_SAMPLE_MS   100
#define WEDGED_MS        1000
#define SPIN_SHARE       4
#define BLOCKED_WEDGED_MS 10000

int64_t
dg_xfer_run_ms(dg_xfer_t *self, int64_t now)
{
	/* The watchdog adds a pause before it stores its tick: a fresh tick
	 * means every pause before it is counted. */
	if (now - atomic_load(&self->tick) > PAUSE_MS)
		return -1;
	return now - atomic_load(&self->paused);
}

int64_t
dg_xfer_run_clock(dg_xfer_t *self, int64_t now)
{
	return now - atomic_load(&self->paused);
}

void
dg_xfer_watch_init(dg_xfer_t *self, dg_xfer_watch_t *w)
{
	memset(w, 0, sizeof *w);
	w->last_tick = dg_xfer_now_ms();
	w->has_cpu = pthread_getcpuclockid(self->thread, &w->cpu) == 0;
}

void
dg_xfer_watch_resume(dg_xfer_t *self, dg_xfer_watch_t *w, int64_t now)
{
	/* The rest's length is no pause: the progress thread times its
	 * own blocked wait instead (dg_xfer_rest_paused), and nothing
	 * was open to judge meanwhile. */
	w->last_tick = now;
	w->resumed = now;
	w->spin_from = 0;
	w->warned = false;
	atomic_store(&self->tick, now);
}

void
dg_xfer_rest_paused(dg_xfer_t *self, int64_t waited, int64_t planned)
{
	int64_t gap = waited - planned;

	if (gap <= PAUSE_MS)
		return;
	atomic_fetch_add(&self->paused, gap);
	dg_log_warn("xfer: this process was paused for %lld ms or more "
	    "(stopped, or not given the CPU); not a wedge", (long long)gap);
}

void
dg_xfer_watch_pause(dg_xfer_t *self, dg_xfer_watch_t *w, int64_t now)
{
	int64_t gap = now - w->last_tick;

	w->last_tick = now;
	if (gap > PAUSE_MS) {
		/* The tick's own wait was running time. */
		atomic_fetch_add(&self->paused, gap - DG_XFER_TICK_MS);
		w->resumed = now;
		w->spin_from = 0;
		dg_log_warn("xfer: this process was paused for %lld ms "
		    "(stopped, or not given the CPU); not a wedge",
		    (long long)gap);
	}
	atomic_store(&self->tick, now);
}

/* The progress thread's CPU time, or -1 if it cannot be read. */
static int64_t
s_cpu_ms(const dg_xfer_watch_t *w)
{
	struct timespec ts;

	if (!w->has_cpu || clock_gettime(w->cpu, &ts) != 0)
		return -1;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_wedged(dg_xfer_t *self, int64_t stuck, int64_t burned, int64_t window)
{
	atomic_store(&self->wedged, true);
	dg_thread_mark(self->progress_thread, DG_THREAD_BLOCKED);
	dg_log_error("xfer: the progress thread has been stuck in the %s "
	    "provider for %lld ms of this process's running time, using "
	    "%lld ms of CPU in the last %lld (a peer that died holding a "
	    "shared lock?); failing transfers at their deadlines: restart "
	    "this daemon", self->provider, (long long)stuck,
	    (long long)burned, (long long)window);
}

int64_t
dg_xfer_watch_stuck(dg_xfer_t *self, dg_xfer_watch_t *w, int64_t now)
{
	int64_t since = atomic_load(&self->last_loop);

	if (since < w->resumed)
		since = w->resumed;
	int64_t stuck = now > since ? now - since : 0;
	if (!self->can_wedge || atomic_load(&self->wedged))
		return stuck;
	if (stuck < SPIN_SAMPLE_MS) {
		w->spin_from = 0;
		w->warned = false;
		return stuck;
	}
	int64_t cpu = s_cpu_ms(w);
	if (!w->spin_from) {
		w->spin_from = now;
		w->spin_cpu = cpu;
		return stuck;
	}
	if (stuck <= WEDGED_MS)
		return stuck;
	int64_t window = now - w->spin_from;
	int64_t burned = cpu >= 0 && w->spin_cpu >= 0 ? cpu - w->spin_cpu :
	    window; /* no CPU clock: the wall clock alone */
	if (burned * SPIN_SHARE >= window || stuck > BLOCKED_WEDGED_MS) {
		s_wedged(self, stuck, burned, window);
	} else if (!w->warned) {
		w->warned = true;
		dg_log_warn("xfer: the progress thread has not turned for %lld "
		    "ms but used only %lld ms of CPU in the last %lld: not "
		    "given the CPU, or blocked; not a spinning provider",
		    (long long)stuck, (long long)burned, (long long)window);
	}
	return stuck;
}
