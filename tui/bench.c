/*  bench.c: `disagg bench xfer`, the transfer engine's throughput and
 *  latency next to a bare libfabric loop's (bench_bare.c), same
 *  provider, same sizes, same run.
 *
 *  Both ends live in this process: two pools and two engines, the
 *  receiver's manifest handed to the sender in memory.  One engine
 *  transfer is what a stage daemon does for a tensor: the receiver
 *  reserves an extent and expects it, the sender sends, and it counts
 *  when the receiver's DG_XFER_RECV done event arrives (the data is
 *  visible then); the extent then goes READY -> IN_USE -> FREE as a
 *  consumer would take it.
 *
 *  One driver times both sides with the same window: bandwidth keeps
 *  `window` transfers in flight (at least 4, more for small sizes until
 *  64 MiB are in flight, at most 1024) and counts bytes landed over wall
 *  time for about 0.3 s; latency is the median of single transfers with
 *  nothing else in flight, going round the same positions.  */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "bench_fleet.h"
#include "bench_pipeline.h"
#include "bench_rooms.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "xfer.h"

#define MIB             (1024ULL * 1024)
#define GIB             (1024ULL * MIB)
#define MAX_SIZES       32
#define WINDOW_BYTES    (64 * MIB)      /* in flight for small sizes */
#define WINDOW_MIN      4
#define WINDOW_MAX      1024
#define BW_SECONDS      0.3     /* one burst */
#define LAT_SECONDS     0.1     /* latency samples, all rounds */
#define ROUNDS          5
#define LAT_MIN         5
#define LAT_MAX         10000
#define XFER_TIMEOUT_MS 60000           /* one transfer, either side */
#define STALL_MS        30000           /* no transfer landed this long */
#define SIZE_MAX_BENCH  (4 * GIB)

typedef struct {
	const char *provider;
	uint64_t sizes[MAX_SIZES];
	int nsizes;
	int iters;              /* 0: timed */
	int rounds;             /* each mover measured this many times */
	int window;             /* 0: by size */
	int bare_threads;
	bool json;
	bool local;             /* also the zero-copy rows */
	dg_fabric_conf_t conf;
} s_opts_t;

typedef struct {
	double gbps, us;
	uint64_t transfers;     /* timed for bandwidth */
	int samples;            /* timed for latency */
} s_result_t;

/* One side under test, as the driver sees it (see bench.h). */
typedef struct {
	int (*start)(void *arg, int pos, char *why, size_t whysize);
	int (*wait)(void *arg, int *pos, int64_t timeout_ms, char *why,
	    size_t whysize);
	void *(*source)(void *arg, int pos);
	void *(*target)(void *arg, int pos);
	void *arg;
	const char *name;       /* for errors */
} s_mover_t;

static double
s_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *
s_size_text(uint64_t n, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (n >= 1024 && n % 1024 == 0 && u < 3) {
		n /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu", (unsigned long long)n);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)n, units[u]);
	return buf;
}

/* ---- the engine side --------------------------------------------------- */

/* How the engine side moves a transfer. */
typedef enum {
	MODE_FABRIC = 0,        /* RMA writes through the provider */
	MODE_COPY,              /* zero_copy: copied into the mapped pool */
	MODE_HANDOFF            /* zero_copy: written in place, handed over */
} s_mode_t;

typedef struct {
	size_t size;
	int window;
	s_mode_t mode;
	dg_pool_t *spool, *rpool;
	dg_xfer_t *sx, *rx;
	dg_extent_t *src;       /* the sender's tensors, one per position */
	dg_extent_t *dst;       /* the receiver's extent while in flight */
	uint64_t *rx_id;
	int *landed;
	int head, count;
} s_engine_t;

static void
s_engine_close(s_engine_t *e)
{
	/* A wedged engine leaves its progress thread behind (xfer.c), and
	 * that thread may still touch its pool: keep the pool then. */
	bool keep_s = e->sx && dg_xfer_wedged(e->sx);
	bool keep_r = e->rx && dg_xfer_wedged(e->rx);
	dg_xfer_destroy(&e->sx);
	dg_xfer_destroy(&e->rx);
	if (!keep_s)
		dg_pool_destroy(&e->spool);
	if (!keep_r)
		dg_pool_destroy(&e->rpool);
	free(e->src);
	free(e->dst);
	free(e->rx_id);
	free(e->landed);
	memset(e, 0, sizeof *e);
}

static int
s_engine_open(s_engine_t *e, const s_opts_t *o, s_mode_t mode, size_t size,
    int window, char *why, size_t whysize)
{
	/* One slot per position: a page-rounded transfer. */
	size_t slot = (size + 4095) & ~(size_t)4095;
	dg_fabric_conf_t conf = o->conf;

	memset(e, 0, sizeof *e);
	e->size = size;
	e->window = window;
	e->mode = mode;
	conf.zero_copy = mode != MODE_FABRIC;
	e->src = calloc((size_t)window, sizeof *e->src);
	e->dst = calloc((size_t)window, sizeof *e->dst);
	e->rx_id = calloc((size_t)window, sizeof *e->rx_id);
	e->landed = calloc((size_t)window, sizeof *e->landed);
	e->spool = dg_pool_new(slot * (size_t)window, slot);
	e->rpool = dg_pool_new_shared(slot * (size_t)window, slot, DG_MEM_HOST,
	    0, conf.zero_copy, why, whysize);
	if (!e->src || !e->dst || !e->rx_id || !e->landed || !e->spool ||
	    !e->rpool) {
		snprintf(why, whysize, "cannot allocate two pools of %d x %zu "
		    "bytes", window, slot);
		goto fail;
	}
	e->rx = dg_xfer_new(&conf, e->rpool, "127.0.0.1", why, whysize);
	if (!e->rx)
		goto fail;
	e->sx = dg_xfer_new(&conf, e->spool, "127.0.0.1", why, whysize);
	if (!e->sx)
		goto fail;
	for (int p = 0; p < window; p++) {
		if (dg_pool_reserve(e->spool, size, &e->src[p]) != DG_SLOT_OK) {
			snprintf(why, whysize, "sender pool: no room");
			goto fail;
		}
	}
	return 0;
fail:
	s_engine_close(e);
	return -1;
}

static void *s_engine_target(void *arg, int pos);

/* A handoff moves no bytes: the producer wrote them in place. */
static void *
s_engine_source(void *arg, int pos)
{
	s_engine_t *e = arg;

	if (e->mode == MODE_HANDOFF)
		return s_engine_target(arg, pos);
	return (uint8_t *)dg_pool_base(e->spool) + e->src[pos].offset;
}

/* The receiver's region for `pos`: the extent its last transfer landed
 * in (freed since, but the bytes stay), or slot `pos` before the first
 * one, so that filling every position touches the whole pool. */
static void *
s_engine_target(void *arg, int pos)
{
	s_engine_t *e = arg;
	uint64_t off = e->dst[pos].bytes ? e->dst[pos].offset :
	    (uint64_t)pos * dg_pool_slot_size(e->rpool);

	return (uint8_t *)dg_pool_base(e->rpool) + off;
}

static int
s_engine_start(void *arg, int pos, char *why, size_t whysize)
{
	s_engine_t *e = arg;
	int64_t shape = (int64_t)e->size;
	uint64_t id;

	if (dg_pool_reserve(e->rpool, e->size, &e->dst[pos]) != DG_SLOT_OK) {
		snprintf(why, whysize, "receiver pool: no room");
		return -1;
	}
	dg_tensor_row_t row = {
		.name = "t", .dtype = "u8", .shape = &shape, .n_shape = 1,
		.bytes = e->size, .offset = e->dst[pos].offset,
	};
	/* The room names the position: the done event carries it back. */
	dg_manifest_msg_t m = { .room = (uint64_t)pos, .phase = 1,
	    .tensors = &row, .n_tensors = 1 };
	if (dg_xfer_expect(e->rx, &e->dst[pos], &m, XFER_TIMEOUT_MS,
	    &e->rx_id[pos], why, whysize) < 0) {
		dg_pool_free(e->rpool, &e->dst[pos]);
		return -1;
	}
	uint64_t src = e->src[pos].offset;
	if (e->mode == MODE_HANDOFF) {
		/* What a stage does: hold the receiver's extent, write its
		 * output there (here: nothing), hand it over. */
		void *at;
		dg_xfer_lease_t *lease = dg_xfer_lease(e->sx, &m, &at);
		if (!lease) {
			snprintf(why, whysize, "the receiver's pool could not "
			    "be held");
			(void)dg_xfer_cancel(e->rx, e->rx_id[pos]);
			return -1;
		}
		if (dg_xfer_send_placed(e->sx, &m, &lease, XFER_TIMEOUT_MS,
		    &id, why, whysize) < 0) {
			(void)dg_xfer_cancel(e->rx, e->rx_id[pos]);
			return -1;
		}
		return 0;
	}
	if (dg_xfer_send(e->sx, &m, &e->src[pos], &src, XFER_TIMEOUT_MS, &id,
	    why, whysize) < 0) {
		(void)dg_xfer_cancel(e->rx, e->rx_id[pos]);
		return -1;
	}
	return 0;
}

/* Drain both engines' events; -1 on a failed transfer. */
static int
s_engine_events(s_engine_t *e, char *why, size_t whysize)
{
	dg_xfer_event_t ev;

	while (dg_xfer_next_event(e->sx, &ev)) {
		if (ev.status != DG_XFER_DONE) {
			snprintf(why, whysize, "send failed: %s", ev.reason);
			return -1;
		}
	}
	while (dg_xfer_next_event(e->rx, &ev)) {
		int pos = (int)ev.room;
		if (ev.room >= (uint64_t)e->window || ev.id != e->rx_id[pos])
			continue;
		if (ev.status != DG_XFER_DONE) {
			snprintf(why, whysize, "receive failed: %s", ev.reason);
			dg_pool_free(e->rpool, &e->dst[pos]);
			return -1;
		}
		/* The consumer takes the tensor and gives the slot back. */
		if (dg_pool_transition(e->rpool, &e->dst[pos], DG_SLOT_READY,
		    DG_SLOT_IN_USE) != DG_SLOT_OK ||
		    dg_pool_transition(e->rpool, &e->dst[pos], DG_SLOT_IN_USE,
		    DG_SLOT_FREE) != DG_SLOT_OK) {
			snprintf(why, whysize, "receiver extent not READY");
			return -1;
		}
		e->landed[(e->head + e->count) % e->window] = pos;
		e->count++;
	}
	return 0;
}

static int
s_engine_wait(void *arg, int *pos, int64_t timeout_ms, char *why,
    size_t whysize)
{
	s_engine_t *e = arg;
	double deadline = s_now() + (double)timeout_ms / 1000;

	for (;;) {
		if (s_engine_events(e, why, whysize) < 0)
			return -1;
		if (e->count)
			break;
		int left = (int)((deadline - s_now()) * 1000);
		if (left <= 0) {
			snprintf(why, whysize, "no transfer landed in %lld ms",
			    (long long)timeout_ms);
			return -1;
		}
		struct pollfd p[2] = {
			{ .fd = dg_xfer_fd(e->rx), .events = POLLIN },
			{ .fd = dg_xfer_fd(e->sx), .events = POLLIN },
		};
		if (poll(p, 2, left) < 0 && errno != EINTR) {
			snprintf(why, whysize, "poll: %s", strerror(errno));
			return -1;
		}
	}
	*pos = e->landed[e->head];
	e->head = (e->head + 1) % e->window;
	e->count--;
	return 0;
}

/* ---- the bare side: bench_bare.c behind the same shape ----------------- */

static int
s_bare_start(void *arg, int pos, char *why, size_t whysize)
{
	return dg_bare_start(arg, pos, why, whysize);
}

static int
s_bare_wait(void *arg, int *pos, int64_t timeout_ms, char *why,
    size_t whysize)
{
	return dg_bare_wait(arg, pos, timeout_ms, why, whysize);
}

static void *
s_bare_source(void *arg, int pos)
{
	return dg_bare_source(arg, pos);
}

static void *
s_bare_target(void *arg, int pos)
{
	return dg_bare_target(arg, pos);
}

/* ---- the driver -------------------------------------------------------- */

/* Every page touched before timing, each position told apart. */
static void
s_fill(const s_mover_t *m, size_t size, int window)
{
	for (int p = 0; p < window; p++) {
		uint8_t *src = m->source(m->arg, p);
		memset(src, 0x5a ^ (p & 0xff), size);
		uint64_t stamp = ((uint64_t)p << 40) | size;
		memcpy(src, &stamp, size < 8 ? size : 8);
		memset(m->target(m->arg, p), 0, size);
	}
}

/* After the warm-up every position holds its own source's bytes. */
static int
s_verify(const s_mover_t *m, size_t size, int window, char *why,
    size_t whysize)
{
	for (int p = 0; p < window; p++) {
		const uint8_t *src = m->source(m->arg, p);
		const uint8_t *dst = m->target(m->arg, p);
		size_t head = size < 8 ? size : 8;
		bool same = memcmp(src, dst, head) == 0 &&
		    src[size - 1] == dst[size - 1];
		if (same && p == 0)
			same = memcmp(src, dst, size) == 0;
		if (!same) {
			snprintf(why, whysize, "data check: position %d did "
			    "not arrive intact", p);
			return -1;
		}
	}
	return 0;
}

/* Keep `window` in flight until `total` have started (0: until the
 * clock says BW_SECONDS and at least two windows have landed); the
 * bytes that landed over the time from the first start to the last
 * landing. */
static int
s_burst(const s_mover_t *m, size_t size, int window, uint64_t total,
    s_result_t *r, char *why, size_t whysize)
{
	uint64_t started = 0, landed = 0;
	int inflight = 0;
	double t0 = s_now(), t1 = t0;

	for (int p = 0; p < window && (!total || started < total); p++) {
		if (m->start(m->arg, p, why, whysize) < 0)
			return -1;
		started++;
		inflight++;
	}
	while (inflight) {
		int pos;
		if (m->wait(m->arg, &pos, STALL_MS, why, whysize) < 0)
			return -1;
		landed++;
		inflight--;
		t1 = s_now();
		bool more = total ? started < total :
		    t1 - t0 < BW_SECONDS || landed < 2 * (uint64_t)window;
		if (more) {
			if (m->start(m->arg, pos, why, whysize) < 0)
				return -1;
			started++;
			inflight++;
		}
	}
	if (r) {
		r->transfers = landed;
		r->gbps = t1 > t0 ? (double)landed * (double)size /
		    (t1 - t0) / 1e9 : 0;
	}
	return 0;
}

static int
s_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
s_median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof *v, s_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Fill, then every position once (pages, connections), then check. */
static int
s_prepare(const s_mover_t *m, size_t size, int window, char *why,
    size_t whysize)
{
	s_fill(m, size, window);
	if (s_burst(m, size, window, (uint64_t)window, NULL, why,
	    whysize) < 0)
		return -1;
	return s_verify(m, size, window, why, whysize);
}

/* Single transfers with nothing else in flight, appended to `lat`
 * (room for `cap`); how many, or -1. */
static int
s_latency(const s_mover_t *m, const s_opts_t *o, size_t size, int window,
    double *lat, int n, int cap, char *why, size_t whysize)
{
	int took = 0;
	int want = o->iters ? o->iters : 0;
	double begin = s_now();

	while (n + took < cap && (want ? took < want : took < LAT_MIN ||
	    s_now() - begin < LAT_SECONDS / o->rounds)) {
		/* Through every position, as the bandwidth run does: the
		 * engine's pool hands the receiver the next free slot each
		 * time, and one region for the bare loop alone would leave
		 * its bytes in cache and flatter it. */
		int pos = (n + took) % window;
		double t = s_now();
		if (m->start(m->arg, pos, why, whysize) < 0 ||
		    m->wait(m->arg, &pos, STALL_MS, why, whysize) < 0)
			return -1;
		lat[n + took++] = (s_now() - t) * 1e6;
		/* What was timed moved the bytes (untimed): each landing's
		 * stamp and last byte, and the first one's every byte. */
		const uint8_t *src = m->source(m->arg, pos);
		const uint8_t *dst = m->target(m->arg, pos);
		size_t head = size < 8 ? size : 8;
		if (memcmp(src, dst, head) || src[size - 1] != dst[size - 1] ||
		    (n + took == 1 && memcmp(src, dst, size))) {
			snprintf(why, whysize, "data check: a transfer to "
			    "position %d did not arrive intact", pos);
			return -1;
		}
	}
	return took;
}

/* Measure `n` movers of the same transfers side by side: `rounds`
 * rounds, each mover's burst and latency samples in every round, in an
 * order that turns round each time (A B, B A, A B...).  A machine whose
 * speed drifts (another tenant, a frequency step) then weighs on every
 * mover alike, and a ratio of medians over rounds is steady where one
 * burst each, one after the other, swung by 2x between runs.  */
static int
s_measure(const s_mover_t *m, int n, const s_opts_t *o, size_t size,
    int window, s_result_t *r, char *why, size_t whysize)
{
	int cap = o->iters ? o->iters * o->rounds : LAT_MAX;
	double *bw[2] = { 0 }, *lat[2] = { 0 };
	int nlat[2] = { 0 };
	int rc = -1, i = 0;
	char sub[240] = "out of memory";

	if (n > 2) {
		snprintf(why, whysize, "at most two side by side");
		return -1;
	}
	for (i = 0; i < n; i++) {
		bw[i] = calloc((size_t)o->rounds, sizeof *bw[i]);
		lat[i] = calloc((size_t)cap, sizeof *lat[i]);
		if (!bw[i] || !lat[i] ||
		    s_prepare(&m[i], size, window, sub, sizeof sub) < 0)
			goto out;
		r[i] = (s_result_t){ 0 };
	}
	for (int round = 0; round < o->rounds; round++) {
		for (int k = 0; k < n; k++) {
			i = round % 2 ? n - 1 - k : k;
			s_result_t one;
			if (s_burst(&m[i], size, window, (uint64_t)o->iters,
			    &one, sub, sizeof sub) < 0)
				goto out;
			bw[i][round] = one.gbps;
			r[i].transfers += one.transfers;
			int took = s_latency(&m[i], o, size, window, lat[i],
			    nlat[i], cap, sub, sizeof sub);
			if (took < 0)
				goto out;
			nlat[i] += took;
		}
	}
	for (i = 0; i < n; i++) {
		r[i].gbps = s_median(bw[i], o->rounds);
		r[i].us = s_median(lat[i], nlat[i]);
		r[i].samples = nlat[i];
	}
	rc = 0;
out:
	if (rc < 0)
		snprintf(why, whysize, "%s: %s", i < n ? m[i].name : "?", sub);
	for (int j = 0; j < n; j++) {
		free(bw[j]);
		free(lat[j]);
	}
	return rc;
}

static int
s_window(const s_opts_t *o, uint64_t size)
{
	uint64_t w = o->window ? (uint64_t)o->window :
	    (WINDOW_BYTES + size - 1) / size;

	if (!o->window && w < WINDOW_MIN)
		w = WINDOW_MIN;
	if (!o->window && w > WINDOW_MAX)
		w = WINDOW_MAX;
	if (o->iters && w > (uint64_t)o->iters)
		w = (uint64_t)o->iters;
	return (int)w;
}

/* The engine through the fabric and the bare loop, side by side. */
static int
s_run_size(const s_opts_t *o, uint64_t size, int window, s_result_t *eng,
    s_result_t *bare, char *why, size_t whysize)
{
	s_engine_t e;
	char sub[240];

	if (s_engine_open(&e, o, MODE_FABRIC, size, window, sub,
	    sizeof sub) < 0) {
		snprintf(why, whysize, "engine: %s", sub);
		return -1;
	}
	/* The same pages as the engine's (bench_bare.c says why). */
	dg_bare_t *b = dg_bare_new(o->provider, "127.0.0.1", size, window,
	    o->bare_threads, dg_pool_base(e.spool), dg_pool_base(e.rpool),
	    dg_pool_slot_size(e.rpool), sub, sizeof sub);
	if (!b) {
		s_engine_close(&e);
		snprintf(why, whysize, "bare libfabric: %s", sub);
		return -1;
	}
	s_mover_t m[2] = {
		{ s_engine_start, s_engine_wait, s_engine_source,
		    s_engine_target, &e, "engine" },
		{ s_bare_start, s_bare_wait, s_bare_source, s_bare_target, b,
		    "bare libfabric" },
	};
	s_result_t r[2];
	int rc = s_measure(m, 2, o, size, window, r, why, whysize);
	s_engine_close(&e);
	dg_bare_destroy(&b);
	if (rc < 0)
		return -1;
	*eng = r[0];
	*bare = r[1];
	return 0;
}

/* Zero copy on one host: the copy into a mapped pool, and the handoff
 * of an extent written in place, side by side. */
static int
s_run_local(const s_opts_t *o, uint64_t size, int window, s_result_t *copy,
    s_result_t *handoff, char *why, size_t whysize)
{
	s_engine_t e[2];
	s_mover_t m[2];
	s_result_t r[2];
	char sub[240];
	int rc = -1;

	memset(e, 0, sizeof e);
	for (int i = 0; i < 2; i++) {
		if (s_engine_open(&e[i], o, i ? MODE_HANDOFF : MODE_COPY, size,
		    window, sub, sizeof sub) < 0)
			goto out;
		m[i] = (s_mover_t){ s_engine_start, s_engine_wait,
		    s_engine_source, s_engine_target, &e[i],
		    i ? "handoff" : "copy" };
	}
	rc = s_measure(m, 2, o, size, window, r, sub, sizeof sub);
	*copy = r[0];
	*handoff = r[1];
out:
	for (int i = 0; i < 2; i++)
		s_engine_close(&e[i]);
	if (rc < 0)
		snprintf(why, whysize, "zero copy: %s", sub);
	return rc;
}

/* ---- options and output ------------------------------------------------ */

static void
s_usage(FILE *out)
{
	fprintf(out,
	    "usage: disagg bench pipeline [--requests N] [--window N] "
	    "[--json] [-c endpoint]\n"
	    "       disagg bench rooms [--rooms N] [-d dir]\n"
	    "       disagg bench fleet [--policies LIST] [--duration S] "
	    "[--load F] ...\n"
	    "       disagg bench xfer [--provider P] [--sizes LIST] "
	    "[--iters N]\n"
	    "                         [--rounds N] [--chunk SIZE] "
	    "[--inflight N] [--window N]\n"
	    "                         [--bare-threads 1|2] [--no-local] "
	    "[--json]\n"
	    "\n"
	    "Measure the transfer engine against a bare libfabric write loop,\n"
	    "both ends in this process.\n"
	    "\n"
	    "  --provider P    libfabric provider: shm (default), "
	    "\"tcp;ofi_rxm\", auto\n"
	    "  --sizes LIST    transfer sizes, comma separated "
	    "(default 4K,64K,1M,16M,256M)\n"
	    "  --iters N       N transfers per round instead of about "
	    "%.1f s\n"
	    "  --rounds N      rounds, engine and bare loop in turn; the "
	    "median\n"
	    "                  of each side's figures (default %d)\n"
	    "  --chunk SIZE    the engine's chunk (default: [fabric] chunk)\n"
	    "  --inflight N    the engine's chunks in flight per transfer\n"
	    "                  (default: [fabric] inflight)\n"
	    "  --window N      transfers in flight for bandwidth (default: "
	    "%d, or\n"
	    "                  enough for %llu MiB, at most %d)\n"
	    "  --bare-threads N\n"
	    "                  1 (default): one thread drives both ends of "
	    "the bare\n"
	    "                  loop; 2: the target's CQ gets a thread of its "
	    "own\n"
	    "  --no-local      leave out the zero-copy table (a receiver's pool\n"
	    "                  mapped in the sender: handoff and copy)\n"
	    "  --json          one JSON object instead of the table\n",
	    BW_SECONDS, ROUNDS, WINDOW_MIN, WINDOW_BYTES / MIB, WINDOW_MAX);
}

static int
s_parse_count(const char *text, long lo, long hi, int *out)
{
	char *end;

	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int
s_parse_sizes(const char *text, s_opts_t *o)
{
	char *copy = strdup(text), *save = NULL;
	int rc = 0;

	if (!copy)
		return -1;
	o->nsizes = 0;
	for (char *w = strtok_r(copy, ",", &save); w;
	    w = strtok_r(NULL, ",", &save)) {
		int64_t v;
		if (o->nsizes == MAX_SIZES || dg_parse_size(w, &v) < 0 ||
		    v < 1 || (uint64_t)v > SIZE_MAX_BENCH) {
			fprintf(stderr, "disagg bench: bad size '%s' (1 to 4G, "
			    "at most %d of them)\n", w, MAX_SIZES);
			rc = -1;
			break;
		}
		o->sizes[o->nsizes++] = (uint64_t)v;
	}
	free(copy);
	if (rc == 0 && o->nsizes == 0) {
		fprintf(stderr, "disagg bench: no sizes given\n");
		rc = -1;
	}
	return rc;
}

/* One [fabric] key given on the command line, checked against the key
 * table's bounds; 0, or -1 after saying why. */
static int
s_fabric_key(const char *option, const char *key, const char *value,
    dg_fabric_conf_t *out)
{
	char text[256];

	if (strchr(value, '\n') || snprintf(text, sizeof text,
	    "[fabric]\n%s = %s\n", key, value) >= (int)sizeof text) {
		fprintf(stderr, "disagg bench: bad %s '%s'\n", option, value);
		return -1;
	}
	dg_config_t *cfg = dg_config_parse_string("-", text);
	if (!cfg) {
		fprintf(stderr, "disagg bench: out of memory\n");
		return -1;
	}
	size_t nerr = dg_config_error_count(cfg);
	for (size_t i = 0; i < nerr; i++) {
		/* "-:LINE: what": the option says where. */
		const char *e = dg_config_error(cfg, i);
		const char *what = strstr(e, ": ");
		fprintf(stderr, "disagg bench: %s: %s\n", option,
		    what ? what + 2 : e);
	}
	if (!nerr)
		*out = *dg_config_fabric(cfg);
	dg_config_destroy(&cfg);
	return nerr ? -1 : 0;
}

/* The engine's [fabric] settings: the key table's defaults, with
 * --chunk and --inflight in its bounds. */
static int
s_fabric_conf(const char *chunk, const char *inflight, dg_fabric_conf_t *out)
{
	dg_config_t *cfg = dg_config_parse_string("-", "");
	dg_fabric_conf_t one;

	if (!cfg) {
		fprintf(stderr, "disagg bench: out of memory\n");
		return -1;
	}
	*out = *dg_config_fabric(cfg);
	dg_config_destroy(&cfg);
	if (chunk) {
		if (s_fabric_key("--chunk", "chunk", chunk, &one) < 0)
			return -1;
		out->chunk = one.chunk;
	}
	if (inflight) {
		if (s_fabric_key("--inflight", "inflight", inflight, &one) < 0)
			return -1;
		out->inflight = one.inflight;
	}
	return 0;
}

static void
s_print_table(const s_opts_t *o, const s_result_t *eng,
    const s_result_t *bare, const int *window, const s_result_t *copy,
    const s_result_t *handoff)
{
	char buf[32];

	printf("provider %s, chunk %s, inflight %lld, rails %lld, bare "
	    "threads %d\n(GB/s = 1e9 bytes/s, median of %d rounds, engine "
	    "and bare in turn;\n us: median of one transfer alone)\n",
	    o->provider, s_size_text((uint64_t)o->conf.chunk, buf,
	    sizeof buf), (long long)o->conf.inflight,
	    (long long)o->conf.rails, o->bare_threads, o->rounds);
	printf("%8s %6s %12s %10s %10s %10s %12s\n", "size", "window",
	    "engine GB/s", "engine us", "bare GB/s", "bare us",
	    "engine/bare");
	for (int i = 0; i < o->nsizes; i++) {
		double ratio = bare[i].gbps > 0 ? eng[i].gbps / bare[i].gbps : 0;
		printf("%8s %6d %12.2f %10.1f %10.2f %10.1f %12.2f\n",
		    s_size_text(o->sizes[i], buf, sizeof buf), window[i],
		    eng[i].gbps, eng[i].us, bare[i].gbps, bare[i].us, ratio);
	}
	if (!o->local)
		return;
	printf("\nzero copy on one host ([fabric] zero_copy): the receiver's "
	    "pool mapped\nin the sender; handoff: written in place, then "
	    "handed over; copy: the\nfallback when the output was computed "
	    "before the receiver's manifest came\n");
	printf("%8s %10s %12s %10s %10s %12s\n", "size", "handoff us",
	    "handoffs/s", "copy GB/s", "copy us", "copy/bare");
	for (int i = 0; i < o->nsizes; i++) {
		double ratio = bare[i].gbps > 0 ? copy[i].gbps / bare[i].gbps :
		    0;
		double rate = handoff[i].gbps * 1e9 / (double)o->sizes[i];
		printf("%8s %10.1f %12.0f %10.2f %10.1f %12.2f\n",
		    s_size_text(o->sizes[i], buf, sizeof buf), handoff[i].us,
		    rate, copy[i].gbps, copy[i].us, ratio);
	}
}

static void
s_print_json(const s_opts_t *o, const s_result_t *eng,
    const s_result_t *bare, const int *window, const s_result_t *copy,
    const s_result_t *handoff)
{
	/* The provider names we accept need no escaping but '"' and '\'. */
	printf("{\"provider\":\"");
	for (const char *p = o->provider; *p; p++)
		printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
	printf("\",\"chunk\":%lld,\"inflight\":%lld,\"rails\":%lld,"
	    "\"bare_threads\":%d,\"rounds\":%d,\"rows\":[",
	    (long long)o->conf.chunk, (long long)o->conf.inflight,
	    (long long)o->conf.rails, o->bare_threads, o->rounds);
	for (int i = 0; i < o->nsizes; i++) {
		double ratio = bare[i].gbps > 0 ? eng[i].gbps / bare[i].gbps : 0;
		printf("%s{\"size\":%llu,\"window\":%d,"
		    "\"engine_gbps\":%.4f,\"engine_us\":%.2f,"
		    "\"engine_transfers\":%llu,\"engine_samples\":%d,"
		    "\"bare_gbps\":%.4f,\"bare_us\":%.2f,"
		    "\"bare_transfers\":%llu,\"bare_samples\":%d,"
		    "\"ratio\":%.4f", i ? "," : "",
		    (unsigned long long)o->sizes[i], window[i], eng[i].gbps,
		    eng[i].us, (unsigned long long)eng[i].transfers,
		    eng[i].samples, bare[i].gbps, bare[i].us,
		    (unsigned long long)bare[i].transfers, bare[i].samples,
		    ratio);
		if (o->local)
			printf(",\"handoff_us\":%.2f,\"handoffs_per_s\":%.1f,"
			    "\"copy_gbps\":%.4f,\"copy_us\":%.2f",
			    handoff[i].us, handoff[i].gbps * 1e9 /
			    (double)o->sizes[i], copy[i].gbps, copy[i].us);
		printf("}");
	}
	printf("]}\n");
}

static int
s_bench_xfer(int argc, char *argv[])
{
	s_opts_t o = { .provider = "shm", .bare_threads = 1, .local = true,
	    .rounds = ROUNDS };
	const char *chunk = NULL, *inflight = NULL;

	s_parse_sizes("4K,64K,1M,16M,256M", &o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has = i + 1 < argc;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			s_usage(stdout);
			return 0;
		} else if (strcmp(a, "--json") == 0) {
			o.json = true;
		} else if (strcmp(a, "--no-local") == 0) {
			o.local = false;
		} else if (strcmp(a, "--provider") == 0 && has) {
			o.provider = argv[++i];
		} else if (strcmp(a, "--sizes") == 0 && has) {
			if (s_parse_sizes(argv[++i], &o) < 0)
				return 2;
		} else if (strcmp(a, "--iters") == 0 && has) {
			if (s_parse_count(argv[++i], 1, 1000000, &o.iters) < 0) {
				fprintf(stderr, "disagg bench: --iters wants "
				    "1 to 1000000\n");
				return 2;
			}
		} else if (strcmp(a, "--rounds") == 0 && has) {
			if (s_parse_count(argv[++i], 1, 100, &o.rounds) < 0) {
				fprintf(stderr, "disagg bench: --rounds wants "
				    "1 to 100\n");
				return 2;
			}
		} else if (strcmp(a, "--window") == 0 && has) {
			if (s_parse_count(argv[++i], 1, 65536, &o.window) < 0) {
				fprintf(stderr, "disagg bench: --window wants "
				    "1 to 65536\n");
				return 2;
			}
		} else if (strcmp(a, "--bare-threads") == 0 && has) {
			if (s_parse_count(argv[++i], 1, 2, &o.bare_threads) < 0) {
				fprintf(stderr, "disagg bench: --bare-threads "
				    "wants 1 or 2\n");
				return 2;
			}
		} else if (strcmp(a, "--chunk") == 0 && has) {
			chunk = argv[++i];
		} else if (strcmp(a, "--inflight") == 0 && has) {
			inflight = argv[++i];
		} else {
			fprintf(stderr, "disagg bench: %s '%s'\n",
			    a[0] == '-' && !has ? "missing value for" :
			    "unknown argument", a);
			s_usage(stderr);
			return 2;
		}
	}
	if (!*o.provider) {
		fprintf(stderr, "disagg bench: empty --provider\n");
		return 2;
	}
	if (s_fabric_conf(chunk, inflight, &o.conf) < 0)
		return 2;
	o.provider = dg_xfer_provider_for(o.provider, true);
	snprintf(o.conf.provider, sizeof o.conf.provider, "%s", o.provider);
	o.conf.transfer_timeout_ms = XFER_TIMEOUT_MS;

	s_result_t eng[MAX_SIZES] = { { 0 } }, bare[MAX_SIZES] = { { 0 } };
	s_result_t copy[MAX_SIZES] = { { 0 } }, handoff[MAX_SIZES] = { { 0 } };
	int window[MAX_SIZES];
	for (int i = 0; i < o.nsizes; i++) {
		char why[300], buf[32];
		window[i] = s_window(&o, o.sizes[i]);
		if (s_run_size(&o, o.sizes[i], window[i], &eng[i], &bare[i],
		    why, sizeof why) < 0) {
			fprintf(stderr, "disagg bench xfer: %s at %s: %s\n",
			    o.provider, s_size_text(o.sizes[i], buf,
			    sizeof buf), why);
			return 1;
		}
		if (o.local && s_run_local(&o, o.sizes[i], window[i], &copy[i],
		    &handoff[i], why, sizeof why) < 0) {
			fprintf(stderr, "disagg bench xfer: at %s: %s\n",
			    s_size_text(o.sizes[i], buf, sizeof buf), why);
			return 1;
		}
	}
	if (o.json)
		s_print_json(&o, eng, bare, window, copy, handoff);
	else
		s_print_table(&o, eng, bare, window, copy, handoff);
	return 0;
}

/* The benchmarks, by the word after `bench`. */
static const struct {
	const char *name;
	int (*run)(int argc, char *argv[]);
} s_benches[] = {
	{ "xfer", s_bench_xfer },
	{ "pipeline", dg_bench_pipeline },
	{ "rooms", dg_bench_rooms },
	{ "fleet", dg_bench_fleet },
};

int
dg_bench_main(int argc, char *argv[])
{
	/* The engines log only what went wrong; we say the rest. */
	dg_log_init("disagg", true, DG_LOG_ERROR);
	for (size_t i = 0; argc >= 2 &&
	    i < sizeof s_benches / sizeof s_benches[0]; i++)
		if (strcmp(argv[1], s_benches[i].name) == 0)
			return s_benches[i].run(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0)) {
		s_usage(stdout);
		return 0;
	}
	if (argc >= 2)
		fprintf(stderr, "disagg bench: unknown benchmark '%s'\n",
		    argv[1]);
	s_usage(stderr);
	return 2;
}
