/*  xfer_test.c: the transfer engine between two real processes on
 *  loopback, for one provider (--provider shm, or "tcp;ofi_rxm").
 *
 *  The parent and a forked child each open a pool and an engine and talk
 *  over a socketpair carrying protocol frames (manifest, transfer.done),
 *  as two stage daemons would over their peer endpoints.  Every case
 *  checks what a user cares about: every byte arrives intact and its
 *  checksum matches, a dead peer gives a failed event within the
 *  deadline and leaks no slot, a failing rail is quarantined and the
 *  transfer still completes, a stale generation is refused.
 *
 *  Output is TAP ("ok - ...", "not ok - ...") and a closing
 *  "xfer(PROVIDER): N passed, N failed" line.  Built with the
 *  fault-injection variant of the engine (DG_FAULT_INJECTION).  */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checksum.h"
#include "config.h"
#include "cuda.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "xfer.h"

#define MIB (1024ULL * 1024)
#define MAXT 4

static const char *s_provider = "shm";
static int s_pass, s_fail;

static void
s_ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	printf(cond ? "ok - " : "not ok - ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" [%s]\n", s_provider);
	fflush(stdout);
	if (cond)
		s_pass++;
	else
		s_fail++;
}

static int64_t
s_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint8_t
s_pattern(uint64_t room, size_t t, uint64_t i)
{
	return (uint8_t)((i * 131 + room * 7 + t * 13) ^ (i >> 9));
}

/* ---- the two ends ------------------------------------------------------ */

typedef struct {
	dg_pool_t *pool;
	dg_xfer_t *xfer;
	int fd;                 /* socketpair to the other process */
} s_end_t;

typedef struct {
	int rails;
	int64_t chunk;
	int64_t inflight;
	int64_t pool;
	int64_t quarantine_ms;
	int64_t chunk_retries;
} s_opts_t;

/* With `share`, [fabric] zero_copy: the pool a local sender can map. */
static int
s_open_as(s_end_t *e, const s_opts_t *o, int fd, bool share)
{
	dg_fabric_conf_t conf = {
		.rails = o->rails, .chunk = o->chunk, .inflight = o->inflight,
		.quarantine_ms = o->quarantine_ms, .transfer_timeout_ms = 30000,
		.chunk_retries = o->chunk_retries, .transfer_attempts = 2,
		.verify = true, .zero_copy = share,
	};
	char why[256];

	snprintf(conf.provider, sizeof conf.provider, "%s", s_provider);
	e->fd = fd;
	e->pool = dg_pool_new_shared((size_t)o->pool, 64 * 1024, DG_MEM_HOST,
	    0, share, why, sizeof why);
	if (!e->pool)
		return -1;
	e->xfer = dg_xfer_new(&conf, e->pool, "127.0.0.1", why, sizeof why);
	if (!e->xfer) {
		fprintf(stderr, "# engine: %s\n", why);
		dg_pool_destroy(&e->pool);
		return -1;
	}
	return 0;
}

static int
s_open(s_end_t *e, const s_opts_t *o, int fd)
{
	return s_open_as(e, o, fd, false);
}

static void
s_close(s_end_t *e)
{
	/* A wedged engine leaves its progress thread behind (xfer.c), and
	 * that thread may still touch the pool: keep the pool then. */
	bool wedged = e->xfer && dg_xfer_wedged(e->xfer);
	dg_xfer_destroy(&e->xfer);
	if (!wedged)
		dg_pool_destroy(&e->pool);
	if (e->fd >= 0)
		close(e->fd);
}

static int
s_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
s_send_msg(int fd, const dg_msg_t *msg)
{
	dg_buf_t buf = { 0 };

	if (dg_proto_encode(msg, &buf) < 0)
		return -1;
	uint32_t len = (uint32_t)buf.size;
	int rc = s_write_all(fd, &len, sizeof len) < 0 ||
	    s_write_all(fd, buf.data, buf.size) < 0 ? -1 : 0;
	dg_buf_free(&buf);
	return rc;
}

/* Read one frame within `ms`; NULL on timeout, EOF or a bad frame. */
static dg_msg_t *
s_recv_msg(int fd, int ms)
{
	uint32_t len;
	size_t got = 0;
	char *buf = NULL;
	int64_t deadline = s_now() + ms;

	for (int part = 0; part < 2; part++) {
		size_t want = part ? len : sizeof len;
		char *dst = part ? buf : (char *)&len;
		got = 0;
		while (got < want) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int left = (int)(deadline - s_now());
			if (left <= 0 || poll(&p, 1, left) <= 0)
				goto fail;
			ssize_t r = read(fd, dst + got, want - got);
			if (r <= 0)
				goto fail;
			got += (size_t)r;
		}
		if (!part && (len == 0 || len > DG_PROTO_MAX_FRAME ||
		    !(buf = malloc(len))))
			goto fail;
	}
	dg_msg_t *msg = NULL;
	dg_proto_err_t err;
	if (dg_proto_decode(buf, len, &msg, &err) < 0)
		fprintf(stderr, "# bad frame: %s\n", err.message);
	free(buf);
	return msg;
fail:
	free(buf);
	return NULL;
}

/* Wait for the next engine event within `ms`. */
static int
s_event(s_end_t *e, dg_xfer_event_t *ev, int ms)
{
	int64_t deadline = s_now() + ms;

	for (;;) {
		if (dg_xfer_next_event(e->xfer, ev))
			return 0;
		int left = (int)(deadline - s_now());
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = dg_xfer_fd(e->xfer), .events = POLLIN };
		(void)poll(&p, 1, left);
	}
}

/* ---- one transfer, receiver's side ------------------------------------ */

typedef struct {
	uint64_t room;
	size_t n;
	uint64_t bytes[MAXT];
	dg_extent_t ext;
	dg_tensor_row_t rows[MAXT];
	char names[MAXT][24];
	int64_t shapes[MAXT];
	uint64_t id;
	bool data_done, msg_done, failed;
	dg_xfer_status_t status;
	char reason[256];
	uint64_t checksums[MAXT];
} s_rx_t;

static uint64_t
s_align(uint64_t v)
{
	return (v + 63) & ~63ULL;
}

static int
s_rx_start(s_end_t *e, s_rx_t *rx, int64_t timeout_ms)
{
	uint64_t total = 0;
	char why[256];

	for (size_t t = 0; t < rx->n; t++)
		total = s_align(total) + rx->bytes[t];
	if (dg_pool_reserve(e->pool, total ? total : 1, &rx->ext) != DG_SLOT_OK)
		return -1;
	uint64_t off = 0;
	for (size_t t = 0; t < rx->n; t++) {
		off = s_align(off);
		snprintf(rx->names[t], sizeof rx->names[t], "t%zu", t);
		rx->shapes[t] = (int64_t)rx->bytes[t];
		rx->rows[t] = (dg_tensor_row_t){
			.name = rx->names[t], .dtype = "u8",
			.shape = &rx->shapes[t], .n_shape = 1,
			.bytes = rx->bytes[t], .offset = rx->ext.offset + off,
		};
		off += rx->bytes[t];
	}
	dg_msg_t *m = dg_msg_new(DG_OP_MANIFEST);
	m->u.manifest.room = rx->room;
	m->u.manifest.phase = 1;
	m->u.manifest.tensors = rx->rows;
	m->u.manifest.n_tensors = rx->n;
	if (dg_xfer_expect(e->xfer, &rx->ext, &m->u.manifest, timeout_ms,
	    &rx->id, why, sizeof why) < 0) {
		fprintf(stderr, "# expect: %s\n", why);
		dg_msg_destroy(&m);
		return -1;
	}
	int rc = s_send_msg(e->fd, m);
	dg_msg_destroy(&m);
	return rc;
}

/* Every byte as the pattern says, and the sender's checksums match. */
static bool
s_rx_verify(s_end_t *e, const s_rx_t *rx)
{
	const uint8_t *base = dg_pool_base(e->pool);

	for (size_t t = 0; t < rx->n; t++) {
		const uint8_t *p = base + rx->rows[t].offset;
		for (uint64_t i = 0; i < rx->bytes[t]; i++) {
			if (p[i] != s_pattern(rx->room, t, i)) {
				fprintf(stderr, "# room %llu tensor %zu byte "
				    "%llu differs\n",
				    (unsigned long long)rx->room, t,
				    (unsigned long long)i);
				return false;
			}
		}
	}
	/* And as a receiver with verify = on checks it. */
	dg_tensor_row_t got[MAXT];
	char why[256];
	for (size_t t = 0; t < rx->n; t++) {
		got[t] = rx->rows[t];
		got[t].checksum = rx->checksums[t];
	}
	if (dg_checksum_verify(base, rx->rows, got, rx->n, rx->n, why,
	    sizeof why) < 0) {
		fprintf(stderr, "# room %llu: %s\n",
		    (unsigned long long)rx->room, why);
		return false;
	}
	return true;
}

/* Wait until every receive has its data event and its transfer.done. */
static int
s_rx_wait(s_end_t *e, s_rx_t *rx, size_t n, int ms)
{
	int64_t deadline = s_now() + ms;
	size_t left = 0;

	for (size_t i = 0; i < n; i++)
		left += 2;
	while (left) {
		dg_xfer_event_t ev;
		while (dg_xfer_next_event(e->xfer, &ev)) {
			for (size_t i = 0; i < n; i++) {
				if (rx[i].id != ev.id || rx[i].data_done)
					continue;
				rx[i].data_done = true;
				rx[i].status = ev.status;
				snprintf(rx[i].reason, sizeof rx[i].reason,
				    "%s", ev.reason);
				left--;
				if (ev.status != DG_XFER_DONE && !rx[i].msg_done) {
					rx[i].msg_done = true;
					left--;
				}
			}
		}
		struct pollfd p[2] = {
			{ .fd = dg_xfer_fd(e->xfer), .events = POLLIN },
			{ .fd = e->fd, .events = POLLIN },
		};
		int wait = (int)(deadline - s_now());
		if (left == 0)
			break;
		if (wait <= 0)
			return -1;
		/* Read the socket only while a transfer.done is owed: what
		 * follows them is not a frame. */
		bool owed = false;
		for (size_t i = 0; i < n; i++)
			owed = owed || !rx[i].msg_done;
		if (poll(p, owed ? 2 : 1, wait) <= 0)
			continue;
		if (owed && (p[1].revents & (POLLIN | POLLHUP))) {
			dg_msg_t *m = s_recv_msg(e->fd, 5000);
			if (!m)
				return -1;
			for (size_t i = 0; i < n; i++) {
				if (m->op != DG_OP_TRANSFER_DONE ||
				    m->u.transfer_done.room != rx[i].room ||
				    rx[i].msg_done)
					continue;
				for (size_t t = 0; t < m->u.transfer_done.n_tensors &&
				    t < MAXT; t++)
					rx[i].checksums[t] =
					    m->u.transfer_done.tensors[t].checksum;
				rx[i].msg_done = true;
				left--;
			}
			dg_msg_destroy(&m);
		}
	}
	return 0;
}

/* ---- one transfer, sender's side -------------------------------------- */

/* Serve manifests: fill each tensor with its pattern, write it, report
 * transfer.done with checksums.  Stops after `count` transfers, or when
 * `stop_after_send` and the first send is posted (to be killed). */
static int
s_sender(s_end_t *e, int count, bool announce)
{
	int done = 0;
	struct pending {
		uint64_t id, room;
		dg_extent_t ext;
		size_t n;
		dg_tensor_row_t rows[MAXT];
		uint64_t gen;
	} *pend = calloc((size_t)count, sizeof *pend);
	int npend = 0;

	while (done < count) {
		struct pollfd p[2] = {
			{ .fd = dg_xfer_fd(e->xfer), .events = POLLIN },
			{ .fd = e->fd, .events = POLLIN },
		};
		if (poll(p, 2, 60000) <= 0)
			break;
		if (p[1].revents & (POLLIN | POLLHUP)) {
			dg_msg_t *m = s_recv_msg(e->fd, 5000);
			if (!m)
				break;
			const dg_manifest_msg_t *mf = &m->u.manifest;
			struct pending *pd = &pend[npend++];
			uint64_t total = 0, src[MAXT];
			for (size_t t = 0; t < mf->n_tensors; t++)
				total = s_align(total) + mf->tensors[t].bytes;
			if (dg_pool_reserve(e->pool, total ? total : 1,
			    &pd->ext) != DG_SLOT_OK) {
				dg_msg_destroy(&m);
				break;
			}
			uint8_t *base = dg_pool_base(e->pool);
			uint64_t off = 0;
			pd->n = mf->n_tensors;
			pd->room = mf->room;
			pd->gen = mf->gen;
			for (size_t t = 0; t < mf->n_tensors; t++) {
				off = s_align(off);
				src[t] = pd->ext.offset + off;
				uint8_t *q = base + src[t];
				/* A sender about to be killed sends whatever
				 * is there: filling 256 MiB is slow under TSan. */
				for (uint64_t i = 0; !announce &&
				    i < mf->tensors[t].bytes; i++)
					q[i] = s_pattern(mf->room, t, i);
				pd->rows[t] = mf->tensors[t];
				pd->rows[t].name = "t";
				pd->rows[t].dtype = "u8";
				pd->rows[t].shape = NULL;
				pd->rows[t].n_shape = 0;
				/* Nor reads it through first: the receive's
				 * deadline runs meanwhile, and on a loaded
				 * machine 256 MiB took longer than it. */
				pd->rows[t].checksum = announce ? 0 :
				    dg_checksum(q, mf->tensors[t].bytes);
				off += mf->tensors[t].bytes;
			}
			char why[256];
			if (dg_xfer_send(e->xfer, mf, &pd->ext, src, 20000,
			    &pd->id, why, sizeof why) < 0) {
				fprintf(stderr, "# send: %s\n", why);
				dg_msg_destroy(&m);
				break;
			}
			dg_msg_destroy(&m);
			if (announce) {
				char c = 's';
				if (s_write_all(e->fd, &c, 1) < 0)
					break;
			}
		}
		dg_xfer_event_t ev;
		while (dg_xfer_next_event(e->xfer, &ev)) {
			for (int i = 0; i < npend; i++) {
				if (pend[i].id != ev.id)
					continue;
				if (ev.status == DG_XFER_DONE) {
					dg_msg_t *d = dg_msg_new(DG_OP_TRANSFER_DONE);
					d->u.transfer_done.room = pend[i].room;
					d->u.transfer_done.phase = 1;
					d->u.transfer_done.gen = pend[i].gen;
					d->u.transfer_done.bytes = ev.bytes;
					d->u.transfer_done.tensors = pend[i].rows;
					d->u.transfer_done.n_tensors = pend[i].n;
					(void)s_send_msg(e->fd, d);
					dg_msg_destroy(&d);
				} else {
					fprintf(stderr, "# send room %llu: %s\n",
					    (unsigned long long)ev.room,
					    ev.reason);
				}
				dg_pool_free(e->pool, &pend[i].ext);
				done++;
			}
		}
	}
	free(pend);
	return done == count ? 0 : 1;
}

/* ---- cases ------------------------------------------------------------- */

typedef struct {
	const char *name;
	s_opts_t opts;
	size_t ntransfers;
	size_t ntensors;
	const uint64_t *sizes;  /* per transfer: ntensors sizes */
	int fault_rail;         /* -1: none */
	int fault_count;
} s_case_t;

static bool
s_pool_clean(s_end_t *e)
{
	dg_pool_stats_t st;

	dg_pool_stats(e->pool, &st);
	return st.slots_free == st.slots;
}

/* DG_XFER_ONLY=substring runs only the matching cases (debugging). */
static bool
s_selected(const char *name)
{
	const char *only = getenv("DG_XFER_ONLY");
	return !only || strstr(name, only);
}

static void
s_run_case(const s_case_t *c)
{
	int sv[2];

	if (!s_selected(c->name))
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		s_ok(false, "%s: socketpair", c->name);
		return;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		s_end_t e;
		if (s_open(&e, &c->opts, sv[1]) < 0)
			_exit(2);
		if (c->fault_rail >= 0)
			dg_xfer_inject_rail_fault(e.xfer, c->fault_rail,
			    c->fault_count);
		int rc = s_sender(&e, (int)c->ntransfers, false);
		dg_xfer_stats_t st;
		dg_xfer_stats(e.xfer, &st);
		uint64_t report[2] = { st.chunks_retried + st.attempts_retried, 0 };
		/* Rail health is published every 100 ms: wait for it. */
		int64_t until = s_now() + 1000;
		while (c->fault_rail >= 0 && !report[1] && s_now() < until) {
			dg_xfer_rail_t h[4];
			size_t n = dg_xfer_rail_health(e.xfer, h, 4);
			for (size_t i = 0; i < n; i++)
				if (h[i].rail == c->fault_rail && h[i].quarantined)
					report[1] = 1;
			struct pollfd none = { .fd = -1 };
			(void)poll(&none, 1, 10); /* poll interval, bounded by `until` */
		}
		(void)s_write_all(e.fd, report, sizeof report);
		s_close(&e);
		_exit(rc);
	}
	close(sv[1]);
	s_end_t e;
	if (s_open(&e, &c->opts, sv[0]) < 0) {
		s_ok(false, "%s: open the receiving engine", c->name);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	s_rx_t *rx = calloc(c->ntransfers, sizeof *rx);
	bool started = true;
	int64_t t0 = s_now();
	for (size_t i = 0; i < c->ntransfers; i++) {
		rx[i].room = 1000 + i;
		rx[i].n = c->ntensors;
		for (size_t t = 0; t < c->ntensors; t++)
			rx[i].bytes[t] = c->sizes[i * c->ntensors + t];
		if (s_rx_start(&e, &rx[i], 60000) < 0)
			started = false;
	}
	int wrc = started ? s_rx_wait(&e, rx, c->ntransfers, 120000) : -1;
	int64_t ms = s_now() - t0;
	bool all = wrc == 0;
	uint64_t bytes = 0;
	for (size_t i = 0; i < c->ntransfers && all; i++) {
		if (rx[i].status != DG_XFER_DONE) {
			fprintf(stderr, "# room %llu: %s\n",
			    (unsigned long long)rx[i].room, rx[i].reason);
			all = false;
			break;
		}
		all = s_rx_verify(&e, &rx[i]);
		for (size_t t = 0; t < rx[i].n; t++)
			bytes += rx[i].bytes[t];
		dg_pool_transition(e.pool, &rx[i].ext, DG_SLOT_READY,
		    DG_SLOT_IN_USE);
		dg_pool_transition(e.pool, &rx[i].ext, DG_SLOT_IN_USE,
		    DG_SLOT_FREE);
	}
	uint64_t report[2] = { 0, 0 };
	struct pollfd pf = { .fd = e.fd, .events = POLLIN };
	if (poll(&pf, 1, 10000) == 1 &&
	    read(e.fd, report, sizeof report) != sizeof report)
		report[0] = report[1] = 0;
	int status = 0;
	waitpid(pid, &status, 0);
	s_ok(all && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "%s: %zu transfer%s, %llu bytes intact (%lld ms)", c->name,
	    c->ntransfers, c->ntransfers > 1 ? "s" : "",
	    (unsigned long long)bytes, (long long)ms);
	/* Once quarantined, the failing rail gets no more chunks, so fewer
	 * than all the armed faults may fire. */
	if (c->fault_rail >= 0)
		s_ok(all && report[0] >= 1 && report[0] <= (uint64_t)c->fault_count
		    && report[1], "%s: rail %d quarantined, %llu chunks "
		    "retried on the other rail", c->name, c->fault_rail,
		    (unsigned long long)report[0]);
	s_ok(s_pool_clean(&e), "%s: every slot free afterwards", c->name);
	free(rx);
	s_close(&e);
}

/* A peer killed mid-transfer: the other side gets a failed event within
 * its deadline and frees its slots.  `kill_sender`: the receiver
 * survives; otherwise the sender does. */
static void
s_run_kill(bool kill_sender)
{
	const char *name = kill_sender ? "sender killed mid-transfer" :
	    "receiver killed mid-transfer";
	/* Small chunks, one in flight: 256 MiB takes long enough to kill. */
	s_opts_t o = { .rails = 1, .chunk = 4096, .inflight = 1,
	    .pool = 300 * MIB, .quarantine_ms = 1000, .chunk_retries = 1 };
	int sv[2];
	const int64_t timeout = 3000;

	if (!s_selected(name))
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		s_end_t e;
		if (s_open(&e, &o, sv[1]) < 0)
			_exit(2);
		if (kill_sender) {
			/* Ready: its 300 MiB pool registered, which on a
			 * loaded machine can take longer than the receive's
			 * deadline, so the receiver starts it only now. */
			if (write(sv[1], "r", 1) != 1)
				_exit(2);
			(void)s_sender(&e, 1, true);
			_exit(0);
		}
		s_rx_t rx = { .room = 7, .n = 1, .bytes = { 256 * MIB } };
		if (s_rx_start(&e, &rx, 600000) < 0)
			_exit(2);
		/* Wait to be killed. */
		dg_xfer_event_t ev;
		(void)s_event(&e, &ev, 600000);
		_exit(3);
	}
	close(sv[1]);
	s_end_t e;
	if (s_open(&e, &o, sv[0]) < 0) {
		s_ok(false, "%s: open the engine", name);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	dg_xfer_event_t ev = { 0 };
	bool got = false;
	int64_t t0 = 0;
	if (kill_sender) {
		s_rx_t rx = { .room = 7, .n = 1, .bytes = { 256 * MIB } };
		char c;
		struct pollfd ready = { .fd = e.fd, .events = POLLIN };
		bool up = poll(&ready, 1, 60000) == 1 && read(e.fd, &c, 1) == 1 &&
		    c == 'r';
		s_ok(up, "%s: the sender's engine is open", name);
		if (up && s_rx_start(&e, &rx, timeout) == 0 &&
		    read(e.fd, &c, 1) == 1) {
			/* Kill it once data is flowing. */
			uint64_t got_bytes = 0, total = 0;
			int64_t until = s_now() + 10000;
			while (s_now() < until && dg_xfer_recv_progress(e.xfer,
			    rx.id, &got_bytes, &total) == 0 && got_bytes == 0) {
				struct pollfd none = { .fd = -1 };
				(void)poll(&none, 1, 1); /* poll interval, bounded by `until` */
			}
			s_ok(got_bytes > 0 && got_bytes < total, "%s: killed "
			    "with %llu of %llu bytes arrived", name,
			    (unsigned long long)got_bytes,
			    (unsigned long long)total);
			kill(pid, SIGKILL);
			t0 = s_now();
			got = s_event(&e, &ev, (int)timeout + 5000) == 0;
		}
		if (got)
			dg_pool_free(e.pool, &rx.ext);
	} else {
		/* Be the sender: take the manifest, start, kill the peer. */
		dg_msg_t *m = s_recv_msg(e.fd, 10000);
		dg_extent_t ext;
		uint64_t id, src = 0;
		char why[256];
		if (m && dg_pool_reserve(e.pool, 256 * MIB, &ext) == DG_SLOT_OK) {
			src = ext.offset;
			if (dg_xfer_send(e.xfer, &m->u.manifest, &ext, &src,
			    timeout, &id, why, sizeof why) == 0) {
				/* Kill it once data is flowing. */
				dg_xfer_stats_t st = { 0 };
				int64_t until = s_now() + 10000;
				while (s_now() < until && st.bytes_sent == 0) {
					struct pollfd none = { .fd = -1 };
					(void)poll(&none, 1, 1); /* poll interval, bounded by `until` */
					dg_xfer_stats(e.xfer, &st);
				}
				s_ok(st.bytes_sent > 0, "%s: killed with %llu "
				    "bytes written", name,
				    (unsigned long long)st.bytes_sent);
				kill(pid, SIGKILL);
				t0 = s_now();
				got = s_event(&e, &ev, (int)timeout + 5000) == 0;
			}
			dg_pool_free(e.pool, &ext);
		}
		dg_msg_destroy(&m);
	}
	int64_t ms = s_now() - t0;
	waitpid(pid, NULL, 0);
	s_ok(got && ev.status == DG_XFER_FAILED && ms <= timeout + 1000,
	    "%s: failed event within the %lld ms deadline (%lld ms: %s)", name,
	    (long long)timeout, (long long)ms, got ? ev.reason : "no event");
	s_ok(s_pool_clean(&e), "%s: no slot leaked", name);
	s_close(&e);
}

/* ---- zero copy on one host (xfer_local.c) ----------------------------- */

/* Receivers' pools mapped in this process (ours too, when shared). */
static int
s_memfd_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		n += strstr(line, "/memfd:disagg-pool") != NULL;
	fclose(f);
	return n;
}

static int
s_maps_until(int want, int ms)
{
	int64_t until = s_now() + ms;
	int n;

	while ((n = s_memfd_maps()) != want && s_now() < until) {
		struct pollfd none = { .fd = -1 };
		(void)poll(&none, 1, 5); /* poll interval, bounded by `until` */
	}
	return n;
}

/* Whether every slot of `e` is free within `ms`. */
static bool
s_clean_within(s_end_t *e, int ms)
{
	int64_t until = s_now() + ms;

	while (!s_pool_clean(e) && s_now() < until) {
		struct pollfd none = { .fd = -1 };
		(void)poll(&none, 1, 2); /* poll interval, bounded by `until` */
	}
	return s_pool_clean(e);
}

/* Reserve and expect one tensor of `bytes` at the receiver. */
static int
s_zc_expect(s_end_t *r, uint64_t room, uint64_t bytes, dg_extent_t *ext,
    dg_tensor_row_t *row, dg_manifest_msg_t *m, uint64_t *id, int64_t ms)
{
	char why[256];

	if (dg_pool_reserve(r->pool, bytes, ext) != DG_SLOT_OK)
		return -1;
	*row = (dg_tensor_row_t){ .name = "t", .dtype = "u8", .bytes = bytes,
	    .offset = ext->offset };
	*m = (dg_manifest_msg_t){ .room = room, .phase = 1, .tensors = row,
	    .n_tensors = 1 };
	if (dg_xfer_expect(r->xfer, ext, m, ms, id, why, sizeof why) < 0) {
		fprintf(stderr, "# expect: %s\n", why);
		return -1;
	}
	return 0;
}

static bool
s_zc_intact(s_end_t *r, const dg_extent_t *ext, uint64_t room, uint64_t n)
{
	const uint8_t *p = (const uint8_t *)dg_pool_base(r->pool) + ext->offset;

	for (uint64_t i = 0; i < n; i++)
		if (p[i] != s_pattern(room, 0, i))
			return false;
	return true;
}

/* Both ends in this process: a handoff in place, the copy when the
 * output came first, a cancel while the sender holds the extent. */
static void
s_run_zero_copy_paths(void)
{
	s_opts_t o = { .rails = 1, .chunk = MIB, .inflight = 4,
	    .pool = 16 * MIB, .quarantine_ms = 1000, .chunk_retries = 1 };
	s_end_t r, t;
	const uint64_t n = 3 * MIB + 17;

	if (!s_selected("zero copy"))
		return;
	if (s_open_as(&r, &o, -1, true) < 0) {
		s_ok(false, "zero copy: open the receiver");
		return;
	}
	if (s_open_as(&t, &o, -1, true) < 0) {
		s_ok(false, "zero copy: open the sender");
		s_close(&r);
		return;
	}
	dg_extent_t ext, src;
	dg_tensor_row_t row;
	dg_manifest_msg_t m;
	dg_xfer_event_t ev;
	dg_xfer_stats_t st;
	uint64_t rid, sid, off;
	char why[256] = "";
	void *at = NULL;

	/* 1. Written in place, then handed over. */
	bool ok = s_zc_expect(&r, 1, n, &ext, &row, &m, &rid, 5000) == 0;
	s_ok(ok && m.share && strncmp(m.share, "disagg-pool-", 12) == 0,
	    "zero copy: the manifest offers the pool (%s)",
	    ok && m.share ? m.share : "none");
	dg_xfer_lease_t *lease = ok ? dg_xfer_lease(t.xfer, &m, &at) : NULL;
	/* Its own mapping of the receiver's memory, not the receiver's. */
	s_ok(lease && at && at != (uint8_t *)dg_pool_base(r.pool) + ext.offset,
	    "zero copy: the sender holds the receiver's extent");
	if (lease) {
		for (uint64_t i = 0; i < n; i++)
			((uint8_t *)at)[i] = s_pattern(1, 0, i);
		int rc = dg_xfer_send_placed(t.xfer, &m, &lease, 5000, &sid, why,
		    sizeof why);
		bool sent = rc == 0 && s_event(&t, &ev, 5000) == 0 &&
		    ev.status == DG_XFER_DONE;
		bool got = s_event(&r, &ev, 5000) == 0 &&
		    ev.status == DG_XFER_DONE && ev.bytes == n;
		s_ok(sent && got && s_zc_intact(&r, &ext, 1, n),
		    "zero copy: handed over, every byte in place (%s)",
		    rc ? why : "ok");
	}
	dg_pool_free(r.pool, &ext);
	dg_xfer_stats(t.xfer, &st);
	s_ok(st.handoffs == 1 && st.chunks_posted == 0 && st.peers_mapped == 1,
	    "zero copy: counted as a handoff, nothing through the fabric");

	/* 2. The output came first: copied through the mapping. */
	ok = s_zc_expect(&r, 2, n, &ext, &row, &m, &rid, 5000) == 0 &&
	    dg_pool_reserve(t.pool, n, &src) == DG_SLOT_OK;
	if (ok) {
		uint8_t *p = (uint8_t *)dg_pool_base(t.pool) + src.offset;
		for (uint64_t i = 0; i < n; i++)
			p[i] = s_pattern(2, 0, i);
		off = src.offset;
		ok = dg_xfer_send(t.xfer, &m, &src, &off, 5000, &sid, why,
		    sizeof why) == 0 && s_event(&t, &ev, 5000) == 0 &&
		    ev.status == DG_XFER_DONE && s_event(&r, &ev, 5000) == 0 &&
		    ev.status == DG_XFER_DONE;
		dg_pool_free(t.pool, &src);
	}
	dg_xfer_stats(t.xfer, &st);
	s_ok(ok && s_zc_intact(&r, &ext, 2, n) && st.local_copies == 1 &&
	    st.chunks_posted == 0, "zero copy: a late manifest falls back to "
	    "a copy, counted, every byte intact");
	dg_pool_free(r.pool, &ext);

	/* 3. Cancelled while held: the extent waits for the sender. */
	ok = s_zc_expect(&r, 3, n, &ext, &row, &m, &rid, 5000) == 0;
	lease = ok ? dg_xfer_lease(t.xfer, &m, &at) : NULL;
	int kept = lease ? dg_xfer_cancel(r.xfer, rid) : -1;
	bool failed = s_event(&r, &ev, 5000) == 0 &&
	    ev.status == DG_XFER_FAILED && ev.kept;
	s_ok(kept == 1 && failed && dg_pool_state(r.pool, &ext) ==
	    DG_SLOT_FILLING, "zero copy: a cancelled receive's extent stays "
	    "out of the pool while the sender holds it");
	dg_xfer_lease_drop(t.xfer, &lease);
	s_ok(s_clean_within(&r, 3000), "zero copy: the sender's drop gives it "
	    "back");

	/* 4. A deadline passes while held: kept the same way. */
	ok = s_zc_expect(&r, 4, n, &ext, &row, &m, &rid, 50) == 0;
	lease = ok ? dg_xfer_lease(t.xfer, &m, &at) : NULL;
	failed = lease && s_event(&r, &ev, 5000) == 0 &&
	    ev.status == DG_XFER_FAILED && ev.kept;
	s_ok(failed && dg_pool_state(r.pool, &ext) == DG_SLOT_FILLING,
	    "zero copy: a held receive past its deadline fails, its extent "
	    "kept");
	if (lease) {
		/* The handoff of a receive that ended frees the extent. */
		int rc = dg_xfer_send_placed(t.xfer, &m, &lease, 5000, &sid, why,
		    sizeof why);
		(void)rc;
		(void)s_event(&t, &ev, 5000);
	}
	s_ok(s_clean_within(&r, 3000), "zero copy: a late handoff gives it "
	    "back");
	s_close(&t);
	s_close(&r);
	s_ok(s_memfd_maps() == 0, "zero copy: every pool unmapped at close");
}

/* A crash of either side, in a second process: the survivor ends the
 * transfer, leaks no slot and lets go of the other's memory. */
static void
s_run_zero_copy_kill(bool kill_sender)
{
	const char *name = kill_sender ? "zero copy: sender killed holding "
	    "the extent" : "zero copy: receiver killed with its pool mapped";
	s_opts_t o = { .rails = 1, .chunk = MIB, .inflight = 4,
	    .pool = 16 * MIB, .quarantine_ms = 1000, .chunk_retries = 1 };
	int sv[2];
	const uint64_t n = 2 * MIB;

	if (!s_selected(name) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		s_end_t e;
		if (s_open_as(&e, &o, sv[1], true) < 0)
			_exit(2);
		if (kill_sender) {
			/* Hold the receiver's extent, write half, and wait
			 * to be killed. */
			dg_msg_t *m = s_recv_msg(e.fd, 10000);
			void *at;
			dg_xfer_lease_t *l = m ? dg_xfer_lease(e.xfer,
			    &m->u.manifest, &at) : NULL;
			if (!l)
				_exit(2);
			memset(at, 0x77, n / 2);
			if (write(e.fd, "h", 1) != 1)
				_exit(2);
			dg_xfer_event_t ev;
			(void)s_event(&e, &ev, 600000);
			_exit(3);
		}
		dg_extent_t ext;
		dg_tensor_row_t row;
		dg_manifest_msg_t m;
		uint64_t id;
		if (s_zc_expect(&e, 5, n, &ext, &row, &m, &id, 600000) < 0)
			_exit(2);
		dg_msg_t *msg = dg_msg_new(DG_OP_MANIFEST);
		msg->u.manifest = m;
		if (s_send_msg(e.fd, msg) < 0)
			_exit(2);
		msg->u.manifest = (dg_manifest_msg_t){ 0 };
		dg_msg_destroy(&msg);
		dg_xfer_event_t ev;
		(void)s_event(&e, &ev, 600000);
		_exit(3);
	}
	close(sv[1]);
	s_end_t e;
	if (s_open_as(&e, &o, sv[0], true) < 0) {
		s_ok(false, "%s: open the engine", name);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	dg_xfer_event_t ev = { 0 };
	char c;
	if (kill_sender) {
		dg_extent_t ext;
		dg_tensor_row_t row;
		dg_manifest_msg_t m;
		uint64_t id;
		bool ok = s_zc_expect(&e, 6, n, &ext, &row, &m, &id, 600000) == 0;
		dg_msg_t *msg = dg_msg_new(DG_OP_MANIFEST);
		if (ok && msg) {
			msg->u.manifest = m;
			ok = s_send_msg(e.fd, msg) == 0;
			msg->u.manifest = (dg_manifest_msg_t){ 0 };
		}
		dg_msg_destroy(&msg);
		struct pollfd p = { .fd = e.fd, .events = POLLIN };
		ok = ok && poll(&p, 1, 10000) == 1 && read(e.fd, &c, 1) == 1;
		s_ok(ok, "%s: held, half written", name);
		kill(pid, SIGKILL);
		int64_t t0 = s_now();
		bool got = ok && s_event(&e, &ev, 5000) == 0;
		int64_t ms = s_now() - t0;
		s_ok(got && ev.status == DG_XFER_FAILED && !ev.kept &&
		    ms < 1000, "%s: the receive fails at once (%lld ms: %s)",
		    name, (long long)ms, got ? ev.reason : "no event");
		dg_pool_free(e.pool, &ext);
		s_ok(s_pool_clean(&e), "%s: no slot leaked", name);
	} else {
		int before = s_memfd_maps();
		dg_msg_t *m = s_recv_msg(e.fd, 10000);
		void *at = NULL;
		dg_xfer_lease_t *l = m ? dg_xfer_lease(e.xfer, &m->u.manifest,
		    &at) : NULL;
		s_ok(l && s_memfd_maps() > before, "%s: its pool mapped and "
		    "held", name);
		kill(pid, SIGKILL);
		if (l)
			memset(at, 0x55, n);    /* harmless: still mapped */
		uint64_t sid;
		char why[256] = "";
		int rc = l ? dg_xfer_send_placed(e.xfer, &m->u.manifest, &l,
		    5000, &sid, why, sizeof why) : -1;
		bool got = rc == 0 && s_event(&e, &ev, 5000) == 0;
		/* Handed over before the hang-up was seen is a success the
		 * dead peer never reads; after it, a failure.  Either way
		 * one event, and then the mapping goes. */
		s_ok(rc < 0 || got, "%s: the send ends with one event (%s)",
		    name, rc < 0 ? why : got ? (ev.status == DG_XFER_DONE ?
		    "done" : ev.reason) : "none");
		s_ok(s_maps_until(before, 3000) == before, "%s: its pool is "
		    "unmapped once unused", name);
		dg_msg_destroy(&m);
	}
	waitpid(pid, NULL, 0);
	s_close(&e);
}

/* The terminal paths that need no second process: two engines in this
 * one, the receiver's manifest handed over in memory. */
static void
s_run_local_paths(void)
{
	s_opts_t o = { .rails = 1, .chunk = 4096, .inflight = 1,
	    .pool = 64 * MIB, .quarantine_ms = 1000, .chunk_retries = 1 };
	s_end_t a, b;
	dg_xfer_event_t ev;
	char why[256];
	uint64_t id, sid;

	if (!s_selected("local") || s_open(&a, &o, -1) < 0)
		return;
	if (s_open(&b, &o, -1) < 0) {
		s_close(&a);
		return;
	}

	/* A receive cancelled (room released): failed, slots come back. */
	dg_extent_t ext;
	dg_pool_reserve(a.pool, 1 * MIB, &ext);
	dg_tensor_row_t row = { .name = "t", .dtype = "u8", .bytes = MIB,
	    .offset = ext.offset };
	dg_manifest_msg_t m = { .room = 21, .phase = 1, .tensors = &row,
	    .n_tensors = 1 };
	dg_xfer_expect(a.xfer, &ext, &m, 60000, &id, why, sizeof why);
	dg_xfer_cancel(a.xfer, id);
	bool got = s_event(&a, &ev, 2000) == 0;
	dg_pool_free(a.pool, &ext);
	s_ok(got && ev.id == id && ev.status == DG_XFER_FAILED &&
	    strstr(ev.reason, "cancelled") && s_pool_clean(&a),
	    "local: a cancelled receive fails and frees its slots");

	/* A receive nobody writes: failed at its deadline. */
	dg_pool_reserve(a.pool, 1 * MIB, &ext);
	row.offset = ext.offset;
	int64_t t0 = s_now();
	dg_xfer_expect(a.xfer, &ext, &m, 200, &id, why, sizeof why);
	got = s_event(&a, &ev, 2000) == 0;
	int64_t ms = s_now() - t0;
	dg_pool_free(a.pool, &ext);
	s_ok(got && ev.status == DG_XFER_FAILED && strstr(ev.reason,
	    "timed out") && ms >= 200 && ms < 1000,
	    "local: a receive times out at its deadline (%lld ms)",
	    (long long)ms);

	/* A send cancelled midway: one failed event, slots come back. */
	dg_extent_t src;
	dg_pool_reserve(a.pool, 32 * MIB, &ext);
	dg_pool_reserve(b.pool, 32 * MIB, &src);
	row.bytes = 32 * MIB;
	row.offset = ext.offset;
	dg_xfer_expect(a.xfer, &ext, &m, 60000, &id, why, sizeof why);
	uint64_t off = src.offset;
	dg_xfer_send(b.xfer, &m, &src, &off, 60000, &sid, why, sizeof why);
	dg_xfer_cancel(b.xfer, sid);
	got = s_event(&b, &ev, 2000) == 0;
	bool one = got && ev.id == sid && ev.status == DG_XFER_FAILED &&
	    strstr(ev.reason, "cancelled");
	dg_xfer_event_t more;
	one = one && s_event(&b, &more, 300) < 0;
	dg_xfer_cancel(a.xfer, id);
	(void)s_event(&a, &ev, 2000);
	dg_pool_free(a.pool, &ext);
	dg_pool_free(b.pool, &src);
	s_ok(one && s_pool_clean(&a) && s_pool_clean(&b),
	    "local: a cancelled send ends with exactly one failed event");

	/* Stale: the room is released and its slot reserved again while
	 * the data is on its way; the completion must not make the new
	 * owner's extent READY. */
	row.bytes = 256 * 1024;
	dg_pool_reserve(a.pool, row.bytes, &ext);
	row.offset = ext.offset;
	dg_xfer_expect(a.xfer, &ext, &m, 60000, &id, why, sizeof why);
	dg_extent_t fresh;
	dg_pool_free(a.pool, &ext);
	dg_pool_reserve(a.pool, row.bytes, &fresh);
	dg_pool_reserve(b.pool, row.bytes, &src);
	off = src.offset;
	dg_xfer_send(b.xfer, &m, &src, &off, 60000, &sid, why, sizeof why);
	got = s_event(&a, &ev, 10000) == 0;
	(void)s_event(&b, &more, 10000);
	s_ok(got && ev.status == DG_XFER_STALE && dg_pool_state(a.pool,
	    &fresh) == DG_SLOT_RESERVED, "local: data for a recycled slot "
	    "ends stale and leaves the new owner alone (%s)",
	    got ? ev.reason : "no event");
	dg_pool_free(a.pool, &fresh);
	dg_pool_free(b.pool, &src);
	s_ok(s_pool_clean(&a) && s_pool_clean(&b),
	    "local: every slot free afterwards");
	s_close(&a);
	s_close(&b);

	/* A section asking for CUDA memory on a machine without a device
	 * gets a host pool of its configured geometry, and says so. */
	dg_config_t *cfg = dg_config_parse_string("t.ini", "[transformer t0]\n"
	    "peer = ipc://t0\npool = 8M\nslot = 256K\nmemory = cuda\n");
	const dg_stage_conf_t *st = dg_config_stage(cfg, "t0");
	dg_pool_t *pool = dg_xfer_pool_for(st, s_provider, false, why, sizeof why);
	bool host = pool && (dg_cuda_device_count(NULL, 0) > 0 ||
	    dg_pool_kind(pool) == DG_MEM_HOST);
	s_ok(host && dg_pool_size(pool) == 8 * MIB &&
	    dg_pool_slot_size(pool) == 256 * 1024, "local: a stage's pool "
	    "takes its size and slot from the section, host memory without "
	    "a GPU");
	dg_pool_destroy(&pool);
	dg_config_destroy(&cfg);
}

/* A stale generation is refused: expecting into an extent that was freed
 * and reserved again fails, and so does the late handle's free. */
static void
s_run_stale(void)
{
	s_opts_t o = { .rails = 1, .chunk = 65536, .inflight = 4,
	    .pool = 4 * MIB, .quarantine_ms = 1000, .chunk_retries = 1 };
	s_end_t e;

	if (s_open(&e, &o, -1) < 0) {
		s_ok(false, "stale generation: open the engine");
		return;
	}
	s_rx_t rx = { .room = 9, .n = 1, .bytes = { 1000 } };
	dg_extent_t old, fresh;
	dg_pool_reserve(e.pool, 1000, &old);
	dg_pool_free(e.pool, &old);
	dg_pool_reserve(e.pool, 1000, &fresh);
	dg_tensor_row_t row = { .name = "t", .dtype = "u8", .bytes = 1000,
	    .offset = old.offset };
	dg_manifest_msg_t m = { .room = 9, .phase = 1, .tensors = &row,
	    .n_tensors = 1 };
	char why[256] = "";
	uint64_t id;
	int rc = dg_xfer_expect(e.xfer, &old, &m, 1000, &id, why, sizeof why);
	s_ok(rc < 0 && strstr(why, "stale"), "stale generation: expect into "
	    "a recycled extent is refused (%s)", why);
	s_ok(dg_pool_free(e.pool, &old) == DG_SLOT_STALE &&
	    dg_pool_state(e.pool, &fresh) == DG_SLOT_RESERVED,
	    "stale generation: the old handle cannot free the new owner");
	dg_pool_free(e.pool, &fresh);
	(void)rx;
	s_close(&e);
}

/* Both engines of an in-process case; one failed test if they cannot
 * be opened. */
static int
s_open_pair(const char *name, const s_opts_t *o, s_end_t *r, s_end_t *s)
{
	if (s_open(r, o, -1) < 0) {
		s_ok(false, "%s: open the receiving engine", name);
		return -1;
	}
	if (s_open(s, o, -1) < 0) {
		s_ok(false, "%s: open the sending engine", name);
		s_close(r);
		return -1;
	}
	return 0;
}

/* Sends to one peer go out oldest first: with more queued than its
 * window holds, none waits behind later ones (a stage's oldest request
 * is the nearest its deadline).  Both engines in this process; each
 * send's done event comes in the order the sends were made. */
static void
s_run_order(void)
{
	enum { N = 24 };
	const uint64_t size = MIB;
	s_opts_t o = { .rails = 1, .chunk = (int64_t)MIB, .inflight = 4,
	    .pool = (int64_t)(N * MIB + MIB), .quarantine_ms = 1000,
	    .chunk_retries = 1 };
	s_end_t r, s;
	dg_extent_t dst[N], src[N];
	uint64_t rx_id[N], tx_id[N];
	int order[N], ndone = 0, nrecv = 0;
	bool intact = true, started = true;
	char why[256] = "";

	if (!s_selected("send order"))
		return;
	if (s_open_pair("send order", &o, &r, &s) < 0)
		return;
	/* Every receive first, then every send at once: they queue. */
	dg_manifest_msg_t m[N];
	dg_tensor_row_t row[N];
	int64_t shape = (int64_t)size;
	for (int i = 0; i < N && started; i++) {
		if (dg_pool_reserve(r.pool, size, &dst[i]) != DG_SLOT_OK ||
		    dg_pool_reserve(s.pool, size, &src[i]) != DG_SLOT_OK) {
			snprintf(why, sizeof why, "no room in the pools");
			started = false;
			break;
		}
		uint8_t *p = (uint8_t *)dg_pool_base(s.pool) + src[i].offset;
		for (uint64_t b = 0; b < size; b++)
			p[b] = s_pattern((uint64_t)i, 0, b);
		row[i] = (dg_tensor_row_t){ .name = "t", .dtype = "u8",
		    .shape = &shape, .n_shape = 1, .bytes = size,
		    .offset = dst[i].offset };
		m[i] = (dg_manifest_msg_t){ .room = (uint64_t)i, .phase = 1,
		    .tensors = &row[i], .n_tensors = 1 };
		if (dg_xfer_expect(r.xfer, &dst[i], &m[i], 30000, &rx_id[i],
		    why, sizeof why) < 0)
			started = false;
	}
	for (int i = 0; i < N && started; i++) {
		uint64_t off = src[i].offset;
		if (dg_xfer_send(s.xfer, &m[i], &src[i], &off, 30000,
		    &tx_id[i], why, sizeof why) < 0)
			started = false;
	}
	int64_t until = s_now() + 60000;
	while (started && (ndone < N || nrecv < N) && s_now() < until) {
		dg_xfer_event_t ev;
		if (s_event(&s, &ev, 10) == 0) {
			for (int i = 0; i < N; i++)
				if (ev.id == tx_id[i] && ev.status == DG_XFER_DONE)
					order[ndone++] = i;
		}
		while (dg_xfer_next_event(r.xfer, &ev)) {
			int i = (int)ev.room;
			if (ev.room >= N || ev.id != rx_id[i])
				continue;
			nrecv++;
			const uint8_t *p = (const uint8_t *)
			    dg_pool_base(r.pool) + dst[i].offset;
			for (uint64_t b = 0; b < size && intact; b++)
				intact = ev.status == DG_XFER_DONE &&
				    p[b] == s_pattern((uint64_t)i, 0, b);
		}
	}
	bool in_order = ndone == N;
	char late[64] = "";
	for (int i = 0; i < ndone; i++)
		if (order[i] != i) {
			snprintf(late, sizeof late, "; send %d finished at "
			    "position %d", order[i], i);
			in_order = false;
			break;
		}
	s_ok(started && nrecv == N && intact, "send order: %d transfers of "
	    "1 MiB queued at once arrive intact%s%s", N, started ? "" : ": ",
	    started ? "" : why);
	s_ok(in_order, "send order: they finish in the order they were "
	    "sent, more than go out at once (%d of %d done%s)", ndone, N,
	    late);
	s_close(&s);
	s_close(&r);
}

/* Wait within `ms` until `e` has ended `sends` sends and `recvs`
 * receives, reading none of its events. */
static bool
s_wait_ended(s_end_t *e, uint64_t sends, uint64_t recvs, int ms)
{
	int64_t deadline = s_now() + ms;
	dg_xfer_stats_t st;

	for (;;) {
		dg_xfer_stats(e->xfer, &st);
		if (st.sends_done + st.sends_failed >= sends &&
		    st.recvs_done + st.recvs_failed + st.recvs_stale >= recvs)
			return true;
		if (s_now() >= deadline)
			return false;
		(void)poll(NULL, 0, 5);         /* the condition, again */
	}
}

/* Events wait for a caller that reads them late, however many, and in
 * order: the engine keeps them in a ring that grows (xfer.c,
 * dg_xfer_emit()).
 * A first wave ends unread, half its events are read, a second, larger
 * wave ends on top of the rest (the ring, wrapped, grows), and then
 * every transfer has its event exactly once, done, its bytes intact. */
static void
s_run_events_kept(void)
{
	enum { NA = 150, N = 400 };
	const uint64_t size = 4096;
	s_opts_t o = { .rails = 1, .chunk = (int64_t)MIB, .inflight = 4,
	    .pool = (int64_t)(N * 64 * 1024 + MIB), .quarantine_ms = 1000,
	    .chunk_retries = 1 };
	s_end_t r, s;
	static dg_extent_t dst[N], src[N];
	static uint64_t rx_id[N], tx_id[N];
	static dg_manifest_msg_t m[N];
	static dg_tensor_row_t row[N];
	int seen_rx[N] = { 0 }, seen_tx[N] = { 0 };
	int64_t shape = (int64_t)size;
	bool started = true, ended = true, intact = true, once = true;
	int nread = 0, last[2] = { -1, -1 };    /* receiver, sender */
	bool in_order = true;
	char why[256] = "";

	if (!s_selected("events kept"))
		return;
	if (s_open_pair("events kept", &o, &r, &s) < 0)
		return;
	for (int wave = 0; wave < 2 && started && ended; wave++) {
		int lo = wave ? NA : 0, hi = wave ? N : NA;
		for (int i = lo; i < hi && started; i++) {
			if (dg_pool_reserve(r.pool, size, &dst[i]) != DG_SLOT_OK ||
			    dg_pool_reserve(s.pool, size, &src[i]) != DG_SLOT_OK) {
				snprintf(why, sizeof why, "no room in the pools");
				started = false;
				break;
			}
			uint8_t *p = (uint8_t *)dg_pool_base(s.pool) +
			    src[i].offset;
			for (uint64_t b = 0; b < size; b++)
				p[b] = s_pattern((uint64_t)i, 0, b);
			row[i] = (dg_tensor_row_t){ .name = "t", .dtype = "u8",
			    .shape = &shape, .n_shape = 1, .bytes = size,
			    .offset = dst[i].offset };
			m[i] = (dg_manifest_msg_t){ .room = (uint64_t)i,
			    .phase = 1, .tensors = &row[i], .n_tensors = 1 };
			uint64_t off = src[i].offset;
			if (dg_xfer_expect(r.xfer, &dst[i], &m[i], 30000,
			    &rx_id[i], why, sizeof why) < 0 ||
			    dg_xfer_send(s.xfer, &m[i], &src[i], &off, 30000,
			    &tx_id[i], why, sizeof why) < 0)
				started = false;
		}
		ended = started && s_wait_ended(&s, (uint64_t)hi, 0, 60000) &&
		    s_wait_ended(&r, 0, (uint64_t)hi, 60000);
		/* Half the first wave's events read, the rest left. */
		for (int k = 0; wave == 0 && k < NA / 2 * 2; k++) {
			dg_xfer_event_t ev;
			s_end_t *e = k % 2 ? &s : &r;
			if (!dg_xfer_next_event(e->xfer, &ev))
				continue;
			nread++;
			int i = (int)ev.room;
			if (ev.room >= N || ev.status != DG_XFER_DONE) {
				once = false;
				continue;
			}
			(e == &r ? seen_rx : seen_tx)[i]++;
			in_order = in_order && i > last[e != &r];
			last[e != &r] = i;
		}
	}
	dg_xfer_event_t ev;
	for (int side = 0; side < 2; side++) {
		s_end_t *e = side ? &s : &r;
		while (dg_xfer_next_event(e->xfer, &ev)) {
			nread++;
			int i = (int)ev.room;
			if (ev.room >= N || ev.status != DG_XFER_DONE ||
			    ev.id != (side ? tx_id : rx_id)[i]) {
				once = false;
				continue;
			}
			(side ? seen_tx : seen_rx)[i]++;
			in_order = in_order && i > last[side];
			last[side] = i;
		}
	}
	for (int i = 0; i < N; i++) {
		if (seen_rx[i] != 1 || seen_tx[i] != 1)
			once = false;
		const uint8_t *p = (const uint8_t *)dg_pool_base(r.pool) +
		    dst[i].offset;
		for (uint64_t b = 0; b < size && intact && started; b++)
			intact = p[b] == s_pattern((uint64_t)i, 0, b);
	}
	s_ok(started && ended && intact, "events kept: %d transfers of 4 KiB "
	    "in two waves, their events unread, arrive intact%s%s", N,
	    *why ? ": " : "", why);
	s_ok(started && ended && once && nread == 2 * N, "events kept: every "
	    "transfer's event comes once, done, read late (%d of %d read)",
	    nread, 2 * N);
	/* One peer, one rail: its writes complete in the order they were
	 * posted, on both sides, so the events come in that order too. */
	s_ok(started && ended && in_order, "events kept: each engine's "
	    "events come in the order its transfers ended");
	s_close(&s);
	s_close(&r);
}

/* A send whose writes are refused as they are posted (fi_writedata()
 * failing at once, every attempt) fails with the reason, and the next
 * send to the same peer goes through: on tcp the failed peer, with
 * nothing left holding it, leaves the address vector in the middle of
 * the progress thread's round, and comes back for the next send. */
static void
s_run_post_fault(void)
{
	const uint64_t size = 64 * 1024;
	s_opts_t o = { .rails = 1, .chunk = (int64_t)MIB, .inflight = 4,
	    .pool = (int64_t)(4 * MIB), .quarantine_ms = 10,
	    .chunk_retries = 0 };
	s_end_t r, s;
	char why[256] = "";

	if (!s_selected("refused writes"))
		return;
	if (s_open_pair("refused writes", &o, &r, &s) < 0)
		return;
	dg_xfer_status_t status[2] = { DG_XFER_FAILED, DG_XFER_FAILED };
	char reason[2][256] = { "", "" };
	bool intact = false;
	for (int round = 0; round < 2; round++) {
		dg_extent_t dst, src;
		uint64_t rx_id, tx_id;
		if (dg_pool_reserve(r.pool, size, &dst) != DG_SLOT_OK ||
		    dg_pool_reserve(s.pool, size, &src) != DG_SLOT_OK)
			break;
		uint8_t *p = (uint8_t *)dg_pool_base(s.pool) + src.offset;
		for (uint64_t b = 0; b < size; b++)
			p[b] = s_pattern((uint64_t)round, 0, b);
		int64_t shape = (int64_t)size;
		dg_tensor_row_t row = { .name = "t", .dtype = "u8",
		    .shape = &shape, .n_shape = 1, .bytes = size,
		    .offset = dst.offset };
		dg_manifest_msg_t m = { .room = (uint64_t)round, .phase = 1,
		    .tensors = &row, .n_tensors = 1 };
		/* Both attempts of the first send are refused. */
		if (round == 0)
			dg_xfer_inject_post_fault(s.xfer, 2);
		uint64_t off = src.offset;
		if (dg_xfer_expect(r.xfer, &dst, &m, 30000, &rx_id, why,
		    sizeof why) < 0 || dg_xfer_send(s.xfer, &m, &src, &off,
		    30000, &tx_id, why, sizeof why) < 0)
			break;
		dg_xfer_event_t ev;
		while (s_event(&s, &ev, 30000) == 0 && ev.id != tx_id)
			;
		status[round] = ev.id == tx_id ? ev.status : DG_XFER_FAILED;
		snprintf(reason[round], sizeof reason[round], "%s", ev.reason);
		if (round == 0) {
			(void)dg_xfer_cancel(r.xfer, rx_id);
			while (s_event(&r, &ev, 5000) == 0 && ev.id != rx_id)
				;
		} else {
			while (s_event(&r, &ev, 30000) == 0 && ev.id != rx_id)
				;
			const uint8_t *q = (const uint8_t *)
			    dg_pool_base(r.pool) + dst.offset;
			intact = ev.id == rx_id && ev.status == DG_XFER_DONE;
			for (uint64_t b = 0; b < size && intact; b++)
				intact = q[b] == s_pattern(1, 0, b);
			if (intact)
				dg_pool_transition(r.pool, &dst,
				    DG_SLOT_READY, DG_SLOT_IN_USE);
			dg_pool_transition(r.pool, &dst, DG_SLOT_IN_USE,
			    DG_SLOT_FREE);
		}
		if (round == 0)
			dg_pool_free(r.pool, &dst);
		dg_pool_free(s.pool, &src);
	}
	s_ok(status[0] == DG_XFER_FAILED && strstr(reason[0], "fi_writedata"),
	    "refused writes: the send fails with the reason (%s)", reason[0]);
	s_ok(status[1] == DG_XFER_DONE && intact, "refused writes: the next "
	    "send to the same peer arrives intact%s%s", *why ? ": " : "", why);
	s_ok(s_pool_clean(&r) && s_pool_clean(&s), "refused writes: every "
	    "slot free afterwards");
	s_close(&s);
	s_close(&r);
}

int
main(int argc, char *argv[])
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--provider") == 0 && i + 1 < argc)
			s_provider = argv[++i];
	dg_log_init("xfer_test", true,
	    getenv("DG_TEST_VERBOSE") ? DG_LOG_DEBUG : DG_LOG_ERROR);
	signal(SIGPIPE, SIG_IGN);

	/* Probe: without the provider there is nothing to test. */
	{
		s_opts_t o = { .rails = 1, .chunk = 65536, .inflight = 4,
		    .pool = 1 * MIB };
		s_end_t e;
		if (s_open(&e, &o, -1) < 0) {
			printf("ok - provider %s unavailable # SKIP\n", s_provider);
			printf("xfer(%s): 0 passed, 0 failed, 1 skipped\n",
			    s_provider);
			return 77;
		}
		s_close(&e);
	}

	static const uint64_t sizes[] = {
		1, 4095, 4096, 4097, 65535, 65537, MIB - 1, MIB + 1,
		3 * MIB + 5, 64 * MIB + 3, 256 * MIB,
	};
	s_opts_t base = { .rails = 1, .chunk = MIB, .inflight = 16,
	    .pool = 300 * MIB, .quarantine_ms = 30000, .chunk_retries = 3 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char name[64];
		snprintf(name, sizeof name, "one tensor of %llu bytes",
		    (unsigned long long)sizes[i]);
		s_case_t c = { .name = name, .opts = base, .ntransfers = 1,
		    .ntensors = 1, .sizes = &sizes[i], .fault_rail = -1 };
		s_run_case(&c);
	}

	/* Several tensors per manifest, sizes not multiples of the chunk. */
	static const uint64_t multi[] = { 17, 0, 2 * MIB + 3, 100000 };
	s_case_t c = { .name = "four tensors, one empty", .opts = base,
	    .ntransfers = 1, .ntensors = 4, .sizes = multi, .fault_rail = -1 };
	s_run_case(&c);

	/* Many concurrent transfers into one receiver. */
	enum { NCONC = 48 };
	uint64_t conc[NCONC * 2];
	for (int i = 0; i < NCONC * 2; i++)
		conc[i] = (uint64_t)((i * 7919) % 300000) + (uint64_t)i;
	s_opts_t small = base;
	small.chunk = 64 * 1024;
	small.inflight = 8;
	small.pool = 64 * MIB;
	c = (s_case_t){ .name = "48 concurrent transfers", .opts = small,
	    .ntransfers = NCONC, .ntensors = 2, .sizes = conc,
	    .fault_rail = -1 };
	s_run_case(&c);

	/* A failing rail: quarantined, the chunks move to the other. */
	static const uint64_t railed[] = { 8 * MIB + 1 };
	s_opts_t two = base;
	two.rails = 2;
	two.chunk = 256 * 1024;
	two.pool = 32 * MIB;
	c = (s_case_t){ .name = "rail 0 failing", .opts = two, .ntransfers = 1,
	    .ntensors = 1, .sizes = railed, .fault_rail = 0,
	    .fault_count = 4 };
	s_run_case(&c);

	s_run_local_paths();
	s_run_zero_copy_paths();
	s_run_zero_copy_kill(true);
	s_run_zero_copy_kill(false);
	s_run_stale();
	s_run_order();
	s_run_events_kept();
	s_run_post_fault();
	s_run_kill(true);
	s_run_kill(false);

	printf("xfer(%s): %d passed, %d failed\n", s_provider, s_pass, s_fail);
	return s_fail ? 1 : 0;
}
