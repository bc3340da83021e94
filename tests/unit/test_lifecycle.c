/*  test_lifecycle.c: the controller's I/O-free core (lib/lifecycle.c),
 *  driven by events alone: thousands of rooms failing over, a stop with
 *  thousands live, deadlines across retries, cancel and release in every
 *  state, and a four-stage chain.  No sockets, no clock: each case runs
 *  in milliseconds.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "log.h"

/* What the core sent, one record per message. */
typedef struct {
	dg_op_t op;
	char to[64];                    /* instance name, or "client" */
	uint64_t request, room, seq;
	char status[16];                /* result status / error code */
	char error[256];
	char role[16];                  /* progress, status.ok */
	int64_t step, steps, compute_us; /* compute_us: the transformer's */
} s_out_t;

typedef struct {
	s_out_t *out;
	size_t n, cap;
	size_t results[DG_REQ_STATE_COUNT];
} s_rec_t;

static s_out_t *
s_add(s_rec_t *rec)
{
	if (rec->n == rec->cap) {
		rec->cap = rec->cap ? rec->cap * 2 : 1024;
		rec->out = realloc(rec->out, rec->cap * sizeof *rec->out);
		assert_non_null(rec->out);
	}
	s_out_t *o = &rec->out[rec->n++];
	memset(o, 0, sizeof *o);
	return o;
}

static void
s_to_client(void *arg, const dg_route_t *to, const dg_msg_t *m, bool held)
{
	s_rec_t *rec = arg;
	s_out_t *o = s_add(rec);

	(void)to;
	(void)held;
	o->op = m->op;
	o->seq = m->seq;
	snprintf(o->to, sizeof o->to, "client");
	if (m->op == DG_OP_RESULT) {
		o->request = m->u.result.request;
		snprintf(o->status, sizeof o->status, "%s", m->u.result.status);
		snprintf(o->error, sizeof o->error, "%s",
		    m->u.result.error ? m->u.result.error : "");
		int st = dg_req_state_lookup(m->u.result.status);
		assert_true(st >= DG_REQ_DONE);
		rec->results[st]++;
		for (size_t i = 0; i < m->u.result.n_timings; i++)
			if (!strcmp(m->u.result.timings[i].key,
			    "transformer.compute_us"))
				o->compute_us = m->u.result.timings[i].value;
	} else if (m->op == DG_OP_PROGRESS) {
		o->request = m->u.progress.request;
		snprintf(o->role, sizeof o->role, "%s", m->u.progress.role);
		o->step = m->u.progress.step;
		o->steps = m->u.progress.steps;
	} else if (m->op == DG_OP_SUBMIT_OK) {
		o->request = m->u.submit_ok.request;
	} else if (m->op == DG_OP_STATUS_OK) {
		const dg_status_ok_msg_t *st = &m->u.status_ok;
		o->request = st->request;
		snprintf(o->status, sizeof o->status, "%s", st->state);
		snprintf(o->error, sizeof o->error, "%s %s|%s|%s %zu",
		    st->stage ? st->stage : "-", st->encoder ? st->encoder : "-",
		    st->transformer ? st->transformer : "-",
		    st->decoder ? st->decoder : "-", st->n_stages);
		o->step = st->step;
		o->steps = st->steps;
	}
}

static void
s_client_error(void *arg, const dg_route_t *to, uint64_t seq,
    dg_proto_code_t code, const char *text)
{
	s_out_t *o = s_add(arg);

	(void)to;
	o->op = DG_OP_ERROR;
	o->seq = seq;
	snprintf(o->status, sizeof o->status, "%s", dg_proto_code_name(code));
	snprintf(o->error, sizeof o->error, "%s", text);
}

static void
s_to_instance(void *arg, const dg_inst_t *in, const dg_msg_t *m)
{
	s_out_t *o = s_add(arg);

	o->op = m->op;
	snprintf(o->to, sizeof o->to, "%s", in->name);
	if (m->op == DG_OP_ASSIGN) {
		o->request = m->u.assign.request;
		o->room = m->u.assign.room;
		/* Every assign names the whole chain, in order. */
		assert_true(m->u.assign.n_stages >= 2);
	} else if (m->op == DG_OP_RELEASE) {
		o->room = m->u.release.room;
	}
}

static void
s_publish(void *arg, dg_msg_t *m)
{
	(void)arg;
	(void)m;
}

typedef struct {
	dg_pipeline_conf_t chain;
	dg_controller_conf_t conf;
	s_rec_t rec;
	dg_lifecycle_t *lc;
	int64_t now;
	zframe_t *ids[16];
	dg_route_t client;
	uint64_t seq;
} s_fix_t;

static void
s_fix_init(s_fix_t *f, const char *const *roles, size_t n)
{
	memset(f, 0, sizeof *f);
	for (size_t i = 0; i < n; i++)
		snprintf(f->chain.roles[i], DG_NAME_MAX, "%s", roles[i]);
	f->chain.nroles = n;
	f->conf = (dg_controller_conf_t){
		.policy = DG_POLICY_LEAST_LOADED, .max_pending = 1000000,
		.max_pending_per_client = 1000000, .keep_finished = 100000,
		.keep_finished_ms = 60000, .max_retries = 2,
		.request_timeout_ms = 600000, .dead_after_ms = 3000,
		.heartbeat_ms = 500,
	};
	dg_lc_io_t io = { .arg = &f->rec, .to_client = s_to_client,
	    .client_error = s_client_error, .to_instance = s_to_instance,
	    .publish = s_publish };
	f->lc = dg_lifecycle_new(&f->chain, &f->conf, &io);
	assert_non_null(f->lc);
	f->now = 1000;
	f->client.identity = zframe_new("client-1", 8);
}

static void
s_fix_fini(s_fix_t *f)
{
	dg_lifecycle_destroy(&f->lc);
	for (size_t i = 0; i < 16; i++)
		zframe_destroy(&f->ids[i]);
	zframe_destroy(&f->client.identity);
	free(f->rec.out);
}

/* Instance `name` of `role` says hello (pid picks its process). */
static void
s_hello(s_fix_t *f, int slot, const char *role, const char *name, int pid)
{
	dg_msg_t *m = dg_msg_new(DG_OP_HELLO);
	assert_non_null(m);
	zframe_destroy(&f->ids[slot]);
	f->ids[slot] = zframe_new(name, strlen(name));
	m->u.hello = (dg_hello_msg_t){ .role = role, .name = name,
	    .host = "h", .pid = pid, .peer = "ipc://@p", .pool_bytes = 1,
	    .slots = 1, .workers = 1 };
	dg_route_t from = { .identity = f->ids[slot] };
	dg_lc_hello(f->lc, f->now, &from, m);
	dg_msg_destroy(&m);
}

static void
s_heartbeat(s_fix_t *f, int slot, const char *name, const char *state)
{
	dg_msg_t *m = dg_msg_new(DG_OP_HEARTBEAT);
	assert_non_null(m);
	m->u.heartbeat = (dg_heartbeat_msg_t){ .name = name, .state = state };
	dg_route_t from = { .identity = f->ids[slot] };
	dg_lc_heartbeat(f->lc, f->now, &from, m);
	dg_msg_destroy(&m);
}

static void
s_submit(s_fix_t *f, int64_t deadline_ms)
{
	dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
	assert_non_null(m);
	m->seq = ++f->seq;
	m->u.submit = (dg_submit_msg_t){ .prompt = "a cat", .frames = 5,
	    .height = 64, .width = 64, .steps = 4, .seed = 1,
	    .deadline_ms = deadline_ms };
	dg_lc_submit(f->lc, f->now, &f->client, m);
	dg_msg_destroy(&m);
}

/* A stage's progress word. */
static void
s_step(s_fix_t *f, uint64_t room, uint64_t request, const char *role,
    int64_t step, int64_t steps)
{
	dg_msg_t *m = dg_msg_new(DG_OP_PROGRESS);
	assert_non_null(m);
	m->u.progress = (dg_progress_msg_t){ .room = room, .request = request,
	    .role = role, .step = step, .steps = steps };
	dg_lc_progress(f->lc, f->now, m);
	dg_msg_destroy(&m);
}

static void
s_report(s_fix_t *f, dg_op_t op, uint64_t room, uint64_t request,
    const char *role, const char *what)
{
	dg_msg_t *m = dg_msg_new(op);
	assert_non_null(m);
	if (op == DG_OP_STAGE_DONE) {
		m->u.stage_done = (dg_stage_done_msg_t){ .room = room,
		    .request = request, .role = role, .ms = 7,
		    .output = what, .bytes = what ? 100 : 0,
		    .digest = what ? "abc" : NULL, .compute_us = 6500,
		    .total_us = 7000 };
		dg_lc_stage_done(f->lc, f->now, m);
	} else if (op == DG_OP_ROOM_PHASE) {
		m->u.room_phase = (dg_room_phase_msg_t){ .room = room,
		    .request = request, .role = role, .state = what };
		dg_lc_room_phase(f->lc, f->now, m);
	} else {
		m->u.stage_failed = (dg_stage_failed_msg_t){ .room = room,
		    .request = request, .role = role, .reason = what,
		    .retryable = true };
		dg_lc_stage_failed(f->lc, f->now, m);
	}
	dg_msg_destroy(&m);
}

/* The room id the last assign of `request` named, or 0. */
static uint64_t
s_room_of(const s_fix_t *f, uint64_t request)
{
	for (size_t i = f->rec.n; i-- > 0;)
		if (f->rec.out[i].op == DG_OP_ASSIGN &&
		    f->rec.out[i].request == request)
			return f->rec.out[i].room;
	return 0;
}

static size_t
s_count(const s_fix_t *f, dg_op_t op, const char *to)
{
	size_t n = 0;
	for (size_t i = 0; i < f->rec.n; i++)
		n += f->rec.out[i].op == op &&
		    (!to || strcmp(f->rec.out[i].to, to) == 0);
	return n;
}

/* status.ok for `request`: its state and the role it is at. */
static const s_out_t *
s_status(s_fix_t *f, uint64_t request)
{
	dg_msg_t *m = dg_msg_new(DG_OP_STATUS);
	assert_non_null(m);
	m->u.status.request = request;
	dg_lc_status(f->lc, f->now, &f->client, m);
	dg_msg_destroy(&m);
	return &f->rec.out[f->rec.n - 1];
}

static const char *const s_three[] = { "encoder", "transformer", "decoder" };

static void
s_three_up(s_fix_t *f)
{
	s_hello(f, 0, "encoder", "e0", 10);
	s_hello(f, 1, "transformer", "t0", 11);
	s_hello(f, 2, "decoder", "d0", 12);
}

/* An instance holding 1,500 rooms dies: every one is placed again on
 * the one left, none fails, none is forgotten. */
static void
test_failover_1500(void **state)
{
	s_fix_t f;
	(void)state;

	s_fix_init(&f, s_three, 3);
	s_three_up(&f);
	for (int i = 0; i < 1500; i++)
		s_submit(&f, 0);
	assert_int_equal(s_count(&f, DG_OP_ASSIGN, "t0"), 1500);
	s_hello(&f, 3, "transformer", "t1", 13);
	/* t0 falls silent; everyone else keeps reporting. */
	f.now += 2000;
	s_heartbeat(&f, 0, "e0", "up");
	s_heartbeat(&f, 2, "d0", "up");
	s_heartbeat(&f, 3, "t1", "up");
	f.now += 1500;
	dg_lc_tick(f.lc, f.now);
	assert_int_equal(s_count(&f, DG_OP_ASSIGN, "t1"), 1500);
	dg_lc_counts_t c;
	dg_lc_counts(f.lc, &c);
	assert_int_equal(c.rooms, 1500);
	assert_int_equal(c.active, 1500);
	assert_int_equal(c.failed, 0);
	/* The old rooms were released on the instances still alive. */
	assert_int_equal(s_count(&f, DG_OP_RELEASE, "e0"), 1500);
	s_fix_fini(&f);
}

/* 10,000 concurrent rooms on one stage, then all finish. */
static void
test_10000_rooms(void **state)
{
	s_fix_t f;
	(void)state;

	s_fix_init(&f, s_three, 3);
	s_three_up(&f);
	for (int i = 0; i < 10000; i++)
		s_submit(&f, 0);
	dg_lc_counts_t c;
	dg_lc_counts(f.lc, &c);
	assert_int_equal(c.rooms, 10000);
	assert_int_equal(c.pending, 0);
	dg_msg_t *rooms = dg_lc_rooms_reply(f.lc, f.now, "t0", 1);
	assert_non_null(rooms);
	assert_int_equal(rooms->u.rooms_ok.n_rooms, 10000);
	assert_int_equal(rooms->u.rooms_ok.omitted, 0);
	dg_msg_destroy(&rooms);
	for (uint64_t id = 1; id <= 10000; id++) {
		uint64_t room = s_room_of(&f, id);
		assert_true(room != 0);
		s_report(&f, DG_OP_STAGE_DONE, room, id, "encoder", NULL);
		s_report(&f, DG_OP_STAGE_DONE, room, id, "transformer", NULL);
		s_report(&f, DG_OP_STAGE_DONE, room, id, "decoder", "/o.y4m");
	}
	assert_int_equal(f.rec.results[DG_REQ_DONE], 10000);
	dg_lc_counts(f.lc, &c);
	assert_int_equal(c.active, 0);
	assert_int_equal(c.rooms, 0);
	s_fix_fini(&f);
}

/* A stop with 5,000 live requests, some placed and some waiting: every
 * one gets its result. */
static void
test_stop_5000(void **state)
{
	s_fix_t f;
	(void)state;

	s_fix_init(&f, s_three, 3);
	for (int i = 0; i < 2000; i++)
		s_submit(&f, 0);                /* no instances: pending */
	s_three_up(&f);
	for (int i = 0; i < 3000; i++)
		s_submit(&f, 0);
	dg_lc_counts_t c;
	dg_lc_counts(f.lc, &c);
	assert_int_equal(c.active, 5000);
	dg_lc_stop(f.lc, f.now, "controller stopped");
	assert_int_equal(f.rec.results[DG_REQ_FAILED], 5000);
	for (size_t i = 0; i < f.rec.n; i++)
		if (f.rec.out[i].op == DG_OP_RESULT)
			assert_string_equal(f.rec.out[i].error,
			    "controller stopped");
	dg_lc_counts(f.lc, &c);
	assert_int_equal(c.active, 0);
	/* Nothing new after a stop. */
	s_submit(&f, 0);
	assert_int_equal(f.rec.out[f.rec.n - 1].op, DG_OP_ERROR);
	assert_string_equal(f.rec.out[f.rec.n - 1].status, "busy");
	s_fix_fini(&f);
}

/* A deadline that passes across retries: the request is placed again
 * while time is left, and fails at its deadline with the state and the
 * last failure. */
static void
test_deadline_across_retries(void **state)
{
	s_fix_t f;
	(void)state;

	s_fix_init(&f, s_three, 3);
	s_three_up(&f);
	s_submit(&f, 1000);
	uint64_t room = s_room_of(&f, 1);
	s_report(&f, DG_OP_ROOM_PHASE, room, 1, "encoder", "running");
	f.now += 400;
	s_report(&f, DG_OP_STAGE_FAILED, room, 1, "encoder", "rail down");
	uint64_t room2 = s_room_of(&f, 1);
	assert_true(room2 > room);
	/* A stale report of the old room changes nothing. */
	s_report(&f, DG_OP_STAGE_DONE, room, 1, "encoder", NULL);
	s_report(&f, DG_OP_ROOM_PHASE, room2, 1, "transformer", "running");
	assert_int_equal(dg_lc_next_wake(f.lc, f.now) <= f.now + 600, true);
	f.now += 599;
	dg_lc_tick(f.lc, f.now);
	assert_int_equal(f.rec.results[DG_REQ_FAILED], 0);
	f.now += 1;
	dg_lc_tick(f.lc, f.now);
	assert_int_equal(f.rec.results[DG_REQ_FAILED], 1);
	const s_out_t *o = &f.rec.out[f.rec.n - 1];
	assert_int_equal(o->op, DG_OP_RESULT);
	assert_string_equal(o->error, "deadline of 1000 ms passed while "
	    "denoising");

	/* A failure reported after the deadline ends it with both. */
	s_submit(&f, 500);
	room = s_room_of(&f, 2);
	f.now += 600;
	s_report(&f, DG_OP_STAGE_FAILED, room, 2, "decoder", "disk full");
	o = &f.rec.out[f.rec.n - 1];
	assert_int_equal(o->op, DG_OP_RESULT);
	assert_string_equal(o->error, "deadline of 500 ms passed while "
	    "assigned (last: decoder: disk full)");
	/* A deadline near 2^63 would overflow the clock it is added to:
	 * refused, with the bound. */
	size_t before = f.rec.results[DG_REQ_FAILED];
	s_submit(&f, INT64_MAX - 5);
	assert_int_equal(f.rec.out[f.rec.n - 1].op, DG_OP_ERROR);
	assert_string_equal(f.rec.out[f.rec.n - 1].status, "invalid");
	assert_non_null(strstr(f.rec.out[f.rec.n - 1].error, "30 days"));
	assert_int_equal(f.rec.results[DG_REQ_FAILED], before);
	dg_lc_tick(f.lc, f.now + 1);
	assert_int_equal(f.rec.results[DG_REQ_FAILED], before);
	/* Retries run out before the deadline. */
	s_submit(&f, 0);
	for (int i = 0; i < 3; i++) {
		room = s_room_of(&f, 3);
		s_report(&f, DG_OP_STAGE_FAILED, room, 3, "transformer", "oom");
	}
	o = &f.rec.out[f.rec.n - 1];
	assert_int_equal(o->op, DG_OP_RESULT);
	assert_string_equal(o->error, "transformer: oom (after 3 attempts)");
	s_fix_fini(&f);
}

/* Cancel, and an operator's release, in every state a request passes
 * through; each ends it once, with its room released on the stages. */
static void
test_cancel_release_every_state(void **state)
{
	static const char *const four[] =
		{ "encoder", "high", "low", "decoder" };
	/* How far to take a request before ending it: reports to replay. */
	static const struct { const char *role, *what; } steps[] = {
		{ "encoder", "running" }, { "encoder", "sending" },
		{ "high", "running" }, { "high", "sending" },
		{ "low", "running" }, { "low", "sending" },
		{ "decoder", "running" },
	};
	static const char *const states[] = { "assigned", "encoding",
	    "phase1", "denoising", "phase2", "denoising", "phase2",
	    "decoding" };
	(void)state;

	for (int release = 0; release < 2; release++) {
		for (size_t k = 0; k <= 7; k++) {
			s_fix_t f;
			s_fix_init(&f, four, 4);
			s_hello(&f, 0, "encoder", "e0", 10);
			s_hello(&f, 1, "high", "h0", 11);
			s_hello(&f, 2, "low", "l0", 12);
			s_hello(&f, 3, "decoder", "d0", 13);
			s_submit(&f, 0);
			uint64_t room = s_room_of(&f, 1);
			for (size_t i = 0; i < k; i++)
				s_report(&f, DG_OP_ROOM_PHASE, room, 1,
				    steps[i].role, steps[i].what);
			dg_msg_t *rr = dg_lc_rooms_reply(f.lc, f.now, NULL, 1);
			assert_int_equal(rr->u.rooms_ok.n_rooms, 1);
			assert_string_equal(rr->u.rooms_ok.rooms[0].state,
			    states[k]);
			assert_int_equal(rr->u.rooms_ok.rooms[0].n_stages, 4);
			assert_string_equal(rr->u.rooms_ok.rooms[0].transformer,
			    "h0,l0");
			dg_msg_destroy(&rr);
			dg_msg_t *m = dg_msg_new(release ? DG_OP_RELEASE :
			    DG_OP_CANCEL);
			if (release)
				m->u.release.room = room;
			else
				m->u.cancel.request = 1;
			if (release)
				dg_lc_release(f.lc, f.now, &f.client, m);
			else
				dg_lc_cancel(f.lc, f.now, &f.client, m, false);
			dg_msg_destroy(&m);
			assert_int_equal(f.rec.results[release ?
			    DG_REQ_FAILED : DG_REQ_CANCELLED], 1);
			assert_int_equal(s_count(&f, DG_OP_RELEASE, NULL), 4);
			/* Twice is an error, not a second result. */
			m = dg_msg_new(DG_OP_CANCEL);
			m->u.cancel.request = 1;
			dg_lc_cancel(f.lc, f.now, &f.client, m, false);
			dg_msg_destroy(&m);
			assert_int_equal(f.rec.out[f.rec.n - 1].op, DG_OP_ERROR);
			assert_int_equal(f.rec.results[DG_REQ_FAILED] +
			    f.rec.results[DG_REQ_CANCELLED], 1);
			s_fix_fini(&f);
		}
	}
	/* Pending (no instances): cancel ends it; release finds no room. */
	s_fix_t f;
	s_fix_init(&f, s_three, 3);
	s_submit(&f, 0);
	dg_msg_t *m = dg_msg_new(DG_OP_RELEASE);
	m->u.release.room = 1;
	dg_lc_release(f.lc, f.now, &f.client, m);
	dg_msg_destroy(&m);
	assert_string_equal(f.rec.out[f.rec.n - 1].status, "not-found");
	m = dg_msg_new(DG_OP_CANCEL);
	m->u.cancel.request = 1;
	dg_lc_cancel(f.lc, f.now, &f.client, m, false);
	dg_msg_destroy(&m);
	assert_int_equal(f.rec.results[DG_REQ_CANCELLED], 1);
	/* Instances arriving later place nothing. */
	s_three_up(&f);
	assert_int_equal(s_count(&f, DG_OP_ASSIGN, NULL), 0);
	s_fix_fini(&f);
}

/* A four-stage chain: done when every place reports, timings by the
 * configuration's role names; a role outside the chain is refused. */
static void
test_four_stage_chain(void **state)
{
	static const char *const four[] =
		{ "encoder", "high", "low", "decoder" };
	s_fix_t f;
	(void)state;

	s_fix_init(&f, four, 4);
	s_hello(&f, 0, "encoder", "e0", 10);
	s_hello(&f, 1, "high", "h0", 11);
	s_hello(&f, 2, "low", "l0", 12);
	s_hello(&f, 4, "transformer", "t0", 14);
	assert_int_equal(f.rec.out[f.rec.n - 1].op, DG_OP_ERROR);
	s_submit(&f, 0);
	assert_int_equal(s_count(&f, DG_OP_ASSIGN, NULL), 0);
	s_hello(&f, 3, "decoder", "d0", 13);
	assert_int_equal(s_count(&f, DG_OP_ASSIGN, NULL), 4);
	uint64_t room = s_room_of(&f, 1);
	const s_out_t *st = s_status(&f, 1);
	assert_string_equal(st->status, "assigned");
	assert_string_equal(st->error, "encoder e0|h0,l0|d0 4");
	for (size_t i = 0; i < 4; i++) {
		s_report(&f, DG_OP_STAGE_DONE, room, 1, four[i],
		    i == 3 ? "/out/1.y4m" : NULL);
		if (i == 1) {
			st = s_status(&f, 1);
			assert_string_equal(st->status, "denoising");
			assert_string_equal(st->error, "low e0|h0,l0|d0 4");
		}
	}
	assert_int_equal(f.rec.results[DG_REQ_DONE], 1);
	st = s_status(&f, 1);
	assert_string_equal(st->status, "done");
	s_fix_fini(&f);
}

/* A controller that was itself stopped for 15 s (SIGSTOP, a paused VM)
 * holds that silence against no instance; one that stays silent after
 * the resume still dies. */
static void
test_controller_paused(void **state)
{
	s_fix_t f;
	(void)state;

	s_fix_init(&f, s_three, 3);
	s_three_up(&f);
	f.now += 15000;
	dg_lc_paused(f.lc, f.now, 15000);
	dg_lc_tick(f.lc, f.now);
	dg_registry_t *reg = dg_lifecycle_registry(f.lc);
	for (size_t i = 0; i < dg_registry_count(reg); i++)
		assert_int_equal(dg_registry_at(reg, i)->state, DG_INST_UP);
	f.now += 1500;
	s_heartbeat(&f, 0, "e0", "up");
	s_heartbeat(&f, 2, "d0", "up");
	f.now += 1501;                  /* t0 silent 3001 ms since the resume */
	dg_lc_tick(f.lc, f.now);
	assert_int_equal(dg_registry_find(reg, "t0")->state, DG_INST_DEAD);
	assert_int_equal(dg_registry_find(reg, "e0")->state, DG_INST_UP);
	s_fix_fini(&f);
}

static void
s_submit_key(s_fix_t *f, const char *user, const char *key)
{
	dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
	dg_route_t from = f->client;
	assert_non_null(m);
	snprintf(from.user, sizeof from.user, "%s", user);
	m->seq = ++f->seq;
	m->u.submit = (dg_submit_msg_t){ .prompt = "a cat", .frames = 5,
	    .height = 64, .width = 64, .steps = 4, .seed = 1, .key = key };
	dg_lc_submit(f->lc, f->now, &from, m);
	dg_msg_destroy(&m);
}

/* A flood of 20 clients, each submitting as fast as it can against a
 * full admission (max_pending 100) while the oldest requests end: every
 * client gets about the same.  (The space that freed went to whoever
 * asked first: accepted counts ranged from 42 to 2,604.) */
static void
test_admission_fair_under_flood(void **state)
{
	enum { CLIENTS = 20, ROUNDS = 300 };
	s_fix_t f;
	dg_route_t from[CLIENTS];
	size_t accepted[CLIENTS] = { 0 };
	uint64_t *live = calloc(100000, sizeof *live);
	size_t head = 0, tail = 0;
	(void)state;

	assert_non_null(live);
	s_fix_init(&f, s_three, 3);
	f.conf.max_pending = 100;
	f.conf.max_pending_per_client = 100;
	s_three_up(&f);
	for (int c = 0; c < CLIENTS; c++) {
		char id[32];
		snprintf(id, sizeof id, "client-%02d", c);
		from[c] = f.client;
		from[c].identity = zframe_new(id, strlen(id));
	}
	for (int round = 0; round < ROUNDS; round++) {
		f.now += 10;
		/* The ten oldest end. */
		for (int k = 0; k < 10 && head < tail; k++) {
			dg_msg_t *m = dg_msg_new(DG_OP_CANCEL);
			m->u.cancel.request = live[head++];
			dg_lc_cancel(f.lc, f.now, &f.client, m, true);
			dg_msg_destroy(&m);
		}
		/* Everyone asks again, always in the same order. */
		for (int c = 0; c < CLIENTS; c++) {
			for (int k = 0; k < 5; k++) {
				dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
				m->seq = ++f.seq;
				m->u.submit = (dg_submit_msg_t){ .prompt = "a",
				    .frames = 5, .height = 64, .width = 64,
				    .steps = 4, .seed = 1 };
				size_t before = f.rec.n;
				dg_lc_submit(f.lc, f.now, &from[c], m);
				dg_msg_destroy(&m);
				if (f.rec.n > before &&
				    f.rec.out[before].op == DG_OP_SUBMIT_OK) {
					accepted[c]++;
					live[tail++] = f.rec.out[before].request;
				}
			}
		}
		f.rec.n = 0;    /* only the last round's messages matter */
	}
	size_t lo = SIZE_MAX, hi = 0;
	for (int c = 0; c < CLIENTS; c++) {
		lo = accepted[c] < lo ? accepted[c] : lo;
		hi = accepted[c] > hi ? accepted[c] : hi;
		zframe_destroy(&from[c].identity);
	}
	print_message("accepted per client: %zu to %zu\n", lo, hi);
	assert_true(lo > 0 && hi <= 2 * lo);
	free(live);
	s_fix_fini(&f);
}

/* The request id of the last submit.ok, or 0. */
static uint64_t
s_last_ok(const s_fix_t *f)
{
	for (size_t i = f->rec.n; i-- > 0;)
		if (f->rec.out[i].op == DG_OP_SUBMIT_OK)
			return f->rec.out[i].request;
	return 0;
}

/* A submit repeated with its key (the reply was lost) is the same
 * request: no second one starts, before or after it ends, nor after a
 * restart that replays the journal; another submitter's key is its
 * own; status finds a request by its key. */
static void
test_idempotent_submit(void **state)
{
	s_fix_t f;
	(void)state;

	s_fix_init(&f, s_three, 3);
	s_three_up(&f);
	s_submit_key(&f, "alice", "job-1");
	uint64_t id = s_last_ok(&f);
	assert_true(id != 0);
	size_t assigns = s_count(&f, DG_OP_ASSIGN, NULL);
	s_submit_key(&f, "alice", "job-1");
	assert_int_equal(s_last_ok(&f), id);
	assert_int_equal(s_count(&f, DG_OP_ASSIGN, NULL), assigns);
	s_submit_key(&f, "bob", "job-1");
	assert_true(s_last_ok(&f) != id);
	/* status by key */
	dg_msg_t *m = dg_msg_new(DG_OP_STATUS);
	dg_route_t alice = f.client;
	snprintf(alice.user, sizeof alice.user, "alice");
	m->u.status.key = "job-1";
	dg_lc_status(f.lc, f.now, &alice, m);
	assert_int_equal(f.rec.out[f.rec.n - 1].op, DG_OP_STATUS_OK);
	assert_int_equal(f.rec.out[f.rec.n - 1].request, id);
	m->u.status.key = "job-2";
	dg_lc_status(f.lc, f.now, &alice, m);
	assert_string_equal(f.rec.out[f.rec.n - 1].status, "not-found");
	dg_msg_destroy(&m);
	/* Done, then repeated: its result again, nothing new. */
	uint64_t room = s_room_of(&f, id);
	s_report(&f, DG_OP_STAGE_DONE, room, id, "encoder", NULL);
	s_report(&f, DG_OP_STAGE_DONE, room, id, "transformer", NULL);
	s_report(&f, DG_OP_STAGE_DONE, room, id, "decoder", "/o.y4m");
	assert_int_equal(f.rec.results[DG_REQ_DONE], 1);
	assigns = s_count(&f, DG_OP_ASSIGN, NULL);
	s_submit_key(&f, "alice", "job-1");
	assert_int_equal(f.rec.out[f.rec.n - 2].op, DG_OP_SUBMIT_OK);
	assert_int_equal(f.rec.out[f.rec.n - 2].request, id);
	assert_int_equal(f.rec.out[f.rec.n - 1].op, DG_OP_RESULT);
	assert_string_equal(f.rec.out[f.rec.n - 1].status, "done");
	assert_int_equal(s_count(&f, DG_OP_ASSIGN, NULL), assigns);
	/* Too long a key is refused. */
	char longkey[80];
	memset(longkey, 'k', sizeof longkey - 1);
	longkey[sizeof longkey - 1] = '\0';
	s_submit_key(&f, "alice", longkey);
	assert_string_equal(f.rec.out[f.rec.n - 1].status, "invalid");
	s_fix_fini(&f);

	/* After a restart: the journal's record of the submit (with its
	 * submitter) maps the key again. */
	s_fix_init(&f, s_three, 3);
	dg_msg_t *rec = dg_msg_new(DG_OP_SUBMIT);
	rec->u.submit = (dg_submit_msg_t){ .prompt = "a cat", .frames = 5,
	    .height = 64, .width = 64, .steps = 4, .seed = 1, .key = "job-9",
	    .owner = "alice" };
	dg_lc_replay(f.lc, f.now, 41, 60000, rec);
	dg_lifecycle_set_ids(f.lc, 41, 100);
	s_submit_key(&f, "alice", "job-9");
	assert_int_equal(s_last_ok(&f), 41);
	dg_lc_counts_t c;
	dg_lc_counts(f.lc, &c);
	assert_int_equal(c.active, 1);
	s_fix_fini(&f);
}

/* The last progress the client got, or NULL. */
static const s_out_t *
s_last_progress(const s_fix_t *f)
{
	for (size_t i = f->rec.n; i-- > 0;)
		if (f->rec.out[i].op == DG_OP_PROGRESS)
			return &f->rec.out[i];
	return NULL;
}

/* A client that asks hears a request's progress at most every 100 ms,
 * the newest word each time; one that does not ask hears none; stale
 * and malformed words are dropped; status shows the step; a word held
 * back when the request ends is never sent after its result; and the
 * result's timings carry the stages' accounts. */
static void
test_progress(void **state)
{
	s_fix_t f;
	(void)state;

	s_fix_init(&f, s_three, 3);
	/* Progress alone: no wake-ups for the deadline checks. */
	f.conf.admission = DG_ADMIT_OPEN;
	s_three_up(&f);
	dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
	m->seq = ++f.seq;
	m->u.submit = (dg_submit_msg_t){ .prompt = "a cat", .frames = 5,
	    .height = 64, .width = 64, .steps = 40, .seed = 1,
	    .progress = true };
	dg_lc_submit(f.lc, f.now, &f.client, m);
	dg_msg_destroy(&m);
	s_submit(&f, 0);                /* request 2: no progress asked */
	uint64_t r1 = s_room_of(&f, 1), r2 = s_room_of(&f, 2);
	assert_true(r1 && r2);

	s_step(&f, r1, 1, "transformer", 1, 40);
	assert_int_equal(s_count(&f, DG_OP_PROGRESS, NULL), 1);
	assert_int_equal(s_last_progress(&f)->step, 1);
	assert_string_equal(s_last_progress(&f)->role, "transformer");
	f.now += 10;
	s_step(&f, r1, 1, "transformer", 2, 40);
	f.now += 40;
	s_step(&f, r1, 1, "transformer", 5, 40);
	assert_int_equal(s_count(&f, DG_OP_PROGRESS, NULL), 1);
	/* Due at +100: the tick then sends the newest, 5. */
	assert_int_equal(dg_lc_next_wake(f.lc, f.now), 1100);
	f.now = 1099;
	dg_lc_tick(f.lc, f.now);
	assert_int_equal(s_count(&f, DG_OP_PROGRESS, NULL), 1);
	f.now = 1100;
	dg_lc_tick(f.lc, f.now);
	assert_int_equal(s_count(&f, DG_OP_PROGRESS, NULL), 2);
	assert_int_equal(s_last_progress(&f)->step, 5);
	/* Nothing held: no wake for progress. */
	assert_true(dg_lc_next_wake(f.lc, f.now) > f.now + 100);

	/* Not asked, wrong request, wrong room, out of range: nothing. */
	f.now += 500;
	s_step(&f, r2, 2, "transformer", 3, 4);
	s_step(&f, r1, 2, "transformer", 6, 40);
	s_step(&f, r1 + 100, 1, "transformer", 6, 40);
	s_step(&f, r1, 1, "transformer", 41, 40);
	s_step(&f, r1, 1, "transformer", 0, 40);
	s_step(&f, r1, 1, "nosuch", 6, 40);
	assert_int_equal(s_count(&f, DG_OP_PROGRESS, NULL), 2);
	/* Status shows the step of the stage at work. */
	s_report(&f, DG_OP_ROOM_PHASE, r1, 1, "transformer", "running");
	const s_out_t *st = s_status(&f, 1);
	assert_int_equal(st->step, 5);
	assert_int_equal(st->steps, 40);
	st = s_status(&f, 2);
	assert_int_equal(st->steps, 0);

	/* A word held back, then the request ends: the result is last. */
	s_step(&f, r1, 1, "transformer", 39, 40);
	f.now += 1;
	s_step(&f, r1, 1, "transformer", 40, 40);
	size_t before = s_count(&f, DG_OP_PROGRESS, NULL);
	for (size_t i = 0; i < 3; i++)
		s_report(&f, DG_OP_STAGE_DONE, r1, 1, s_three[i],
		    i == 2 ? "/out/1.y4m" : NULL);
	assert_int_equal(f.rec.results[DG_REQ_DONE], 1);
	assert_int_equal(f.rec.out[f.rec.n - 1].op, DG_OP_RESULT);
	assert_int_equal(f.rec.out[f.rec.n - 1].compute_us, 6500);
	f.now += 1000;
	dg_lc_tick(f.lc, f.now);
	assert_int_equal(s_count(&f, DG_OP_PROGRESS, NULL), before);
	/* A word about a place that is done, or a finished request. */
	s_step(&f, r1, 1, "transformer", 40, 40);
	assert_int_equal(s_count(&f, DG_OP_PROGRESS, NULL), before);
	s_fix_fini(&f);
}

/* The last reply to a submit: submit.ok or an error. */
static const s_out_t *
s_reply(const s_fix_t *f)
{
	for (size_t i = f->rec.n; i-- > 0;)
		if (f->rec.out[i].op == DG_OP_SUBMIT_OK ||
		    f->rec.out[i].op == DG_OP_ERROR)
			return &f->rec.out[i];
	fail();
	return NULL;
}

static void
s_submit_full(s_fix_t *f, int64_t deadline_ms, int64_t priority)
{
	dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
	assert_non_null(m);
	m->seq = ++f->seq;
	m->u.submit = (dg_submit_msg_t){ .prompt = "a cat", .frames = 5,
	    .height = 64, .width = 64, .steps = 4, .seed = 1,
	    .deadline_ms = deadline_ms, .priority = priority };
	dg_lc_submit(f->lc, f->now, &f->client, m);
	dg_msg_destroy(&m);
}

static void
s_drain(s_fix_t *f, const char *name, bool drain)
{
	dg_msg_t *m = dg_msg_new(drain ? DG_OP_DRAIN : DG_OP_UNDRAIN);
	assert_non_null(m);
	m->u.drain.name = name;
	dg_lc_drain(f->lc, f->now, &f->client, m, drain);
	dg_msg_destroy(&m);
}

/* Goodput: once the cost model has learned the stages (6.5 ms each
 * here), a submit predicted past its deadline is refused with
 * "deadline" (admission = deadline), or taken (open); a waiting request
 * that can no longer make it fails before it is placed; and waiting
 * requests are placed most urgent first. */
static void
test_deadline_admission_and_priority(void **state)
{
	s_fix_t f;
	(void)state;

	s_fix_init(&f, s_three, 3);
	s_three_up(&f);
	/* Nothing learned yet: a 1 ms deadline is not judged. */
	s_submit_full(&f, 1, 0);
	assert_int_equal(s_reply(&f)->op, DG_OP_SUBMIT_OK);
	uint64_t r1 = s_room_of(&f, 1);
	for (size_t i = 0; i < 3; i++)
		s_report(&f, DG_OP_STAGE_DONE, r1, 1, s_three[i],
		    i == 2 ? "/out/1.y4m" : NULL);
	assert_int_equal(f.rec.results[DG_REQ_DONE], 1);
	dg_inst_t *t0 = dg_registry_find(dg_lifecycle_registry(f.lc), "t0");
	assert_true(t0->cost.samples == 1 && t0->backlog_us == 0);

	/* 3 x 6.5 ms predicted: 10 ms is too little, 100 ms enough. */
	s_submit_full(&f, 10, 0);
	assert_int_equal(s_reply(&f)->op, DG_OP_ERROR);
	assert_string_equal(s_reply(&f)->status, "deadline");
	assert_non_null(strstr(s_reply(&f)->error,
	    "predicted to take 19 ms"));
	s_submit_full(&f, 100, 0);
	assert_int_equal(s_reply(&f)->op, DG_OP_SUBMIT_OK);
	/* Placed: its work is on the instances' backlogs. */
	assert_true(t0->backlog_us >= 6000);
	uint64_t r2 = s_room_of(&f, 2);
	for (size_t i = 0; i < 3; i++)
		s_report(&f, DG_OP_STAGE_DONE, r2, 2, s_three[i],
		    i == 2 ? "/out/2.y4m" : NULL);
	assert_int_equal(t0->backlog_us, 0);
	f.conf.admission = DG_ADMIT_OPEN;
	s_submit_full(&f, 10, 0);
	assert_int_equal(s_reply(&f)->op, DG_OP_SUBMIT_OK);
	f.now += 20;
	dg_lc_tick(f.lc, f.now);        /* it fails at its deadline */
	f.conf.admission = DG_ADMIT_DEADLINE;

	/* No transformer: requests wait.  One that can no longer make its
	 * deadline when one comes back fails first, saying why. */
	s_drain(&f, "t0", true);
	size_t failed = f.rec.results[DG_REQ_FAILED];
	s_submit_full(&f, 50, 0);       /* request 4 */
	assert_int_equal(s_reply(&f)->op, DG_OP_SUBMIT_OK);
	s_submit_full(&f, 0, 0);        /* 5 */
	s_submit_full(&f, 0, 5);        /* 6: urgent */
	s_submit_full(&f, 0, 0);        /* 7 */
	f.now += 40;
	size_t before = f.rec.n;
	s_drain(&f, "t0", false);
	assert_int_equal(f.rec.results[DG_REQ_FAILED], failed + 1);
	bool said = false;
	uint64_t order[3];
	size_t n = 0;
	for (size_t i = before; i < f.rec.n; i++) {
		const s_out_t *o = &f.rec.out[i];
		if (o->op == DG_OP_RESULT && o->request == 4)
			said = strstr(o->error, "cannot make its deadline") !=
			    NULL;
		if (o->op == DG_OP_ASSIGN && !strcmp(o->to, "t0") && n < 3)
			order[n++] = o->request;
	}
	assert_true(said);
	assert_int_equal(n, 3);
	assert_int_equal(order[0], 6);
	assert_int_equal(order[1], 5);
	assert_int_equal(order[2], 7);

	/* Placed, and then its own compute left (19.5 ms) no longer fits
	 * in what is left of its 40 ms: it fails at the next look, not at
	 * its deadline. */
	for (uint64_t id = 5; id <= 7; id++)
		for (size_t i = 0; i < 3; i++)
			s_report(&f, DG_OP_STAGE_DONE, s_room_of(&f, id), id,
			    s_three[i], i == 2 ? "/out/x.y4m" : NULL);
	assert_int_equal(t0->backlog_us, 0);
	s_submit_full(&f, 40, 0);       /* request 8 */
	assert_int_equal(s_reply(&f)->op, DG_OP_SUBMIT_OK);
	assert_true(s_room_of(&f, 8) != 0);
	f.now += 25;
	failed = f.rec.results[DG_REQ_FAILED];
	dg_lc_tick(f.lc, f.now);
	assert_int_equal(f.rec.results[DG_REQ_FAILED], failed + 1);
	assert_non_null(strstr(f.rec.out[f.rec.n - 1].error,
	    "cannot make its deadline: needs 19 ms more of compute, 15 ms "
	    "left"));
	s_fix_fini(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failover_1500),
		cmocka_unit_test(test_10000_rooms),
		cmocka_unit_test(test_stop_5000),
		cmocka_unit_test(test_deadline_across_retries),
		cmocka_unit_test(test_cancel_release_every_state),
		cmocka_unit_test(test_four_stage_chain),
		cmocka_unit_test(test_idempotent_submit),
		cmocka_unit_test(test_admission_fair_under_flood),
		cmocka_unit_test(test_controller_paused),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_deadline_admission_and_priority),
	};
	/* Thousands of re-dispatches are logged at info: keep errors. */
	dg_log_set_level(DG_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
