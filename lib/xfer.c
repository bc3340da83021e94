/*  xfer.c: the libfabric transfer engine; see xfer.h for the contract.
 *
 *  Threads: the caller's (control loop) and one progress thread.  After
 *  dg_xfer_new() returns, only the progress thread calls into libfabric
 *  (the domain is opened FI_THREAD_DOMAIN).  Sends reach it through a
 *  command list and an eventfd; the receive table is shared under a
 *  mutex because dg_xfer_expect() must hand out a token at once; events
 *  go back through a list and another eventfd.
 *
 *  Retries are layered and bounded: a chunk that fails quarantines its
 *  (peer, rail) for quarantine_ms and is re-posted on the next healthy
 *  rail up to chunk_retries times; when a chunk runs out, the transfer
 *  starts a fresh attempt (retry budgets reset) up to transfer_attempts;
 *  then it fails.  Above that the controller re-dispatches the request.
 *  When every rail of a peer is quarantined all are tried: never starve.
 *
 *  Ops still owned by the provider when their transfer ends (failure,
 *  cancel, deadline) are orphaned, not freed: libfabric hands their
 *  context back later, or never for a dead peer, and they are freed then
 *  or when the engine closes.
 *
 *  A watchdog thread enforces deadlines even when the progress thread
 *  cannot: libfabric 1.17's shm provider takes spinlocks that live in
 *  the peers' shared memory, and a peer killed while holding one leaves
 *  our fi_cq_read() spinning for ever.  The watchdog fails every open
 *  receive at its deadline and every send shortly after its own, marks
 *  the engine wedged, and the daemon reports itself unhealthy.  Each
 *  transfer is claimed exactly once, by whichever thread ends it first,
 *  so there is still exactly one event per transfer.  */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checksum.h"
#include "log.h"
#include "manifest.h"
#include "threads.h"
#include "xfer.h"

/* A token names a receive: index in the table (low 16 bits) and that
 * entry's generation (next 16), so a late chunk for a recycled entry is
 * told apart.  It travels in the high 32 bits of the CQ data; the chunk
 * index in the low 32. */
#define RECV_SLOTS    (1u << 16)
#define CQ_BATCH      64

typedef struct s_peer {
	uint8_t addr[DG_XFER_MAX_RAILS][DG_XFER_ADDR_MAX];
	size_t addrlen[DG_XFER_MAX_RAILS];
	int nrails;
	fi_addr_t fa[DG_XFER_MAX_RAILS];
	int64_t quarantine_until[DG_XFER_MAX_RAILS];
	uint64_t errors[DG_XFER_MAX_RAILS];
	char name[DG_XFER_MAX_RAILS][64];
	int next_rail;
	int refs;               /* open sends */
	int orphans;            /* ops of ended sends the provider holds */
	bool failed;            /* remove from the AV once unused */
	struct s_peer *next;
} s_peer_t;

struct s_send;

typedef struct s_op {
	struct fi_context2 ctx; /* first: libfabric hands its address back */
	struct s_send *tx;      /* NULL once orphaned */
	uint32_t chunk;
	int rail;
	bool idle;              /* on the send's free list */
	struct s_op *next;      /* free list or orphan list */
	struct s_peer *peer;    /* whom it writes to */
	int64_t orphaned_at;    /* ms, once orphaned */
} s_op_t;

typedef struct s_send {
	uint64_t id, room;
	int phase;
	s_peer_t *peer;
	uint64_t key, base, token, chunk_size;
	size_t ntensors;
	uint64_t *src, *dst, *len;
	uint32_t *first;        /* first chunk of tensor i; first[n] = total */
	uint32_t nchunks, next_chunk, ndone;
	uint8_t *done;          /* per chunk: 1 once completed */
	uint8_t *retries;
	uint32_t *requeue;      /* chunks to post again */
	uint32_t nrequeue;
	s_op_t **ops;           /* every op this send allocated */
	int nops, inflight, maxinflight;
	s_op_t *free_ops;
	int attempts, max_attempts, chunk_retries;
	int64_t started, deadline;
	uint64_t bytes_total, bytes_done;
	char error[200];
	bool cancelled;
	struct s_send *next, **pprev;   /* on self->sends */
} s_send_t;

typedef struct {
	bool active;
	uint16_t gen;
	uint64_t id, room;
	int phase;
	dg_extent_t ext;
	uint32_t nchunks, nrecv;
	uint8_t *map;           /* bit per chunk */
	size_t ntensors;
	uint64_t *len;
	uint32_t *first;
	uint64_t bytes_total, bytes;
	int64_t started, deadline;
} s_recv_t;

typedef struct s_event {
	dg_xfer_event_t ev;
	struct s_event *next;
} s_event_t;

/* An open send, as the watchdog sees it. */
typedef struct s_pend {
	uint64_t id, room;
	int phase;
	int64_t started, deadline;
	struct s_pend *next;
} s_pend_t;

typedef struct s_cmd {
	enum { CMD_SEND, CMD_CANCEL } type;
	s_send_t *tx;
	uint64_t id;
	struct s_cmd *next;
} s_cmd_t;

struct _dg_xfer_t {
	dg_fabric_conf_t conf;
	dg_pool_t *pool;
	char provider[64];
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_cq *cq;
	struct fid_av *av;
	struct fid_ep *ep[DG_XFER_MAX_RAILS];
	struct fid_mr *mr;
	void *desc;
	uint64_t key, base;
	int nrails;
	uint8_t addr[DG_XFER_MAX_RAILS][DG_XFER_ADDR_MAX];
	size_t addrlen[DG_XFER_MAX_RAILS];
	dg_bin_t addr_bins[DG_XFER_MAX_RAILS];
	char addr_name[DG_XFER_MAX_RAILS][64];  /* printable, for sockets */
	dg_thread_t *progress_thread;   /* its registry slot, for the
	                                   watchdog to mark it blocked */
	int cq_fd;              /* -1 without a wait object */
	bool is_shm;

	pthread_t thread, watchdog;
	bool started, watching;
	atomic_bool stop;
	int stop_fd;                    /* wakes the watchdog to stop */
	_Atomic int64_t last_loop;      /* progress thread's last round */
	atomic_bool napping;            /* progress thread in its idle wait */
	bool ev_signalled;              /* ev_fd written, not yet drained */
	atomic_bool wedged;
	pthread_mutex_t pend_lock;
	s_pend_t *pend;
	atomic_uint_fast64_t next_id;

	pthread_mutex_t cmd_lock;
	s_cmd_t *cmds, **cmds_tail;
	int cmd_fd;

	pthread_mutex_t ev_lock;
	s_event_t *events, **events_tail;
	int ev_fd;

	pthread_mutex_t rx_lock;
	s_recv_t *recvs;
	uint32_t *rx_free;
	uint32_t rx_nfree;
	uint32_t rx_hi;         /* every active receive has index < rx_hi */

	/* Owned by the progress thread. */
	s_send_t *sends;
	s_peer_t *peers;
	s_op_t *orphans;
	int64_t next_check;

	pthread_mutex_t st_lock;
	dg_xfer_stats_t stats;
	dg_xfer_rail_t *health;         /* snapshot for other threads */
	size_t nhealth;
	int64_t next_health;

	atomic_int fault[DG_XFER_MAX_RAILS];
};

static int64_t
s_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
dg_xfer_pool_for(const dg_stage_conf_t *st, const char *provider, char *why,
    size_t whysize)
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
	return dg_pool_new_kind((size_t)st->pool, (size_t)st->slot, kind,
	    (int)st->device, why, whysize);
}

const char *
dg_xfer_provider_for(const char *configured, bool all_local)
{
	if (strcmp(configured, "auto") != 0)
		return configured;
	return all_local ? "shm" : "tcp;ofi_rxm";
}

/* ---- events and commands ---------------------------------------------- */

static void
s_kick(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof one) < 0 && errno != EAGAIN)
		dg_log_error("xfer: eventfd write: %s", strerror(errno));
}

static void
s_drain_fd(int fd)
{
	uint64_t n;

	while (read(fd, &n, sizeof n) > 0)
		;
}

static void
s_emit(dg_xfer_t *self, const dg_xfer_event_t *ev)
{
	s_event_t *e = calloc(1, sizeof *e);

	if (!e) {
		dg_log_error("xfer: out of memory for an event (room=%llu)",
		    (unsigned long long)ev->room);
		return;
	}
	e->ev = *ev;
	/* One write until the reader drains: a busy engine would
	 * otherwise make a system call per event. */
	pthread_mutex_lock(&self->ev_lock);
	*self->events_tail = e;
	self->events_tail = &e->next;
	bool kick = !self->ev_signalled;
	self->ev_signalled = true;
	if (kick)
		s_kick(self->ev_fd);
	pthread_mutex_unlock(&self->ev_lock);
}

int
dg_xfer_next_event(dg_xfer_t *self, dg_xfer_event_t *ev)
{
	pthread_mutex_lock(&self->ev_lock);
	s_event_t *e = self->events;
	if (!e) {
		/* Cleared under the lock: a later s_emit writes it again. */
		s_drain_fd(self->ev_fd);
		self->ev_signalled = false;
		pthread_mutex_unlock(&self->ev_lock);
		return 0;
	}
	self->events = e->next;
	if (!self->events)
		self->events_tail = &self->events;
	pthread_mutex_unlock(&self->ev_lock);
	*ev = e->ev;
	free(e);
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
		s_kick(self->cmd_fd);
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

#define STAT_ADD(self, field, n)                        \
	do {                                            \
		pthread_mutex_lock(&(self)->st_lock);   \
		(self)->stats.field += (n);             \
		pthread_mutex_unlock(&(self)->st_lock); \
	} while (0)

/* ---- chunk arithmetic, shared by both sides ---------------------------- */

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

/* ---- peers ------------------------------------------------------------- */

static s_peer_t *
s_peer_get(dg_xfer_t *self, const dg_bin_t *addrs, size_t n, char *why,
    size_t whysize)
{
	for (s_peer_t *p = self->peers; p; p = p->next) {
		if (p->nrails != (int)n)
			continue;
		if (p->addrlen[0] == addrs[0].size &&
		    memcmp(p->addr[0], addrs[0].data, addrs[0].size) == 0) {
			/* Talking to it again before its entry went: use the
			 * entry; a second one for the same address would share
			 * (and lose) its connection when the first is removed. */
			p->failed = false;
			return p;
		}
	}
	s_peer_t *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	p->nrails = (int)n;
	for (size_t r = 0; r < n; r++) {
		memcpy(p->addr[r], addrs[r].data, addrs[r].size);
		p->addrlen[r] = addrs[r].size;
		int rc = fi_av_insert(self->av, p->addr[r], 1, &p->fa[r], 0,
		    NULL);
		if (rc != 1) {
			snprintf(why, whysize, "cannot add peer rail %zu to the "
			    "address vector: %s", r, fi_strerror(rc < 0 ? -rc :
			    FI_EINVAL));
			for (size_t k = 0; k < r; k++)
				fi_av_remove(self->av, &p->fa[k], 1, 0);
			free(p);
			return NULL;
		}
		size_t len = sizeof p->name[r];
		if (!fi_av_straddr(self->av, p->addr[r], p->name[r], &len))
			snprintf(p->name[r], sizeof p->name[r], "?");
	}
	p->next = self->peers;
	self->peers = p;
	return p;
}

/* A peer whose transfers failed is taken out of the AV once nothing uses
 * it, so that it is inserted afresh (a new connection) when it returns.
 * Not while the provider still holds ops to it: shm unmaps the peer's
 * region on removal, and a late completion would touch it. */
static void
s_peer_release(dg_xfer_t *self, s_peer_t *peer)
{
	if (peer->refs > 0 || peer->orphans > 0 || !peer->failed)
		return;
	/* shm (1.17) keeps state of its own about a peer's region beyond
	 * our ops, and its progress segfaulted on a region unmapped by
	 * fi_av_remove.  Its addresses carry the pid, so a peer that comes
	 * back has a new one anyway: keep the entry. */
	if (self->is_shm)
		return;
	for (s_peer_t **pp = &self->peers; *pp; pp = &(*pp)->next) {
		if (*pp != peer)
			continue;
		*pp = peer->next;
		fi_av_remove(self->av, peer->fa, (size_t)peer->nrails, 0);
		dg_log_info("xfer: peer %s removed from the address vector",
		    peer->name[0]);
		free(peer);
		return;
	}
}

static void
s_peer_unref(dg_xfer_t *self, s_peer_t *peer)
{
	peer->refs--;
	s_peer_release(self, peer);
}

static int
s_pick_rail(dg_xfer_t *self, s_peer_t *p, int64_t now)
{
	for (int i = 0; i < p->nrails; i++) {
		int r = (p->next_rail + i) % p->nrails;
		if (p->quarantine_until[r] <= now) {
			p->next_rail = (r + 1) % p->nrails;
			return r;
		}
	}
	/* Every rail is quarantined: try them all in turn. */
	(void)self;
	int r = p->next_rail;
	p->next_rail = (r + 1) % p->nrails;
	return r;
}

/* ---- sends (progress thread) ------------------------------------------- */

static void
s_send_free(s_send_t *tx)
{
	for (int i = 0; i < tx->nops; i++)
		free(tx->ops[i]);
	free(tx->ops);
	free(tx->src);
	free(tx->dst);
	free(tx->len);
	free(tx->first);
	free(tx->done);
	free(tx->retries);
	free(tx->requeue);
	free(tx);
}

/* Take the send off the watchdog's list; false when the watchdog already
 * ended it (and sent its event). */
static bool
s_claim(dg_xfer_t *self, uint64_t id)
{
	bool mine = false;

	pthread_mutex_lock(&self->pend_lock);
	for (s_pend_t **pp = &self->pend; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			s_pend_t *p = *pp;
			*pp = p->next;
			free(p);
			mine = true;
			break;
		}
	}
	pthread_mutex_unlock(&self->pend_lock);
	return mine;
}

static void
s_send_finish(dg_xfer_t *self, s_send_t *tx, dg_xfer_status_t status)
{
	bool mine = s_claim(self, tx->id);
	dg_xfer_event_t ev = {
		.dir = DG_XFER_SEND, .status = status, .id = tx->id,
		.room = tx->room, .phase = tx->phase, .bytes = tx->bytes_done,
		.bytes_left = tx->bytes_total - tx->bytes_done,
		.attempts = tx->attempts, .ms = s_now_ms() - tx->started,
	};
	if (status != DG_XFER_DONE)
		snprintf(ev.reason, sizeof ev.reason, "%s", tx->error);

	/* Ops the provider still holds become orphans; the rest go. */
	for (int i = 0; i < tx->nops; i++) {
		s_op_t *op = tx->ops[i];
		if (op->idle) {
			free(op);
		} else {
			op->tx = NULL;
			op->orphaned_at = s_now_ms();
			op->next = self->orphans;
			self->orphans = op;
			if (op->peer)
				op->peer->orphans++;
		}
		tx->ops[i] = NULL;
	}
	tx->nops = 0;
	if (tx->pprev) {
		*tx->pprev = tx->next;
		if (tx->next)
			tx->next->pprev = tx->pprev;
		tx->pprev = NULL;
	}
	if (tx->peer) {
		if (status != DG_XFER_DONE && !tx->cancelled)
			tx->peer->failed = true;
		s_peer_unref(self, tx->peer);
	}
	if (mine) {
		pthread_mutex_lock(&self->st_lock);
		if (status == DG_XFER_DONE)
			self->stats.sends_done++;
		else
			self->stats.sends_failed++;
		self->stats.sends_active--;
		pthread_mutex_unlock(&self->st_lock);
		s_emit(self, &ev);
	}
	s_send_free(tx);
}

/* A chunk failed on `rail`: quarantine the rail, then retry the chunk,
 * or start a fresh attempt, or give up.  Returns false when the send
 * is over (and freed). */
static bool
s_chunk_failed(dg_xfer_t *self, s_send_t *tx, uint32_t c, int rail,
    const char *what)
{
	s_peer_t *p = tx->peer;
	int64_t now = s_now_ms();

	p->errors[rail]++;
	p->quarantine_until[rail] = now + self->conf.quarantine_ms;
	dg_log_warn("xfer: room=%llu peer %s rail %d: %s; rail quarantined "
	    "for %lld ms", (unsigned long long)tx->room, p->name[rail], rail,
	    what, (long long)self->conf.quarantine_ms);
	snprintf(tx->error, sizeof tx->error, "peer %s rail %d: %s",
	    p->name[rail], rail, what);
	if (tx->retries[c] < tx->chunk_retries) {
		tx->retries[c]++;
		tx->requeue[tx->nrequeue++] = c;
		STAT_ADD(self, chunks_retried, 1);
		return true;
	}
	if (tx->attempts < tx->max_attempts) {
		tx->attempts++;
		memset(tx->retries, 0, tx->nchunks);
		tx->requeue[tx->nrequeue++] = c;
		STAT_ADD(self, attempts_retried, 1);
		dg_log_info("xfer: room=%llu attempt %d of %d",
		    (unsigned long long)tx->room, tx->attempts,
		    tx->max_attempts);
		return true;
	}
	char left[64];
	snprintf(left, sizeof left, "; %llu of %llu bytes left after %d "
	    "attempts", (unsigned long long)(tx->bytes_total - tx->bytes_done),
	    (unsigned long long)tx->bytes_total, tx->attempts);
	size_t n = strlen(tx->error);
	snprintf(tx->error + n, sizeof tx->error - n, "%s", left);
	dg_log_warn("xfer: room=%llu send failed: %s",
	    (unsigned long long)tx->room, tx->error);
	s_send_finish(self, tx, DG_XFER_FAILED);
	return false;
}

static s_op_t *
s_op_get(s_send_t *tx)
{
	s_op_t *op = tx->free_ops;

	if (op) {
		tx->free_ops = op->next;
		op->idle = false;
		return op;
	}
	if (tx->nops == tx->maxinflight)
		return NULL;
	op = calloc(1, sizeof *op);
	if (!op)
		return NULL;
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

/* Post what the send may have in flight.  Returns the number posted, or
 * -1 when the send ended. */
static int
s_send_post(dg_xfer_t *self, s_send_t *tx, int64_t now, bool *eagain)
{
	int posted = 0;
	char *base = dg_pool_base(self->pool);

	while (tx->inflight < tx->maxinflight) {
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
		s_op_t *op = s_op_get(tx);
		if (!op)
			break;
		uint64_t off, clen;
		size_t t = s_chunk_at(tx->ntensors, tx->first, tx->len,
		    tx->chunk_size, c, &off, &clen);
		int rail = s_pick_rail(self, tx->peer, now);
		int lrail = rail % self->nrails;
		op->chunk = c;
		op->rail = rail;
		op->peer = tx->peer;
		uint64_t data = (tx->token << 32) | c;
		ssize_t rc = fi_writedata(self->ep[lrail],
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
			if (!s_chunk_failed(self, tx, c, rail, what))
				return -1;
			continue;
		}
		tx->inflight++;
		posted++;
		STAT_ADD(self, chunks_posted, 1);
	}
	return posted;
}

static void
s_send_completed(dg_xfer_t *self, s_op_t *op, const char *error)
{
	s_send_t *tx = op->tx;

	if (!tx) {
		/* An orphan: its transfer already ended. */
		for (s_op_t **pp = &self->orphans; *pp; pp = &(*pp)->next) {
			if (*pp == op) {
				*pp = op->next;
				break;
			}
		}
		s_peer_t *peer = op->peer;
		free(op);
		if (peer) {
			peer->orphans--;
			s_peer_release(self, peer);
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
			(void)s_chunk_failed(self, tx, c, rail, error);
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
		s_send_finish(self, tx, DG_XFER_DONE);
}

/* ---- receives ---------------------------------------------------------- */

static void
s_recv_release(dg_xfer_t *self, uint32_t index)
{
	s_recv_t *rx = &self->recvs[index];

	free(rx->map);
	free(rx->len);
	free(rx->first);
	rx->map = NULL;
	rx->len = NULL;
	rx->first = NULL;
	rx->active = false;
	rx->gen++;
	self->rx_free[self->rx_nfree++] = index;
}

/* Called with rx_lock held. */
static void
s_recv_finish(dg_xfer_t *self, uint32_t index, dg_xfer_status_t status,
    const char *reason)
{
	s_recv_t *rx = &self->recvs[index];
	dg_xfer_event_t ev = {
		.dir = DG_XFER_RECV, .status = status, .id = rx->id,
		.room = rx->room, .phase = rx->phase, .bytes = rx->bytes,
		.bytes_left = rx->bytes_total - rx->bytes,
		.ms = s_now_ms() - rx->started,
	};
	if (reason)
		snprintf(ev.reason, sizeof ev.reason, "%s", reason);
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
	s_emit(self, &ev);
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
		s_recv_finish(self, index, DG_XFER_DONE, NULL);
	pthread_mutex_unlock(&self->rx_lock);
}

/* ---- the progress thread ---------------------------------------------- */

static int
s_take_commands(dg_xfer_t *self)
{
	pthread_mutex_lock(&self->cmd_lock);
	s_cmd_t *cmd = self->cmds;
	self->cmds = NULL;
	self->cmds_tail = &self->cmds;
	pthread_mutex_unlock(&self->cmd_lock);
	if (!cmd)
		return 0;
	s_drain_fd(self->cmd_fd);
	int n = 0;
	while (cmd) {
		s_cmd_t *next = cmd->next;
		if (cmd->type == CMD_SEND) {
			s_send_t *tx = cmd->tx;
			s_peer_t *tmp = tx->peer;
			dg_bin_t bins[DG_XFER_MAX_RAILS];
			for (int r = 0; r < tmp->nrails; r++) {
				bins[r].data = tmp->addr[r];
				bins[r].size = tmp->addrlen[r];
			}
			tx->peer = s_peer_get(self, bins, (size_t)tmp->nrails,
			    tx->error, sizeof tx->error);
			free(tmp);
			tx->next = self->sends;
			if (tx->next)
				tx->next->pprev = &tx->next;
			tx->pprev = &self->sends;
			self->sends = tx;
			if (!tx->peer)
				s_send_finish(self, tx, DG_XFER_FAILED);
			else if (tx->peer->refs++, tx->nchunks == 0)
				s_send_finish(self, tx, DG_XFER_DONE);
		} else {
			for (s_send_t *tx = self->sends; tx; tx = tx->next) {
				if (tx->id != cmd->id)
					continue;
				tx->cancelled = true;
				snprintf(tx->error, sizeof tx->error,
				    "cancelled");
				s_send_finish(self, tx, DG_XFER_FAILED);
				break;
			}
		}
		free(cmd);
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
			s_send_completed(self, err.op_context, what);
			continue;
		}
		if (n < 0) {
			dg_log_error("xfer: fi_cq_read: %s",
			    fi_strerror((int)-n));
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (ent[i].flags & FI_REMOTE_CQ_DATA)
				s_recv_chunk(self, ent[i].data);
			else if (ent[i].op_context)
				s_send_completed(self, ent[i].op_context, NULL);
		}
		total += (int)n;
		if (n < CQ_BATCH)
			break;
	}
	return total;
}

static int
s_post_all(dg_xfer_t *self)
{
	int posted = 0;
	bool eagain = false;
	s_send_t *next;
	int64_t now = s_now_ms();

	/* -FI_EAGAIN ends one send's turn, not the round: the queue that is
	 * full may be one dead peer's, and the others must not wait on it. */
	for (s_send_t *tx = self->sends; tx; tx = next) {
		next = tx->next;
		/* Most open sends have every chunk posted: skip them cheaply. */
		if (tx->nrequeue == 0 && tx->next_chunk >= tx->nchunks)
			continue;
		eagain = false;
		int n = s_send_post(self, tx, now, &eagain);
		if (n > 0)
			posted += n;
	}
	return posted;
}

static void
s_check_deadlines(dg_xfer_t *self, int64_t now)
{
	s_send_t *next;

	for (s_send_t *tx = self->sends; tx; tx = next) {
		next = tx->next;
		if (now < tx->deadline)
			continue;
		if (!*tx->error)
			snprintf(tx->error, sizeof tx->error, "peer %s",
			    tx->peer->name[0]);
		size_t n = strlen(tx->error);
		snprintf(tx->error + n, sizeof tx->error - n, ": timed out "
		    "after %lld ms with %llu of %llu bytes left",
		    (long long)(now - tx->started),
		    (unsigned long long)(tx->bytes_total - tx->bytes_done),
		    (unsigned long long)tx->bytes_total);
		dg_log_warn("xfer: room=%llu send failed: %s",
		    (unsigned long long)tx->room, tx->error);
		s_send_finish(self, tx, DG_XFER_FAILED);
	}
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
		s_recv_finish(self, i, DG_XFER_FAILED, reason);
	}
	pthread_mutex_unlock(&self->rx_lock);
}

/* Copy the rails' health where other threads may read it. */
static void
s_publish_health(dg_xfer_t *self, int64_t now)
{
	size_t n = 0;

	for (s_peer_t *p = self->peers; p; p = p->next)
		n += (size_t)p->nrails;
	dg_xfer_rail_t *h = calloc(n + 1, sizeof *h);
	if (!h)
		return;
	size_t i = 0;
	for (s_peer_t *p = self->peers; p; p = p->next) {
		for (int r = 0; r < p->nrails; r++, i++) {
			h[i].rail = r;
			snprintf(h[i].peer, sizeof h[i].peer, "%s", p->name[r]);
			h[i].quarantined = p->quarantine_until[r] > now;
			h[i].quarantine_left_ms = h[i].quarantined ?
			    p->quarantine_until[r] - now : 0;
			h[i].errors = p->errors[r];
		}
	}
	pthread_mutex_lock(&self->st_lock);
	free(self->health);
	self->health = h;
	self->nhealth = n;
	pthread_mutex_unlock(&self->st_lock);
}

/* Nothing happened this round: wait a little, for longer the longer
 * nothing happens, but wake at once for a new command or receive.  With
 * a CQ wait fd we also wake when the provider has something.  While a
 * transfer is open the wait stays short: with manual progress (rxm over
 * tcp) our writes move only while we call into the provider, and a CQ
 * fd says nothing about a socket that could take more; shm has no fd,
 * and its target does the copy inside fi_cq_read. */
#define IDLE_MAX_US     1000
#define IDLE_OPEN_US    50

static void
s_idle(dg_xfer_t *self, int idle)
{
	struct pollfd fds[2] = {
		{ .fd = self->cmd_fd, .events = POLLIN },
		{ .fd = self->cq_fd, .events = POLLIN },
	};
	int nfds = 1;

	if (idle < 64)
		return;
	long cap = IDLE_MAX_US;
	if (self->sends) {
		cap = IDLE_OPEN_US;
	} else {
		pthread_mutex_lock(&self->st_lock);
		if (self->stats.recvs_active > 0)
			cap = IDLE_OPEN_US;
		pthread_mutex_unlock(&self->st_lock);
	}
	if (self->cq_fd >= 0) {
		struct fid *fids[1] = { &self->cq->fid };
		if (fi_trywait(self->fabric, fids, 1) != FI_SUCCESS)
			return;
		nfds = 2;
	}
	long us = 20L * (idle - 63);
	if (us > cap)
		us = cap;
	struct timespec ts = { 0, us * 1000 };
	atomic_store(&self->napping, true);
	/* A command queued just before `napping` was seen set found no one
	 * to wake: look once more. */
	pthread_mutex_lock(&self->cmd_lock);
	bool queued = self->cmds != NULL;
	pthread_mutex_unlock(&self->cmd_lock);
	if (!queued && ppoll(fds, (nfds_t)nfds, &ts, NULL) > 0 &&
	    (fds[0].revents & POLLIN)) {
		/* A kick that raced with the look above (the writer saw
		 * `napping` after we had found its command) leaves the fd
		 * readable with nothing queued: left so, every later wait
		 * would return at once and this thread would spin. */
		s_drain_fd(self->cmd_fd);
	}
	atomic_store(&self->napping, false);
}

/* Sends the progress thread did not end by their deadline (plus a grace
 * to let it): end them here. */
#define WATCHDOG_GRACE_MS 500
#define WEDGED_MS         1000

static void
s_check_send_deadlines(dg_xfer_t *self, int64_t now, int64_t stuck)
{
	for (;;) {
		s_pend_t *late = NULL;
		pthread_mutex_lock(&self->pend_lock);
		for (s_pend_t **pp = &self->pend; *pp; pp = &(*pp)->next) {
			if (now >= (*pp)->deadline + WATCHDOG_GRACE_MS) {
				late = *pp;
				*pp = late->next;
				break;
			}
		}
		pthread_mutex_unlock(&self->pend_lock);
		if (!late)
			return;
		dg_xfer_event_t ev = {
			.dir = DG_XFER_SEND, .status = DG_XFER_FAILED,
			.id = late->id, .room = late->room,
			.phase = late->phase, .ms = now - late->started,
		};
		snprintf(ev.reason, sizeof ev.reason, "timed out after %lld "
		    "ms; the progress thread has been stuck in the fabric "
		    "provider for %lld ms", (long long)(now - late->started),
		    (long long)stuck);
		dg_log_warn("xfer: room=%llu send failed: %s",
		    (unsigned long long)late->room, ev.reason);
		pthread_mutex_lock(&self->st_lock);
		self->stats.sends_failed++;
		self->stats.sends_active--;
		pthread_mutex_unlock(&self->st_lock);
		s_emit(self, &ev);
		free(late);
	}
}

static void *
s_watch(void *arg)
{
	dg_xfer_t *self = arg;
	struct pollfd p = { .fd = self->stop_fd, .events = POLLIN };

	dg_thread_register("watchdog");
	while (!atomic_load(&self->stop)) {
		dg_thread_set(DG_THREAD_IDLE, 0);
		(void)poll(&p, 1, 5); /* tick; the stop fd wakes it early */
		dg_thread_set(DG_THREAD_BUSY, 0);
		int64_t now = s_now_ms();
		s_check_recv_deadlines(self, now);
		int64_t stuck = now - atomic_load(&self->last_loop);
		if (stuck > WEDGED_MS && !atomic_load(&self->wedged)) {
			atomic_store(&self->wedged, true);
			dg_thread_mark(self->progress_thread,
			    DG_THREAD_BLOCKED);
			dg_log_error("xfer: the progress thread has been stuck "
			    "in the %s provider for %lld ms (a peer that died "
			    "holding a shared lock?); failing transfers at "
			    "their deadlines: restart this daemon",
			    self->provider, (long long)stuck);
		}
		s_check_send_deadlines(self, now, stuck);
	}
	dg_thread_unregister();
	return NULL;
}

bool
dg_xfer_wedged(const dg_xfer_t *self)
{
	return atomic_load(&((dg_xfer_t *)self)->wedged);
}

/* libfabric 1.17's shm provider completes a sender's operations in the
 * order it posted them: a write to a peer that stopped making progress
 * (frozen, or no longer reading its queue) never completes, and every
 * later completion, to healthy peers too, waits behind it for ever.  An
 * op of an ended send still held past ORPHAN_WEDGE_MS means exactly
 * that: call the engine wedged, so that the daemon restarts in place as
 * it does for a peer that died holding a lock. */
#define ORPHAN_WEDGE_MS 3000

static void
s_check_orphans(dg_xfer_t *self, int64_t now)
{
	if (!self->orphans || atomic_load(&self->wedged) ||
	    strcmp(self->provider, "shm") != 0)
		return;
	int64_t oldest = now;
	for (s_op_t *op = self->orphans; op; op = op->next)
		if (op->orphaned_at < oldest)
			oldest = op->orphaned_at;
	if (now - oldest < ORPHAN_WEDGE_MS)
		return;
	atomic_store(&self->wedged, true);
	dg_log_error("xfer: a write to a peer that stopped making progress "
	    "has been outstanding for %lld ms, and the shm provider completes "
	    "every later write behind it; restart this daemon",
	    (long long)(now - oldest));
}

static void *
s_progress(void *arg)
{
	dg_xfer_t *self = arg;
	int idle = 0;

	self->progress_thread = dg_thread_register("progress");
	while (!atomic_load(&self->stop)) {
		atomic_store(&self->last_loop, s_now_ms());
		int work = s_take_commands(self);
		work += s_poll_cq(self);
		work += s_post_all(self);
		int64_t now = s_now_ms();
		if (now >= self->next_check) {
			s_check_deadlines(self, now);
			s_check_orphans(self, now);
			self->next_check = now + 5;
		}
		if (now >= self->next_health) {
			s_publish_health(self, now);
			self->next_health = now + 100;
		}
		idle = work ? 0 : idle + 1;
		/* Busy while transfers are open; idle once it naps.  Two
		 * relaxed stores and a vDSO clock read per turn. */
		dg_thread_set(work || self->sends ? DG_THREAD_BUSY :
		    DG_THREAD_IDLE, 0);
		s_idle(self, idle);
	}
	dg_thread_unregister();
	return NULL;
}

/* ---- set-up ------------------------------------------------------------ */

/* libfabric 1.17's shm provider keeps each endpoint's region in
 * /dev/shm/PID:N:M and unlinks it only on a clean close, so a daemon
 * that was killed leaves 16 MiB of tmpfs behind for good.  Remove the
 * regions of our own user whose process is gone (and, after a re-exec,
 * our own pid's, which the new image would otherwise collide with). */
static void
s_shm_collect(bool own_pid_too)
{
	DIR *dir = opendir("/dev/shm");
	struct dirent *de;
	int removed = 0;

	if (!dir)
		return;
	while ((de = readdir(dir))) {
		int pid, a, b, n = 0;
		long long start;
		if ((sscanf(de->d_name, "%d-%lld:%d:%d%n", &pid, &start, &a,
		    &b, &n) != 4 || de->d_name[n] != '\0') &&
		    (sscanf(de->d_name, "%d:%d:%d%n", &pid, &a, &b, &n) != 3 ||
		    de->d_name[n] != '\0'))
			continue;
		if (pid <= 0)
			continue;
		char path[300];
		struct stat st;
		snprintf(path, sizeof path, "/dev/shm/%s", de->d_name);
		if (stat(path, &st) < 0 || st.st_uid != getuid())
			continue;
		bool mine = pid == (int)getpid();
		if ((mine && own_pid_too) ||
		    (!mine && kill(pid, 0) < 0 && errno == ESRCH)) {
			if (unlink(path) == 0)
				removed++;
		}
	}
	closedir(dir);
	if (removed)
		dg_log_info("xfer: removed %d shm region%s left by processes "
		    "that are gone", removed, removed > 1 ? "s" : "");
}

static struct fi_info *
s_getinfo(const char *provider, const char *node, bool hmem, char *why,
    size_t whysize)
{
	struct fi_info *hints = fi_allocinfo(), *info = NULL;

	if (!hints) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	hints->caps = FI_RMA | FI_WRITE | FI_REMOTE_WRITE | (hmem ? FI_HMEM : 0);
	hints->mode = FI_CONTEXT | FI_CONTEXT2;
	hints->ep_attr->type = FI_EP_RDM;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
	    FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT |
	    (hmem ? FI_MR_HMEM : 0);
	hints->domain_attr->threading = FI_THREAD_DOMAIN;
	hints->fabric_attr->prov_name = strdup(provider);
	bool shm = strcmp(provider, "shm") == 0;
	/* shm names an endpoint PID:UID:N by default; a daemon that
	 * restarts in place (same pid) would get its old name back while
	 * its peers still map the old region under it.  PID-START is
	 * unique per engine, and still begins with the pid for
	 * s_shm_collect(). */
	char shm_name[64];
	if (shm) {
		snprintf(shm_name, sizeof shm_name, "%d-%lld", (int)getpid(),
		    (long long)s_now_ms());
		node = shm_name;
	}
	int rc = fi_getinfo(FI_VERSION(1, 17), node, NULL,
	    node ? FI_SOURCE : 0, hints, &info);
	fi_freeinfo(hints);
	if (rc) {
		snprintf(why, whysize, "no libfabric provider '%s' with RDM "
		    "and RMA here: %s", provider, fi_strerror(-rc));
		return NULL;
	}
	if (info->domain_attr->cq_data_size < 8) {
		snprintf(why, whysize, "provider '%s' carries %zu bytes of CQ "
		    "data; 8 are needed", provider,
		    info->domain_attr->cq_data_size);
		fi_freeinfo(info);
		return NULL;
	}
	return info;
}

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
	pthread_mutex_init(&self->cmd_lock, NULL);
	pthread_mutex_init(&self->ev_lock, NULL);
	pthread_mutex_init(&self->rx_lock, NULL);
	pthread_mutex_init(&self->st_lock, NULL);
	pthread_mutex_init(&self->pend_lock, NULL);
	self->stop_fd = -1;
	atomic_init(&self->last_loop, s_now_ms());
	atomic_init(&self->wedged, false);
	atomic_init(&self->napping, false);
	self->cmds_tail = &self->cmds;
	self->events_tail = &self->events;
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

	bool device = dg_pool_kind(pool) == DG_MEM_DEVICE;
	self->is_shm = strcmp(conf->provider, "shm") == 0;
	if (self->is_shm)
		s_shm_collect(getenv("DISAGG_REEXEC") != NULL);
	self->info = s_getinfo(conf->provider, node, device, why, whysize);
	if (!self->info)
		goto fail;
	if ((rc = fi_fabric(self->info->fabric_attr, &self->fabric, NULL))) {
		snprintf(why, whysize, "fi_fabric: %s", fi_strerror(-rc));
		goto fail;
	}
	if ((rc = fi_domain(self->fabric, self->info, &self->domain, NULL))) {
		snprintf(why, whysize, "fi_domain: %s", fi_strerror(-rc));
		goto fail;
	}
	/* A wait fd lets the idle thread sleep until the provider has work;
	 * shm signals none across processes in 1.17, so it polls instead. */
	struct fi_cq_attr cq_attr = {
		.format = FI_CQ_FORMAT_DATA,
		.size = 4096,
		.wait_obj = strcmp(conf->provider, "shm") ? FI_WAIT_FD :
		    FI_WAIT_NONE,
	};
	rc = fi_cq_open(self->domain, &cq_attr, &self->cq, NULL);
	if (rc && cq_attr.wait_obj != FI_WAIT_NONE) {
		cq_attr.wait_obj = FI_WAIT_NONE;
		rc = fi_cq_open(self->domain, &cq_attr, &self->cq, NULL);
	}
	if (rc) {
		snprintf(why, whysize, "fi_cq_open: %s", fi_strerror(-rc));
		goto fail;
	}
	if (cq_attr.wait_obj == FI_WAIT_FD &&
	    fi_control(&self->cq->fid, FI_GETWAIT, &self->cq_fd))
		self->cq_fd = -1;
	struct fi_av_attr av_attr = { .type = FI_AV_TABLE };
	if ((rc = fi_av_open(self->domain, &av_attr, &self->av, NULL))) {
		snprintf(why, whysize, "fi_av_open: %s", fi_strerror(-rc));
		goto fail;
	}
	for (int r = 0; r < self->nrails; r++) {
		if ((rc = fi_endpoint(self->domain, self->info, &self->ep[r],
		    NULL))) {
			snprintf(why, whysize, "fi_endpoint (rail %d): %s", r,
			    fi_strerror(-rc));
			goto fail;
		}
		if ((rc = fi_ep_bind(self->ep[r], &self->cq->fid,
		    FI_TRANSMIT | FI_RECV)) ||
		    (rc = fi_ep_bind(self->ep[r], &self->av->fid, 0)) ||
		    (rc = fi_enable(self->ep[r]))) {
			snprintf(why, whysize, "endpoint set-up (rail %d): %s",
			    r, fi_strerror(-rc));
			goto fail;
		}
		self->addrlen[r] = DG_XFER_ADDR_MAX;
		if ((rc = fi_getname(&self->ep[r]->fid, self->addr[r],
		    &self->addrlen[r]))) {
			snprintf(why, whysize, "fi_getname (rail %d): %s", r,
			    fi_strerror(-rc));
			goto fail;
		}
		self->addr_bins[r].data = self->addr[r];
		self->addr_bins[r].size = self->addrlen[r];
		/* Before the progress thread owns the AV. */
		size_t nlen = sizeof self->addr_name[r];
		if (!fi_av_straddr(self->av, self->addr[r], self->addr_name[r],
		    &nlen))
			snprintf(self->addr_name[r], sizeof self->addr_name[r],
			    "?");
	}

	/* The one registration of the pool, for every transfer to come. */
	uint64_t mr_mode = (uint64_t)self->info->domain_attr->mr_mode;
	struct iovec iov = { dg_pool_base(pool), dg_pool_size(pool) };
	struct fi_mr_attr mr_attr = {
		.mr_iov = &iov, .iov_count = 1,
		.access = FI_WRITE | FI_REMOTE_WRITE | FI_READ | FI_REMOTE_READ,
		.requested_key = 1,
		.iface = device ? FI_HMEM_CUDA : FI_HMEM_SYSTEM,
	};
	if (device)
		mr_attr.device.cuda = dg_pool_device(pool);
	rc = fi_mr_regattr(self->domain, &mr_attr, 0, &self->mr);
	if (rc) {
		snprintf(why, whysize, "fi_mr_reg of the %zu-byte pool: %s",
		    dg_pool_size(pool), fi_strerror(-rc));
		goto fail;
	}
	if (mr_mode & FI_MR_ENDPOINT) {
		for (int r = 0; r < self->nrails && !rc; r++)
			rc = fi_mr_bind(self->mr, &self->ep[r]->fid, 0);
		if (!rc)
			rc = fi_mr_enable(self->mr);
		if (rc) {
			snprintf(why, whysize, "binding the pool to the "
			    "endpoints: %s", fi_strerror(-rc));
			goto fail;
		}
	}
	self->key = fi_mr_key(self->mr);
	self->desc = fi_mr_desc(self->mr);
	self->base = (mr_mode & FI_MR_VIRT_ADDR) ?
	    (uint64_t)(uintptr_t)dg_pool_base(pool) : 0;

	if ((rc = pthread_create(&self->thread, NULL, s_progress, self))) {
		snprintf(why, whysize, "progress thread: %s", strerror(rc));
		goto fail;
	}
	self->started = true;
	if ((rc = pthread_create(&self->watchdog, NULL, s_watch, self))) {
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
		s_kick(self->stop_fd);
		pthread_join(self->watchdog, NULL);
	}
	if (self->started) {
		s_kick(self->cmd_fd);
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
	s_take_commands(self);
	while (self->sends) {
		snprintf(self->sends->error, sizeof self->sends->error,
		    "transfer engine closed");
		s_send_finish(self, self->sends, DG_XFER_FAILED);
	}
	if (self->recvs) {
		pthread_mutex_lock(&self->rx_lock);
		for (uint32_t i = 0; i < self->rx_hi; i++)
			if (self->recvs[i].active)
				s_recv_finish(self, i, DG_XFER_FAILED,
				    "transfer engine closed");
		pthread_mutex_unlock(&self->rx_lock);
	}
	for (int r = 0; r < self->nrails; r++)
		if (self->ep[r])
			fi_close(&self->ep[r]->fid);
	if (self->mr)
		fi_close(&self->mr->fid);
	if (self->av)
		fi_close(&self->av->fid);
	if (self->cq)
		fi_close(&self->cq->fid);
	if (self->domain)
		fi_close(&self->domain->fid);
	if (self->fabric)
		fi_close(&self->fabric->fid);
	if (self->info)
		fi_freeinfo(self->info);
	while (self->orphans) {
		s_op_t *op = self->orphans;
		self->orphans = op->next;
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
	uint64_t *len = calloc(n + 1, sizeof *len);
	uint32_t *first = calloc(n + 1, sizeof *first);
	uint64_t total = 0;

	if (!len || !first) {
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
	if (s_check_tensors(m, ext, NULL, len, first, (uint64_t)self->conf.chunk,
	    &total, why, whysize) < 0)
		goto fail;
	uint32_t nchunks = first[n];
	uint8_t *map = calloc(nchunks / 8 + 1, 1);
	if (!map) {
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
	rx->map = map;
	rx->ntensors = n;
	rx->len = len;
	rx->first = first;
	rx->bytes_total = total;
	rx->bytes = 0;
	rx->started = s_now_ms();
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
	pthread_mutex_lock(&self->st_lock);
	self->stats.recvs_active++;
	pthread_mutex_unlock(&self->st_lock);
	/* Nothing will ever arrive for an empty transfer. */
	if (nchunks == 0)
		s_recv_finish(self, index, DG_XFER_DONE, NULL);
	pthread_mutex_unlock(&self->rx_lock);
	/* Wake a sleeping progress thread: the peer may write at once, and
	 * with shm nothing lands until we read our CQ. */
	s_wake(self);
	return 0;
fail:
	free(len);
	free(first);
	return -1;
}

int
dg_xfer_send(dg_xfer_t *self, const dg_manifest_msg_t *m,
    const dg_extent_t *ext, const uint64_t *src, int64_t timeout_ms,
    uint64_t *id, char *why, size_t whysize)
{
	size_t n = m->n_tensors;

	if (dg_manifest_check(m, &(dg_manifest_want_t){ 0 }, why,
	    whysize) < 0)
		return -1;
	s_send_t *tx = calloc(1, sizeof *tx);
	if (!tx) {
		snprintf(why, whysize, "out of memory");
		return -1;
	}
	tx->src = calloc(n + 1, sizeof *tx->src);
	tx->dst = calloc(n + 1, sizeof *tx->dst);
	tx->len = calloc(n + 1, sizeof *tx->len);
	tx->first = calloc(n + 1, sizeof *tx->first);
	tx->maxinflight = (int)self->conf.inflight;
	tx->ops = calloc((size_t)tx->maxinflight, sizeof *tx->ops);
	if (!tx->src || !tx->dst || !tx->len || !tx->first || !tx->ops) {
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
	if (s_check_tensors(m, ext, src, tx->len, tx->first, m->chunk,
	    &tx->bytes_total, why, whysize) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		tx->src[i] = src[i];
		tx->dst[i] = m->tensors[i].offset;
	}
	tx->ntensors = n;
	tx->nchunks = tx->first[n];
	tx->done = calloc(tx->nchunks + 1, 1);
	tx->retries = calloc(tx->nchunks + 1, 1);
	tx->requeue = calloc(tx->nchunks + 1, sizeof *tx->requeue);
	if (!tx->done || !tx->retries || !tx->requeue) {
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
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
	tx->started = s_now_ms();
	tx->deadline = tx->started + timeout_ms;

	/* The peer table belongs to the progress thread, so the peer is
	 * looked up there; carry the addresses in the send meanwhile. */
	s_peer_t *peer = calloc(1, sizeof *peer);
	if (!peer) {
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
	peer->nrails = (int)m->n_fabric;
	for (size_t r = 0; r < m->n_fabric; r++) {
		memcpy(peer->addr[r], m->fabric[r].data, m->fabric[r].size);
		peer->addrlen[r] = m->fabric[r].size;
	}
	tx->peer = peer;
	s_cmd_t *cmd = calloc(1, sizeof *cmd);
	if (!cmd) {
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
	s_pend_t *pend = calloc(1, sizeof *pend);
	if (!pend) {
		free(cmd);
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
	pend->id = tx->id;
	pend->room = tx->room;
	pend->phase = tx->phase;
	pend->started = tx->started;
	pend->deadline = tx->deadline;
	pthread_mutex_lock(&self->pend_lock);
	pend->next = self->pend;
	self->pend = pend;
	pthread_mutex_unlock(&self->pend_lock);
	cmd->type = CMD_SEND;
	cmd->tx = tx;
	*id = tx->id;
	pthread_mutex_lock(&self->st_lock);
	self->stats.sends_active++;
	pthread_mutex_unlock(&self->st_lock);
	s_command(self, cmd);
	return 0;
fail:
	free(tx->peer);
	tx->peer = NULL;
	s_send_free(tx);
	return -1;
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
			s_recv_finish(self, i, DG_XFER_FAILED, "cancelled");
			pthread_mutex_unlock(&self->rx_lock);
			return 0;
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
