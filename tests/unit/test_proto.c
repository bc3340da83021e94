/*  test_proto.c: the wire protocol codec (lib/proto*.c).
 *
 *  Every op of the catalogue round-trips with every field set; a table
 *  of hostile frames checks that each is refused with its own code and,
 *  where it could be read, the seq to echo.  Frames are written in a
 *  small JSON-like notation (s_pack) so that each case reads as what it
 *  sends.  With --write-corpus DIR and --write-dict FILE the same samples
 *  and cases become the fuzzer's seed corpus and dictionary.  */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* For helpers that also run outside cmocka (--write-corpus). */
#define S_REQUIRE(c) do {                                               \
		if (!(c)) {                                             \
			fprintf(stderr, "%s:%d: %s\n", __FILE__,        \
			        __LINE__, #c);                          \
			abort();                                        \
		}                                                       \
	} while (0)

/* ------------------------------------------------------------------ */
/* s_pack: JSON-like text to msgpack, for readable test frames.
 *   {k: v, ...}  [v, ...]  "str"  b"bin"  x"c1 00" (raw bytes, verbatim)
 *   123  -5  1.5 (float64)  1.5f (float32)  nil  true  false
 * Strings take \xHH, \" and \\.  Several values in a row are
 * concatenated (for trailing bytes); an empty text is an empty frame. */

static int
s_write_raw(msgpack_packer *pk, const void *p, size_t n)
{
	return n ? pk->callback(pk->data, p, n) : 0;
}

static const char *
s_skip(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t')
		p++;
	return p;
}

/* Reads a quoted string at p into out (cap bytes); returns past it. */
static const char *
s_quoted(const char *p, char *out, size_t cap, size_t *n)
{
	S_REQUIRE(*p == '"');
	*n = 0;
	for (p++; *p != '"'; p++) {
		char c = *p;
		S_REQUIRE(c != '\0' && *n < cap);
		if (c == '\\') {
			p++;
			if (*p == 'x') {
				char hex[3] = { p[1], p[2], 0 };
				c = (char)strtoul(hex, NULL, 16);
				p += 2;
			} else {
				c = *p;
			}
		}
		out[(*n)++] = c;
	}
	return p + 1;
}

static const char *
s_pack_value(msgpack_packer *pk, const char *p)
{
	char buf[8192];
	size_t n;

	p = s_skip(p);
	if (*p == '{' || *p == '[') {
		bool map = *p == '{';
		char close = map ? '}' : ']';
		msgpack_sbuffer sub;
		msgpack_packer spk;

		msgpack_sbuffer_init(&sub);
		msgpack_packer_init(&spk, &sub, msgpack_sbuffer_write);
		n = 0;
		for (p = s_skip(p + 1); *p != close; p = s_skip(p)) {
			p = s_skip(s_pack_value(&spk, p));
			if (map) {
				S_REQUIRE(*p == ':');
				p = s_skip(s_pack_value(&spk, p + 1));
			}
			n++;
			if (*p == ',')
				p++;
			else
				S_REQUIRE(*p == close);
		}
		if (map)
			msgpack_pack_map(pk, n);
		else
			msgpack_pack_array(pk, n);
		s_write_raw(pk, sub.data, sub.size);
		msgpack_sbuffer_destroy(&sub);
		return p + 1;
	}
	if (*p == '"') {
		p = s_quoted(p, buf, sizeof buf, &n);
		msgpack_pack_str(pk, n);
		s_write_raw(pk, buf, n);
		return p;
	}
	if (*p == 'b' && p[1] == '"') {
		p = s_quoted(p + 1, buf, sizeof buf, &n);
		msgpack_pack_bin(pk, n);
		s_write_raw(pk, buf, n);
		return p;
	}
	if (*p == 'x' && p[1] == '"') {
		for (p += 2, n = 0; *p != '"'; ) {
			char hex[3] = { p[0], p[1], 0 };
			S_REQUIRE(p[0] && p[1] && n < sizeof buf);
			buf[n++] = (char)strtoul(hex, NULL, 16);
			p = s_skip(p + 2);
		}
		s_write_raw(pk, buf, n);
		return p + 1;
	}
	if (strncmp(p, "nil", 3) == 0) {
		msgpack_pack_nil(pk);
		return p + 3;
	}
	if (strncmp(p, "true", 4) == 0) {
		msgpack_pack_true(pk);
		return p + 4;
	}
	if (strncmp(p, "false", 5) == 0) {
		msgpack_pack_false(pk);
		return p + 5;
	}
	{
		char *end;
		size_t len = strspn(p, "-+0123456789.e");
		if (memchr(p, '.', len) || memchr(p, 'e', len)) {
			double v = strtod(p, &end);
			if (*end == 'f') {
				msgpack_pack_float(pk, (float)v);
				end++;
			} else {
				msgpack_pack_double(pk, v);
			}
		} else if (*p == '-') {
			msgpack_pack_int64(pk, strtoll(p, &end, 10));
		} else {
			msgpack_pack_uint64(pk, strtoull(p, &end, 10));
		}
		S_REQUIRE(end != p);
		return end;
	}
}

/* The frame for text; free with dg_buf_free. */
static dg_buf_t
s_pack(const char *text)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	dg_buf_t out;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (const char *p = s_skip(text); *p; p = s_skip(p))
		p = s_pack_value(&pk, p);
	out.size = sb.size;
	out.data = (uint8_t *)msgpack_sbuffer_release(&sb);
	if (!out.data)
		out.data = malloc(1);   /* an empty frame, still freeable */
	return out;
}

/* Decodes text, expecting failure with code. */
static dg_proto_err_t
s_decode_bad(const char *text, dg_proto_code_t code)
{
	dg_buf_t b = s_pack(text);
	dg_msg_t *m = (dg_msg_t *)&b;   /* must be set to NULL */
	dg_proto_err_t err;

	if (dg_proto_decode(b.data, b.size, &m, &err) != -1)
		fail_msg("%s: decoded, want %s", text, dg_proto_code_name(code));
	assert_null(m);
	if (err.code != code)
		fail_msg("%s: got %s (%s), want %s", text,
		         dg_proto_code_name(err.code), err.message,
		         dg_proto_code_name(code));
	assert_true(err.message[0] != '\0');
	dg_buf_free(&b);
	return err;
}

static dg_msg_t *
s_decode_ok(const char *text)
{
	dg_buf_t b = s_pack(text);
	dg_msg_t *m = NULL;
	dg_proto_err_t err;

	if (dg_proto_decode(b.data, b.size, &m, &err) < 0)
		fail_msg("%s: %s: %s", text, dg_proto_code_name(err.code),
		         err.message);
	dg_buf_free(&b);
	return m;
}

/* ------------------------------------------------------------------ */
/* One sample per op, every field set to a distinctive value and every
 * list holding several items. */

static const uint8_t s_addr0[] = { 0xfe, 0x80, 0x00, 0x01, 0x02 };
static const uint8_t s_addr1[] = { 0x00, 0xff, 0x10 };
static const dg_bin_t s_fabric[] = {
	{ s_addr0, sizeof s_addr0 }, { s_addr1, sizeof s_addr1 },
};
static const dg_kv_t s_timings[] = {
	{ "encoder", 120 }, { "transformer", 45210 }, { "decoder", 3300 },
};
static const int64_t s_shape0[] = { 512, 4096 };
static const int64_t s_shape1[] = { 16, 21, 60, 104 };
static const dg_tensor_row_t s_tensors[] = {
	{ "context", "bf16", s_shape0, N(s_shape0), 4194304, 64, 0xdeadbeef },
	{ "latents", "fp32", s_shape1, N(s_shape1), 8386560, 4194304,
	  0x1234567890abcdefULL },
};
static const dg_instance_row_t s_instances[] = {
	{ "encoder", "e0", "gpu-a", "up", "tcp://10.0.0.1:7710", 1, 2, 3, 4,
	  5, 6, 7, 12.5, 800, 2500, 150, 9, 976.5, 1200 },
	{ "transformer", "t0", "gpu-b", "draining", "tcp://10.0.0.2:7720",
	  11, 12, 13, 14, 15, 16, 17, 0.25, 80000, 250000, 1500, 19, 0, 0 },
};
static const dg_queue_row_t s_queue_rows[] = {
	{ 101, 9001, "running", 35, 3, 8 }, { 102, 9002, "ready", 5, 0, 0 },
};
static const dg_stage_row_t s_places[] = {
	{ "encoder", "e0", "tcp://10.0.0.1:7710" }, { "high", "h0", NULL },
	{ "low", "l0", NULL }, { "decoder", "d0", NULL },
};
static const dg_room_row_t s_room_rows[] = {
	{ 201, 9101, "encoding", "e0", "h0,l0", "d0", 4096, 77, "encoder",
	  s_places, 4, 1, 1 },
	{ 202, 9102, "decoding", "e1", "t1", "d1", 8192, 88, NULL, NULL, 0,
	  0, 0 },
};
static const dg_thread_row_t s_thread_rows[] = {
	{ "control", "polling", 301, 1500, 2, 4242, "sleeping" },
	{ "worker-0", "running", 302, 987654, 40, 4243, "running" },
};
static const dg_socket_row_t s_socket_rows[] = {
	{ "ROUTER", "tcp://*:7710", true, 1, 2, 3, 4 },
	{ "DEALER", "tcp://127.0.0.1:7700", false, 5, 6, 7, 8 },
};
static const dg_rail_row_t s_rail_rows[] = {
	{ "tcp;ofi_rxm", 1, "t0", true, 2500 },
	{ "shm", 0, "t1", false, 7 },
};

static void
s_fill_error(dg_msg_t *m)
{
	m->u.error.code = "busy";
	m->u.error.message = "admission queue full (64 pending)";
}

static void
s_fill_submit(dg_msg_t *m)
{
	dg_submit_msg_t *b = &m->u.submit;
	b->prompt = "a red fox running through snow, cinematic, 4k";
	b->negative_prompt = "blurry, low quality";
	b->frames = 81;
	b->height = 480;
	b->width = 832;
	b->steps = 50;
	b->seed = -42;
	b->deadline_ms = 120000;
	b->key = "batch-7/item-12";
	b->owner = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
	b->progress = true;
	b->priority = 7;
}

static void
s_fill_submit_ok(dg_msg_t *m)
{
	m->u.submit_ok.request = 0xfedcba9876543210ULL;
}

static void
s_fill_result(dg_msg_t *m)
{
	dg_result_msg_t *b = &m->u.result;
	b->request = 77;
	b->status = "failed";
	b->output = "/var/lib/disagg/out/77.y4m";
	b->bytes = 1ULL << 40;
	b->digest = "sha256:0123abcd";
	b->error = "decoder d0: timeout after 30000 ms";
	b->timings = s_timings;
	b->n_timings = N(s_timings);
	b->key = "batch-7/item-11";
	b->owner = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
}

static void
s_fill_status(dg_msg_t *m)
{
	m->u.status.request = 78;
	m->u.status.key = "batch-7/item-13";
}

static void
s_fill_status_ok(dg_msg_t *m)
{
	dg_status_ok_msg_t *b = &m->u.status_ok;
	b->request = 79;
	b->state = "transforming";
	b->room = 4242;
	b->encoder = "e0";
	b->transformer = "t3";
	b->decoder = "d1";
	b->age_ms = 1234;
	b->retries = 2;
	b->error = "previous attempt: rail down";
	b->stage = "high";
	b->stages = s_places;
	b->n_stages = N(s_places);
	b->step = 12;
	b->steps = 50;
	b->timings = s_timings;
	b->n_timings = N(s_timings);
}

static void
s_fill_progress(dg_msg_t *m)
{
	m->u.progress = (dg_progress_msg_t){ .request = 82, .room = 4243,
	    .role = "high", .step = 7, .steps = 40 };
}

static void
s_fill_cancel(dg_msg_t *m)
{
	m->u.cancel.request = 80;
}

static void
s_fill_cancel_ok(dg_msg_t *m)
{
	m->u.cancel_ok.request = 81;
}

static void
s_fill_hello(dg_msg_t *m)
{
	dg_hello_msg_t *b = &m->u.hello;
	b->role = "transformer";
	b->name = "t0";
	b->host = "gpu-node-7";
	b->pid = 31337;
	b->peer = "tcp://10.1.2.3:7720";
	b->fabric = s_fabric;
	b->n_fabric = N(s_fabric);
	b->provider = "verbs;ofi_rxm";
	b->pool_bytes = 256ULL << 20;
	b->slots = 64;
	b->workers = 4;
	b->version = "0.1.0";
}

static void
s_fill_hello_ok(dg_msg_t *m)
{
	m->u.hello_ok.heartbeat_ms = 500;
	m->u.hello_ok.dead_after_ms = 3000;
	m->u.hello_ok.instance = 12;
}

static void
s_fill_heartbeat(dg_msg_t *m)
{
	dg_heartbeat_msg_t *b = &m->u.heartbeat;
	b->name = "d0";
	b->state = "unhealthy";
	b->incoming = 1;
	b->waiting = 2;
	b->ready = 3;
	b->running = 4;
	b->sending = 5;
	b->rooms = 15;
	b->free_slots = 49;
	b->stalled_ms = 12000;
}

static void
s_fill_stats(dg_msg_t *m)
{
	dg_stats_msg_t *b = &m->u.stats;
	b->name = "t1";
	b->done = 1000000;
	b->failed = 3;
	b->rps = 5123.75;
	b->p50_us = 180;
	b->p99_us = 2200;
	b->bytes_in = 1ULL << 33;
	b->bytes_out = (1ULL << 33) + 1;
}

static void
s_fill_bye(dg_msg_t *m)
{
	m->u.bye.name = "e1";
	m->u.bye.reason = "SIGTERM, drained";
}

static void
s_fill_assign(dg_msg_t *m)
{
	dg_assign_msg_t *b = &m->u.assign;
	b->request = 501;
	b->room = 0x8000000000000001ULL;
	b->attempt = 2;
	b->prompt = "ocean waves at dusk \xe2\x80\x94 \xe6\xb5\xb7";
	b->negative_prompt = "text, watermark";
	b->frames = 49;
	b->height = 720;
	b->width = 1280;
	b->steps = 30;
	b->seed = INT64_MIN;
	b->deadline_ms = 60000;
	static const dg_stage_row_t chain[] = {
		{ "encoder", "e0", "tcp://10.0.0.1:7710" },
		{ "high", "h2", "tcp://10.0.0.3:7720" },
		{ "low", "l1", "tcp://10.0.0.4:7720" },
		{ "decoder", "d0", "ipc:///run/disagg/d0.sock" },
	};
	b->stages = chain;
	b->n_stages = 4;
	b->priority = 3;
}

static void
s_fill_assign_ok(dg_msg_t *m)
{
	m->u.assign_ok.room = 502;
}

static void
s_fill_stage_done(dg_msg_t *m)
{
	dg_stage_done_msg_t *b = &m->u.stage_done;
	b->room = 503;
	b->request = 504;
	b->role = "decoder";
	b->ms = 3300;
	b->output = "out/504.y4m";
	b->bytes = 9999999;
	b->digest = "sha256:feedface";
	b->queue_us = 1200;
	b->in_us = 3400;
	b->compute_us = 3100000;
	b->out_us = 56;
	b->total_us = 3300000;
}

static void
s_fill_stage_failed(dg_msg_t *m)
{
	dg_stage_failed_msg_t *b = &m->u.stage_failed;
	b->room = 505;
	b->request = 506;
	b->role = "encoder";
	b->reason = "CUDA out of memory";
	b->retryable = true;
}

static void
s_fill_release(dg_msg_t *m)
{
	m->u.release.room = 507;
	m->u.release.reason = "operator";
}

static void
s_fill_room_phase(dg_msg_t *m)
{
	m->u.room_phase.room = 511;
	m->u.room_phase.request = 512;
	m->u.room_phase.role = "transformer";
	m->u.room_phase.state = "denoising";
}

static void
s_fill_release_ok(dg_msg_t *m)
{
	m->u.release_ok.room = 508;
}

static void
s_fill_manifest(dg_msg_t *m)
{
	dg_manifest_msg_t *b = &m->u.manifest;
	b->room = 509;
	b->phase = 2;
	b->slot = 17;
	b->gen = 3;
	b->fabric = s_fabric;
	b->n_fabric = N(s_fabric);
	b->key = 0xabcdef;
	b->base = 0x7f0000001000ULL;
	b->token = 0x12345;
	b->chunk = 1 << 20;
	b->tensors = s_tensors;
	b->n_tensors = N(s_tensors);
	b->share = "disagg-pool-4242-00000000deadbeef";
}

static void
s_fill_transfer_done(dg_msg_t *m)
{
	dg_transfer_done_msg_t *b = &m->u.transfer_done;
	b->room = 510;
	b->phase = 1;
	b->gen = 4;
	b->bytes = 12582912;
	b->tensors = s_tensors;
	b->n_tensors = N(s_tensors);
	b->us = 2917;
}

static void
s_fill_transfer_failed(dg_msg_t *m)
{
	dg_transfer_failed_msg_t *b = &m->u.transfer_failed;
	b->room = 511;
	b->phase = 2;
	b->gen = 5;
	b->reason = "stale slot generation";
	b->stale = true;
}

static void
s_fill_instances(dg_msg_t *m)
{
	(void)m;                /* no fields */
}

static void
s_fill_instances_ok(dg_msg_t *m)
{
	m->u.instances_ok.instances = s_instances;
	m->u.instances_ok.n_instances = N(s_instances);
	m->u.instances_ok.publish = "tcp://127.0.0.1:7701";
}

static void
s_fill_queues(dg_msg_t *m)
{
	m->u.queues.name = "t0";
}

static void
s_fill_queues_ok(dg_msg_t *m)
{
	m->u.queues_ok.name = "t0";
	m->u.queues_ok.rooms = s_queue_rows;
	m->u.queues_ok.n_rooms = N(s_queue_rows);
	m->u.queues_ok.omitted = 3;
}

static void
s_fill_rooms(dg_msg_t *m)
{
	m->u.rooms.name = "d0";
}

static void
s_fill_rooms_ok(dg_msg_t *m)
{
	m->u.rooms_ok.rooms = s_room_rows;
	m->u.rooms_ok.n_rooms = N(s_room_rows);
	m->u.rooms_ok.omitted = 70000;
}

static void
s_fill_threads(dg_msg_t *m)
{
	m->u.threads.name = "e0";
}

static void
s_fill_threads_ok(dg_msg_t *m)
{
	m->u.threads_ok.name = "e0";
	m->u.threads_ok.threads = s_thread_rows;
	m->u.threads_ok.n_threads = N(s_thread_rows);
}

static void
s_fill_sockets(dg_msg_t *m)
{
	m->u.sockets.name = "t1";
}

static void
s_fill_sockets_ok(dg_msg_t *m)
{
	m->u.sockets_ok.name = "t1";
	m->u.sockets_ok.sockets = s_socket_rows;
	m->u.sockets_ok.n_sockets = N(s_socket_rows);
	m->u.sockets_ok.rails = s_rail_rows;
	m->u.sockets_ok.n_rails = N(s_rail_rows);
}

static void
s_fill_drain(dg_msg_t *m)
{
	m->u.drain.name = "t2";
	m->u.drain.exit = true;
}

static void
s_fill_drain_ok(dg_msg_t *m)
{
	m->u.drain_ok.name = "t2";
}

static void
s_fill_undrain(dg_msg_t *m)
{
	m->u.undrain.name = "t3";
}

static void
s_fill_undrain_ok(dg_msg_t *m)
{
	m->u.undrain_ok.name = "t3";
}

static void
s_fill_reload(dg_msg_t *m)
{
	m->u.reload.name = "controller";
}

static void
s_fill_reload_ok(dg_msg_t *m)
{
	m->u.reload_ok.message = "2 keys changed: policy, max_pending";
}

static void
s_fill_event(dg_msg_t *m)
{
	dg_event_msg_t *b = &m->u.event;
	b->kind = "room.failed";
	b->ts_ms = 1700000000123LL;
	b->name = "t0";
	b->request = 9001;
	b->room = 9002;
	b->message = "transfer to d0 failed on every rail";
	b->id = 77;
}

static void
s_fill_events(dg_msg_t *m)
{
	m->u.events.after = 41;
}

static const dg_event_msg_t s_event_rows[] = {
	{ .kind = "release", .ts_ms = 1700000000001LL, .name = "t0",
	  .request = 6, .room = 60, .message = "released", .id = 42 },
	{ .kind = "failed", .ts_ms = 1700000000002LL, .request = 7,
	  .message = "request 7 failed: released", .id = 43 },
};

static void
s_fill_events_ok(dg_msg_t *m)
{
	m->u.events_ok.events = s_event_rows;
	m->u.events_ok.n_events = N(s_event_rows);
	m->u.events_ok.epoch = 1700000000000ULL;
	m->u.events_ok.last = 43;
}

static void
s_fill_snapshot(dg_msg_t *m)
{
	dg_snapshot_msg_t *b = &m->u.snapshot;
	b->ts_ms = 1700000000456LL;
	b->instances = s_instances;
	b->n_instances = N(s_instances);
	b->pending = 10;
	b->active = 20;
	b->done = 30;
	b->failed = 40;
	b->cancelled = 50;
}

static const struct {
	dg_op_t op;
	void (*fill)(dg_msg_t *);
} s_samples[] = {
	{ DG_OP_ERROR, s_fill_error },
	{ DG_OP_SUBMIT, s_fill_submit },
	{ DG_OP_SUBMIT_OK, s_fill_submit_ok },
	{ DG_OP_RESULT, s_fill_result },
	{ DG_OP_STATUS, s_fill_status },
	{ DG_OP_STATUS_OK, s_fill_status_ok },
	{ DG_OP_CANCEL, s_fill_cancel },
	{ DG_OP_CANCEL_OK, s_fill_cancel_ok },
	{ DG_OP_PROGRESS, s_fill_progress },
	{ DG_OP_HELLO, s_fill_hello },
	{ DG_OP_HELLO_OK, s_fill_hello_ok },
	{ DG_OP_HEARTBEAT, s_fill_heartbeat },
	{ DG_OP_STATS, s_fill_stats },
	{ DG_OP_BYE, s_fill_bye },
	{ DG_OP_ASSIGN, s_fill_assign },
	{ DG_OP_ASSIGN_OK, s_fill_assign_ok },
	{ DG_OP_STAGE_DONE, s_fill_stage_done },
	{ DG_OP_STAGE_FAILED, s_fill_stage_failed },
	{ DG_OP_RELEASE, s_fill_release },
	{ DG_OP_RELEASE_OK, s_fill_release_ok },
	{ DG_OP_ROOM_PHASE, s_fill_room_phase },
	{ DG_OP_MANIFEST, s_fill_manifest },
	{ DG_OP_TRANSFER_DONE, s_fill_transfer_done },
	{ DG_OP_TRANSFER_FAILED, s_fill_transfer_failed },
	{ DG_OP_INSTANCES, s_fill_instances },
	{ DG_OP_INSTANCES_OK, s_fill_instances_ok },
	{ DG_OP_QUEUES, s_fill_queues },
	{ DG_OP_QUEUES_OK, s_fill_queues_ok },
	{ DG_OP_ROOMS, s_fill_rooms },
	{ DG_OP_ROOMS_OK, s_fill_rooms_ok },
	{ DG_OP_THREADS, s_fill_threads },
	{ DG_OP_THREADS_OK, s_fill_threads_ok },
	{ DG_OP_SOCKETS, s_fill_sockets },
	{ DG_OP_SOCKETS_OK, s_fill_sockets_ok },
	{ DG_OP_DRAIN, s_fill_drain },
	{ DG_OP_DRAIN_OK, s_fill_drain_ok },
	{ DG_OP_UNDRAIN, s_fill_undrain },
	{ DG_OP_UNDRAIN_OK, s_fill_undrain_ok },
	{ DG_OP_RELOAD, s_fill_reload },
	{ DG_OP_RELOAD_OK, s_fill_reload_ok },
	{ DG_OP_EVENTS, s_fill_events },
	{ DG_OP_EVENTS_OK, s_fill_events_ok },
	{ DG_OP_EVENT, s_fill_event },
	{ DG_OP_SNAPSHOT, s_fill_snapshot },
};

/* The sample of op with a seq derived from it, or NULL if none. */
static dg_msg_t *
s_sample(dg_op_t op)
{
	for (size_t i = 0; i < N(s_samples); i++) {
		if (s_samples[i].op == op) {
			dg_msg_t *m = dg_msg_new(op);
			S_REQUIRE(m);
			m->seq = 1000 + (uint64_t)op;
			s_samples[i].fill(m);
			return m;
		}
	}
	return NULL;
}

static dg_buf_t
s_sample_frame(dg_op_t op)
{
	dg_msg_t *m = s_sample(op);
	dg_buf_t b;

	S_REQUIRE(m && dg_proto_encode(m, &b) == 0);
	dg_msg_destroy(&m);
	return b;
}

/* ------------------------------------------------------------------ */
/* Generic comparisons over the descriptors. */

#define S_AT(base, f, type) (*(type const *)((const char *)(base) + (f)->offset))
#define S_COUNT(base, f) (*(const size_t *)((const char *)(base) + (f)->count_offset))

static void s_assert_struct_equal(const dg_struct_desc_t *desc,
                                  const void *a, const void *b);

static void
s_assert_str_equal(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void
s_assert_bin_equal(const dg_bin_t *a, const dg_bin_t *b)
{
	assert_int_equal(a->size, b->size);
	if (a->size)
		assert_memory_equal(a->data, b->data, a->size);
}

static void
s_assert_field_equal(const dg_field_desc_t *f, const void *a, const void *b)
{
	size_t n;

	switch (f->type) {
	case DG_FT_INT:
		assert_int_equal(S_AT(a, f, int64_t), S_AT(b, f, int64_t));
		break;
	case DG_FT_UINT:
		assert_int_equal(S_AT(a, f, uint64_t), S_AT(b, f, uint64_t));
		break;
	case DG_FT_BOOL:
		assert_int_equal(S_AT(a, f, bool), S_AT(b, f, bool));
		break;
	case DG_FT_FLOAT:
		assert_memory_equal(&S_AT(a, f, double), &S_AT(b, f, double),
		                    sizeof(double));
		break;
	case DG_FT_STR:
		s_assert_str_equal(S_AT(a, f, const char *),
		                   S_AT(b, f, const char *));
		break;
	case DG_FT_BIN:
		s_assert_bin_equal(&S_AT(a, f, dg_bin_t), &S_AT(b, f, dg_bin_t));
		break;
	default:
		n = S_COUNT(a, f);
		assert_int_equal(n, S_COUNT(b, f));
		for (size_t i = 0; i < n; i++) {
			const void *pa = S_AT(a, f, const void *);
			const void *pb = S_AT(b, f, const void *);
			if (f->type == DG_FT_INT_LIST) {
				assert_int_equal(((const int64_t *)pa)[i],
				                 ((const int64_t *)pb)[i]);
			} else if (f->type == DG_FT_BIN_LIST) {
				s_assert_bin_equal(&((const dg_bin_t *)pa)[i],
				                   &((const dg_bin_t *)pb)[i]);
			} else if (f->type == DG_FT_KV_MAP) {
				const dg_kv_t *ka = &((const dg_kv_t *)pa)[i];
				const dg_kv_t *kb = &((const dg_kv_t *)pb)[i];
				assert_string_equal(ka->key, kb->key);
				assert_int_equal(ka->value, kb->value);
			} else {
				size_t sz = f->row->size;
				s_assert_struct_equal(f->row,
				                      (const char *)pa + i * sz,
				                      (const char *)pb + i * sz);
			}
		}
		break;
	}
}

static void
s_assert_struct_equal(const dg_struct_desc_t *desc, const void *a,
                      const void *b)
{
	for (size_t i = 0; i < desc->nfields; i++)
		s_assert_field_equal(&desc->fields[i], a, b);
}

/* Every field of a sample differs from "absent", so it travels and is
 * compared; lists hold at least two items, the first of them filled the
 * same way (later ones may hold edge values: false, 0).  Catches a field
 * added to the catalogue but not to its sample. */
static void
s_assert_filled(const dg_struct_desc_t *desc, const void *base)
{
	for (size_t i = 0; i < desc->nfields; i++) {
		const dg_field_desc_t *f = &desc->fields[i];
		bool ok;

		switch (f->type) {
		case DG_FT_INT: ok = S_AT(base, f, int64_t) != f->def; break;
		case DG_FT_UINT: ok = S_AT(base, f, uint64_t) != (uint64_t)f->def; break;
		case DG_FT_BOOL: ok = S_AT(base, f, bool) != (f->def != 0); break;
		case DG_FT_FLOAT: ok = S_AT(base, f, double) != 0; break;
		case DG_FT_STR: ok = S_AT(base, f, const char *) &&
		                     *S_AT(base, f, const char *); break;
		case DG_FT_BIN: ok = S_AT(base, f, dg_bin_t).size > 0; break;
		default: ok = S_COUNT(base, f) >= 2; break;
		}
		if (!ok)
			fail_msg("sample of '%s': field '%s' not set",
			         desc->name, f->key);
		if (f->type == DG_FT_ROWS)
			s_assert_filled(f->row, S_AT(base, f, const void *));
	}
}

/* ------------------------------------------------------------------ */
/* The catalogue itself */

static void
test_catalog_shape(void **state)
{
	size_t n, codes = 0;
	const dg_op_desc_t *ops = dg_proto_catalog(&n);
	(void)state;

	assert_true(n >= 40);
	for (size_t i = 0; i < n; i++) {
		const dg_op_desc_t *d = &ops[i];
		assert_true(d->body.nfields <= DG_PROTO_MAX_FIELDS);
		assert_true(d->body.size <= sizeof(((dg_msg_t *)0)->u));
		assert_true(d->body.nfields == 0 || d->body.size > 0);
		if (i > 0)
			assert_true(ops[i - 1].op < d->op);
		assert_ptr_equal(dg_proto_op_desc(d->op), d);
		assert_int_equal(dg_op_lookup(d->body.name), d->op);
		assert_string_equal(dg_op_name(d->op), d->body.name);
		for (size_t j = 0; j < d->body.nfields; j++) {
			const dg_field_desc_t *f = &d->body.fields[j];
			assert_true(f->offset < d->body.size);
			for (size_t k = 0; k < j; k++)
				assert_true(strcmp(f->key,
				                   d->body.fields[k].key) != 0);
			assert_true(strcmp(f->key, "v") && strcmp(f->key, "op") &&
			            strcmp(f->key, "seq"));
			if (f->type == DG_FT_ROWS)
				assert_non_null(f->row);
		}
	}
	assert_int_equal(dg_op_lookup("nope"), DG_OP_NONE);
	assert_int_equal(dg_op_lookup(NULL), DG_OP_NONE);
	assert_null(dg_op_name((dg_op_t)999));
	assert_null(dg_proto_op_find("status.okx", 9 + 1));
	assert_non_null(dg_proto_op_find("status.okx", 9));

	for (int c = 0; c < DG_PROTO_CODE_COUNT; c++, codes++) {
		const char *w = dg_proto_code_name((dg_proto_code_t)c);
		assert_int_equal(dg_proto_code_lookup(w), c);
	}
	assert_string_equal(dg_proto_code_name(DG_PROTO_E_NOT_A_MAP),
	                    "not-a-map");
	assert_string_equal(dg_proto_code_name(DG_PROTO_E_TOO_MANY_TENSORS),
	                    "too-many-tensors");
	assert_string_equal(dg_proto_code_name((dg_proto_code_t)-1),
	                    "internal");
	assert_int_equal(dg_proto_code_lookup("bogus"), -1);
}

/* The wire names, written out independently of the catalogue: renaming
 * a key (which ARCHITECTURE.md, "The wire protocol" fixes for client ops) must fail here. */
static const char *const s_spec[] = {
	"error: code message",
	"submit: prompt negative_prompt? frames height width steps seed "
	"deadline_ms? key? owner? progress? priority?",
	"submit.ok: request",
	"result: request status output bytes digest error? timings key? "
	"owner?",
	"status: request? key?",
	"status.ok: request state room? encoder? transformer? decoder? "
	"age_ms? retries? error? stage? stages? step? steps? timings?",
	"cancel: request",
	"cancel.ok: request",
	"progress: request room? role step steps",
	"hello: role name host pid peer fabric? provider? pool_bytes slots "
	"workers version?",
	"hello.ok: heartbeat_ms dead_after_ms instance",
	"heartbeat: name state incoming waiting ready running sending rooms "
	"free_slots stalled_ms?",
	"stats: name done failed rps p50_us p99_us bytes_in bytes_out",
	"bye: name reason?",
	"assign: request room attempt prompt negative_prompt? frames height "
	"width steps seed deadline_ms stages priority?",
	"assign.ok: room",
	"stage.done: room request role ms output? bytes? digest? queue_us? "
	"in_us? compute_us? out_us? total_us?",
	"stage.failed: room request role reason retryable",
	"release: room reason?",
	"release.ok: room",
	"room.phase: room request role state",
	"manifest: room phase slot gen fabric key base token chunk tensors "
	"share?",
	"transfer.done: room phase gen bytes tensors? us?",
	"transfer.failed: room phase gen reason stale?",
	"instances:",
	"instances.ok: instances publish?",
	"queues: name",
	"queues.ok: name rooms omitted?",
	"rooms: name?",
	"rooms.ok: rooms omitted?",
	"threads: name",
	"threads.ok: name threads",
	"sockets: name",
	"sockets.ok: name sockets rails",
	"drain: name exit?",
	"drain.ok: name",
	"undrain: name",
	"undrain.ok: name",
	"reload: name?",
	"reload.ok: message?",
	"events: after?",
	"events.ok: events epoch last",
	"event: kind ts_ms name? request? room? message? id?",
	"snapshot: ts_ms instances pending active done failed cancelled?",
	/* rows */
	"tensor: name dtype shape bytes offset checksum",
	"instance: role name host state peer incoming waiting ready running "
	"sending rooms free_slots rps p50_us p99_us heartbeat_age_ms "
	"stalled_ms? ms_per_mpx? backlog_ms?",
	"queue: room request queue age_ms step? steps?",
	"room: room request state encoder transformer decoder bytes age_ms "
	"stage? stages? step? steps?",
	"place: role name peer?",
	"stage: role name peer",
	"thread: name state room? cpu_us progress_age_ms tid? kernel?",
	"socket: type endpoint bind msgs_in msgs_out bytes_in bytes_out",
	"rail: provider rail peer quarantined quarantine_left_ms?",
	/* events.ok's rows are the events themselves */
	"event: kind ts_ms name? request? room? message? id?",
};

static void
s_describe(const dg_struct_desc_t *d, char *buf, size_t size)
{
	size_t len = (size_t)snprintf(buf, size, "%s:", d->name);

	for (size_t i = 0; i < d->nfields; i++)
		len += (size_t)snprintf(buf + len, size - len, " %s%s",
		                        d->fields[i].key,
		                        d->fields[i].flags & DG_FIELD_REQUIRED ?
		                        "" : "?");
}

static bool
s_spec_has(const char *line)
{
	for (size_t i = 0; i < N(s_spec); i++)
		if (strcmp(s_spec[i], line) == 0)
			return true;
	return false;
}

static void
test_catalog_matches_spec(void **state)
{
	size_t n, seen = 0;
	const dg_op_desc_t *ops = dg_proto_catalog(&n);
	const dg_struct_desc_t *rows[16];
	size_t nrows = 0;
	char line[1024];
	(void)state;

	for (size_t i = 0; i < n; i++) {
		s_describe(&ops[i].body, line, sizeof line);
		if (!s_spec_has(line))
			fail_msg("not in the spec: %s", line);
		seen++;
		for (size_t j = 0; j < ops[i].body.nfields; j++) {
			const dg_struct_desc_t *r = ops[i].body.fields[j].row;
			bool dup = false;
			for (size_t k = 0; r && k < nrows; k++)
				dup |= rows[k] == r;
			if (r && !dup) {
				assert_true(nrows < N(rows));
				rows[nrows++] = r;
			}
		}
	}
	for (size_t i = 0; i < nrows; i++) {
		s_describe(rows[i], line, sizeof line);
		if (!s_spec_has(line))
			fail_msg("not in the spec: %s", line);
		seen++;
	}
	assert_int_equal(seen, N(s_spec));
	/* Op names travel; their numbers are ABI and never change. */
	assert_int_equal(DG_OP_ERROR, 1);
	assert_int_equal(DG_OP_SUBMIT, 100);
	assert_int_equal(DG_OP_HELLO, 200);
	assert_int_equal(DG_OP_MANIFEST, 300);
	assert_int_equal(DG_OP_INSTANCES, 400);
	assert_int_equal(DG_OP_EVENT, 500);
}

static void
test_every_op_has_sample(void **state)
{
	size_t n;
	const dg_op_desc_t *ops = dg_proto_catalog(&n);
	(void)state;

	for (size_t i = 0; i < n; i++) {
		dg_msg_t *m = s_sample(ops[i].op);
		if (!m)
			fail_msg("op '%s' has no sample in test_proto.c",
			         ops[i].body.name);
		s_assert_filled(&ops[i].body, &m->u);
		dg_msg_destroy(&m);
	}
	assert_int_equal(N(s_samples), n);
}

/* ------------------------------------------------------------------ */
/* Round trips */

static void
test_roundtrip_every_op(void **state)
{
	size_t n;
	const dg_op_desc_t *ops = dg_proto_catalog(&n);
	(void)state;

	for (size_t i = 0; i < n; i++) {
		const dg_op_desc_t *d = &ops[i];
		dg_msg_t *m = s_sample(d->op), *back = NULL;
		dg_buf_t b1, b2;
		dg_proto_err_t err;

		assert_int_equal(dg_proto_encode(m, &b1), 0);
		assert_true(b1.size > 0 && b1.size < 4096);
		if (dg_proto_decode(b1.data, b1.size, &back, &err) < 0)
			fail_msg("%s: %s", d->body.name, err.message);
		assert_int_equal(back->op, d->op);
		assert_int_equal(back->seq, m->seq);
		assert_int_equal(back->present,
		                 d->body.nfields ?
		                 UINT64_MAX >> (64 - d->body.nfields) : 0);
		s_assert_struct_equal(&d->body, &m->u, &back->u);
		for (size_t j = 0; j < d->body.nfields; j++)
			assert_true(dg_msg_has(back, d->body.fields[j].key));

		assert_int_equal(dg_proto_encode(back, &b2), 0);
		assert_int_equal(b1.size, b2.size);
		assert_memory_equal(b1.data, b2.data, b1.size);
		dg_buf_free(&b1);
		dg_buf_free(&b2);
		dg_msg_destroy(&m);
		dg_msg_destroy(&back);
		assert_null(back);
	}
}

/* The exact bytes of one frame, so that the encoding itself (key order,
 * smallest integer forms) is pinned and a peer can check against it. */
static void
test_golden_frame(void **state)
{
	static const uint8_t want[] = {
		0x84, 0xa1, 'v', 0x01, 0xa2, 'o', 'p', 0xa6, 's', 't', 'a',
		't', 'u', 's', 0xa3, 's', 'e', 'q', 0xcd, 0x01, 0x2c,
		0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't', 0x2a,
	};
	dg_msg_t *m = dg_msg_new(DG_OP_STATUS);
	dg_buf_t b;
	(void)state;

	m->seq = 300;
	m->u.status.request = 42;
	assert_int_equal(dg_proto_encode(m, &b), 0);
	assert_int_equal(b.size, sizeof want);
	assert_memory_equal(b.data, want, sizeof want);
	dg_buf_free(&b);
	dg_buf_free(&b);        /* idempotent */
	dg_msg_destroy(&m);
	dg_msg_destroy(&m);     /* NULL is fine */
	dg_msg_destroy(NULL);
}

/* Each op with only its required fields: optional ones stay off the wire
 * and decode to their defaults. */
static void
test_optional_absent(void **state)
{
	size_t n;
	const dg_op_desc_t *ops = dg_proto_catalog(&n);
	(void)state;

	for (size_t i = 0; i < n; i++) {
		const dg_op_desc_t *d = &ops[i];
		dg_msg_t *m = s_sample(d->op), *back = NULL;
		uint64_t required = 0;
		dg_proto_err_t err;
		dg_buf_t b;

		for (size_t j = 0; j < d->body.nfields; j++) {
			const dg_field_desc_t *f = &d->body.fields[j];
			char *p = (char *)&m->u + f->offset;
			if (f->flags & DG_FIELD_REQUIRED) {
				required |= UINT64_C(1) << j;
				continue;
			}
			/* What dg_msg_new leaves: the default. */
			switch (f->type) {
			case DG_FT_INT: *(int64_t *)p = f->def; break;
			case DG_FT_UINT: *(uint64_t *)p = (uint64_t)f->def; break;
			case DG_FT_BOOL: *(bool *)p = f->def != 0; break;
			case DG_FT_FLOAT: *(double *)p = (double)f->def; break;
			case DG_FT_STR: *(const char **)p = NULL; break;
			case DG_FT_BIN: memset(p, 0, sizeof(dg_bin_t)); break;
			default:
				*(void **)p = NULL;
				*(size_t *)((char *)&m->u + f->count_offset) = 0;
				break;
			}
		}
		assert_int_equal(dg_proto_encode(m, &b), 0);
		assert_int_equal(dg_proto_decode(b.data, b.size, &back, &err), 0);
		assert_int_equal(back->present, required);
		s_assert_struct_equal(&d->body, &m->u, &back->u);
		dg_buf_free(&b);
		dg_msg_destroy(&m);
		dg_msg_destroy(&back);
	}
}

static void
test_optional_defaults_and_nil(void **state)
{
	dg_msg_t *m;
	(void)state;

	m = s_decode_ok("{\"v\":1,\"op\":\"submit\",\"seq\":9,\"prompt\":\"p\","
	                "\"frames\":81,\"height\":480,\"width\":832,"
	                "\"steps\":50,\"seed\":1}");
	assert_int_equal(m->seq, 9);
	assert_string_equal(m->u.submit.prompt, "p");
	assert_null(m->u.submit.negative_prompt);
	assert_int_equal(m->u.submit.deadline_ms, 0);
	assert_false(dg_msg_has(m, "deadline_ms"));
	assert_true(dg_msg_has(m, "frames"));
	assert_false(dg_msg_has(m, "nonsense"));
	assert_false(dg_msg_has(m, NULL));
	dg_msg_destroy(&m);

	/* Python's None for an optional field is "absent". */
	m = s_decode_ok("{\"v\":1,\"op\":\"submit\",\"seq\":9,\"prompt\":\"p\","
	                "\"negative_prompt\":nil,\"deadline_ms\":nil,"
	                "\"frames\":81,\"height\":480,\"width\":832,"
	                "\"steps\":50,\"seed\":1}");
	assert_null(m->u.submit.negative_prompt);
	assert_false(dg_msg_has(m, "negative_prompt"));
	dg_msg_destroy(&m);

	/* An explicit value equal to the default was still present. */
	m = s_decode_ok("{\"v\":2,\"op\":\"transfer.failed\",\"seq\":1,"
	                "\"room\":1,\"phase\":1,\"gen\":1,\"reason\":\"r\","
	                "\"stale\":false}");
	assert_true(dg_msg_has(m, "stale"));
	assert_false(m->u.transfer_failed.stale);
	dg_msg_destroy(&m);
}

/* Unknown keys of any type are skipped, even containers with non-string
 * keys, as long as they stay within the limits. */
static void
test_unknown_keys_ignored(void **state)
{
	dg_msg_t *m;
	(void)state;

	m = s_decode_ok(
	    "{\"zzz\":{1:2, nil:[1,2,{\"a\":b\"\\x00\"}], 2.5:x\"d40102\"},"
	    " \"v\":1, \"op\":\"status\", \"x\":[[[[[[[1]]]]]]],"
	    " \"f\":1.5f, \"n\":nil, \"b\":b\"\\xff\", \"bad utf8 \\xff\":1,"
	    " \"e\":x\"c7 03 05 61 62 63\", \"seq\":18446744073709551615,"
	    " \"request\":5, \"neg\":-9223372036854775808, \"s\":\"\\x00\"}");
	assert_int_equal(m->op, DG_OP_STATUS);
	assert_int_equal(m->seq, UINT64_MAX);
	assert_int_equal(m->u.status.request, 5);
	dg_msg_destroy(&m);

	/* Keys named like fields inside unknown values do not count. */
	m = s_decode_ok("{\"v\":1,\"op\":\"status\",\"seq\":1,"
	                "\"other\":{\"request\":\"no\",\"v\":9},\"request\":6}");
	assert_int_equal(m->u.status.request, 6);
	dg_msg_destroy(&m);
}

/* Encodings a lenient peer may send: non-minimal integers, float32,
 * integers for floats, signed encodings of positive values. */
static void
test_lenient_encodings(void **state)
{
	dg_msg_t *m;
	(void)state;

	m = s_decode_ok("{\"v\":x\"cf 00 00 00 00 00 00 00 02\","
	                "\"op\":\"stats\",\"seq\":x\"d3 00 00 00 00 00 00 00 07\","
	                "\"name\":\"t0\",\"done\":x\"d0 05\",\"failed\":0,"
	                "\"rps\":12,\"p50_us\":-1,\"p99_us\":x\"cc ff\","
	                "\"bytes_in\":0,\"bytes_out\":1}");
	assert_int_equal(m->seq, 7);
	assert_int_equal(m->u.stats.done, 5);
	assert_true(m->u.stats.rps == 12.0);
	assert_int_equal(m->u.stats.p50_us, -1);
	assert_int_equal(m->u.stats.p99_us, 255);
	dg_msg_destroy(&m);

	m = s_decode_ok("{\"v\":2,\"op\":\"stats\",\"seq\":1,\"name\":\"t0\","
	                "\"done\":1,\"failed\":0,\"rps\":2.5f,\"p50_us\":1,"
	                "\"p99_us\":1,\"bytes_in\":0,\"bytes_out\":1}");
	assert_true(m->u.stats.rps == 2.5);
	dg_msg_destroy(&m);

	m = s_decode_ok("{\"v\":2,\"op\":\"stats\",\"seq\":1,\"name\":\"t0\","
	                "\"done\":1,\"failed\":0,\"rps\":-3,\"p50_us\":1,"
	                "\"p99_us\":1,\"bytes_in\":0,\"bytes_out\":1}");
	assert_true(m->u.stats.rps == -3.0);
	dg_msg_destroy(&m);

	/* Strings: empty, multi-byte UTF-8, 4-byte sequences. */
	m = s_decode_ok("{\"v\":2,\"op\":\"bye\",\"seq\":1,\"name\":\"\","
	                "\"reason\":\"\\xc3\\xa9\\xe2\\x82\\xac\\xf0\\x9f\\x98\\x80\"}");
	assert_string_equal(m->u.bye.name, "");
	assert_string_equal(m->u.bye.reason, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	dg_msg_destroy(&m);
}

static void
test_error_frame(void **state)
{
	dg_msg_t *m = NULL;
	dg_proto_err_t err;
	dg_buf_t b;
	(void)state;

	assert_int_equal(dg_proto_encode_error(&b, 77, DG_PROTO_E_BUSY,
	                                       "queue full (%d pending)", 64), 0);
	assert_int_equal(dg_proto_decode(b.data, b.size, &m, &err), 0);
	assert_int_equal(m->op, DG_OP_ERROR);
	assert_int_equal(m->seq, 77);
	assert_string_equal(m->u.error.code, "busy");
	assert_int_equal(dg_proto_code_lookup(m->u.error.code),
	                 DG_PROTO_E_BUSY);
	assert_string_equal(m->u.error.message, "queue full (64 pending)");
	dg_msg_destroy(&m);
	dg_buf_free(&b);

	/* Bytes that are not UTF-8 become '?' rather than lose the error. */
	assert_int_equal(dg_proto_encode_error(&b, 1, DG_PROTO_E_INVALID,
	                                       "bad name '%s'",
	                                       "a\xff\xc3\xa9\xe2\x82"), 0);
	assert_int_equal(dg_proto_decode(b.data, b.size, &m, &err), 0);
	assert_string_equal(m->u.error.message, "bad name 'a?\xc3\xa9?" "?'");
	dg_msg_destroy(&m);
	dg_buf_free(&b);

	/* The reply to an undecodable frame echoes its seq. */
	err = s_decode_bad("{\"v\":1,\"op\":\"submit\",\"seq\":31,\"prompt\":5}",
	                   DG_PROTO_E_TYPE);
	assert_int_equal(dg_proto_encode_err(&b, &err), 0);
	assert_int_equal(dg_proto_decode(b.data, b.size, &m, NULL), 0);
	assert_int_equal(m->seq, 31);
	assert_string_equal(m->u.error.code, "type");
	assert_string_equal(m->u.error.message, err.message);
	dg_msg_destroy(&m);
	dg_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* Hostile and broken frames */

#define ENV "\"v\":1,\"op\":\"status\",\"seq\":7"
#define SUBMIT_REST "\"frames\":81,\"height\":480,\"width\":832," \
                    "\"steps\":50,\"seed\":1"
#define TENSOR "{\"name\":\"t\",\"dtype\":\"f32\",\"shape\":[1,2]," \
               "\"bytes\":8,\"offset\":0,\"checksum\":0}"
#define MANIFEST_HEAD "\"v\":2,\"op\":\"manifest\",\"seq\":7,\"room\":1," \
                      "\"phase\":1,\"slot\":0,\"gen\":1,\"fabric\":[b\"a\"]," \
                      "\"key\":1,\"base\":0,\"token\":1,\"chunk\":4096"

enum { NOSEQ = 0, SEQ7 = 1 };

static const struct {
	const char *text;
	dg_proto_code_t code;
	int seq;                /* SEQ7: the error carries seq 7 */
	dg_op_t op;             /* the error names this op */
	const char *message;    /* when set, the exact message */
} s_bad[] = {
	/* framing */
	{ "", DG_PROTO_E_TRUNCATED, NOSEQ, 0, "empty frame" },
	{ "[1,2]", DG_PROTO_E_NOT_A_MAP, NOSEQ, 0, NULL },
	{ "5", DG_PROTO_E_NOT_A_MAP, NOSEQ, 0, NULL },
	{ "\"status\"", DG_PROTO_E_NOT_A_MAP, NOSEQ, 0, NULL },
	{ "nil", DG_PROTO_E_NOT_A_MAP, NOSEQ, 0, NULL },
	{ "x\"dc ff ff\"", DG_PROTO_E_NOT_A_MAP, NOSEQ, 0, NULL },
	{ "x\"c1\"", DG_PROTO_E_MALFORMED, NOSEQ, 0, NULL },
	{ "{" ENV ",\"request\":x\"c1\"}", DG_PROTO_E_MALFORMED, SEQ7,
	  DG_OP_STATUS, NULL },
	{ "{" ENV ",1:2,\"request\":1}", DG_PROTO_E_MALFORMED, SEQ7,
	  DG_OP_STATUS, NULL },
	{ "{" ENV ",\"request\":1} 0", DG_PROTO_E_TRAILING, SEQ7,
	  DG_OP_STATUS, "1 trailing bytes after the map" },
	{ "{" ENV ",\"request\":1} {}", DG_PROTO_E_TRAILING, SEQ7,
	  DG_OP_STATUS, NULL },
	/* {"v":1,"op":"status" and the third entry missing */
	{ "x\"83 a1 76 01 a2 6f 70 a6 73 74 61 74 75 73\"",
	  DG_PROTO_E_TRUNCATED, NOSEQ, DG_OP_STATUS, NULL },
	{ "x\"de 00 10\"", DG_PROTO_E_TRUNCATED, NOSEQ, 0, NULL },
	{ "x\"de 00\"", DG_PROTO_E_TRUNCATED, NOSEQ, 0, NULL },
	{ "{" ENV ",\"x\":x\"dd 00 00 03 e8\"}", DG_PROTO_E_TRUNCATED, SEQ7,
	  DG_OP_STATUS, NULL },
	{ "{" ENV ",\"x\":x\"d9\"}", DG_PROTO_E_TRUNCATED, SEQ7,
	  DG_OP_STATUS, NULL },
	/* huge declared lengths: the limit is named, nothing allocated */
	{ "x\"df ff ff ff ff\"", DG_PROTO_E_TOO_MANY_ITEMS, NOSEQ, 0, NULL },
	{ "{" ENV ",\"x\":x\"dd ff ff ff ff\"}", DG_PROTO_E_TOO_MANY_ITEMS,
	  SEQ7, DG_OP_STATUS, NULL },
	{ "{" ENV ",\"x\":x\"df ff ff ff ff\"}", DG_PROTO_E_TOO_MANY_ITEMS,
	  SEQ7, DG_OP_STATUS, NULL },
	{ "{" ENV ",\"x\":x\"db ff ff ff ff\"}", DG_PROTO_E_STRING_TOO_LONG,
	  SEQ7, DG_OP_STATUS, NULL },
	{ "{" ENV ",\"x\":x\"c6 ff ff ff ff\"}", DG_PROTO_E_STRING_TOO_LONG,
	  SEQ7, DG_OP_STATUS, NULL },
	{ "{" ENV ",\"x\":x\"c9 ff ff ff ff 01\"}", DG_PROTO_E_STRING_TOO_LONG,
	  SEQ7, DG_OP_STATUS, NULL },
	{ "{" ENV ",\"request\":1,\"x\":[[[[[[[[1]]]]]]]]}",
	  DG_PROTO_E_TOO_DEEP, SEQ7, DG_OP_STATUS, NULL },
	/* envelope */
	{ "{\"op\":\"status\",\"seq\":7,\"request\":1}", DG_PROTO_E_VERSION,
	  SEQ7, DG_OP_STATUS, "missing key 'v'" },
	{ "{\"v\":3,\"op\":\"status\",\"seq\":7,\"request\":1}",
	  DG_PROTO_E_VERSION, SEQ7, DG_OP_STATUS,
	  "protocol version 3 not supported (this side speaks 1 to 2)" },
	/* A version-1 daemon's op: its form changed in version 2. */
	{ "{\"v\":1,\"op\":\"assign\",\"seq\":7,\"request\":1}",
	  DG_PROTO_E_VERSION, SEQ7, DG_OP_ASSIGN,
	  "'assign' of protocol version 1 is not supported: this side "
	  "speaks version 2 of it" },
	{ "{\"v\":1,\"op\":\"hello\",\"seq\":7}", DG_PROTO_E_VERSION,
	  SEQ7, DG_OP_HELLO, NULL },
	{ "{\"v\":0,\"op\":\"status\",\"seq\":7}", DG_PROTO_E_VERSION, SEQ7,
	  DG_OP_STATUS, NULL },
	{ "{\"v\":-1,\"op\":\"status\",\"seq\":7}", DG_PROTO_E_VERSION, SEQ7,
	  DG_OP_STATUS, NULL },
	{ "{\"v\":\"1\",\"op\":\"status\",\"seq\":7}", DG_PROTO_E_TYPE, SEQ7,
	  DG_OP_STATUS, "key 'v': expected integer, got string" },
	{ "{\"v\":1.0,\"op\":\"status\",\"seq\":7}", DG_PROTO_E_TYPE, SEQ7,
	  DG_OP_STATUS, NULL },
	{ "{\"v\":1,\"seq\":7,\"request\":1}", DG_PROTO_E_MISSING, SEQ7, 0,
	  "missing key 'op'" },
	{ "{\"v\":1,\"op\":5,\"seq\":7}", DG_PROTO_E_TYPE, SEQ7, 0, NULL },
	{ "{\"v\":1,\"op\":nil,\"seq\":7}", DG_PROTO_E_TYPE, SEQ7, 0, NULL },
	{ "{\"v\":1,\"op\":\"frobnicate\",\"seq\":7}", DG_PROTO_E_UNKNOWN_OP,
	  SEQ7, 0, "unknown op 'frobnicate'" },
	{ "{\"v\":1,\"op\":\"SUBMIT\",\"seq\":7}", DG_PROTO_E_UNKNOWN_OP,
	  SEQ7, 0, NULL },
	/* As the docs say of every string: NUL or bad UTF-8 is malformed,
	 * in `op` too. */
	{ "{\"v\":1,\"op\":\"status\\x00\",\"seq\":7}", DG_PROTO_E_MALFORMED,
	  SEQ7, 0, "key 'op': 'status?' is not a valid UTF-8 string without "
	  "NUL" },
	{ "{\"v\":1,\"op\":\"stat\\xffus\",\"seq\":7}", DG_PROTO_E_MALFORMED,
	  SEQ7, 0, NULL },
	{ "{\"v\":1,\"op\":\"\",\"seq\":7}", DG_PROTO_E_UNKNOWN_OP, SEQ7, 0,
	  NULL },
	{ "{\"v\":1,\"op\":\"status\",\"request\":1}", DG_PROTO_E_MISSING,
	  NOSEQ, DG_OP_STATUS, "missing key 'seq' in 'status'" },
	{ "{\"v\":1,\"op\":\"status\",\"seq\":-7,\"request\":1}",
	  DG_PROTO_E_RANGE, NOSEQ, DG_OP_STATUS, NULL },
	{ "{\"v\":1,\"op\":\"status\",\"seq\":\"7\",\"request\":1}",
	  DG_PROTO_E_TYPE, NOSEQ, DG_OP_STATUS, NULL },
	{ "{\"v\":1,\"op\":\"status\",\"seq\":7.0,\"request\":1}",
	  DG_PROTO_E_TYPE, NOSEQ, DG_OP_STATUS, NULL },
	{ "{\"v\":1,\"v\":1,\"op\":\"status\",\"seq\":7,\"request\":1}",
	  DG_PROTO_E_DUPLICATE, SEQ7, DG_OP_STATUS, NULL },
	{ "{" ENV ",\"seq\":8,\"request\":1}", DG_PROTO_E_DUPLICATE, SEQ7,
	  DG_OP_STATUS, NULL },
	/* fields */
	/* status takes a request or a key; cancel needs its request. */
	{ "{\"v\":1,\"op\":\"cancel\",\"seq\":7}", DG_PROTO_E_MISSING, SEQ7,
	  DG_OP_CANCEL, "missing key 'request' in 'cancel'" },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7," SUBMIT_REST "}",
	  DG_PROTO_E_MISSING, SEQ7, DG_OP_SUBMIT,
	  "missing key 'prompt' in 'submit'" },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":\"p\","
	  "\"frames\":\"81\",\"height\":480,\"width\":832,\"steps\":50,"
	  "\"seed\":1}", DG_PROTO_E_TYPE, SEQ7, DG_OP_SUBMIT,
	  "key 'frames' in 'submit': expected integer, got string" },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":\"p\","
	  "\"frames\":81.0,\"height\":480,\"width\":832,\"steps\":50,"
	  "\"seed\":1}", DG_PROTO_E_TYPE, SEQ7, DG_OP_SUBMIT, NULL },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":\"p\","
	  "\"frames\":true,\"height\":480,\"width\":832,\"steps\":50,"
	  "\"seed\":1}", DG_PROTO_E_TYPE, SEQ7, DG_OP_SUBMIT, NULL },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":\"p\","
	  "\"frames\":nil,\"height\":480,\"width\":832,\"steps\":50,"
	  "\"seed\":1}", DG_PROTO_E_TYPE, SEQ7, DG_OP_SUBMIT,
	  "key 'frames' in 'submit': expected integer, got nil" },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":\"p\","
	  "\"frames\":9223372036854775808,\"height\":480,\"width\":832,"
	  "\"steps\":50,\"seed\":1}", DG_PROTO_E_RANGE, SEQ7, DG_OP_SUBMIT,
	  NULL },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":b\"p\","
	  SUBMIT_REST "}", DG_PROTO_E_TYPE, SEQ7, DG_OP_SUBMIT, NULL },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":\"a\\x00b\","
	  SUBMIT_REST "}", DG_PROTO_E_MALFORMED, SEQ7, DG_OP_SUBMIT,
	  "key 'prompt' in 'submit': string contains a NUL byte" },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":\"\\xff\","
	  SUBMIT_REST "}", DG_PROTO_E_MALFORMED, SEQ7, DG_OP_SUBMIT, NULL },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":\"\\xc0\\x80\","
	  SUBMIT_REST "}", DG_PROTO_E_MALFORMED, SEQ7, DG_OP_SUBMIT, NULL },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":\"\\xed\\xa0\\x80\","
	  SUBMIT_REST "}", DG_PROTO_E_MALFORMED, SEQ7, DG_OP_SUBMIT, NULL },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":\"\\xe2\\x82\","
	  SUBMIT_REST "}", DG_PROTO_E_MALFORMED, SEQ7, DG_OP_SUBMIT, NULL },
	{ "{\"v\":1,\"op\":\"submit\",\"seq\":7,\"prompt\":\"\\xf4\\x90\\x80\\x80\","
	  SUBMIT_REST "}", DG_PROTO_E_MALFORMED, SEQ7, DG_OP_SUBMIT, NULL },
	{ "{" ENV ",\"request\":-1}", DG_PROTO_E_RANGE, SEQ7, DG_OP_STATUS,
	  "key 'request' in 'status': -1 is negative, expected unsigned "
	  "integer" },
	{ "{" ENV ",\"request\":\"1\"}", DG_PROTO_E_TYPE, SEQ7, DG_OP_STATUS,
	  "key 'request' in 'status': expected unsigned integer, got string" },
	{ "{" ENV ",\"request\":1,\"request\":2}", DG_PROTO_E_DUPLICATE, SEQ7,
	  DG_OP_STATUS, "key 'request' in 'status': appears twice" },
	/* nil is absent only for an optional field (status's request is,
	 * now that a key may name the request instead). */
	{ "{\"v\":1,\"op\":\"cancel\",\"seq\":7,\"request\":nil}",
	  DG_PROTO_E_TYPE, SEQ7, DG_OP_CANCEL, NULL },
	{ "{\"v\":2,\"op\":\"stage.failed\",\"seq\":7,\"room\":1,\"request\":1,"
	  "\"role\":\"e\",\"reason\":\"r\",\"retryable\":1}", DG_PROTO_E_TYPE,
	  SEQ7, DG_OP_STAGE_FAILED, NULL },
	{ "{\"v\":2,\"op\":\"stats\",\"seq\":7,\"name\":\"t0\",\"done\":1,"
	  "\"failed\":0,\"rps\":\"fast\",\"p50_us\":1,\"p99_us\":1,"
	  "\"bytes_in\":0,\"bytes_out\":1}", DG_PROTO_E_TYPE, SEQ7,
	  DG_OP_STATS, NULL },
	/* lists, maps and rows */
	{ "{\"v\":1,\"op\":\"result\",\"seq\":7,\"request\":1,\"status\":\"done\","
	  "\"output\":\"o\",\"bytes\":1,\"digest\":\"d\","
	  "\"timings\":{\"e\":1,\"t\":2,\"e\":3}}", DG_PROTO_E_DUPLICATE, SEQ7,
	  DG_OP_RESULT, "key 'timings' in 'result': key 'e' appears twice" },
	{ "{\"v\":1,\"op\":\"result\",\"seq\":7,\"request\":1,\"status\":\"done\","
	  "\"output\":\"o\",\"bytes\":1,\"digest\":\"d\","
	  "\"timings\":{\"\\x01\\xc3\\xa9\":1,\"\\x01\\xc3\\xa9\":3}}",
	  DG_PROTO_E_DUPLICATE, SEQ7, DG_OP_RESULT,
	  "key 'timings' in 'result': key '?" "?" "?' appears twice" },
	{ "{\"v\":1,\"op\":\"result\",\"seq\":7,\"request\":1,\"status\":\"done\","
	  "\"output\":\"o\",\"bytes\":1,\"digest\":\"d\","
	  "\"timings\":{\"e\":\"1\"}}", DG_PROTO_E_TYPE, SEQ7, DG_OP_RESULT,
	  "key 'timings' in 'result' item 0: expected integer, got string" },
	{ "{\"v\":1,\"op\":\"result\",\"seq\":7,\"request\":1,\"status\":\"done\","
	  "\"output\":\"o\",\"bytes\":1,\"digest\":\"d\","
	  "\"timings\":{5:1}}", DG_PROTO_E_MALFORMED, SEQ7, DG_OP_RESULT, NULL },
	{ "{\"v\":1,\"op\":\"result\",\"seq\":7,\"request\":1,\"status\":\"done\","
	  "\"output\":\"o\",\"bytes\":1,\"digest\":\"d\","
	  "\"timings\":[\"e\",1]}", DG_PROTO_E_TYPE, SEQ7, DG_OP_RESULT, NULL },
	{ "{" MANIFEST_HEAD ",\"tensors\":{}}", DG_PROTO_E_TYPE, SEQ7,
	  DG_OP_MANIFEST, "key 'tensors' in 'manifest': expected array, got map" },
	{ "{" MANIFEST_HEAD ",\"tensors\":[" TENSOR ",5]}", DG_PROTO_E_TYPE,
	  SEQ7, DG_OP_MANIFEST, NULL },
	{ "{" MANIFEST_HEAD ",\"tensors\":[" TENSOR ",{\"name\":\"t\","
	  "\"shape\":[],\"bytes\":0,\"offset\":0,\"checksum\":0}]}",
	  DG_PROTO_E_MISSING, SEQ7, DG_OP_MANIFEST,
	  "missing key 'dtype' in 'manifest.tensors[1]'" },
	{ "{" MANIFEST_HEAD ",\"tensors\":[{\"name\":\"t\",\"dtype\":\"f\","
	  "\"shape\":[1,\"2\"],\"bytes\":0,\"offset\":0,\"checksum\":0}]}",
	  DG_PROTO_E_TYPE, SEQ7, DG_OP_MANIFEST,
	  "key 'shape' in 'manifest.tensors[0]' item 1: expected integer, "
	  "got string" },
	{ "{" MANIFEST_HEAD ",\"tensors\":[{\"name\":\"t\",\"dtype\":\"f\","
	  "\"shape\":[],\"bytes\":-1,\"offset\":0,\"checksum\":0}]}",
	  DG_PROTO_E_RANGE, SEQ7, DG_OP_MANIFEST, NULL },
	{ "{" MANIFEST_HEAD ",\"tensors\":[{\"name\":\"t\",\"name\":\"u\"}]}",
	  DG_PROTO_E_DUPLICATE, SEQ7, DG_OP_MANIFEST, NULL },
	{ "{" MANIFEST_HEAD ",\"tensors\":[{1:2}]}", DG_PROTO_E_MALFORMED,
	  SEQ7, DG_OP_MANIFEST, NULL },
	{ "{\"v\":2,\"op\":\"manifest\",\"seq\":7,\"room\":1,\"phase\":1,"
	  "\"slot\":0,\"gen\":1,\"fabric\":[\"a\"],\"key\":1,\"base\":0,"
	  "\"token\":1,\"chunk\":4096,"
	  "\"tensors\":[]}", DG_PROTO_E_TYPE, SEQ7, DG_OP_MANIFEST, NULL },
	{ "{\"v\":2,\"op\":\"manifest\",\"seq\":7,\"room\":1,\"phase\":1,"
	  "\"slot\":0,\"gen\":1,\"fabric\":b\"a\",\"key\":1,\"base\":0,"
	  "\"token\":1,\"chunk\":4096,"
	  "\"tensors\":[]}", DG_PROTO_E_TYPE, SEQ7, DG_OP_MANIFEST, NULL },
};

static void
test_bad_frames(void **state)
{
	(void)state;

	for (size_t i = 0; i < N(s_bad); i++) {
		dg_proto_err_t err = s_decode_bad(s_bad[i].text, s_bad[i].code);
		if (err.has_seq != (s_bad[i].seq == SEQ7))
			fail_msg("%s: has_seq %d", s_bad[i].text, err.has_seq);
		if (err.has_seq)
			assert_int_equal(err.seq, 7);
		if (err.op != s_bad[i].op)
			fail_msg("%s: op %d, want %d", s_bad[i].text, err.op,
			         s_bad[i].op);
		if (s_bad[i].message)
			assert_string_equal(err.message, s_bad[i].message);
		for (const char *p = err.message; *p; p++)
			assert_true(*p >= 0x20 && *p < 0x7f);
	}
}

/* Every proper prefix of every valid frame is "truncated", and once the
 * seq has gone by it is echoed. */
static void
test_truncated_every_byte(void **state)
{
	size_t n;
	const dg_op_desc_t *ops = dg_proto_catalog(&n);
	(void)state;

	for (size_t i = 0; i < n; i++) {
		dg_buf_t b = s_sample_frame(ops[i].op);
		/* map header, a1 'v' 01 a2 "op" a? name a3 "seq" cd hi lo;
		 * samples fill every field, so it has 3 + nfields entries */
		size_t seq_end = (3 + ops[i].body.nfields > 15 ? 3 : 1) + 14 +
		                 strlen(ops[i].body.name);
		for (size_t len = 0; len < b.size; len++) {
			dg_msg_t *m = NULL;
			dg_proto_err_t err;
			assert_int_equal(dg_proto_decode(b.data, len, &m, &err),
			                 -1);
			assert_null(m);
			if (err.code != DG_PROTO_E_TRUNCATED)
				fail_msg("%s cut at %zu: %s", ops[i].body.name,
				         len, err.message);
			if (err.has_seq != (len >= seq_end))
				fail_msg("%s cut at %zu: has_seq %d", ops[i].body.name,
				         len, err.has_seq);
			if (err.has_seq)
				assert_int_equal(err.seq, 1000 + ops[i].op);
			if (len >= seq_end)
				assert_int_equal(err.op, ops[i].op);
		}
		dg_buf_free(&b);
	}
}

/* ------------------------------------------------------------------ */
/* Limits, at and just past each one */

typedef struct {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} s_big_t;

/* Starts {"v":V,"op":op,"seq":7, ...} with `fields` more entries, V
 * the version of the op's form. */
static void
s_big_start(s_big_t *b, const char *op, size_t fields)
{
	const dg_op_desc_t *d = dg_proto_op_find(op, strlen(op));
	msgpack_sbuffer_init(&b->sb);
	msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
	msgpack_pack_map(&b->pk, 3 + fields);
	msgpack_pack_str_with_body(&b->pk, "v", 1);
	msgpack_pack_int(&b->pk, d ? d->since : 1);
	msgpack_pack_str_with_body(&b->pk, "op", 2);
	msgpack_pack_str_with_body(&b->pk, op, strlen(op));
	msgpack_pack_str_with_body(&b->pk, "seq", 3);
	msgpack_pack_int(&b->pk, 7);
}

static void
s_big_key(s_big_t *b, const char *key)
{
	msgpack_pack_str_with_body(&b->pk, key, strlen(key));
}

/* Decodes and destroys; returns the code (DG_PROTO_OK on success). */
static dg_proto_code_t
s_big_finish(s_big_t *b)
{
	dg_msg_t *m = NULL;
	dg_proto_err_t err;
	int rc = dg_proto_decode(b->sb.data, b->sb.size, &m, &err);

	msgpack_sbuffer_destroy(&b->sb);
	if (rc == 0) {
		dg_msg_destroy(&m);
		return DG_PROTO_OK;
	}
	assert_true(err.has_seq);
	assert_int_equal(err.seq, 7);
	return err.code;
}

static void
s_pack_status_request(s_big_t *b)
{
	s_big_key(b, "request");
	msgpack_pack_int(&b->pk, 1);
}

static dg_proto_code_t
s_try_string(size_t len)
{
	s_big_t b;
	char *s = malloc(len);

	memset(s, 'a', len);
	s_big_start(&b, "bye", 1);
	s_big_key(&b, "name");
	msgpack_pack_str_with_body(&b.pk, s, len);
	free(s);
	return s_big_finish(&b);
}

static dg_proto_code_t
s_try_tensors(size_t n)
{
	s_big_t b;

	s_big_start(&b, "manifest", 10);
	const char *keys[] = { "room", "phase", "slot", "gen", "key", "base",
	    "token", "chunk" };
	for (size_t i = 0; i < N(keys); i++) {
		s_big_key(&b, keys[i]);
		msgpack_pack_int(&b.pk, 1);
	}
	s_big_key(&b, "fabric");
	msgpack_pack_array(&b.pk, 0);
	s_big_key(&b, "tensors");
	msgpack_pack_array(&b.pk, n);
	for (size_t i = 0; i < n; i++) {
		dg_buf_t t = s_pack(TENSOR);
		s_write_raw(&b.pk, t.data, t.size);
		dg_buf_free(&t);
	}
	return s_big_finish(&b);
}

/* An unknown key holding `lists` arrays of n nils each. */
static dg_proto_code_t
s_try_items(size_t lists, size_t n)
{
	s_big_t b;

	s_big_start(&b, "status", 2);
	s_pack_status_request(&b);
	s_big_key(&b, "pad");
	msgpack_pack_array(&b.pk, lists);
	for (size_t l = 0; l < lists; l++) {
		msgpack_pack_array(&b.pk, n);
		for (size_t i = 0; i < n; i++)
			msgpack_pack_nil(&b.pk);
	}
	return s_big_finish(&b);
}

static dg_proto_code_t
s_try_timings(size_t n)
{
	s_big_t b;
	char key[16];

	s_big_start(&b, "result", 6);
	s_big_key(&b, "request");
	msgpack_pack_int(&b.pk, 1);
	s_big_key(&b, "bytes");
	msgpack_pack_int(&b.pk, 1);
	const char *strs[] = { "status", "output", "digest" };
	for (size_t i = 0; i < N(strs); i++) {
		s_big_key(&b, strs[i]);
		msgpack_pack_str_with_body(&b.pk, "x", 1);
	}
	s_big_key(&b, "timings");
	msgpack_pack_map(&b.pk, n);
	for (size_t i = 0; i < n; i++) {
		int len = snprintf(key, sizeof key, "k%zu", i);
		msgpack_pack_str_with_body(&b.pk, key, (size_t)len);
		msgpack_pack_int(&b.pk, (int)i);
	}
	return s_big_finish(&b);
}

/* A valid status frame padded with strings to exactly size bytes. */
static dg_proto_code_t
s_try_frame(size_t size)
{
	s_big_t b;
	size_t full = size / (DG_PROTO_MAX_STR + 5), used, last;
	char *s = calloc(1, DG_PROTO_MAX_STR);

	s_big_start(&b, "status", 2);
	s_pack_status_request(&b);
	s_big_key(&b, "pad");
	msgpack_pack_array(&b.pk, full + 1);
	for (size_t i = 0; i < full; i++)
		msgpack_pack_str_with_body(&b.pk, s, DG_PROTO_MAX_STR);
	used = b.sb.size + 5;   /* the last string gets a str32 header */
	S_REQUIRE(size >= used && size - used <= DG_PROTO_MAX_STR);
	last = size - used;
	{
		const uint8_t h[5] = { 0xdb, (uint8_t)(last >> 24),
		                       (uint8_t)(last >> 16),
		                       (uint8_t)(last >> 8), (uint8_t)last };
		s_write_raw(&b.pk, h, 5);
	}
	msgpack_pack_str_body(&b.pk, s, last);
	free(s);
	assert_int_equal(b.sb.size, size);
	return s_big_finish(&b);
}

static void
test_limits(void **state)
{
	(void)state;

	assert_int_equal(s_try_string(DG_PROTO_MAX_STR), DG_PROTO_OK);
	assert_int_equal(s_try_string(DG_PROTO_MAX_STR + 1),
	                 DG_PROTO_E_STRING_TOO_LONG);

	assert_int_equal(s_try_tensors(DG_PROTO_MAX_TENSORS), DG_PROTO_OK);
	assert_int_equal(s_try_tensors(DG_PROTO_MAX_TENSORS + 1),
	                 DG_PROTO_E_TOO_MANY_TENSORS);

	assert_int_equal(s_try_items(1, DG_PROTO_MAX_ITEMS), DG_PROTO_OK);
	assert_int_equal(s_try_items(1, DG_PROTO_MAX_ITEMS + 1),
	                 DG_PROTO_E_TOO_MANY_ITEMS);
	assert_int_equal(s_try_timings(DG_PROTO_MAX_ITEMS / 2), DG_PROTO_OK);
	assert_int_equal(s_try_timings(DG_PROTO_MAX_ITEMS + 1),
	                 DG_PROTO_E_TOO_MANY_ITEMS);
	/* The object cap: each list is within bounds, the frame is not. */
	assert_int_equal(s_try_items(2, 65000), DG_PROTO_OK);
	assert_int_equal(s_try_items(3, DG_PROTO_MAX_ITEMS),
	                 DG_PROTO_E_TOO_MANY_ITEMS);

	assert_int_equal(s_try_frame(DG_PROTO_MAX_FRAME), DG_PROTO_OK);
	{
		/* Over the limit: refused before anything is parsed. */
		uint8_t *big = calloc(1, DG_PROTO_MAX_FRAME + 1);
		dg_msg_t *m = NULL;
		dg_proto_err_t err;
		big[0] = 0x80;
		assert_int_equal(dg_proto_decode(big, DG_PROTO_MAX_FRAME + 1,
		                                 &m, &err), -1);
		assert_int_equal(err.code, DG_PROTO_E_FRAME_TOO_LARGE);
		assert_false(err.has_seq);
		free(big);
	}
}

/* Nesting: 8 levels pass, 9 do not, and a megabyte of array headers is
 * refused without recursion. */
static void
test_depth(void **state)
{
	static const char ok[] = "{" ENV ",\"request\":1,\"x\":[[[[[[[1]]]]]]]}";
	size_t n = 1 << 20;
	uint8_t *deep = malloc(n);
	dg_msg_t *m = NULL;
	dg_proto_err_t err;
	(void)state;

	m = s_decode_ok(ok);
	dg_msg_destroy(&m);

	deep[0] = 0x81;
	deep[1] = 0xa1;
	deep[2] = 'x';
	memset(deep + 3, 0x91, n - 3);
	assert_int_equal(dg_proto_decode(deep, n, &m, &err), -1);
	assert_int_equal(err.code, DG_PROTO_E_TOO_DEEP);
	memset(deep, 0x91, n);
	assert_int_equal(dg_proto_decode(deep, n, &m, &err), -1);
	assert_int_equal(err.code, DG_PROTO_E_NOT_A_MAP);
	free(deep);
}

/* ------------------------------------------------------------------ */
/* Encoding refuses what the peer would refuse */

static void
s_assert_encode_fails(const dg_msg_t *m, int want_errno)
{
	dg_buf_t b = { (uint8_t *)&b, 1 };

	errno = 0;
	assert_int_equal(dg_proto_encode(m, &b), -1);
	assert_int_equal(errno, want_errno);
	assert_null(b.data);
	assert_int_equal(b.size, 0);
}

static void
test_encode_refuses(void **state)
{
	dg_msg_t *m;
	dg_kv_t dup[2] = { { "e", 1 }, { "e", 2 } };
	dg_tensor_row_t *many;
	dg_bin_t *fat;
	char *s;
	(void)state;

	assert_null(dg_msg_new(DG_OP_NONE));
	assert_null(dg_msg_new((dg_op_t)12345));

	m = dg_msg_new(DG_OP_STATUS);
	m->op = (dg_op_t)12345;
	s_assert_encode_fails(m, EINVAL);
	s_assert_encode_fails(NULL, EINVAL);
	dg_msg_destroy(&m);

	m = s_sample(DG_OP_SUBMIT);             /* required string unset */
	m->u.submit.prompt = NULL;
	s_assert_encode_fails(m, EINVAL);
	m->u.submit.prompt = "bad \xff utf-8";
	s_assert_encode_fails(m, EINVAL);
	s = malloc(DG_PROTO_MAX_STR + 2);
	memset(s, 'a', DG_PROTO_MAX_STR + 1);
	s[DG_PROTO_MAX_STR + 1] = '\0';
	m->u.submit.prompt = s;
	s_assert_encode_fails(m, EMSGSIZE);
	s[DG_PROTO_MAX_STR] = '\0';
	{
		dg_buf_t b;
		assert_int_equal(dg_proto_encode(m, &b), 0);
		dg_buf_free(&b);
	}
	free(s);
	dg_msg_destroy(&m);

	m = s_sample(DG_OP_RESULT);
	m->u.result.timings = dup;
	m->u.result.n_timings = 2;
	s_assert_encode_fails(m, EINVAL);
	m->u.result.timings = NULL;             /* count without items */
	s_assert_encode_fails(m, EINVAL);
	dg_msg_destroy(&m);

	m = s_sample(DG_OP_MANIFEST);
	many = calloc(DG_PROTO_MAX_TENSORS + 1, sizeof *many);
	for (size_t i = 0; i <= DG_PROTO_MAX_TENSORS; i++)
		many[i] = s_tensors[0];
	m->u.manifest.tensors = many;
	m->u.manifest.n_tensors = DG_PROTO_MAX_TENSORS + 1;
	s_assert_encode_fails(m, EMSGSIZE);
	m->u.manifest.n_tensors = DG_PROTO_MAX_TENSORS;
	{
		dg_buf_t b;
		assert_int_equal(dg_proto_encode(m, &b), 0);
		dg_buf_free(&b);
	}
	m->u.manifest.n_tensors = 1;
	many[0].name = NULL;                    /* required, in a row */
	s_assert_encode_fails(m, EINVAL);
	free(many);

	/* 70 addresses of 64 KiB: each fine, the frame too large. */
	fat = calloc(70, sizeof *fat);
	s = calloc(1, DG_PROTO_MAX_STR);
	for (size_t i = 0; i < 70; i++)
		fat[i] = (dg_bin_t){ (const uint8_t *)s, DG_PROTO_MAX_STR };
	m->u.manifest.tensors = s_tensors;
	m->u.manifest.fabric = fat;
	m->u.manifest.n_fabric = 70;
	s_assert_encode_fails(m, EMSGSIZE);
	fat[0].size = DG_PROTO_MAX_STR + 1;
	m->u.manifest.n_fabric = 1;
	s_assert_encode_fails(m, EMSGSIZE);
	fat[0].data = NULL;
	fat[0].size = 1;
	s_assert_encode_fails(m, EINVAL);
	free(fat);
	free(s);
	dg_msg_destroy(&m);
}

/* The arena: aligned, zeroed, survives many and large allocations. */
static void
test_arena(void **state)
{
	dg_msg_t *m = dg_msg_new(DG_OP_BYE);
	char *big;
	(void)state;

	for (size_t i = 0; i < 2000; i++) {
		size_t size = i % 37 + (i % 100 == 0 ? 100000 : 0);
		unsigned char *p = dg_msg_alloc(m, size);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
		for (size_t k = 0; k < size; k++)
			assert_int_equal(p[k], 0);
		memset(p, 0xa5, size);
	}
	assert_null(dg_msg_strdup(m, NULL));
	m->u.bye.name = dg_msg_strdup(m, "e0");
	big = malloc(300000);
	memset(big, 'r', 299999);
	big[299999] = '\0';
	m->u.bye.reason = dg_msg_strdup(m, big);
	free(big);
	assert_string_equal(m->u.bye.name, "e0");
	assert_int_equal(strlen(m->u.bye.reason), 299999);
	assert_null(dg_msg_alloc(m, SIZE_MAX));
	dg_msg_destroy(&m);
}

/* ------------------------------------------------------------------ */
/* --write-corpus DIR, --write-dict FILE */

static int
s_write_file(const char *path, const void *data, size_t size)
{
	FILE *f = fopen(path, "wb");
	if (!f || (size && fwrite(data, size, 1, f) != 1) || fclose(f) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

static int
s_write_corpus(const char *dir)
{
	size_t n;
	const dg_op_desc_t *ops = dg_proto_catalog(&n);
	char path[4096];

	for (size_t i = 0; i < n; i++) {
		dg_buf_t b = s_sample_frame(ops[i].op);
		snprintf(path, sizeof path, "%s/op-%s", dir, ops[i].body.name);
		if (s_write_file(path, b.data, b.size) < 0)
			return 1;
		dg_buf_free(&b);
	}
	for (size_t i = 0; i < N(s_bad); i++) {
		dg_buf_t b = s_pack(s_bad[i].text);
		snprintf(path, sizeof path, "%s/bad-%02zu-%s", dir, i,
		         dg_proto_code_name(s_bad[i].code));
		if (s_write_file(path, b.data, b.size) < 0)
			return 1;
		dg_buf_free(&b);
	}
	return 0;
}

/* Writes s with its fixstr header, as it appears in a frame, once. */
static void
s_dict_entry(FILE *f, const char *s, const char **seen, size_t *nseen,
             size_t cap)
{
	for (size_t i = 0; i < *nseen; i++)
		if (strcmp(seen[i], s) == 0)
			return;
	S_REQUIRE(*nseen < cap && strlen(s) < 32);
	seen[(*nseen)++] = s;
	fprintf(f, "\"\\x%02x%s\"\n", 0xa0 | (unsigned)strlen(s), s);
}

static int
s_write_dict(const char *path)
{
	size_t n;
	const dg_op_desc_t *ops = dg_proto_catalog(&n);
	FILE *f = fopen(path, "w");
	const char *seen[512];
	size_t nseen = 0;
	static const char *const extra[] = {
		"v", "op", "seq", "done", "failed", "cancelled", "up",
		"draining", "drained", "unhealthy", "encoder", "transformer",
		"decoder",
	};

	if (!f) {
		perror(path);
		return 1;
	}
	fprintf(f, "# proto.dict: op names and keys for fuzz_proto "
	        "(written by test_proto --write-dict)\n");
	fprintf(f, "\"\\x83\\xa1v\\x01\\xa2op\"\n"
	        "\"\\xdc\\xff\\xff\"\n\"\\xdd\\xff\\xff\\xff\\xff\"\n"
	        "\"\\xdf\\xff\\xff\\xff\\xff\"\n\"\\xdb\\x00\\x01\\x00\\x01\"\n"
	        "\"\\xcf\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\"\n"
	        "\"\\xd3\\x80\\x00\\x00\\x00\\x00\\x00\\x00\\x00\"\n"
	        "\"\\xcb\\x3f\\xf0\\x00\\x00\\x00\\x00\\x00\\x00\"\n"
	        "\"\\xc4\\x04\"\n\"\\xc0\"\n\"\\xc2\"\n\"\\xc3\"\n");
	for (size_t i = 0; i < N(extra); i++)
		s_dict_entry(f, extra[i], seen, &nseen, N(seen));
	for (size_t i = 0; i < n; i++) {
		const dg_struct_desc_t *d = &ops[i].body;
		s_dict_entry(f, d->name, seen, &nseen, N(seen));
		for (size_t j = 0; j < d->nfields; j++) {
			const dg_field_desc_t *fd = &d->fields[j];
			s_dict_entry(f, fd->key, seen, &nseen, N(seen));
			for (size_t k = 0; fd->row && k < fd->row->nfields; k++)
				s_dict_entry(f, fd->row->fields[k].key, seen,
				             &nseen, N(seen));
		}
	}
	return fclose(f) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_catalog_shape),
		cmocka_unit_test(test_catalog_matches_spec),
		cmocka_unit_test(test_every_op_has_sample),
		cmocka_unit_test(test_roundtrip_every_op),
		cmocka_unit_test(test_golden_frame),
		cmocka_unit_test(test_optional_absent),
		cmocka_unit_test(test_optional_defaults_and_nil),
		cmocka_unit_test(test_unknown_keys_ignored),
		cmocka_unit_test(test_lenient_encodings),
		cmocka_unit_test(test_error_frame),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_truncated_every_byte),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_arena),
	};

	if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
		return s_write_corpus(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--write-dict") == 0)
		return s_write_dict(argv[2]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
