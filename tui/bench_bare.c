/*  bench_bare.c: the baseline `disagg bench xfer` holds the engine to:
 *  the plainest libfabric loop that moves the same bytes the same way.
 *
 *  What it does, exactly: two FI_EP_RDM endpoints in this process, each
 *  with its own fabric, domain, CQ (FI_CQ_FORMAT_DATA, no wait object)
 *  and AV, opened with the engine's hints (FI_RMA, mr_mode
 *  FI_MR_LOCAL|FI_MR_VIRT_ADDR|FI_MR_ALLOCATED|FI_MR_PROV_KEY|
 *  FI_MR_ENDPOINT, whatever the provider keeps of them is honoured).
 *  Each side registers one buffer of `window` regions.  A transfer is
 *  one fi_writedata() of the whole size from source region i to target
 *  region i, with i in the remote CQ data, and it counts when the
 *  target's CQ reports that data.  One thread does everything: posts,
 *  and polls both CQs (the providers need manual progress on both
 *  sides); -FI_EAGAIN is answered by polling and posting again.
 *  With threads = 2 (--bare-threads 2) a second thread polls the
 *  target's CQ instead, as the engine's receiver has a progress thread
 *  of its own; each thread still touches only its own domain.  That
 *  thread polls only while a write is out or a start waits for room,
 *  and for 100 us after, as the engine's does; then it sleeps.  It used
 *  to poll for the loop's whole life, the engine's turns included, and
 *  so took a core from the engine it was measured against (64 KiB: 2.1
 *  to 2.8 GB/s for the engine beside it, 4.2 to 4.8 now).
 *
 *  It moves the engine's own pages when bench.c hands it the engine's
 *  pools: where those pages lie in physical memory counts.  On this
 *  project's development VM, two buffer sets allocated one after the
 *  other copied at 10.3 and 11.6 GB/s, steadily, with the same code:
 *  the loop measured on fresher pages beat the engine by that much
 *  before a byte of ours ran.
 *
 *  Why it is the fair baseline: it is what the engine does for one
 *  transfer minus everything that is ours (pool and slot states,
 *  manifests, the command and event queues, the progress thread and the
 *  eventfds, chunking, bookkeeping per chunk), with the same provider,
 *  the same registration and hints, the same completion that makes the
 *  data visible at the receiver, and, through the driver in bench.c, the
 *  same sizes, the same number of transfers in flight and the same
 *  clock.  What is left between the two is the engine's own cost.  One
 *  caveat: the engine has a progress thread per side, and where both
 *  sides of a write do real work (tcp: one copies into the socket, the
 *  other out of it) a single thread cannot overlap them, so there the
 *  engine may beat this loop; --bare-threads 2 is the fairer baseline.  */
#define _GNU_SOURCE
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench.h"

#define CQ_BATCH 64
#define ADDR_MAX 128

typedef struct {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_cq *cq;
	struct fid_av *av;
	struct fid_ep *ep;
	struct fid_mr *mr;
	void *desc;
	uint64_t key, base;
	uint8_t *buf;
	size_t len;
	bool own;               /* buf is ours to unmap */
	uint8_t addr[ADDR_MAX];
	size_t addrlen;
} s_side_t;

struct _dg_bare_t {
	s_side_t src, dst;
	fi_addr_t peer;                 /* the target, in the source's AV */
	size_t size, stride;
	int window;
	/* Operation contexts (the providers may ask for FI_CONTEXT), freed
	 * by the source's own completion, which may come after the
	 * target's: a stack of free ones. */
	struct fi_context2 *ctx;
	int *ctx_free;
	int nctx, nctx_free;
	/* Positions whose data landed, not yet handed to the caller; under
	 * `lock` when the target has a thread of its own. */
	int *landed;
	int head, count;
	atomic_int nlanded;     /* count, readable without the lock */
	bool threaded;
	pthread_t thread;
	pthread_mutex_t lock;
	/* Writes posted that the target has not seen land: without one the
	 * target's thread sleeps on `wake`, so that it takes no core from
	 * the engine while the engine's turn is measured. */
	atomic_int unseen;
	atomic_bool posting;    /* a start waits for room: poll (shm's first
	                           write waits on the target's progress) */
	atomic_bool asleep;
	pthread_cond_t wake;
	atomic_bool stop;
	char error[200];        /* the target thread's, once it stops */
	atomic_bool failed;
};

/* How long the target's thread polls after its last work before it
 * sleeps (the engine's progress thread: 100 us, xfer_progress.c). */
#define IDLE_SPIN_US    100

static int64_t
s_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
s_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
s_open(s_side_t *s, const char *provider, const char *node, void *mem,
    size_t len, uint64_t want_key, char *why, size_t whysize)
{
	struct fi_info *hints = fi_allocinfo();
	int rc;

	if (!hints) {
		snprintf(why, whysize, "out of memory");
		return -1;
	}
	hints->caps = FI_RMA | FI_WRITE | FI_REMOTE_WRITE;
	hints->mode = FI_CONTEXT | FI_CONTEXT2;
	hints->ep_attr->type = FI_EP_RDM;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
	    FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
	hints->domain_attr->threading = FI_THREAD_DOMAIN;
	hints->fabric_attr->prov_name = strdup(provider);
	bool shm = strcmp(provider, "shm") == 0;
	rc = fi_getinfo(FI_VERSION(1, 17), shm ? NULL : node, NULL,
	    (!shm && node) ? FI_SOURCE : 0, hints, &s->info);
	fi_freeinfo(hints);
	if (rc) {
		s->info = NULL;
		snprintf(why, whysize, "no libfabric provider '%s' with RDM "
		    "and RMA here: %s", provider, fi_strerror(-rc));
		return -1;
	}
	if ((rc = fi_fabric(s->info->fabric_attr, &s->fabric, NULL))) {
		snprintf(why, whysize, "fi_fabric: %s", fi_strerror(-rc));
		return -1;
	}
	if ((rc = fi_domain(s->fabric, s->info, &s->domain, NULL))) {
		snprintf(why, whysize, "fi_domain: %s", fi_strerror(-rc));
		return -1;
	}
	struct fi_cq_attr cq_attr = { .format = FI_CQ_FORMAT_DATA,
	    .size = 4096, .wait_obj = FI_WAIT_NONE };
	if ((rc = fi_cq_open(s->domain, &cq_attr, &s->cq, NULL))) {
		snprintf(why, whysize, "fi_cq_open: %s", fi_strerror(-rc));
		return -1;
	}
	struct fi_av_attr av_attr = { .type = FI_AV_TABLE };
	if ((rc = fi_av_open(s->domain, &av_attr, &s->av, NULL))) {
		snprintf(why, whysize, "fi_av_open: %s", fi_strerror(-rc));
		return -1;
	}
	if ((rc = fi_endpoint(s->domain, s->info, &s->ep, NULL)) ||
	    (rc = fi_ep_bind(s->ep, &s->cq->fid, FI_TRANSMIT | FI_RECV)) ||
	    (rc = fi_ep_bind(s->ep, &s->av->fid, 0)) ||
	    (rc = fi_enable(s->ep))) {
		snprintf(why, whysize, "endpoint set-up: %s", fi_strerror(-rc));
		return -1;
	}
	s->addrlen = sizeof s->addr;
	if ((rc = fi_getname(&s->ep->fid, s->addr, &s->addrlen))) {
		snprintf(why, whysize, "fi_getname: %s", fi_strerror(-rc));
		return -1;
	}
	s->len = len;
	s->buf = mem ? mem : mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->buf == MAP_FAILED) {
		s->buf = NULL;
		snprintf(why, whysize, "cannot map %zu bytes", len);
		return -1;
	}
	s->own = !mem;
	uint64_t mr_mode = (uint64_t)s->info->domain_attr->mr_mode;
	rc = fi_mr_reg(s->domain, s->buf, len, FI_WRITE | FI_REMOTE_WRITE |
	    FI_READ | FI_REMOTE_READ, 0, want_key, 0, &s->mr, NULL);
	if (rc) {
		snprintf(why, whysize, "fi_mr_reg of %zu bytes: %s", len,
		    fi_strerror(-rc));
		return -1;
	}
	if (mr_mode & FI_MR_ENDPOINT) {
		if ((rc = fi_mr_bind(s->mr, &s->ep->fid, 0)) ||
		    (rc = fi_mr_enable(s->mr))) {
			snprintf(why, whysize, "binding the buffer to the "
			    "endpoint: %s", fi_strerror(-rc));
			return -1;
		}
	}
	s->key = fi_mr_key(s->mr);
	s->desc = fi_mr_desc(s->mr);
	s->base = (mr_mode & FI_MR_VIRT_ADDR) ? (uint64_t)(uintptr_t)s->buf : 0;
	return 0;
}

static void
s_close(s_side_t *s)
{
	if (s->ep)
		fi_close(&s->ep->fid);
	if (s->mr)
		fi_close(&s->mr->fid);
	if (s->av)
		fi_close(&s->av->fid);
	if (s->cq)
		fi_close(&s->cq->fid);
	if (s->domain)
		fi_close(&s->domain->fid);
	if (s->fabric)
		fi_close(&s->fabric->fid);
	if (s->info)
		fi_freeinfo(s->info);
	if (s->buf && s->own)
		munmap(s->buf, s->len);
}

static int
s_cq_error(struct fid_cq *cq, const char *side, char *why, size_t whysize)
{
	struct fi_cq_err_entry err = { 0 };
	char buf[160];

	if (fi_cq_readerr(cq, &err, 0) < 0) {
		snprintf(why, whysize, "%s CQ: error entry unreadable", side);
		return -1;
	}
	const char *text = fi_cq_strerror(cq, err.prov_errno, err.err_data,
	    buf, sizeof buf);
	snprintf(why, whysize, "%s CQ: %s (%s)", side, fi_strerror(err.err),
	    text ? text : "?");
	return -1;
}

/* One pass over the source's CQ.  Returns completions seen, or -1. */
static int
s_progress_source(dg_bare_t *self, char *why, size_t whysize)
{
	struct fi_cq_data_entry ent[CQ_BATCH];

	ssize_t n = fi_cq_read(self->src.cq, ent, CQ_BATCH);
	if (n == -FI_EAGAIN)
		return 0;
	if (n == -FI_EAVAIL)
		return s_cq_error(self->src.cq, "source", why, whysize);
	if (n < 0) {
		snprintf(why, whysize, "source fi_cq_read: %s",
		    fi_strerror((int)-n));
		return -1;
	}
	for (ssize_t i = 0; i < n; i++) {
		struct fi_context2 *c = ent[i].op_context;
		self->ctx_free[self->nctx_free++] = (int)(c - self->ctx);
	}
	return (int)n;
}

/* One pass over the target's CQ.  Returns writes landed, or -1. */
static int
s_progress_target(dg_bare_t *self, char *why, size_t whysize)
{
	struct fi_cq_data_entry ent[CQ_BATCH];
	int seen = 0;

	ssize_t n = fi_cq_read(self->dst.cq, ent, CQ_BATCH);
	if (n == -FI_EAGAIN)
		return 0;
	if (n == -FI_EAVAIL)
		return s_cq_error(self->dst.cq, "target", why, whysize);
	if (n < 0) {
		snprintf(why, whysize, "target fi_cq_read: %s",
		    fi_strerror((int)-n));
		return -1;
	}
	if (self->threaded)
		pthread_mutex_lock(&self->lock);
	for (ssize_t i = 0; i < n; i++) {
		if (!(ent[i].flags & FI_REMOTE_CQ_DATA) ||
		    ent[i].data >= (uint64_t)self->window)
			continue;
		int tail = (self->head + self->count) % self->window;
		self->landed[tail] = (int)ent[i].data;
		self->count++;
		seen++;
		atomic_fetch_sub(&self->unseen, 1);
	}
	atomic_store(&self->nlanded, self->count);
	if (self->threaded)
		pthread_mutex_unlock(&self->lock);
	return seen;
}

/* One pass over both CQs, or the source's alone when the target has
 * its thread.  Returns completions seen, or -1. */
static int
s_progress(dg_bare_t *self, char *why, size_t whysize)
{
	int a = s_progress_source(self, why, whysize);
	if (a < 0)
		return -1;
	if (self->threaded) {
		if (atomic_load(&self->failed)) {
			snprintf(why, whysize, "%s", self->error);
			return -1;
		}
		return a;
	}
	int b = s_progress_target(self, why, whysize);
	return b < 0 ? -1 : a + b;
}

static void *
s_target_thread(void *arg)
{
	dg_bare_t *self = arg;
	int64_t idle_since = 0;

	while (!atomic_load(&self->stop)) {
		bool work = atomic_load(&self->unseen) > 0 ||
		    atomic_load(&self->posting);
		int64_t now = work ? 0 : s_now_us();
		if (work || !idle_since)
			idle_since = now;
		/* As the engine's progress thread does: keep polling a while
		 * after the last work (the next transfer of a latency run
		 * comes at once), sleep only when the loop has gone quiet. */
		if (!work && now - idle_since > IDLE_SPIN_US) {
			idle_since = 0;
			pthread_mutex_lock(&self->lock);
			atomic_store(&self->asleep, true);
			while (atomic_load(&self->unseen) <= 0 &&
			    !atomic_load(&self->posting) &&
			    !atomic_load(&self->stop))
				pthread_cond_wait(&self->wake, &self->lock);
			atomic_store(&self->asleep, false);
			pthread_mutex_unlock(&self->lock);
			continue;
		}
		if (s_progress_target(self, self->error,
		    sizeof self->error) < 0) {
			atomic_store(&self->failed, true);
			break;
		}
	}
	return NULL;
}

dg_bare_t *
dg_bare_new(const char *provider, const char *node, size_t size, int window,
    int threads, void *src, void *dst, size_t stride, char *why,
    size_t whysize)
{
	dg_bare_t *self = calloc(1, sizeof *self);

	if (!self) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	atomic_init(&self->nlanded, 0);
	atomic_init(&self->unseen, 0);
	atomic_init(&self->posting, false);
	atomic_init(&self->asleep, false);
	atomic_init(&self->stop, false);
	atomic_init(&self->failed, false);
	self->size = size;
	self->stride = stride < size ? size : stride;
	self->window = window;
	size_t len = self->stride * (size_t)window;
	/* Distinct keys in case the provider wants ours (no PROV_KEY). */
	if (s_open(&self->dst, provider, node, dst, len, 1, why,
	    whysize) < 0 ||
	    s_open(&self->src, provider, node, src, len, 2, why, whysize) < 0)
		goto fail;
	int rc = fi_av_insert(self->src.av, self->dst.addr, 1, &self->peer, 0,
	    NULL);
	if (rc != 1) {
		snprintf(why, whysize, "fi_av_insert: %s",
		    fi_strerror(rc < 0 ? -rc : FI_EINVAL));
		goto fail;
	}
	/* The source can have at most its transmit queue outstanding. */
	self->nctx = window + (int)self->src.info->tx_attr->size + 1;
	self->ctx = calloc((size_t)self->nctx, sizeof *self->ctx);
	self->ctx_free = calloc((size_t)self->nctx, sizeof *self->ctx_free);
	self->landed = calloc((size_t)window, sizeof *self->landed);
	if (!self->ctx || !self->ctx_free || !self->landed) {
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
	for (int i = 0; i < self->nctx; i++)
		self->ctx_free[self->nctx_free++] = i;
	if (threads > 1) {
		pthread_mutex_init(&self->lock, NULL);
		pthread_cond_init(&self->wake, NULL);
		self->threaded = true;
		rc = pthread_create(&self->thread, NULL, s_target_thread,
		    self);
		if (rc) {
			pthread_cond_destroy(&self->wake);
			pthread_mutex_destroy(&self->lock);
			self->threaded = false;
			snprintf(why, whysize, "target thread: %s",
			    strerror(rc));
			goto fail;
		}
	}
	return self;
fail:
	dg_bare_destroy(&self);
	return NULL;
}

void
dg_bare_destroy(dg_bare_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_bare_t *self = *self_p;
	if (self->threaded) {
		pthread_mutex_lock(&self->lock);
		atomic_store(&self->stop, true);
		pthread_cond_signal(&self->wake);
		pthread_mutex_unlock(&self->lock);
		pthread_join(self->thread, NULL);
		pthread_cond_destroy(&self->wake);
		pthread_mutex_destroy(&self->lock);
	}
	s_close(&self->src);
	s_close(&self->dst);
	free(self->ctx);
	free(self->ctx_free);
	free(self->landed);
	free(self);
	*self_p = NULL;
}

void *
dg_bare_source(dg_bare_t *self, int pos)
{
	return self->src.buf + (size_t)pos * self->stride;
}

void *
dg_bare_target(dg_bare_t *self, int pos)
{
	return self->dst.buf + (size_t)pos * self->stride;
}

/* Tell the target's thread whether a start waits for room, and wake it
 * if it sleeps with work to do. */
static void
s_wake_target(dg_bare_t *self, bool posting)
{
	if (!self->threaded)
		return;
	if (atomic_load(&self->posting) != posting)
		atomic_store(&self->posting, posting);
	if (atomic_load(&self->asleep)) {
		pthread_mutex_lock(&self->lock);
		pthread_cond_signal(&self->wake);
		pthread_mutex_unlock(&self->lock);
	}
}

int
dg_bare_start(dg_bare_t *self, int pos, char *why, size_t whysize)
{
	int64_t deadline = s_now_ms() + 30000;
	size_t off = (size_t)pos * self->stride;

	for (;;) {
		ssize_t rc = -FI_EAGAIN;
		if (self->nctx_free > 0) {
			int c = self->ctx_free[self->nctx_free - 1];
			rc = fi_writedata(self->src.ep, self->src.buf + off,
			    self->size, self->src.desc, (uint64_t)pos,
			    self->peer, self->dst.base + off, self->dst.key,
			    &self->ctx[c]);
			if (rc == 0) {
				self->nctx_free--;
				atomic_fetch_add(&self->unseen, 1);
				s_wake_target(self, false);
				return 0;
			}
		}
		if (rc != -FI_EAGAIN) {
			snprintf(why, whysize, "fi_writedata: %s",
			    fi_strerror((int)-rc));
			s_wake_target(self, false);
			return -1;
		}
		s_wake_target(self, true);
		if (s_progress(self, why, whysize) < 0) {
			s_wake_target(self, false);
			return -1;
		}
		if (s_now_ms() > deadline) {
			snprintf(why, whysize, "fi_writedata: no room in the "
			    "transmit queue for 30 s");
			s_wake_target(self, false);
			return -1;
		}
	}
}

int
dg_bare_wait(dg_bare_t *self, int *pos, int64_t timeout_ms, char *why,
    size_t whysize)
{
	int64_t deadline = s_now_ms() + timeout_ms;
	unsigned spins = 0;

	while (atomic_load(&self->nlanded) == 0) {
		int n = s_progress(self, why, whysize);
		if (n < 0)
			return -1;
		/* The clock is read now and then: the loop is the point. */
		if (n == 0 && (++spins & 1023) == 0 && s_now_ms() > deadline) {
			snprintf(why, whysize, "no write landed in %lld ms",
			    (long long)timeout_ms);
			return -1;
		}
	}
	if (self->threaded)
		pthread_mutex_lock(&self->lock);
	*pos = self->landed[self->head];
	self->head = (self->head + 1) % self->window;
	self->count--;
	atomic_store(&self->nlanded, self->count);
	if (self->threaded)
		pthread_mutex_unlock(&self->lock);
	return 0;
}
