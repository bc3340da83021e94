/*  xfer_progress.c: the progress thread, which owns every fabric call
 *  once the engine runs: it takes the caller's commands, posts each
 *  send's chunks, reads the CQ and carries every transfer to its one
 *  event.
 *
 *  Ops still owned by the provider when their transfer ends (failure,
 *  cancel, deadline) are orphaned, not freed: libfabric hands their
 *  context back later, or never for a dead peer, and they are freed then
 *  or when the engine closes.  */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

#include "log.h"
#include "threads.h"
#include "xfer.h"
#include "xfer_impl.h"

#define CQ_BATCH      64

/* ---- chunk arithmetic, shared by both sides ---------------------------- */

/* Tensor and byte range of chunk `c`. */
static size_t
s_chunk_at(size_t n, const uint32_t *first, const uint64_t *len,
    uint64_t chunk, uint32_t c, uint64_t *off, uint64_t *clen)
{
	size_t lo = 0, hi = n;

	/* Last tensor whose first chunk is <= c (zero-length tensors own
	 * no chunk, so skip ties forward). */
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (first[mid] <= c)
			lo = mid;
		else
			hi = mid;
	}
	while (lo + 1 < n && first[lo + 1] <= c)
		lo++;
	*off = (uint64_t)(c - first[lo]) * chunk;
	*clen = len[lo] - *off < chunk ? len[lo] - *off : chunk;
	return lo;
}

size_t
dg_xfer_chunk_at(size_t n, const uint32_t *first, const uint64_t *len,
    uint64_t chunk, uint32_t c, uint64_t *off, uint64_t *clen)
{
	return s_chunk_at(n, first, len, chunk, c, off, clen);
}

/* ---- post queues: who has chunks left to post ------------------------- */

/* A round looks only at the sends queued here, oldest first, and stops
 * at a peer whose window is full: with a thousand open sends a round
 * that walked them all (most with every chunk out, or held back by the
 * window) was a fifth of the sender's time, and the oldest waited
 * behind the newest. */
void
dg_xfer_send_queue(dg_xfer_t *self, s_send_t *tx)
{
	s_sendq_t *q = tx->map ? &self->localq : &tx->peer->q;

	self->post_pending = true;
	if (tx->q)
		return;
	tx->q = q;
	tx->q_next = NULL;
	tx->q_pprev = q->tail;
	*q->tail = tx;
	q->tail = &tx->q_next;
}

static void
s_send_unqueue(s_send_t *tx)
{
	s_sendq_t *q = tx->q;

	if (!q)
		return;
	*tx->q_pprev = tx->q_next;
	if (tx->q_next)
		tx->q_next->q_pprev = tx->q_pprev;
	else
		q->tail = tx->q_pprev;
	tx->q = NULL;
	tx->q_next = NULL;
	tx->q_pprev = NULL;
}

/* ---- sends (progress thread) ------------------------------------------- */

void
dg_xfer_send_free(s_send_t *tx)
{
	for (int i = 0; i < tx->nops; i++)
		free(tx->ops[i]);
	free(tx->chunks);
	free(tx);               /* and its arrays: s_send_new() */
}

void
dg_xfer_send_finish(dg_xfer_t *self, s_send_t *tx, dg_xfer_status_t status)
{
	bool mine = dg_xfer_claim(self, tx->pend);
	tx->pend = NULL;
	dg_xfer_event_t ev = {
		.dir = DG_XFER_SEND, .status = status, .id = tx->id,
		.room = tx->room, .phase = tx->phase, .bytes = tx->bytes_done,
		.bytes_left = tx->bytes_total - tx->bytes_done,
		.attempts = tx->attempts, .ms = dg_xfer_now_ms() - tx->started,
		.us = dg_xfer_now_us() - tx->started_us,
	};
	if (status != DG_XFER_DONE)
		snprintf(ev.reason, sizeof ev.reason, "%s", tx->error);

	/* Ops the provider still holds become orphans; the rest go. */
	for (int i = 0; i < tx->nops; i++) {
		s_op_t *op = tx->ops[i];
		if (op->idle) {
			dg_xfer_op_free(self, op);
		} else {
			op->tx = NULL;
			op->orphaned_at = dg_xfer_run_clock(self,
			    dg_xfer_now_ms());
			op->next = self->orphans;
			self->orphans = op;
			if (op->peer)
				op->peer->orphans++;
		}
		tx->ops[i] = NULL;
	}
	tx->nops = 0;
	s_send_unqueue(tx);
	if (tx->pprev) {
		*tx->pprev = tx->next;
		if (tx->next)
			tx->next->pprev = tx->pprev;
		tx->pprev = NULL;
	}
	if (tx->peer) {
		if (status != DG_XFER_DONE && !tx->cancelled)
			tx->peer->failed = true;
		dg_xfer_peer_unref(self, tx->peer);
	}
	if (tx->map) {
		/* A held extent the receiver must not wait on for ever. */
		if (status != DG_XFER_DONE && tx->placed)
			dg_xfer_local_drop(self, tx->map, tx->token);
		dg_xfer_map_unref(self, tx->map);
	}
	if (mine) {
		pthread_mutex_lock(&self->st_lock);
		if (status == DG_XFER_DONE && tx->map)
			*(tx->placed ? &self->stats.handoffs :
			    &self->stats.local_copies) += 1;
		if (status == DG_XFER_DONE)
			self->stats.sends_done++;
		else
			self->stats.sends_failed++;
		self->stats.sends_active--;
		pthread_mutex_unlock(&self->st_lock);
		dg_xfer_emit(self, &ev);
	}
	dg_xfer_send_free(tx);
}

/* Ops whose send or orphanhood ended wait here for the next send, up
 * to OP_CACHE_MAX of them: an op per send through malloc cost the
 * progress thread a tenth of its time at 64 KiB.  Progress thread
 * only, so no lock. */
#define OP_CACHE_MAX    1024

void
dg_xfer_op_free(dg_xfer_t *self, s_op_t *op)
{
	if (self->op_ncached >= OP_CACHE_MAX) {
		free(op);
		return;
	}
	op->next = self->op_cache;
	self->op_cache = op;
	self->op_ncached++;
}

static s_op_t *
s_op_get(dg_xfer_t *self, s_send_t *tx)
{
	s_op_t *op = tx->free_ops;

	if (op) {
		tx->free_ops = op->next;
		op->idle = false;
		return op;
	}
	if (tx->nops == tx->maxinflight)
		return NULL;
	if ((op = self->op_cache)) {
		self->op_cache = op->next;
		self->op_ncached--;
		memset(op, 0, sizeof *op);
	} else if (!(op = calloc(1, sizeof *op))) {
		return NULL;
	}
	op->tx = tx;
	tx->ops[tx->nops++] = op;
	return op;
}

static void
s_op_put(s_send_t *tx, s_op_t *op)
{
	op->idle = true;
	op->next = tx->free_ops;
	tx->free_ops = op;
}

/* Whether a write to `peer` may be posted now.
 *
 * shm's target does the copy inside its own progress, and holds its
 * region's spin lock over its whole command queue while it copies; a
 * write posted meanwhile spins on that lock until the queue is empty,
 * and neither side's completions can be read until then (the provider
 * trylocks the same lock).  A long queue so turns into one long drain,
 * with the sender spinning through it and the receiver's events all
 * coming at its end, then a gap while the caller answers them.  So an
 * shm peer gets at most SHM_WINDOW bytes of writes at a time (always
 * one): the drains stay bounded and completions flow.  With the engine
 * alone on our 2-core VM it moved 1, 16 and 256 MiB transfers 5-15 %
 * faster than with no window.  4 MiB was too short for small writes:
 * 64 writes of 64 KiB let the receiver run dry between drains (0.62 to
 * 0.79 times the bare loop, against 0.76 to 0.90 with 16 MiB, eight
 * runs of each in turn), while 1 MiB writes moved the same with 4, 8
 * or 16 MiB (ARCHITECTURE.md, "Threads"). */
#define SHM_WINDOW      (16u << 20)

static bool
s_may_post(dg_xfer_t *self, const s_peer_t *peer)
{
	return !self->is_shm || peer->posted_bytes < SHM_WINDOW;
}

/* A write to an shm peer is out: its completion comes within a copy of
 * at most SHM_WINDOW bytes, and with it room for the next one, which is
 * sooner than a nap's wake-up on a small VM (50-150 us, each one a gap
 * in the peer's copying).  A count, not a walk over the open sends: a
 * thousand open sends made that walk a fifth of the sender's time. */
static bool
s_window_hot(dg_xfer_t *self)
{
	return self->is_shm && self->ops_posted > 0;
}

/* Post what the send may have in flight.  Returns the number posted, or
 * -1 when the send ended. */
static int
s_send_post(dg_xfer_t *self, s_send_t *tx, int64_t now, bool *eagain)
{
	int posted = 0;
	char *base = dg_pool_base(self->pool);

	if (tx->map)
		return dg_xfer_local_post(self, tx);
	while (tx->inflight < tx->maxinflight &&
	    s_may_post(self, tx->peer)) {
		uint32_t c;
		bool again = tx->nrequeue > 0;
		if (again)
			c = tx->requeue[tx->nrequeue - 1];
		else if (tx->next_chunk < tx->nchunks)
			c = tx->next_chunk;
		else
			break;
		if (tx->done[c]) {
			/* Retried, but an earlier write of it completed. */
			tx->nrequeue--;
			continue;
		}
		s_op_t *op = s_op_get(self, tx);
		if (!op)
			break;
		uint64_t off, clen;
		size_t t = s_chunk_at(tx->ntensors, tx->first, tx->len,
		    tx->chunk_size, c, &off, &clen);
		int rail = dg_xfer_pick_rail(self, tx->peer, now);
		int lrail = rail % self->nrails;
		op->chunk = c;
		op->rail = rail;
		op->peer = tx->peer;
		uint64_t data = (tx->token << 32) | c;
		ssize_t rc;
#ifdef DG_FAULT_INJECTION
		if (atomic_load(&self->post_fault) > 0 &&
		    atomic_fetch_sub(&self->post_fault, 1) > 0)
			rc = -FI_EIO;
		else
#endif
		rc = fi_writedata(self->ep[lrail],
		    base + tx->src[t] + off, clen, self->desc, data,
		    tx->peer->fa[rail], tx->base + tx->dst[t] + off, tx->key,
		    &op->ctx);
		if (rc == -FI_EAGAIN) {
			s_op_put(tx, op);
			STAT_ADD(self, eagain, 1);
			*eagain = true;
			break;
		}
		if (again)
			tx->nrequeue--;
		else
			tx->next_chunk++;
		if (rc) {
			s_op_put(tx, op);
			char what[160];
			snprintf(what, sizeof what, "fi_writedata: %s",
			    fi_strerror((int)-rc));
			if (!dg_xfer_chunk_failed(self, tx, c, rail, what))
				return -1;
			continue;
		}
		tx->inflight++;
		tx->peer->posted++;
		tx->peer->posted_bytes += clen;
		self->ops_posted++;
		op->bytes = clen;
		posted++;
		STAT_ADD(self, chunks_posted, 1);
	}
	return posted;
}

static void
s_send_completed(dg_xfer_t *self, s_op_t *op, const char *error)
{
	s_send_t *tx = op->tx;

	/* Room in the peer's window (s_may_post()), or under a send's
	 * cap: the sends queued for it may move. */
	if (op->peer) {
		op->peer->posted--;
		op->peer->posted_bytes -= op->bytes;
		self->ops_posted--;
		if (op->peer->q.head)
			self->post_pending = true;
	}
	if (!tx) {
		/* An orphan: its transfer already ended. */
		for (s_op_t **pp = &self->orphans; *pp; pp = &(*pp)->next) {
			if (*pp == op) {
				*pp = op->next;
				break;
			}
		}
		s_peer_t *peer = op->peer;
		dg_xfer_op_free(self, op);
		if (peer) {
			peer->orphans--;
			dg_xfer_peer_release(self, peer);
		}
		return;
	}
	tx->inflight--;
	uint32_t c = op->chunk;
	int rail = op->rail;
	s_op_put(tx, op);
#ifdef DG_FAULT_INJECTION
	if (!error && atomic_load(&self->fault[rail % DG_XFER_MAX_RAILS]) > 0 &&
	    atomic_fetch_sub(&self->fault[rail % DG_XFER_MAX_RAILS], 1) > 0)
		error = "injected transport fault";
#endif
	if (error) {
		if (!tx->done[c])
			(void)dg_xfer_chunk_failed(self, tx, c, rail, error);
		return;
	}
	if (!tx->done[c]) {
		uint64_t off, clen;
		(void)s_chunk_at(tx->ntensors, tx->first, tx->len,
		    tx->chunk_size, c, &off, &clen);
		tx->done[c] = 1;
		tx->ndone++;
		tx->bytes_done += clen;
		STAT_ADD(self, bytes_sent, clen);
	}
	if (tx->ndone == tx->nchunks && tx->inflight == 0)
		dg_xfer_send_finish(self, tx, DG_XFER_DONE);
}

/* ---- receives ---------------------------------------------------------- */

static void
s_recv_release(dg_xfer_t *self, uint32_t index)
{
	s_recv_t *rx = &self->recvs[index];

	if (rx->map != (uint8_t *)&rx->map_word)
		free(rx->map);
	free(rx->len);          /* and `first` */
	rx->map = NULL;
	rx->len = NULL;
	rx->first = NULL;
	rx->active = false;
	rx->held_by = 0;
	rx->gen++;
	self->rx_free[self->rx_nfree++] = index;
}

/* Called with rx_lock held. */
bool
dg_xfer_recv_finish(dg_xfer_t *self, uint32_t index, dg_xfer_status_t status,
    const char *reason)
{
	s_recv_t *rx = &self->recvs[index];
	dg_xfer_event_t ev = {
		.dir = DG_XFER_RECV, .status = status, .id = rx->id,
		.room = rx->room, .phase = rx->phase, .bytes = rx->bytes,
		.bytes_left = rx->bytes_total - rx->bytes,
		.ms = dg_xfer_now_ms() - rx->started,
	};
	if (reason)
		snprintf(ev.reason, sizeof ev.reason, "%s", reason);
	/* A local sender may still be writing into it (xfer_local.c). */
	if (status != DG_XFER_DONE)
		ev.kept = dg_xfer_local_keep(self, index);
	if (status == DG_XFER_DONE) {
		int rc = dg_pool_transition(self->pool, &rx->ext,
		    DG_SLOT_FILLING, DG_SLOT_READY);
		if (rc == DG_SLOT_STALE) {
			ev.status = DG_XFER_STALE;
			snprintf(ev.reason, sizeof ev.reason, "extent slot %u "
			    "generation %llu was recycled", rx->ext.slot,
			    (unsigned long long)rx->ext.gen);
		} else if (rc != DG_SLOT_OK) {
			ev.status = DG_XFER_FAILED;
			snprintf(ev.reason, sizeof ev.reason, "extent not "
			    "FILLING: %s", dg_slot_rc_name(rc));
		}
	}
	pthread_mutex_lock(&self->st_lock);
	if (ev.status == DG_XFER_DONE)
		self->stats.recvs_done++;
	else if (ev.status == DG_XFER_STALE)
		self->stats.recvs_stale++;
	else
		self->stats.recvs_failed++;
	self->stats.bytes_received += rx->bytes;
	self->stats.recvs_active--;
	pthread_mutex_unlock(&self->st_lock);
	s_recv_release(self, index);
	dg_xfer_emit(self, &ev);
	return ev.kept;
}

/* Remote CQ data arrived: chunk `c` of the receive named by `token`. */
static void
s_recv_chunk(dg_xfer_t *self, uint64_t data)
{
	uint32_t token = (uint32_t)(data >> 32);
	uint32_t c = (uint32_t)data;
	uint32_t index = token & 0xffff;
	uint16_t gen = (uint16_t)(token >> 16);

	pthread_mutex_lock(&self->rx_lock);
	s_recv_t *rx = &self->recvs[index];
	if (!rx->active || rx->gen != gen || c >= rx->nchunks) {
		pthread_mutex_unlock(&self->rx_lock);
		dg_log_debug("xfer: late or unknown chunk %u for token %#x "
		    "dropped", c, token);
		return;
	}
	if (!(rx->map[c / 8] & (1u << (c % 8)))) {
		uint64_t off, clen;
		rx->map[c / 8] |= (uint8_t)(1u << (c % 8));
		rx->nrecv++;
		(void)s_chunk_at(rx->ntensors, rx->first, rx->len,
		    self->conf.chunk, c, &off, &clen);
		rx->bytes += clen;
	}
	if (rx->nrecv == rx->nchunks)
		dg_xfer_recv_finish(self, index, DG_XFER_DONE, NULL);
	pthread_mutex_unlock(&self->rx_lock);
}

/* ---- the progress thread ---------------------------------------------- */

int
dg_xfer_take_commands(dg_xfer_t *self)
{
	pthread_mutex_lock(&self->cmd_lock);
	s_cmd_t *cmd = self->cmds;
	self->cmds = NULL;
	self->cmds_tail = &self->cmds;
	pthread_mutex_unlock(&self->cmd_lock);
	/* The fd is written only while we nap (s_wake()), and s_idle()
	 * drains it when it wakes: a kick that comes after we found its
	 * command costs one early wake-up there, not a read here each
	 * time. */
	if (!cmd)
		return 0;
	int n = 0;
	while (cmd) {
		s_cmd_t *next = cmd->next;
		if (cmd->type == CMD_SEND) {
			s_send_t *tx = cmd->tx;
			if (!tx->map)
				tx->peer = dg_xfer_peer_get(self, tx->addr,
				    tx->naddr, tx->error, sizeof tx->error);
			tx->next = self->sends;
			if (tx->next)
				tx->next->pprev = &tx->next;
			tx->pprev = &self->sends;
			self->sends = tx;
			if (tx->deadline < self->sends_due)
				self->sends_due = tx->deadline;
			if (tx->map)
				dg_xfer_send_queue(self, tx);   /* its turns */
			else if (!tx->peer)
				dg_xfer_send_finish(self, tx, DG_XFER_FAILED);
			else if (tx->peer->refs++, tx->nchunks == 0)
				dg_xfer_send_finish(self, tx, DG_XFER_DONE);
			else
				dg_xfer_send_queue(self, tx);
		} else {
			for (s_send_t *tx = self->sends; tx; tx = tx->next) {
				if (tx->id != cmd->id)
					continue;
				tx->cancelled = true;
				snprintf(tx->error, sizeof tx->error,
				    "cancelled");
				dg_xfer_send_finish(self, tx, DG_XFER_FAILED);
				break;
			}
			free(cmd);      /* a send's is in its block, maybe
			                   freed with it above */
		}
		cmd = next;
		n++;
	}
	return n;
}

static int
s_poll_cq(dg_xfer_t *self)
{
	struct fi_cq_data_entry ent[CQ_BATCH];
	int total = 0;

	for (int round = 0; round < 16; round++) {
		ssize_t n = fi_cq_read(self->cq, ent, CQ_BATCH);
		if (n == -FI_EAGAIN)
			break;
		if (n == -FI_EAVAIL) {
			struct fi_cq_err_entry err = { 0 };
			char buf[160];
			if (fi_cq_readerr(self->cq, &err, 0) < 0)
				break;
			const char *text = fi_cq_strerror(self->cq,
			    err.prov_errno, err.err_data, buf, sizeof buf);
			char what[200];
			snprintf(what, sizeof what, "%s (%s)",
			    fi_strerror(err.err), text ? text : "?");
			total++;
			if (err.flags & FI_REMOTE_CQ_DATA || !err.op_context) {
				/* rxm may give no context for RMA errors
				 * (libfabric#5738): the deadline ends it. */
				dg_log_warn("xfer: completion error without "
				    "a transfer: %s", what);
				continue;
			}
			/* A chunk to send again is queued with its send. */
			s_send_completed(self, err.op_context, what);
			continue;
		}
		if (n < 0) {
			dg_log_error("xfer: fi_cq_read: %s",
			    fi_strerror((int)-n));
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (ent[i].flags & FI_REMOTE_CQ_DATA) {
				s_recv_chunk(self, ent[i].data);
				self->last_chunk_us = dg_xfer_now_us();
			} else if (ent[i].op_context) {
				s_send_completed(self, ent[i].op_context, NULL);
			}
		}
		total += (int)n;
		if (n < CQ_BATCH)
			break;
	}
	return total;
}

/* Post what the queues hold: a turn for each local send, then each
 * peer's sends in order while its window has room.  post_pending says
 * something changed since the last round (a command, a completion, a
 * chunk to send again, a full provider queue); without it the round
 * looks at nothing. */
static int
s_post_all(dg_xfer_t *self)
{
	int posted = 0;
	s_send_t *next;

	if (!self->post_pending)
		return 0;
	self->post_pending = false;
	int64_t now = dg_xfer_now_ms();
	for (s_send_t *tx = self->localq.head; tx; tx = next) {
		next = tx->q_next;
		int n = dg_xfer_local_post(self, tx);
		if (n < 0)
			continue;       /* it ended, and is freed */
		posted += n;
		/* Still here: more to copy, or its handoff to send. */
		self->post_pending = true;
	}
	/* -FI_EAGAIN ends one peer's turn, not the round: the queue that is
	 * full may be one dead peer's, and the others must not wait on it. */
	s_peer_t *pnext;
	for (s_peer_t *peer = self->peers; peer; peer = pnext) {
		pnext = peer->next;
		for (s_send_t *tx = peer->q.head; tx &&
		    s_may_post(self, peer); tx = next) {
			next = tx->q_next;
			bool eagain = false;
			int n = s_send_post(self, tx, now, &eagain);
			if (n < 0) {
				/* It ended, and is freed, and so may be its
				 * peer (a failed one that nothing else holds,
				 * dg_xfer_peer_release()): the rest of the
				 * queue waits for the next round. */
				self->post_pending = true;
				break;
			}
			posted += n;
			if (tx->nrequeue == 0 && tx->next_chunk >= tx->nchunks)
				s_send_unqueue(tx);
			if (eagain) {
				self->post_pending = true;
				break;
			}
		}
	}
	return posted;
}

/* Nothing happened this round: how long to wait, by what is open.
 *
 * Right after work, and after any wake-up, the thread keeps polling for
 * SPIN_US of wall time: the next chunk, command or receive usually
 * comes within tens of microseconds, and a nap costs more than that
 * (the wake-up, and the timer's slack).  Then, while a transfer is open,
 * it naps OPEN_NAP_US at a time: with manual progress (rxm over tcp)
 * our writes move only while we call into the provider, and a CQ fd
 * says nothing about a socket that could take more; shm has no fd, and
 * its target does the copy inside fi_cq_read.  A receive that waits
 * long for its first byte (the peer computes) naps longer, a twentieth
 * of the wait so far, up to 1 ms: the first chunk is seen at most that
 * late, against 20,000 wake-ups a second.  With only orphans left
 * the naps grow to ORPHAN_NAP_US: nothing waits on them but the orphan
 * check.  With nothing open at all the thread blocks on the command fd
 * (and the CQ fd) and the watchdog rests too (xfer_watchdog.c), so an
 * idle daemon costs next to nothing; dg_xfer_expect(), _send(),
 * _cancel() and _destroy() kick the fd.  The block still ends every
 * IDLE_BLOCK_MS without a CQ fd: a peer may write into a receive we
 * already ended, and with shm its write completes only when we read our
 * CQ (held 3 s, the peer calls itself wedged: xfer_watchdog.c).  */
#define SPIN_US         100
#define OPEN_NAP_US     50
#define RECV_NAP_MAX_US 1000
#define RECV_NAP_GROWTH 20      /* nap 1/20 of the quiet time so far */
#define ORPHAN_NAP_US   1000
#define HOT_SPIN_US     2000
#define HOT_SPIN_MAX_US 20000   /* a stuck peer: back to naps */
#define IDLE_BLOCK_MS   500
#define IDLE_BLOCK_FD_MS 1000
/* The naps are tens of microseconds: the default 50 us of timer slack
 * would double them. */
#define NAP_SLACK_NS    5000

/* Whether a receive is open: dg_xfer_expect() adds them from another
 * thread, then looks at `napping`. */
static bool
s_recvs_open(dg_xfer_t *self)
{
	pthread_mutex_lock(&self->st_lock);
	bool open = self->stats.recvs_active > 0;
	pthread_mutex_unlock(&self->st_lock);
	return open;
}

/* Returns true when a command, a receive or the provider woke the
 * thread, false when it did not wait or its wait timed out. */
static bool
s_idle(dg_xfer_t *self, int64_t quiet_us)
{
	struct pollfd fds[2] = {
		{ .fd = self->cmd_fd, .events = POLLIN },
		{ .fd = self->cq_fd, .events = POLLIN },
	};
	int nfds = 1;
	int64_t now = dg_xfer_now_us();
	bool recvs = s_recvs_open(self);
	/* shm: a receive whose chunks are coming is copied only while we
	 * poll, and a send's next write is a window's copy away. */
	bool hot = s_window_hot(self) || (self->is_shm && recvs &&
	    now - self->last_chunk_us < HOT_SPIN_US);

	if (quiet_us < SPIN_US || (hot && quiet_us < HOT_SPIN_MAX_US)) {
		sched_yield();
		return false;
	}
	bool open = self->sends || recvs;
	long us = open ? OPEN_NAP_US : self->orphans ? ORPHAN_NAP_US : -1;
	/* Only receives open, and nothing for a while: the peer is still
	 * computing.  Nap longer, up to RECV_NAP_MAX_US, rather than wake
	 * 20,000 times a second.  Not with a send open: over tcp its bytes
	 * move only while we call the provider, completion or not. */
	long recv_nap = quiet_us / RECV_NAP_GROWTH < RECV_NAP_MAX_US ?
	    (long)(quiet_us / RECV_NAP_GROWTH) : RECV_NAP_MAX_US;
	if (open && !self->sends && recv_nap > us)
		us = recv_nap;
	if (self->cq_fd >= 0) {
		struct fid *fids[1] = { &self->cq->fid };
		if (fi_trywait(self->fabric, fids, 1) != FI_SUCCESS)
			return false;
		nfds = 2;
	}
	atomic_store(&self->napping, true);
	/* A command or receive added just before `napping` was seen set
	 * found no one to wake: look once more. */
	pthread_mutex_lock(&self->cmd_lock);
	bool queued = self->cmds != NULL;
	pthread_mutex_unlock(&self->cmd_lock);
	if (!queued && !open && s_recvs_open(self))
		queued = true;
	bool block = !queued && us < 0;
	if (block) {
		us = (self->cq_fd >= 0 ? IDLE_BLOCK_FD_MS : IDLE_BLOCK_MS) *
		    1000L;
		atomic_store(&self->idle_blocked, true);
	}
	struct timespec ts = { us / 1000000, us % 1000000 * 1000 };
	bool woken = false;
	int64_t rested = block ? dg_xfer_now_ms() : 0;
	if (!queued && ppoll(fds, (nfds_t)nfds, &ts, NULL) > 0) {
		woken = true;
		/* A kick that raced with the look above (the writer saw
		 * `napping` after we had found its command) leaves the fd
		 * readable with nothing queued: left so, every later wait
		 * would return at once and this thread would spin. */
		if (fds[0].revents & POLLIN)
			dg_xfer_drain_fd(self->cmd_fd);
	}
	atomic_store(&self->napping, false);
	if (block) {
		/* The watchdog rested through it: a wait far past its
		 * timeout is the whole process not running. */
		dg_xfer_rest_paused(self, dg_xfer_now_ms() - rested,
		    us / 1000);
		/* The provider is about to be called again: the watchdog
		 * watches those calls. */
		atomic_store(&self->idle_blocked, false);
		if (atomic_load(&self->watch_resting))
			dg_xfer_kick(self->stop_fd);
	}
	return woken || queued;
}

void *
dg_xfer_progress_loop(void *arg)
{
	dg_xfer_t *self = arg;
	int64_t last_work = dg_xfer_now_us();

	self->progress_thread = dg_thread_register("progress");
	(void)prctl(PR_SET_TIMERSLACK, NAP_SLACK_NS, 0, 0, 0);
	while (!atomic_load(&self->stop)) {
		int64_t now_us = dg_xfer_now_us();
		atomic_store(&self->last_loop, now_us / 1000);
		dg_xfer_round_of = self;
		int work = dg_xfer_take_commands(self);
		if (work)
			self->post_pending = true;
		work += s_poll_cq(self);
		/* The caller hears of what completed before we post: a post
		 * to shm may spin while the receiver copies. */
		dg_xfer_events_flush(self);
		work += s_post_all(self);
		int64_t now = now_us / 1000;
		if (now >= self->next_check) {
			dg_xfer_check_deadlines(self, now);
			dg_xfer_check_orphans(self, now);
			self->next_check = now + 5;
		}
		if (now >= self->next_health) {
			dg_xfer_publish_health(self, now);
			self->next_health = now + 100;
		}
		dg_xfer_round_end(self);        /* before any nap */
		if (work)
			last_work = now_us;
		/* Busy while transfers are open; idle once it naps.  Two
		 * relaxed stores and a vDSO clock read per turn. */
		dg_thread_set(work || self->sends ? DG_THREAD_BUSY :
		    DG_THREAD_IDLE, 0);
		if (s_idle(self, now_us - last_work))
			last_work = dg_xfer_now_us();
	}
	dg_thread_unregister();
	return NULL;
}
