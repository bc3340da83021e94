/*  test_rooms.c: a stage daemon's I/O-free core (lib/rooms.c), driven by
 *  events alone: 10,000 concurrent rooms in one stage, a room ended in
 *  every queue (release, a peer's failure, its deadline) with its memory
 *  given back, and the middle of a chain from assign to transfer.done.
 *  The transfer engine and the workers are fakes that record what they
 *  are asked.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "log.h"
#include "rooms.h"
#include "stage_host.h"

typedef struct {
	dg_rooms_t *rooms;
	dg_pool_t *pool;
	size_t to_ctl[DG_OP_SNAPSHOT + 1];      /* messages by op */
	size_t failed_retryable, failed_final;
	size_t manifests, transfer_failed_up, transfer_failed_down, done_down;
	size_t expects, sends, cancels;
	int64_t send_timeout;           /* of the last send */
	uint64_t next_id;
	dg_room_batch_t **batches;      /* handed to "workers" */
	size_t nbatches, capbatches;
	int workers_busy, workers;
	char last_reason[256];
} s_fix_t;

static void
s_to_controller(void *arg, dg_msg_t *m)
{
	s_fix_t *f = arg;
	f->to_ctl[m->op]++;
	if (m->op == DG_OP_STAGE_FAILED) {
		if (m->u.stage_failed.retryable)
			f->failed_retryable++;
		else
			f->failed_final++;
		snprintf(f->last_reason, sizeof f->last_reason, "%s",
		    m->u.stage_failed.reason);
	}
}

static int
s_to_upstream(void *arg, const char *endpoint, dg_msg_t *m)
{
	s_fix_t *f = arg;
	assert_string_equal(endpoint, "ipc://@up");
	if (m->op == DG_OP_MANIFEST)
		f->manifests++;
	else if (m->op == DG_OP_TRANSFER_FAILED)
		f->transfer_failed_up++;
	return 0;
}

static void
s_to_downstream(void *arg, const dg_route_t *to, dg_msg_t *m)
{
	s_fix_t *f = arg;
	(void)to;
	if (m->op == DG_OP_TRANSFER_FAILED)
		f->transfer_failed_down++;
	else if (m->op == DG_OP_TRANSFER_DONE)
		f->done_down++;
}

static int
s_expect(void *arg, const dg_extent_t *ext, dg_manifest_msg_t *m,
    int64_t timeout_ms, uint64_t *id, char *why, size_t whysize)
{
	s_fix_t *f = arg;
	(void)ext; (void)m; (void)timeout_ms; (void)why; (void)whysize;
	f->expects++;
	*id = ++f->next_id;
	return 0;
}

static int
s_send(void *arg, const dg_manifest_msg_t *m, const dg_extent_t *ext,
    const uint64_t *src, int64_t timeout_ms, uint64_t *id, char *why,
    size_t whysize)
{
	s_fix_t *f = arg;
	(void)m; (void)ext; (void)src; (void)why; (void)whysize;
	f->sends++;
	f->send_timeout = timeout_ms;
	*id = ++f->next_id;
	return 0;
}

static int
s_cancel(void *arg, uint64_t id)
{
	s_fix_t *f = arg;
	(void)id;
	f->cancels++;
	return 0;
}

/* The null stage's shapes, 64 bytes in and 64 out, for each frame. */
static int
s_plan(void *arg, const dg_request_t *req, dg_tensor_plan_t *in,
    dg_tensor_plan_t *out, char *why, size_t whysize)
{
	const int64_t shape[1] = { 64 * req->frames };
	(void)arg;
	if (req->steps > 1000) {
		snprintf(why, whysize, "too many steps");
		return -1;
	}
	in->n = out->n = 0;
	dg_tensor_plan_add(in, "context", "u8", 1, shape);
	dg_tensor_plan_add(out, "latents", "u8", 1, shape);
	return 0;
}

static bool
s_worker_free(void *arg)
{
	s_fix_t *f = arg;
	return f->workers_busy < f->workers;
}

static void
s_run(void *arg, dg_room_batch_t *b)
{
	s_fix_t *f = arg;
	if (f->nbatches == f->capbatches) {
		f->capbatches = f->capbatches ? 2 * f->capbatches : 64;
		f->batches = realloc(f->batches,
		    f->capbatches * sizeof *f->batches);
		assert_non_null(f->batches);
	}
	f->batches[f->nbatches++] = b;
	f->workers_busy++;
}

static void
s_fix_init(s_fix_t *f, int index, int64_t queue_depth, int workers,
    int64_t max_batch, size_t pool_bytes)
{
	memset(f, 0, sizeof *f);
	f->workers = workers;
	f->pool = dg_pool_new(pool_bytes, 4096);
	assert_non_null(f->pool);
	dg_rooms_conf_t c = { .role = "transformer", .name = "t0",
	    .index = index, .places = 3, .queue_depth = queue_depth,
	    .max_batch = max_batch };
	dg_rooms_io_t io = { .arg = f, .to_controller = s_to_controller,
	    .to_upstream = s_to_upstream, .to_downstream = s_to_downstream,
	    .expect = s_expect, .send = s_send, .cancel = s_cancel,
	    .plan = s_plan, .worker_free = s_worker_free, .run = s_run };
	f->rooms = dg_rooms_new(&c, f->pool, &io);
	assert_non_null(f->rooms);
}

static void
s_fix_fini(s_fix_t *f)
{
	/* Batches still out: their rooms go with the core. */
	for (size_t i = 0; i < f->nbatches; i++) {
		free(f->batches[i]->rooms);
		free(f->batches[i]);
	}
	free(f->batches);
	dg_rooms_destroy(&f->rooms);
	/* Every slot is back. */
	dg_pool_stats_t ps;
	dg_pool_stats(f->pool, &ps);
	assert_int_equal(ps.slots_free, ps.slots);
	dg_pool_destroy(&f->pool);
}

static void
s_assign_frames(s_fix_t *f, int64_t now, uint64_t room, int64_t steps,
    int64_t deadline_ms, int64_t frames)
{
	static const dg_stage_row_t chain[] = {
		{ "encoder", "e0", "ipc://@up" },
		{ "transformer", "t0", "ipc://@t0" },
		{ "decoder", "d0", "ipc://@d0" },
	};
	dg_msg_t *m = dg_msg_new(DG_OP_ASSIGN);
	assert_non_null(m);
	m->u.assign = (dg_assign_msg_t){ .request = room, .room = room,
	    .attempt = 1, .prompt = "p", .frames = frames, .height = 16,
	    .width = 16, .steps = steps, .seed = 1,
	    .deadline_ms = deadline_ms, .stages = chain, .n_stages = 3 };
	dg_rooms_assign(f->rooms, now, m);
	dg_msg_destroy(&m);
}

static void
s_assign(s_fix_t *f, int64_t now, uint64_t room, int64_t steps,
    int64_t deadline_ms)
{
	s_assign_frames(f, now, room, steps, deadline_ms, 1);
}

static void
s_release(s_fix_t *f, int64_t now, uint64_t room)
{
	dg_msg_t *m = dg_msg_new(DG_OP_RELEASE);
	assert_non_null(m);
	m->u.release.room = room;
	dg_rooms_release(f->rooms, now, m);
	dg_msg_destroy(&m);
}

/* The upstream's transfer into `room` ends well: the engine's event
 * and the sender's transfer.done. */
static void
s_arrive(s_fix_t *f, int64_t now, uint64_t room, uint64_t recv_id)
{
	dg_xfer_event_t ev = { .id = recv_id, .room = room, .phase = 1,
	    .dir = DG_XFER_RECV, .status = DG_XFER_DONE, .bytes = 64 };
	dg_rooms_xfer_event(f->rooms, now, &ev);
	dg_msg_t *d = dg_msg_new(DG_OP_TRANSFER_DONE);
	assert_non_null(d);
	d->u.transfer_done.room = room;
	d->u.transfer_done.gen = 1;
	dg_rooms_transfer_done(f->rooms, now, d);
	dg_msg_destroy(&d);
}

static dg_tensor_row_t s_latents[1] = { { .name = "latents", .dtype = "u8",
    .bytes = 64, .offset = 0 } };

/* The next stage's manifest for `room` on hop `phase`: what the room
 * answers, with its reason in `why`. */
static dg_proto_code_t
s_downstream(s_fix_t *f, int64_t now, uint64_t room, int64_t phase,
    char *why, size_t whysize)
{
	static const dg_bin_t addr = { (const uint8_t *)"a", 1 };
	dg_msg_t *m = dg_msg_new(DG_OP_MANIFEST);
	dg_route_t route = { 0 };

	assert_non_null(m);
	m->u.manifest = (dg_manifest_msg_t){ .room = room, .phase = phase,
	    .gen = 1, .fabric = &addr, .n_fabric = 1, .key = 1, .token = 9,
	    .chunk = 65536, .tensors = s_latents, .n_tensors = 1 };
	dg_proto_code_t code = dg_rooms_manifest(f->rooms, now, &m, &route,
	    why, whysize);
	/* Kept by the room when taken. */
	assert_true(code != DG_PROTO_OK || m == NULL);
	dg_msg_destroy(&m);
	return code;
}

/* 10,000 rooms held in one stage: each one's memory reserved and its
 * manifest sent, every queue bounded by queue_depth, none dropped; then
 * all released, and every slot is back. */
static void
test_10000_rooms(void **state)
{
	s_fix_t f;
	(void)state;

	s_fix_init(&f, 1, 10000, 2, 64, 256u << 20);
	for (uint64_t r = 1; r <= 10000; r++)
		s_assign(&f, 1000, r, 10, 600000);
	dg_rooms_pump(f.rooms, 1000);
	assert_int_equal(dg_rooms_count(f.rooms), 10000);
	assert_int_equal(dg_rooms_queued(f.rooms, DG_QUEUE_WAITING), 10000);
	assert_int_equal(f.manifests, 10000);
	assert_int_equal(f.to_ctl[DG_OP_STAGE_FAILED], 0);
	dg_msg_t *q = dg_rooms_queues_reply(f.rooms, 1000, 1);
	assert_int_equal(q->u.queues_ok.n_rooms, 10000);
	assert_int_equal(q->u.queues_ok.omitted, 0);
	dg_msg_destroy(&q);
	for (uint64_t r = 1; r <= 10000; r++)
		s_release(&f, 2000, r);
	assert_int_equal(dg_rooms_count(f.rooms), 0);
	assert_int_equal(f.cancels, 10000);
	/* A release is the controller's own: no report back. */
	assert_int_equal(f.to_ctl[DG_OP_STAGE_FAILED], 0);
	s_fix_fini(&f);
}

/* queue_depth bounds the rooms that wait for memory: past it the
 * assign fails retryably (the controller places it elsewhere). */
static void
test_queue_depth(void **state)
{
	s_fix_t f;
	(void)state;

	/* A pool of 4 slots: 2 rooms (input and output each) fit. */
	s_fix_init(&f, 1, 3, 1, 1, 4 * 4096);
	for (uint64_t r = 1; r <= 6; r++) {
		s_assign(&f, 1000, r, 10, 600000);
		dg_rooms_pump(f.rooms, 1000);
	}
	assert_int_equal(dg_rooms_queued(f.rooms, DG_QUEUE_WAITING), 2);
	assert_int_equal(dg_rooms_queued(f.rooms, DG_QUEUE_INCOMING), 3);
	assert_int_equal(f.failed_retryable, 1);
	assert_non_null(strstr(f.last_reason, "queue_depth 3"));
	s_fix_fini(&f);
}

/* A room waiting for more pool space than is free does not hold back
 * the smaller rooms behind it, but only `overtake` of them pass it:
 * then the space freed is kept for it.  (Rooms took pool space in
 * arrival order, so one large request blocked the whole stage until
 * its deadline.) */
static void
test_large_room_lets_small_ones_pass(void **state)
{
	s_fix_t f;
	(void)state;

	/* 8 slots of 4 KiB; a 1-frame room takes 2 (input and output), a
	 * 128-frame one 4. */
	s_fix_init(&f, 1, 100, 1, 1, 8 * 4096);
	dg_rooms_conf_t c = { .role = "transformer", .name = "t0",
	    .index = 1, .places = 3, .queue_depth = 100, .max_batch = 1,
	    .overtake = 2 };
	dg_rooms_set_conf(f.rooms, &c);
	for (uint64_t r = 1; r <= 3; r++)
		s_assign(&f, 1000, r, 10, 600000);
	s_assign_frames(&f, 1000, 4, 10, 600000, 128);
	for (uint64_t r = 5; r <= 7; r++)
		s_assign(&f, 1000, r, 10, 600000);
	dg_rooms_pump(f.rooms, 1000);
	/* 1, 2, 3 and 5 hold the pool; 4 waits, and 6 and 7 behind it. */
	assert_int_equal(f.manifests, 4);
	assert_int_equal(dg_rooms_queued(f.rooms, DG_QUEUE_INCOMING), 3);
	s_release(&f, 1001, 1);
	dg_rooms_pump(f.rooms, 1001);
	assert_int_equal(f.manifests, 5);       /* 6 passed 4, twice now */
	/* Room 4 has been passed twice: what frees now is its. */
	s_release(&f, 1002, 2);
	dg_rooms_pump(f.rooms, 1002);
	assert_int_equal(f.manifests, 5);       /* 7 waits behind it */
	s_release(&f, 1003, 3);
	dg_rooms_pump(f.rooms, 1003);
	assert_int_equal(f.manifests, 6);       /* 4's */
	assert_int_equal(dg_rooms_queued(f.rooms, DG_QUEUE_INCOMING), 1);
	assert_int_equal(f.to_ctl[DG_OP_STAGE_FAILED], 0);
	s_fix_fini(&f);
}

/* A room that needs more than the whole pool fails at its assign, not
 * at its deadline, naming the sizes; it is the request's fault, so it
 * is not placed again. */
static void
test_room_larger_than_pool(void **state)
{
	s_fix_t f;
	(void)state;

	s_fix_init(&f, 1, 100, 1, 1, 8 * 4096);
	s_assign_frames(&f, 1000, 1, 10, 600000, 512);
	assert_int_equal(f.failed_final, 1);
	assert_string_equal(f.last_reason, "invalid: needs 64 KiB in a "
	    "transformer pool; t0's is 32 KiB");
	assert_int_equal(dg_rooms_count(f.rooms), 0);
	/* One that fits exactly is taken. */
	s_assign_frames(&f, 1000, 2, 10, 600000, 256);
	dg_rooms_pump(f.rooms, 1000);
	assert_int_equal(f.manifests, 1);
	s_fix_fini(&f);
}

/* A room ended in each queue: released by the controller, failed by a
 * peer, or past its deadline.  Memory comes back; reports are as the
 * cause wants; a room in a worker goes when the worker returns. */
static void
test_end_in_every_queue(void **state)
{
	(void)state;
	for (int how = 0; how < 3; how++) {
		for (dg_room_queue_t q = DG_QUEUE_INCOMING; q < DG_QUEUE_COUNT;
		    q++) {
			s_fix_t f;
			/* Two slots: room 1 fills the pool, so room 2
			 * stays incoming. */
			s_fix_init(&f, 1, 100, 1, 1, 2 * 4096);
			s_assign(&f, 1000, 1, 10, 5000);
			dg_rooms_pump(f.rooms, 1000);
			uint64_t room = 1;
			if (q == DG_QUEUE_INCOMING) {
				s_assign(&f, 1000, 2, 10, 5000);
				dg_rooms_pump(f.rooms, 1000);
				room = 2;
			}
			if (q >= DG_QUEUE_READY) {
				s_arrive(&f, 1000, 1, 1);
			}
			if (q == DG_QUEUE_READY)
				f.workers = 0;  /* none free: it stays ready */
			dg_rooms_pump(f.rooms, 1000);
			if (q == DG_QUEUE_SENDING) {
				dg_room_batch_t *b = f.batches[--f.nbatches];
				f.workers_busy--;
				dg_rooms_batch_done(f.rooms, 1000, b);
			}
			assert_int_equal(dg_rooms_queued(f.rooms, q), 1);
			size_t before = dg_rooms_count(f.rooms);
			if (how == 0) {
				dg_msg_t *m = dg_msg_new(DG_OP_RELEASE);
				m->u.release.room = room;
				dg_rooms_release(f.rooms, 1000, m);
				dg_msg_destroy(&m);
			} else if (how == 1) {
				dg_msg_t *m = dg_msg_new(DG_OP_TRANSFER_FAILED);
				m->u.transfer_failed.room = room;
				m->u.transfer_failed.reason = "rail down";
				dg_rooms_transfer_failed(f.rooms, 1000, m);
				dg_msg_destroy(&m);
			} else {
				dg_rooms_tick(f.rooms, 1000 + 5000 + 2001);
			}
			if (q == DG_QUEUE_RUNNING) {
				/* Still the worker's: told to stop, freed when
				 * it returns. */
				assert_int_equal(dg_rooms_count(f.rooms), before);
				assert_true(how == 2 || f.nbatches == 1);
				if (f.nbatches) {
					dg_room_batch_t *b = f.batches[--f.nbatches];
					assert_int_equal(atomic_load(
					    dg_room_item(b->rooms[0])->stop),
					    how != 2);
					f.workers_busy--;
					dg_rooms_batch_done(f.rooms, 1000, b);
				}
			}
			if (how == 2 && q == DG_QUEUE_RUNNING) {
				/* A worker's room is not failed by the tick. */
				s_fix_fini(&f);
				continue;
			}
			assert_int_equal(dg_rooms_queued(f.rooms, q), 0);
			/* A deadline passes for room 1 too when room 2 is
			 * the incoming one. */
			assert_int_equal(f.failed_retryable + f.failed_final,
			    how == 0 ? 0 : how == 2 &&
			    q == DG_QUEUE_INCOMING ? 2 : 1);
			if (how == 1)
				assert_int_equal(f.failed_retryable, 1);
			if (how == 2)
				assert_non_null(strstr(f.last_reason,
				    "deadline passed in"));
			s_fix_fini(&f);
		}
	}
}

/* A room through the middle of the chain: assign, manifest upstream,
 * data, a worker, the downstream manifest, send, transfer.done, and
 * stage.done, with room.phase running then sending. */
static void
test_middle_of_the_chain(void **state)
{
	s_fix_t f;
	(void)state;

	s_fix_init(&f, 1, 100, 1, 4, 1u << 20);
	dg_rooms_conf_t c = { .role = "transformer", .name = "t0",
	    .index = 1, .places = 3, .queue_depth = 100, .max_batch = 4,
	    .overtake = 8, .transfer_timeout_ms = 5000 };
	dg_rooms_set_conf(f.rooms, &c);
	s_assign(&f, 1000, 7, 10, 60000);
	dg_rooms_pump(f.rooms, 1000);
	assert_int_equal(f.manifests, 1);
	s_arrive(&f, 1010, 7, 1);
	dg_rooms_pump(f.rooms, 1010);
	assert_int_equal(f.nbatches, 1);
	assert_int_equal(f.to_ctl[DG_OP_ROOM_PHASE], 1);
	dg_room_batch_t *b = f.batches[--f.nbatches];
	f.workers_busy--;
	dg_rooms_batch_done(f.rooms, 1050, b);
	assert_int_equal(dg_rooms_queued(f.rooms, DG_QUEUE_SENDING), 1);
	assert_int_equal(f.sends, 0);           /* no manifest yet */
	/* The decoder's manifest for hop 2. */
	char why[256];
	assert_int_equal(s_downstream(&f, 1060, 7, 2, why, sizeof why),
	    DG_PROTO_OK);
	assert_int_equal(f.sends, 1);
	/* transfer_timeout_ms, not the 59 s the request has left. */
	assert_int_equal(f.send_timeout, 5000);
	assert_int_equal(f.to_ctl[DG_OP_ROOM_PHASE], 2);
	dg_xfer_event_t ev = { .id = 2, .room = 7, .phase = 2,
	    .dir = DG_XFER_SEND, .status = DG_XFER_DONE, .bytes = 64 };
	dg_rooms_xfer_event(f.rooms, 1070, &ev);
	assert_int_equal(f.done_down, 1);
	assert_int_equal(f.to_ctl[DG_OP_STAGE_DONE], 1);
	assert_int_equal(dg_rooms_count(f.rooms), 0);
	assert_int_equal(dg_rooms_done(f.rooms), 1);
	/* A manifest for a hop we do not send is refused. */
	assert_int_equal(s_downstream(&f, 1080, 8, 1, why, sizeof why),
	    DG_PROTO_E_INVALID);
	assert_non_null(strstr(why, "sends no phase 1 data"));
	/* A plan that refuses fails the room for good. */
	s_assign(&f, 1100, 9, 5000, 60000);
	assert_int_equal(f.failed_final, 1);
	assert_non_null(strstr(f.last_reason, "invalid: too many steps"));
	s_fix_fini(&f);
}

/* A room released while its output is being sent: the engine may read
 * that memory until the send's own event, so it is not reused before. */
static void
test_send_memory_kept_until_its_event(void **state)
{
	s_fix_t f;
	dg_pool_stats_t ps;
	(void)state;

	s_fix_init(&f, 1, 100, 1, 1, 1u << 20);
	s_assign(&f, 1000, 3, 10, 60000);
	dg_rooms_pump(f.rooms, 1000);
	s_arrive(&f, 1000, 3, 1);
	dg_rooms_pump(f.rooms, 1000);
	dg_room_batch_t *b = f.batches[--f.nbatches];
	f.workers_busy--;
	dg_rooms_batch_done(f.rooms, 1000, b);
	char why[256];
	assert_int_equal(s_downstream(&f, 1000, 3, 2, why, sizeof why),
	    DG_PROTO_OK);
	assert_int_equal(f.sends, 1);
	dg_msg_t *m = dg_msg_new(DG_OP_RELEASE);
	m->u.release.room = 3;
	dg_rooms_release(f.rooms, 1001, m);
	dg_msg_destroy(&m);
	assert_int_equal(dg_rooms_count(f.rooms), 0);
	assert_int_equal(f.cancels, 1);
	dg_pool_stats(f.pool, &ps);
	assert_true(ps.slots_free < ps.slots);  /* the output is kept */
	/* The cancelled send's event: now it goes back. */
	dg_xfer_event_t ev = { .id = 2, .room = 3, .phase = 2,
	    .dir = DG_XFER_SEND, .status = DG_XFER_FAILED,
	    .reason = "cancelled" };
	dg_rooms_xfer_event(f.rooms, 1002, &ev);
	dg_pool_stats(f.pool, &ps);
	assert_int_equal(ps.slots_free, ps.slots);
	s_fix_fini(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_10000_rooms),
		cmocka_unit_test(test_queue_depth),
		cmocka_unit_test(test_large_room_lets_small_ones_pass),
		cmocka_unit_test(test_room_larger_than_pool),
		cmocka_unit_test(test_end_in_every_queue),
		cmocka_unit_test(test_middle_of_the_chain),
		cmocka_unit_test(test_send_memory_kept_until_its_event),
	};
	dg_log_set_level(DG_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
