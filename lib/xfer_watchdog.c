/*  xfer_watchdog.c: transfers that outlive their deadlines, and a
 *  progress thread that stops moving.
 *
 *  A watchdog thread enforces deadlines even when the progress thread
 *  cannot: libfabric 1.17's shm provider takes spinlocks that live in
 *  the peers' shared memory, and a peer killed while holding one leaves
 *  our fi_cq_read() spinning for ever.  The watchdog fails every open
 *  receive at its deadline and every send shortly after its own, and,
 *  for a provider that can wedge, marks the engine wedged (which stall
 *  counts: xfer_wedge.c); the daemon then restarts in place.  Each
 *  transfer is claimed exactly once, by whichever thread ends it first,
 *  so there is still exactly one event per transfer.  While the progress
 *  thread is blocked with nothing open the watchdog rests as well: an
 *  idle daemon would otherwise wake 50 times a second for nothing.  */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "threads.h"
#include "xfer.h"
#include "xfer_impl.h"

void
dg_xfer_pend_unlink(s_pend_t *p)
{
	*p->pprev = p->next;
	if (p->next)
		p->next->pprev = p->pprev;
	p->next = NULL;
	p->pprev = NULL;
}

/* Take the send off the watchdog's list; false when the watchdog already
 * ended it (and sent its event). */
bool
dg_xfer_claim(dg_xfer_t *self, s_pend_t *p)
{
	if (!p)
		return false;
	pthread_mutex_lock(&self->pend_lock);
	bool mine = !p->late;
	if (mine)
		dg_xfer_pend_unlink(p);
	pthread_mutex_unlock(&self->pend_lock);
	free(p);
	return mine;
}

/* Sends end at their deadlines on the progress thread, which can still
 * free them; the watchdog's own check only backs this one up. */
void
dg_xfer_check_deadlines(dg_xfer_t *self, int64_t now)
{
	s_send_t *next;
	int64_t due = INT64_MAX;

	/* A walk of every open send only when the earliest deadline has
	 * come: with a thousand open, a walk every 5 ms was a fifth of the
	 * progress thread's time. */
	if (now < self->sends_due)
		return;
	for (s_send_t *tx = self->sends; tx; tx = next) {
		next = tx->next;
		if (now < tx->deadline) {
			if (tx->deadline < due)
				due = tx->deadline;
			continue;
		}
		if (!*tx->error)
			snprintf(tx->error, sizeof tx->error, "peer %s",
			    tx->peer ? tx->peer->name[0] : tx->map->name);
		size_t n = strlen(tx->error);
		snprintf(tx->error + n, sizeof tx->error - n, ": timed out "
		    "after %lld ms with %llu of %llu bytes left",
		    (long long)(now - tx->started),
		    (unsigned long long)(tx->bytes_total - tx->bytes_done),
		    (unsigned long long)tx->bytes_total);
		dg_log_warn("xfer: room=%llu send failed: %s",
		    (unsigned long long)tx->room, tx->error);
		dg_xfer_send_finish(self, tx, DG_XFER_FAILED);
	}
	self->sends_due = due;
}

/* libfabric 1.17's shm provider completes a sender's operations in the
 * order it posted them: a write to a peer that stopped making progress
 * (frozen, or no longer reading its queue) never completes, and every
 * later completion, to healthy peers too, waits behind it for ever.  An
 * op of an ended send still held past ORPHAN_WEDGE_MS means exactly
 * that: call the engine wedged, so that the daemon restarts in place as
 * it does for a peer that died holding a lock.  Held counts only while
 * this process ran: stopped, it could not read completions either. */
#define ORPHAN_WEDGE_MS 3000

void
dg_xfer_check_orphans(dg_xfer_t *self, int64_t now)
{
	if (!self->orphans || !self->can_wedge || atomic_load(&self->wedged))
		return;
	int64_t run = dg_xfer_run_ms(self, now);
	if (run < 0)
		return;
	int64_t oldest = run;
	for (s_op_t *op = self->orphans; op; op = op->next)
		if (op->orphaned_at < oldest)
			oldest = op->orphaned_at;
	if (run - oldest < ORPHAN_WEDGE_MS)
		return;
	atomic_store(&self->wedged, true);
	dg_log_error("xfer: a write to a peer that stopped making progress "
	    "has been outstanding for %lld ms, and the %s provider completes "
	    "every later write behind it; restart this daemon",
	    (long long)(run - oldest), self->provider);
}

/* Receives end at their deadline here, whatever the progress thread is
 * doing. */
static void
s_check_recv_deadlines(dg_xfer_t *self, int64_t now)
{
	pthread_mutex_lock(&self->rx_lock);
	for (uint32_t i = 0; i < self->rx_hi; i++) {
		s_recv_t *rx = &self->recvs[i];
		if (!rx->active || now < rx->deadline)
			continue;
		char reason[200];
		snprintf(reason, sizeof reason, "timed out after %lld ms with "
		    "%llu of %llu bytes left (%u of %u chunks arrived)",
		    (long long)(now - rx->started),
		    (unsigned long long)(rx->bytes_total - rx->bytes),
		    (unsigned long long)rx->bytes_total, rx->nrecv,
		    rx->nchunks);
		dg_log_warn("xfer: room=%llu phase=%d receive failed: %s",
		    (unsigned long long)rx->room, rx->phase, reason);
		dg_xfer_recv_finish(self, i, DG_XFER_FAILED, reason);
	}
	pthread_mutex_unlock(&self->rx_lock);
}

/* Sends the progress thread did not end by their deadline (plus a grace
 * to let it): end them here. */
#define WATCHDOG_GRACE_MS 500

static void
s_check_send_deadlines(dg_xfer_t *self, int64_t now, int64_t stuck)
{
	for (;;) {
		s_pend_t late = { 0 };
		bool found = false;
		pthread_mutex_lock(&self->pend_lock);
		for (s_pend_t *p = self->pend; p; p = p->next) {
			if (now >= p->deadline + WATCHDOG_GRACE_MS) {
				dg_xfer_pend_unlink(p);
				p->late = true; /* its send frees it */
				late = *p;
				found = true;
				break;
			}
		}
		pthread_mutex_unlock(&self->pend_lock);
		if (!found)
			return;
		dg_xfer_event_t ev = {
			.dir = DG_XFER_SEND, .status = DG_XFER_FAILED,
			.id = late.id, .room = late.room,
			.phase = late.phase, .ms = now - late.started,
		};
		snprintf(ev.reason, sizeof ev.reason, "timed out after %lld "
		    "ms; the progress thread has been stuck in the fabric "
		    "provider for %lld ms", (long long)(now - late.started),
		    (long long)stuck);
		dg_log_warn("xfer: room=%llu send failed: %s",
		    (unsigned long long)late.room, ev.reason);
		pthread_mutex_lock(&self->st_lock);
		self->stats.sends_failed++;
		self->stats.sends_active--;
		pthread_mutex_unlock(&self->st_lock);
		dg_xfer_emit(self, &ev);
	}
}

/* Whether to rest: the progress thread is blocked with nothing open, so
 * there is no deadline to enforce and no provider call to watch.  It
 * kicks stop_fd when it leaves that wait and finds us resting; each
 * side stores its flag before it reads the other's, so one of the two
 * always sees the other. */
static bool
s_rest(dg_xfer_t *self)
{
	if (!atomic_load(&self->idle_blocked))
		return false;
	atomic_store(&self->watch_resting, true);
	if (atomic_load(&self->idle_blocked))
		return true;
	atomic_store(&self->watch_resting, false);
	return false;
}

void *
dg_xfer_watchdog_loop(void *arg)
{
	dg_xfer_t *self = arg;
	struct pollfd p = { .fd = self->stop_fd, .events = POLLIN };
	dg_xfer_watch_t w;

	dg_xfer_watch_init(self, &w);
	dg_thread_register("watchdog");
	while (!atomic_load(&self->stop)) {
		dg_thread_set(DG_THREAD_IDLE, 0);
		/* The tick, or a rest until the progress thread wakes; the
		 * stop fd wakes either early. */
		bool rest = s_rest(self);
		if (poll(&p, 1, rest ? -1 : DG_XFER_TICK_MS) > 0)
			dg_xfer_drain_fd(self->stop_fd);
		if (rest)
			atomic_store(&self->watch_resting, false);
		dg_thread_set(DG_THREAD_BUSY, 0);
		int64_t now = dg_xfer_now_ms();
		if (rest)
			dg_xfer_watch_resume(self, &w, now);
		dg_xfer_watch_pause(self, &w, now);
		s_check_recv_deadlines(self, now);
		int64_t stuck = dg_xfer_watch_stuck(self, &w, now);
		s_check_send_deadlines(self, now, stuck);
	}
	dg_thread_unregister();
	return NULL;
}
