/*  xfer.c: the libfabric transfer engine's public side; see xfer.h for
 *  the contract.  This file makes and closes an engine and holds the
 *  caller's half of the queues to and from the progress thread; the rest
 *  is in xfer_progress.c (the progress thread and each transfer's state),
 *  xfer_rails.c (peers, rails, quarantine and retries), xfer_watchdog.c
 *  (deadlines and a stuck provider), xfer_wedge.c (which stall is a
 *  wedge) and xfer_setup.c (the fabric and the pool's registration).
 *
 *  Threads: the caller's (control loop) and one progress thread.  After
 *  dg_xfer_new() returns, only the progress thread calls into libfabric
 *  (the domain is opened FI_THREAD_DOMAIN).  Sends reach it through a
 *  command list and an eventfd; the receive table is shared under a
 *  mutex because dg_xfer_expect() must hand out a token at once; events
 *  go back through a list and another eventfd.  */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <rdma/fabric.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "manifest.h"
#include "xfer.h"
#include "xfer_impl.h"

int64_t
dg_xfer_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
dg_xfer_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool
dg_xfer_probe_hmem_cuda(const char *provider, int device, char *why,
    size_t whysize)
{
	char note[160];

	if (dg_mem_choose(true, device, false, note, sizeof note) ==
	    DG_MEM_HOST) {
		snprintf(why, whysize, "%s", note);
		return false;
	}
	/* The only proof is a registration: providers may list FI_HMEM
	 * and still lack the CUDA interface (Debian's shm does). */
	dg_pool_t *pool = dg_pool_new_kind(64 * 1024, 64 * 1024, DG_MEM_DEVICE,
	    device, why, whysize);
	if (!pool)
		return false;
	dg_fabric_conf_t conf = { .rails = 1, .chunk = 64 * 1024,
	    .inflight = 1, .transfer_attempts = 1 };
	snprintf(conf.provider, sizeof conf.provider, "%s", provider);
	dg_xfer_t *x = dg_xfer_new(&conf, pool, "127.0.0.1", why, whysize);
	bool ok = x != NULL;
	dg_xfer_destroy(&x);
	dg_pool_destroy(&pool);
	return ok;
}

dg_pool_t *
dg_xfer_pool_for(const dg_stage_conf_t *st, const char *provider, bool share,
    char *why, size_t whysize)
{
	char note[256], probe[160] = "";
	bool cuda = st->memory == DG_MEMORY_CUDA;
	bool hmem = cuda && dg_xfer_probe_hmem_cuda(provider, (int)st->device,
	    probe, sizeof probe);
	dg_mem_kind_t kind = dg_mem_choose(cuda, (int)st->device, hmem, note,
	    sizeof note);

	if (cuda && kind == DG_MEM_HOST)
		dg_log_warn("%s", note);
	else
		dg_log_info("%s", note);
	return dg_pool_new_shared((size_t)st->pool, (size_t)st->slot, kind,
	    (int)st->device, share, why, whysize);
}

const char *
dg_xfer_provider_for(const char *configured, bool all_local)
{
	if (strcmp(configured, "auto") != 0)
		return configured;
	return all_local ? "shm" : "tcp;ofi_rxm";
}

/* ---- events and commands ---------------------------------------------- */

void
dg_xfer_kick(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof one) < 0 && errno != EAGAIN)
		dg_log_error("xfer: eventfd write: %s", strerror(errno));
}

/* One read empties an eventfd (none is a semaphore): a second would
 * only say EAGAIN, a system call per drain for nothing. */
void
dg_xfer_drain_fd(int fd)
{
	uint64_t n;

	(void)!read(fd, &n, sizeof n);
}

/* A ring emptied this large goes: a burst's worth of events is not
 * kept for the engine's whole life. */
#define EV_RING_KEEP    4096

/* Called with ev_lock held.  The events keep their order. */
static int
s_ev_grow(dg_xfer_t *self)
{
	size_t cap = self->ev_cap ? 2 * self->ev_cap : 64;
	dg_xfer_event_t *ring = malloc(cap * sizeof *ring);

	if (!ring)
		return -1;
	for (size_t i = 0; i < self->ev_count; i++)
		ring[i] = self->ev_ring[(self->ev_head + i) % self->ev_cap];
	free(self->ev_ring);
	self->ev_ring = ring;
	self->ev_cap = cap;
	self->ev_head = 0;
	return 0;
}

void
dg_xfer_emit(dg_xfer_t *self, const dg_xfer_event_t *ev)
{
	pthread_mutex_lock(&self->ev_lock);
	if (self->ev_count == self->ev_cap && s_ev_grow(self) < 0) {
		pthread_mutex_unlock(&self->ev_lock);
		dg_log_error("xfer: out of memory for an event (room=%llu)",
		    (unsigned long long)ev->room);
		return;
	}
	self->ev_ring[(self->ev_head + self->ev_count++) % self->ev_cap] = *ev;
	/* One write until the reader drains: a busy engine would
	 * otherwise make a system call per event.  In a progress round,
	 * one at the round's end (dg_xfer_round_end()): a reader that
	 * drains between two completions of one round would otherwise be
	 * written to for each. */
	bool kick = !self->ev_signalled;
	self->ev_signalled = true;
	if (kick && dg_xfer_round_of == self)
		self->ev_kick_pending = true;
	else if (kick)
		dg_xfer_kick(self->ev_fd);
	pthread_mutex_unlock(&self->ev_lock);
}

_Thread_local dg_xfer_t *dg_xfer_round_of;

void
dg_xfer_events_flush(dg_xfer_t *self)
{
	if (self->ev_kick_pending) {
		self->ev_kick_pending = false;
		dg_xfer_kick(self->ev_fd);
	}
}

void
dg_xfer_round_end(dg_xfer_t *self)
{
	dg_xfer_round_of = NULL;
	dg_xfer_events_flush(self);
}

int
dg_xfer_next_event(dg_xfer_t *self, dg_xfer_event_t *ev)
{
	pthread_mutex_lock(&self->ev_lock);
	if (self->ev_count == 0) {
		/* Cleared under the lock: a later dg_xfer_emit writes it
		 * again.  Unsignalled, the fd is empty: no system call. */
		if (self->ev_signalled)
			dg_xfer_drain_fd(self->ev_fd);
		self->ev_signalled = false;
		if (self->ev_cap > EV_RING_KEEP) {
			free(self->ev_ring);
			self->ev_ring = NULL;
			self->ev_cap = self->ev_head = 0;
		}
		pthread_mutex_unlock(&self->ev_lock);
		return 0;
	}
	*ev = self->ev_ring[self->ev_head];
	self->ev_head = (self->ev_head + 1) % self->ev_cap;
	self->ev_count--;
	pthread_mutex_unlock(&self->ev_lock);
	return 1;
}

int
dg_xfer_fd(const dg_xfer_t *self)
{
	return self->ev_fd;
}

/* Wake the progress thread only when it is in its idle wait: it sets
 * `napping` and then looks at its commands once more before sleeping,
 * so a command is never left waiting for the wait's timeout. */
static void
s_wake(dg_xfer_t *self)
{
	if (atomic_load(&self->napping))
		dg_xfer_kick(self->cmd_fd);
}

static void
s_command(dg_xfer_t *self, s_cmd_t *cmd)
{
	pthread_mutex_lock(&self->cmd_lock);
	*self->cmds_tail = cmd;
	self->cmds_tail = &cmd->next;
	pthread_mutex_unlock(&self->cmd_lock);
	s_wake(self);
}

/* ---- set-up ------------------------------------------------------------ */

dg_xfer_t *
dg_xfer_new(const dg_fabric_conf_t *conf, dg_pool_t *pool, const char *node,
    char *why, size_t whysize)
{
	dg_xfer_t *self = calloc(1, sizeof *self);
	int rc;

	if (!self) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	self->conf = *conf;
	self->pool = pool;
	self->cq_fd = self->cmd_fd = self->ev_fd = -1;
	self->nrails = (int)(conf->rails < 1 ? 1 : conf->rails > DG_XFER_MAX_RAILS ?
	    DG_XFER_MAX_RAILS : conf->rails);
	snprintf(self->provider, sizeof self->provider, "%s", conf->provider);
	self->can_wedge = dg_xfer_provider_can_wedge(self->provider);
	pthread_mutex_init(&self->cmd_lock, NULL);
	pthread_mutex_init(&self->ev_lock, NULL);
	pthread_mutex_init(&self->rx_lock, NULL);
	pthread_mutex_init(&self->st_lock, NULL);
	pthread_mutex_init(&self->pend_lock, NULL);
	self->stop_fd = -1;
	self->share_fd = self->share_wake = -1;
	atomic_init(&self->last_loop, dg_xfer_now_ms());
	atomic_init(&self->tick, dg_xfer_now_ms());
	atomic_init(&self->paused, 0);
	atomic_init(&self->wedged, false);
	atomic_init(&self->napping, false);
	atomic_init(&self->idle_blocked, false);
	atomic_init(&self->watch_resting, false);
	self->cmds_tail = &self->cmds;
	self->sends_due = INT64_MAX;
	self->localq.tail = &self->localq.head;
	atomic_init(&self->next_id, 1);
	atomic_init(&self->stop, false);

	self->recvs = calloc(RECV_SLOTS, sizeof *self->recvs);
	self->rx_free = calloc(RECV_SLOTS, sizeof *self->rx_free);
	if (!self->recvs || !self->rx_free) {
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
	for (uint32_t i = 0; i < RECV_SLOTS; i++)
		self->rx_free[i] = RECV_SLOTS - 1 - i;
	self->rx_nfree = RECV_SLOTS;
	self->cmd_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	self->ev_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	self->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (self->cmd_fd < 0 || self->ev_fd < 0 || self->stop_fd < 0) {
		snprintf(why, whysize, "eventfd: %s", strerror(errno));
		goto fail;
	}

	if (dg_xfer_fabric_open(self, node, why, whysize) < 0)
		goto fail;
	if (dg_xfer_local_open(self, why, whysize) < 0)
		goto fail;

	if ((rc = pthread_create(&self->thread, NULL, dg_xfer_progress_loop,
	    self))) {
		snprintf(why, whysize, "progress thread: %s", strerror(rc));
		goto fail;
	}
	self->started = true;
	if ((rc = pthread_create(&self->watchdog, NULL, dg_xfer_watchdog_loop,
	    self))) {
		snprintf(why, whysize, "watchdog thread: %s", strerror(rc));
		goto fail;
	}
	self->watching = true;
	dg_log_info("xfer: %s, %d rail%s, pool %zu bytes registered once, "
	    "%s", self->info->fabric_attr->prov_name, self->nrails,
	    self->nrails > 1 ? "s" : "", dg_pool_size(pool),
	    self->cq_fd >= 0 ? "CQ wait fd" : "polled CQ");
	return self;
fail:
	dg_xfer_destroy(&self);
	return NULL;
}

void
dg_xfer_destroy(dg_xfer_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_xfer_t *self = *self_p;
	atomic_store(&self->stop, true);
	if (self->watching) {
		dg_xfer_kick(self->stop_fd);
		pthread_join(self->watchdog, NULL);
	}
	if (self->started) {
		dg_xfer_kick(self->cmd_fd);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 3;
		if (pthread_timedjoin_np(self->thread, NULL, &until) != 0) {
			/* Stuck inside the provider: closing the fabric under
			 * it would crash, so leave it and its engine be. */
			dg_log_error("xfer: the progress thread is stuck in the "
			    "%s provider; leaving it and the fabric open",
			    self->provider);
			*self_p = NULL;
			return;
		}
	}
	/* Transfers still open end now, each with its event. */
	dg_xfer_take_commands(self);
	while (self->sends) {
		snprintf(self->sends->error, sizeof self->sends->error,
		    "transfer engine closed");
		dg_xfer_send_finish(self, self->sends, DG_XFER_FAILED);
	}
	if (self->recvs) {
		pthread_mutex_lock(&self->rx_lock);
		for (uint32_t i = 0; i < self->rx_hi; i++)
			if (self->recvs[i].active)
				dg_xfer_recv_finish(self, i, DG_XFER_FAILED,
				    "transfer engine closed");
		pthread_mutex_unlock(&self->rx_lock);
	}
	dg_xfer_local_close(self);
	dg_xfer_fabric_close(self);
	while (self->orphans) {
		s_op_t *op = self->orphans;
		self->orphans = op->next;
		free(op);
	}
	while (self->op_cache) {
		s_op_t *op = self->op_cache;
		self->op_cache = op->next;
		free(op);
	}
	while (self->peers) {
		s_peer_t *p = self->peers;
		self->peers = p->next;
		free(p);
	}
	dg_xfer_event_t ev;
	while (self->ev_fd >= 0 && dg_xfer_next_event(self, &ev))
		;
	free(self->ev_ring);
	if (self->cmd_fd >= 0)
		close(self->cmd_fd);
	if (self->ev_fd >= 0)
		close(self->ev_fd);
	if (self->stop_fd >= 0)
		close(self->stop_fd);
	while (self->pend) {
		s_pend_t *p = self->pend;
		self->pend = p->next;
		free(p);
	}
	pthread_mutex_destroy(&self->pend_lock);
	free(self->recvs);
	free(self->rx_free);
	free(self->health);
	pthread_mutex_destroy(&self->cmd_lock);
	pthread_mutex_destroy(&self->ev_lock);
	pthread_mutex_destroy(&self->rx_lock);
	pthread_mutex_destroy(&self->st_lock);
	free(self);
	*self_p = NULL;
}

const char *
dg_xfer_provider(const dg_xfer_t *self)
{
	return self->info ? self->info->fabric_attr->prov_name : self->provider;
}

int
dg_xfer_rails(const dg_xfer_t *self)
{
	return self->nrails;
}

const void *
dg_xfer_address(const dg_xfer_t *self, int rail, size_t *len)
{
	if (rail < 0 || rail >= self->nrails)
		return NULL;
	*len = self->addrlen[rail];
	return self->addr[rail];
}

/* ---- the caller's side ------------------------------------------------- */


/* Lay out chunks over tensors: first[i] is tensor i's first chunk. */
static int
s_plan_chunks(size_t n, const uint64_t *len, uint64_t chunk, uint32_t *first,
    uint64_t *total)
{
	uint64_t c = 0, bytes = 0;

	for (size_t i = 0; i < n; i++) {
		first[i] = (uint32_t)c;
		c += (len[i] + chunk - 1) / chunk;
		bytes += len[i];
		if (c > UINT32_MAX)
			return -1;
	}
	first[n] = (uint32_t)c;
	*total = bytes;
	return 0;
}

/* Tensors of `m` must lie inside `ext`; fills lens and the chunk plan. */
static int
s_check_tensors(const dg_manifest_msg_t *m, const dg_extent_t *ext,
    const uint64_t *offsets, uint64_t *len, uint32_t *first, uint64_t chunk,
    uint64_t *total, char *why, size_t whysize)
{
	for (size_t i = 0; i < m->n_tensors; i++) {
		const dg_tensor_row_t *t = &m->tensors[i];
		uint64_t off = offsets ? offsets[i] : t->offset;
		if (!dg_pool_contains(ext, off, t->bytes)) {
			snprintf(why, whysize, "tensor '%s' (%llu bytes at "
			    "%llu) lies outside its extent", t->name,
			    (unsigned long long)t->bytes,
			    (unsigned long long)off);
			return -1;
		}
		len[i] = t->bytes;
	}
	if (s_plan_chunks(m->n_tensors, len, chunk, first, total) < 0) {
		snprintf(why, whysize, "too many chunks");
		return -1;
	}
	return 0;
}

int
dg_xfer_expect(dg_xfer_t *self, const dg_extent_t *ext, dg_manifest_msg_t *m,
    int64_t timeout_ms, uint64_t *id, char *why, size_t whysize)
{
	size_t n = m->n_tensors;
	/* One block for both arrays; the chunk map too when it fits in
	 * the receive's own word (64 chunks), as nearly all do. */
	uint64_t *len = calloc(1, (n + 1) * sizeof *len +
	    (n + 1) * sizeof(uint32_t));
	uint32_t *first = len ? (uint32_t *)(len + n + 1) : NULL;
	uint64_t total = 0;

	if (!len) {
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
	if (s_check_tensors(m, ext, NULL, len, first, (uint64_t)self->conf.chunk,
	    &total, why, whysize) < 0)
		goto fail;
	uint32_t nchunks = first[n];
	uint8_t *map = NULL;
	if (nchunks / 8 + 1 > sizeof(uint64_t) &&
	    !(map = calloc(nchunks / 8 + 1, 1))) {
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
	int rc = dg_pool_transition(self->pool, ext, DG_SLOT_RESERVED,
	    DG_SLOT_FILLING);
	if (rc != DG_SLOT_OK) {
		snprintf(why, whysize, "extent slot %u is not RESERVED: %s",
		    ext->slot, dg_slot_rc_name(rc));
		free(map);
		goto fail;
	}

	pthread_mutex_lock(&self->rx_lock);
	if (self->rx_nfree == 0) {
		pthread_mutex_unlock(&self->rx_lock);
		(void)dg_pool_transition(self->pool, ext, DG_SLOT_FILLING,
		    DG_SLOT_RESERVED);
		snprintf(why, whysize, "%u receives already open", RECV_SLOTS);
		free(map);
		goto fail;
	}
	uint32_t index = self->rx_free[--self->rx_nfree];
	if (index >= self->rx_hi)
		self->rx_hi = index + 1;
	s_recv_t *rx = &self->recvs[index];
	rx->active = true;
	rx->id = atomic_fetch_add(&self->next_id, 1);
	rx->room = m->room;
	rx->phase = (int)m->phase;
	rx->ext = *ext;
	rx->nchunks = nchunks;
	rx->nrecv = 0;
	rx->map_word = 0;
	rx->map = map ? map : (uint8_t *)&rx->map_word;
	rx->ntensors = n;
	rx->len = len;
	rx->first = first;
	rx->bytes_total = total;
	rx->bytes = 0;
	rx->started = dg_xfer_now_ms();
	rx->deadline = rx->started + timeout_ms;
	*id = rx->id;
	m->slot = ext->slot;
	m->gen = ext->gen;
	m->fabric = self->addr_bins;
	m->n_fabric = (size_t)self->nrails;
	m->key = self->key;
	m->base = self->base;
	m->token = ((uint64_t)rx->gen << 16) | index;
	m->chunk = (uint64_t)self->conf.chunk;
	m->share = self->sharing ? self->share_name : NULL;
	pthread_mutex_lock(&self->st_lock);
	self->stats.recvs_active++;
	pthread_mutex_unlock(&self->st_lock);
	/* Nothing will ever arrive for an empty transfer. */
	if (nchunks == 0)
		dg_xfer_recv_finish(self, index, DG_XFER_DONE, NULL);
	pthread_mutex_unlock(&self->rx_lock);
	/* Wake a sleeping progress thread: the peer may write at once, and
	 * with shm nothing lands until we read our CQ. */
	s_wake(self);
	return 0;
fail:
	free(len);              /* and `first`, in its block */
	return -1;
}

/* Round `n` up to a multiple of 8: each array carved out of a send's
 * block starts aligned for its widest element. */
static size_t
s_align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* A send of `m`'s tensors, not yet started: from pool offsets `src`
 * inside `ext`, or, with no `ext`, already in place at the receiver.
 *
 * Two allocations, not a dozen: the send, its start command, its
 * per-tensor arrays, its op table and the receiver's addresses in one
 * block, its per-chunk arrays in another (their size is known only
 * once the tensors are planned).  For one tensor to one rail the first
 * stays under glibc's 1 KiB, where a request would consolidate the
 * heap's small free chunks first.  The caller makes sends and the
 * progress thread frees them; with an allocation per array, that
 * cross-thread churn took a quarter of both threads' time at 64 KiB
 * (ARCHITECTURE.md, "Threads"). */
static s_send_t *
s_send_new(dg_xfer_t *self, const dg_manifest_msg_t *m,
    const dg_extent_t *ext, const uint64_t *src, int64_t timeout_ms,
    char *why, size_t whysize)
{
	size_t n = m->n_tensors;

	/* It also bounds the rails and their addresses, which the block
	 * is sized by. */
	if (dg_manifest_check(m, &(dg_manifest_want_t){ 0 }, why,
	    whysize) < 0)
		return NULL;
	int maxinflight = (int)self->conf.inflight;
	size_t o_cmd = s_align8(sizeof(s_send_t));
	size_t o_src = o_cmd + s_align8(sizeof(s_cmd_t));
	size_t o_dst = o_src + (n + 1) * sizeof(uint64_t);
	size_t o_len = o_dst + (n + 1) * sizeof(uint64_t);
	size_t o_first = o_len + (n + 1) * sizeof(uint64_t);
	size_t o_ops = o_first + s_align8((n + 1) * sizeof(uint32_t));
	size_t o_bins = o_ops + (size_t)maxinflight * sizeof(s_op_t *);
	size_t o_addr = o_bins + m->n_fabric * sizeof(dg_bin_t);
	size_t size = o_addr;
	for (size_t r = 0; r < m->n_fabric; r++)
		size += m->fabric[r].size;
	uint8_t *block = calloc(1, size);
	if (!block) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	s_send_t *tx = (s_send_t *)block;
	tx->cmd = (s_cmd_t *)(block + o_cmd);
	tx->src = (uint64_t *)(block + o_src);
	tx->dst = (uint64_t *)(block + o_dst);
	tx->len = (uint64_t *)(block + o_len);
	tx->first = (uint32_t *)(block + o_first);
	tx->ops = (s_op_t **)(block + o_ops);
	tx->maxinflight = maxinflight;
	tx->addr = (dg_bin_t *)(block + o_bins);
	uint8_t *a = block + o_addr;
	for (size_t r = 0; r < m->n_fabric; r++) {
		if (m->fabric[r].size)
			memcpy(a, m->fabric[r].data, m->fabric[r].size);
		tx->addr[r] = (dg_bin_t){ a, m->fabric[r].size };
		a += m->fabric[r].size;
	}
	tx->naddr = m->n_fabric;
	if (ext) {
		if (s_check_tensors(m, ext, src, tx->len, tx->first, m->chunk,
		    &tx->bytes_total, why, whysize) < 0)
			goto fail;
	} else {
		for (size_t i = 0; i < n; i++)
			tx->len[i] = m->tensors[i].bytes;
		if (s_plan_chunks(n, tx->len, m->chunk, tx->first,
		    &tx->bytes_total) < 0) {
			snprintf(why, whysize, "too many chunks");
			goto fail;
		}
	}
	for (size_t i = 0; i < n; i++) {
		tx->src[i] = src ? src[i] : 0;
		tx->dst[i] = m->tensors[i].offset;
	}
	tx->ntensors = n;
	tx->nchunks = tx->first[n];
	size_t nc = (size_t)tx->nchunks + 1;
	tx->chunks = calloc(1, s_align8(2 * nc) + nc * sizeof(uint32_t));
	if (!tx->chunks) {
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
	tx->done = tx->chunks;
	tx->retries = tx->chunks + nc;
	tx->requeue = (uint32_t *)(tx->chunks + s_align8(2 * nc));
	tx->id = atomic_fetch_add(&self->next_id, 1);
	tx->room = m->room;
	tx->phase = (int)m->phase;
	tx->key = m->key;
	tx->base = m->base;
	tx->token = m->token;
	tx->chunk_size = m->chunk;
	tx->attempts = 1;
	tx->max_attempts = (int)self->conf.transfer_attempts;
	tx->chunk_retries = (int)self->conf.chunk_retries;
	tx->started = dg_xfer_now_ms();
	tx->started_us = dg_xfer_now_us();
	tx->deadline = tx->started + timeout_ms;
	return tx;
fail:
	dg_xfer_send_free(tx);
	return NULL;
}

/* Queue `tx` for the progress thread. */
static int
s_send_start(dg_xfer_t *self, s_send_t *tx, uint64_t *id, char *why,
    size_t whysize)
{
	s_cmd_t *cmd = tx->cmd;
	s_pend_t *pend = calloc(1, sizeof *pend);

	if (!pend) {
		snprintf(why, whysize, "out of memory");
		return -1;
	}
	pend->id = tx->id;
	pend->room = tx->room;
	pend->phase = tx->phase;
	pend->started = tx->started;
	pend->deadline = tx->deadline;
	pthread_mutex_lock(&self->pend_lock);
	pend->next = self->pend;
	if (pend->next)
		pend->next->pprev = &pend->next;
	pend->pprev = &self->pend;
	self->pend = pend;
	pthread_mutex_unlock(&self->pend_lock);
	tx->pend = pend;
	cmd->type = CMD_SEND;
	cmd->tx = tx;
	*id = tx->id;
	pthread_mutex_lock(&self->st_lock);
	self->stats.sends_active++;
	pthread_mutex_unlock(&self->st_lock);
	s_command(self, cmd);
	return 0;
}

int
dg_xfer_send(dg_xfer_t *self, const dg_manifest_msg_t *m,
    const dg_extent_t *ext, const uint64_t *src, int64_t timeout_ms,
    uint64_t *id, char *why, size_t whysize)
{
	s_send_t *tx = s_send_new(self, m, ext, src, timeout_ms, why, whysize);

	if (!tx)
		return -1;
	/* A receiver on this host: copy into its pool, no fabric. */
	s_map_t *map = dg_xfer_map_get(self, m->share);
	if (map && !dg_xfer_map_covers(map, m)) {
		dg_xfer_map_unref(self, map);
		map = NULL;
	}
	/* Otherwise the peer table belongs to the progress thread, so the
	 * peer is looked up there, from the addresses the send carries. */
	tx->map = map;
	if (s_send_start(self, tx, id, why, whysize) < 0)
		goto fail;
	return 0;
fail:
	if (tx->map)
		dg_xfer_map_unref(self, tx->map);
	dg_xfer_send_free(tx);
	return -1;
}

int
dg_xfer_send_placed(dg_xfer_t *self, const dg_manifest_msg_t *m,
    dg_xfer_lease_t **lease_p, int64_t timeout_ms, uint64_t *id, char *why,
    size_t whysize)
{
	dg_xfer_lease_t *l = *lease_p;

	*lease_p = NULL;
	if (!l) {
		snprintf(why, whysize, "no lease");
		return -1;
	}
	if (m->token != l->token || !m->share || strcmp(m->share, l->share)) {
		snprintf(why, whysize, "the receiver's manifest changed after "
		    "our write in place");
		dg_xfer_lease_drop(self, &l);
		return -1;
	}
	s_send_t *tx = s_send_new(self, m, NULL, NULL, timeout_ms, why,
	    whysize);
	if (!tx) {
		dg_xfer_lease_drop(self, &l);
		return -1;
	}
	/* The lease's reference on the map passes to the send. */
	tx->map = l->map;
	tx->placed = true;
	free(l);
	/* Nothing to move: hand it over from here, without a trip through
	 * the progress thread; it is there only if the receiver's queue is
	 * full. */
	if (dg_xfer_local_handoff(self, tx, id) == 0)
		return 0;
	if (s_send_start(self, tx, id, why, whysize) < 0) {
		dg_xfer_local_drop(self, tx->map, tx->token);
		dg_xfer_map_unref(self, tx->map);
		dg_xfer_send_free(tx);
		return -1;
	}
	return 0;
}

int
dg_xfer_recv_progress(dg_xfer_t *self, uint64_t id, uint64_t *bytes,
    uint64_t *total)
{
	int rc = -1;

	pthread_mutex_lock(&self->rx_lock);
	for (uint32_t i = 0; i < self->rx_hi; i++) {
		const s_recv_t *rx = &self->recvs[i];
		if (rx->active && rx->id == id) {
			*bytes = rx->bytes;
			*total = rx->bytes_total;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&self->rx_lock);
	return rc;
}

int
dg_xfer_cancel(dg_xfer_t *self, uint64_t id)
{
	pthread_mutex_lock(&self->rx_lock);
	for (uint32_t i = 0; i < self->rx_hi; i++) {
		if (self->recvs[i].active && self->recvs[i].id == id) {
			bool kept = dg_xfer_recv_finish(self, i, DG_XFER_FAILED,
			    "cancelled");
			pthread_mutex_unlock(&self->rx_lock);
			return kept ? 1 : 0;
		}
	}
	pthread_mutex_unlock(&self->rx_lock);
	s_cmd_t *cmd = calloc(1, sizeof *cmd);
	if (!cmd)
		return -1;
	cmd->type = CMD_CANCEL;
	cmd->id = id;
	s_command(self, cmd);
	return 0;
}

void
dg_xfer_stats(dg_xfer_t *self, dg_xfer_stats_t *out)
{
	pthread_mutex_lock(&self->st_lock);
	*out = self->stats;
	pthread_mutex_unlock(&self->st_lock);
}

const char *
dg_xfer_address_name(const dg_xfer_t *self, int rail)
{
	if (rail < 0 || rail >= self->nrails)
		return NULL;
	return self->addr_name[rail];
}

size_t
dg_xfer_rail_health(dg_xfer_t *self, dg_xfer_rail_t *out, size_t max)
{
	pthread_mutex_lock(&self->st_lock);
	size_t n = self->nhealth < max ? self->nhealth : max;
	if (n)
		memcpy(out, self->health, n * sizeof *out);
	pthread_mutex_unlock(&self->st_lock);
	return n;
}

bool
dg_xfer_wedged(const dg_xfer_t *self)
{
	return atomic_load(&((dg_xfer_t *)self)->wedged);
}

void
dg_xfer_inject_post_fault(dg_xfer_t *self, int count)
{
#ifdef DG_FAULT_INJECTION
	atomic_store(&self->post_fault, count);
#else
	(void)self;
	(void)count;
#endif
}

void
dg_xfer_inject_rail_fault(dg_xfer_t *self, int rail, int count)
{
#ifdef DG_FAULT_INJECTION
	atomic_store(&self->fault[rail % DG_XFER_MAX_RAILS], count);
#else
	(void)self;
	(void)rail;
	(void)count;
#endif
}
