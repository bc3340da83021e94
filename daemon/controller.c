/*  controller.c: the controller role (DESIGN §6).
 *
 *  One ROUTER (`listen`) for clients, stage daemons and consoles, one
 *  PUB (`publish`) for snapshots and events.  It keeps the registry of
 *  instances (hello, heartbeat, bye; dead when silent for dead_after_ms),
 *  admits requests (beyond max_pending, `busy` at once), places each on
 *  an encoder, a transformer and a decoder by policy, follows its room
 *  through the stages' reports, and answers the client with exactly one
 *  `result`.  A request whose instance dies or whose transfer fails is
 *  re-dispatched with a new room up to max_retries times.  Every request
 *  has a deadline; a housekeeping timer enforces them, so nothing waits
 *  for ever on a lost message.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "auth.h"
#include "daemon.h"
#include "journal.h"
#include "log.h"
#include "policy.h"
#include "proto.h"
#include "threads.h"
#include "wire.h"

enum { I_UP, I_DRAINING, I_DRAINED, I_UNHEALTHY, I_DEAD };
static const char *const s_inst_states[] =
	{ "up", "draining", "drained", "unhealthy", "dead" };

typedef struct {
	char name[DG_NAME_MAX];
	dg_role_t role;
	char host[DG_NAME_MAX];
	char peer[DG_ENDPOINT_MAX];
	int64_t pid;
	uint64_t id;
	zframe_t *identity;             /* its DEALER, for assign/release */
	int state;
	bool drain_asked;               /* by an operator: keep it draining */
	int64_t incoming, waiting, ready, running, sending, rooms;
	uint64_t free_slots;
	int64_t stalled_ms;
	int64_t optimistic;
	int64_t last_seen;
	double rps;
	int64_t p50_us, p99_us;
	uint64_t done, failed;
} s_inst_t;

enum {
	R_PENDING, R_ASSIGNED, R_ENCODING, R_PHASE1, R_DENOISING, R_PHASE2,
	R_DECODING, R_DONE, R_FAILED, R_CANCELLED
};
static const char *const s_req_states[] = { "pending", "assigned",
	"encoding", "phase1", "denoising", "phase2", "decoding", "done",
	"failed", "cancelled" };

#define NSTAGES 3               /* encoder, transformer, decoder */

typedef struct s_req {
	uint64_t id;
	dg_route_t client;
	char *prompt, *negative;
	int64_t frames, height, width, steps, seed;
	int64_t timeout_ms;
	int state;
	uint64_t room;
	int attempt;
	char inst[NSTAGES][DG_NAME_MAX];
	bool stage_done[NSTAGES];
	int64_t stage_ms[NSTAGES];
	int64_t created, deadline, finished;
	char error[256];
	char *output;                   /* the decoder's file, or NULL */
	uint64_t bytes;
	char digest[40];
	void *live;                     /* handle in the live list */
	char user[48];                  /* submitter's public key, or "" */
} s_req_t;

/* An admin request relayed to a daemon on a client's behalf: the reply
 * that carries `seq` from that daemon goes back to the client with the
 * client's own seq; past the deadline the client gets a timeout error. */
#define RELAY_MS 2000

typedef struct {
	uint64_t seq;                   /* ours, on the daemon's DEALER */
	zframe_t *identity;             /* the daemon's */
	char name[DG_NAME_MAX];
	dg_op_t op;
	dg_route_t client;
	uint64_t client_seq;
	int64_t deadline;
} s_relay_t;

typedef struct {
	dg_daemon_t *d;
	zsock_t *router, *pub;
	zlistx_t *relays;               /* s_relay_t, oldest first */
	char pub_endpoint[DG_ENDPOINT_MAX];
	uint64_t relay_seq;
	s_inst_t *insts;
	size_t ninsts, capinsts;
	uint64_t next_instance;
	zhashx_t *reqs;                 /* request id -> s_req_t */
	zhashx_t *rooms;                /* room id -> s_req_t */
	zhashx_t *per_client;           /* client identity -> requests in
	                                   flight (intptr_t) */
	dg_journal_t *journal;          /* NULL: no journal configured */
	zlistx_t *held;                 /* s_held_t: replies awaiting sync */
	uint64_t replayed;
	uint64_t rooms_reserved;        /* next_room may go this far */
	zlistx_t *pending;              /* s_req_t waiting for instances */
	zlistx_t *finished;             /* ids, oldest first, for expiry */
	zlistx_t *live;                 /* requests not yet finished */
	uint64_t next_request, next_room;
	size_t active;
	uint64_t ndone, nfailed, ncancelled;
	dg_policy_state_t pol[DG_ROLE_COUNT];
	bool changed;
	int64_t last_snapshot;
	bool draining;
} s_ctl_t;

static const dg_controller_conf_t *
s_conf(s_ctl_t *self)
{
	return dg_config_controller(self->d->cfg);
}

static int
s_stage_index(dg_role_t role)
{
	return (int)role - 1;
}

/* ---- keys for the hash tables ----------------------------------------- */

static char *
s_key(char *buf, uint64_t id)
{
	snprintf(buf, 24, "%llu", (unsigned long long)id);
	return buf;
}

/* ---- events ------------------------------------------------------------ */

static void
s_event(s_ctl_t *self, const char *kind, const char *name, uint64_t request,
    uint64_t room, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void
s_event(s_ctl_t *self, const char *kind, const char *name, uint64_t request,
    uint64_t room, const char *fmt, ...)
{
	char text[256];
	va_list ap;
	dg_msg_t *m = dg_msg_new(DG_OP_EVENT);

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (!m)
		return;
	m->u.event.kind = kind;
	m->u.event.ts_ms = zclock_time();
	m->u.event.name = name;
	m->u.event.request = request;
	m->u.event.room = room;
	m->u.event.message = text;
	dg_wire_send(self->pub, NULL, m);
	dg_msg_destroy(&m);
}

/* ---- instances --------------------------------------------------------- */

static s_inst_t *
s_inst_find(s_ctl_t *self, const char *name)
{
	for (size_t i = 0; i < self->ninsts; i++)
		if (strcmp(self->insts[i].name, name) == 0)
			return &self->insts[i];
	return NULL;
}

static void s_fail_over(s_ctl_t *self, const char *name, const char *why);

static void
s_fill_row(const s_inst_t *in, dg_instance_row_t *row, int64_t now)
{
	row->role = dg_role_name(in->role);
	row->name = in->name;
	row->host = in->host;
	row->state = s_inst_states[in->state];
	row->peer = in->peer;
	row->incoming = in->incoming;
	row->waiting = in->waiting;
	row->ready = in->ready;
	row->running = in->running;
	row->sending = in->sending;
	row->rooms = in->rooms;
	row->free_slots = in->free_slots;
	row->rps = in->rps;
	row->p50_us = in->p50_us;
	row->p99_us = in->p99_us;
	row->heartbeat_age_ms = now - in->last_seen;
	row->stalled_ms = in->stalled_ms;
}

/* ---- requests ---------------------------------------------------------- */

/* A client by its ROUTER identity, as hex, for the per-client count. */
static const char *
s_client_key(const dg_route_t *route, char *buf)
{
	size_t n = route->identity ? zframe_size(route->identity) : 0;
	const byte *p = route->identity ? zframe_data(route->identity) : NULL;

	if (n > 256)
		n = 256;
	for (size_t i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", p[i]);
	buf[2 * n] = '\0';
	return buf;
}

static void
s_client_done(s_ctl_t *self, const dg_route_t *client)
{
	char cid[2 * 256 + 1];
	intptr_t n = (intptr_t)zhashx_lookup(self->per_client,
	    s_client_key(client, cid));

	if (n > 1)
		zhashx_update(self->per_client, cid, (void *)(n - 1));
	else
		zhashx_delete(self->per_client, cid);
}

static s_req_t *
s_req_find(s_ctl_t *self, uint64_t id)
{
	char key[24];
	return zhashx_lookup(self->reqs, s_key(key, id));
}

static bool
s_terminal(const s_req_t *r)
{
	return r->state >= R_DONE;
}

static void
s_send_release(s_ctl_t *self, s_req_t *r, const char *why)
{
	dg_msg_t *m = dg_msg_new(DG_OP_RELEASE);

	if (!m || !r->room)
		goto out;
	m->u.release.room = r->room;
	m->u.release.reason = why;
	for (int s = 0; s < NSTAGES; s++) {
		s_inst_t *in = s_inst_find(self, r->inst[s]);
		if (!in || !in->identity || in->state == I_DEAD)
			continue;
		dg_route_t route = { .identity = in->identity };
		dg_wire_post(self->router, &route, m);
	}
out:
	dg_msg_destroy(&m);
	if (r->room) {
		char key[24];
		zhashx_delete(self->rooms, s_key(key, r->room));
		r->room = 0;
	}
}

/* The one terminal transition of a request: result to the client. */
static void
s_finish(s_ctl_t *self, s_req_t *r, int state, const char *why)
{
	static const char *const roles[NSTAGES] =
		{ "encoder", "transformer", "decoder" };
	dg_kv_t timings[NSTAGES + 1];
	size_t nt = 0;

	if (s_terminal(r))
		return;
	if (r->state != R_DONE && r->room)
		s_send_release(self, r, why ? why : s_req_states[state]);
	else if (r->room) {
		char key[24];
		zhashx_delete(self->rooms, s_key(key, r->room));
		r->room = 0;
	}
	if (r->state == R_PENDING) {
		void *h = zlistx_find(self->pending, r);
		if (h)
			zlistx_delete(self->pending, h);
	}
	r->state = state;
	r->finished = zclock_mono();
	if (r->live)
		zlistx_delete(self->live, r->live);
	r->live = NULL;
	if (why)
		snprintf(r->error, sizeof r->error, "%s", why);
	self->active--;
	self->changed = true;
	s_client_done(self, &r->client);
	/* Only status queries look at it from now on. */
	free(r->prompt);
	free(r->negative);
	r->prompt = r->negative = NULL;
	if (state == R_DONE)
		self->ndone++;
	else if (state == R_FAILED)
		self->nfailed++;
	else
		self->ncancelled++;

	dg_msg_t *m = dg_msg_new(DG_OP_RESULT);
	if (m) {
		m->u.result.request = r->id;
		m->u.result.status = s_req_states[state];
		m->u.result.output = r->output ? r->output : "";
		m->u.result.bytes = r->bytes;
		m->u.result.digest = r->digest;
		m->u.result.error = state == R_DONE ? NULL : r->error;
		for (int s = 0; s < NSTAGES; s++)
			if (r->stage_done[s])
				timings[nt++] = (dg_kv_t){ roles[s], r->stage_ms[s] };
		timings[nt++] = (dg_kv_t){ "total", r->finished - r->created };
		m->u.result.timings = timings;
		m->u.result.n_timings = nt;
		if (self->journal && dg_journal_end(self->journal, r->id,
		    m) < 0)
			dg_log_error("journal: cannot record the end of "
			    "request %llu: %s", (unsigned long long)r->id,
			    strerror(errno));
		/* A request replayed from the journal has no client to
		 * answer: its client asks `status` after reconnecting. */
		if (r->client.identity)
			dg_wire_send(self->router, &r->client, m);
		dg_msg_destroy(&m);
	} else if (self->journal) {
		(void)dg_journal_end(self->journal, r->id, NULL);
	}
	if (state == R_FAILED)
		s_event(self, "failed", NULL, r->id, 0, "request %llu failed: %s",
		    (unsigned long long)r->id, r->error);
	dg_log_debug("request %llu %s%s%s", (unsigned long long)r->id,
	    s_req_states[state], why ? ": " : "", why ? why : "");
	uint64_t *id = malloc(sizeof *id);
	if (id) {
		*id = r->id;
		zlistx_add_end(self->finished, id);
	}
}

/* The next block of room ids, recorded before any is used: the assign
 * that names one goes out after this turn's journal sync. */
#define ROOM_BLOCK 4096

static void
s_reserve_rooms(s_ctl_t *self)
{
	self->rooms_reserved = self->next_room + ROOM_BLOCK;
	if (dg_journal_reserve_rooms(self->journal, self->rooms_reserved) < 0)
		dg_log_error("journal: cannot reserve room ids: %s",
		    strerror(errno));
}

/* Choose one instance per role and send the assignment. */
static bool
s_dispatch(s_ctl_t *self, s_req_t *r)
{
	s_inst_t *chosen[NSTAGES];
	int64_t now = zclock_mono();

	for (int s = 0; s < NSTAGES; s++) {
		dg_role_t role = (dg_role_t)(s + 1);
		dg_candidate_t cand[256];
		size_t idx[256], n = 0;
		for (size_t i = 0; i < self->ninsts && n < 256; i++) {
			s_inst_t *in = &self->insts[i];
			if (in->role != role)
				continue;
			cand[n] = (dg_candidate_t){
				.eligible = in->state == I_UP,
				.waiting = in->incoming + in->waiting + in->ready,
				.running = in->running + in->sending,
				.optimistic = in->optimistic,
			};
			idx[n++] = i;
		}
		int k = dg_policy_pick(s_conf(self)->policy, cand, n,
		    &self->pol[role]);
		if (k < 0)
			return false;
		chosen[s] = &self->insts[idx[k]];
	}
	for (int s = 0; s < NSTAGES; s++) {
		chosen[s]->optimistic++;
		snprintf(r->inst[s], sizeof r->inst[s], "%s", chosen[s]->name);
		r->stage_done[s] = false;
	}
	r->room = ++self->next_room;
	if (self->journal && self->next_room >= self->rooms_reserved)
		s_reserve_rooms(self);
	r->attempt++;
	char key[24];
	zhashx_insert(self->rooms, s_key(key, r->room), r);
	r->state = R_ASSIGNED;
	self->changed = true;

	dg_msg_t *m = dg_msg_new(DG_OP_ASSIGN);
	if (!m)
		return true;
	dg_assign_msg_t *a = &m->u.assign;
	a->request = r->id;
	a->room = r->room;
	a->attempt = r->attempt;
	a->prompt = r->prompt;
	a->negative_prompt = r->negative;
	a->frames = r->frames;
	a->height = r->height;
	a->width = r->width;
	a->steps = r->steps;
	a->seed = r->seed;
	a->deadline_ms = r->deadline - now > 1 ? r->deadline - now : 1;
	a->encoder = chosen[0]->name;
	a->encoder_peer = chosen[0]->peer;
	a->transformer = chosen[1]->name;
	a->transformer_peer = chosen[1]->peer;
	a->decoder = chosen[2]->name;
	a->decoder_peer = chosen[2]->peer;
	for (int s = 0; s < NSTAGES; s++) {
		dg_route_t route = { .identity = chosen[s]->identity };
		dg_wire_post(self->router, &route, m);
	}
	dg_msg_destroy(&m);
	return true;
}

/* Place what waits, oldest first, while instances can take it. */
static void
s_dispatch_pending(s_ctl_t *self)
{
	s_req_t *r = zlistx_first(self->pending);

	while (r) {
		if (!s_dispatch(self, r))
			return;
		zlistx_delete(self->pending, zlistx_cursor(self->pending));
		r = zlistx_first(self->pending);
	}
}

/* A room failed on its way: a new room elsewhere, or the end. */
static void
s_retry_or_fail(s_ctl_t *self, s_req_t *r, const char *why, bool retryable)
{
	if (s_terminal(r))
		return;
	/* Out of time: the deadline is the reason, whatever failed last. */
	if (zclock_mono() >= r->deadline) {
		char text[300];
		snprintf(text, sizeof text, "deadline of %lld ms passed while "
		    "%s (last: %s)", (long long)r->timeout_ms,
		    s_req_states[r->state], why);
		s_finish(self, r, R_FAILED, text);
		return;
	}
	/* A draining controller only finishes what it has. */
	if (self->draining && retryable) {
		char text[300];
		snprintf(text, sizeof text, "%s (controller draining)", why);
		s_finish(self, r, R_FAILED, text);
		return;
	}
	if (!retryable || r->attempt > s_conf(self)->max_retries) {
		char text[256];
		if (retryable)
			snprintf(text, sizeof text, "%s (after %d attempt%s)",
			    why, r->attempt, r->attempt == 1 ? "" : "s");
		else
			snprintf(text, sizeof text, "%s", why);
		s_finish(self, r, R_FAILED, text);
		return;
	}
	dg_log_info("request %llu room %llu: %s; re-dispatching (attempt "
	    "%d of %lld)", (unsigned long long)r->id,
	    (unsigned long long)r->room, why, r->attempt + 1,
	    (long long)s_conf(self)->max_retries + 1);
	snprintf(r->error, sizeof r->error, "%s", why);
	s_send_release(self, r, why);
	r->state = R_PENDING;
	if (!s_dispatch(self, r))
		zlistx_add_end(self->pending, r);
}

/* An instance is gone: every room on it fails over. */
static void
s_fail_over(s_ctl_t *self, const char *name, const char *why)
{
	s_req_t *victims[1024];
	size_t n = 0;

	/* Collect first: retrying changes the rooms table. */
	for (s_req_t *r = zhashx_first(self->rooms); r && n < 1024;
	    r = zhashx_next(self->rooms)) {
		for (int s = 0; s < NSTAGES; s++) {
			if (strcmp(r->inst[s], name) == 0 &&
			    !r->stage_done[s]) {
				victims[n++] = r;
				break;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		s_retry_or_fail(self, victims[i], why, true);
}

/* ---- client ops -------------------------------------------------------- */

/* Enter an accepted request in the tables, pending. */
static void
s_req_admit(s_ctl_t *self, s_req_t *r, const dg_submit_msg_t *sub,
    int64_t timeout)
{
	char key[24];

	r->prompt = strdup(sub->prompt ? sub->prompt : "");
	r->negative = strdup(sub->negative_prompt ? sub->negative_prompt : "");
	r->frames = sub->frames;
	r->height = sub->height;
	r->width = sub->width;
	r->steps = sub->steps;
	r->seed = sub->seed;
	r->timeout_ms = timeout > 1 ? timeout : 1;
	r->created = zclock_mono();
	r->deadline = r->created + r->timeout_ms;
	r->state = R_PENDING;
	zhashx_insert(self->reqs, s_key(key, r->id), r);
	r->live = zlistx_add_end(self->live, r);
	self->active++;
	self->changed = true;
}

static void
s_req_place(s_ctl_t *self, s_req_t *r)
{
	if (zlistx_size(self->pending) > 0 || !s_dispatch(self, r))
		zlistx_add_end(self->pending, r);
}

/* A reply sent after this turn's journal sync. */
typedef struct {
	dg_route_t route;
	dg_buf_t buf;
} s_held_t;

static void
s_held_destroy(void **item)
{
	s_held_t *h = *item;

	if (h) {
		dg_route_clear(&h->route);
		dg_buf_free(&h->buf);
		free(h);
		*item = NULL;
	}
}

static void
s_hold(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	s_held_t *h = calloc(1, sizeof *h);

	if (!h || dg_proto_encode(m, &h->buf) < 0) {
		free(h);
		return;
	}
	dg_route_copy(&h->route, route);
	zlistx_add_end(self->held, h);
}

/* Sync the journal, then tell the clients.  A failed sync fails the
 * requests it would have made durable rather than promise them. */
static void
s_release_held(s_ctl_t *self)
{
	if (!self->journal || zlistx_size(self->held) == 0) {
		if (self->journal && dg_journal_dirty(self->journal))
			(void)dg_journal_sync(self->journal);
		return;
	}
	if (dg_journal_sync(self->journal) < 0)
		dg_log_error("journal: sync failed: %s; the requests just "
		    "accepted may not survive a restart", strerror(errno));
	for (s_held_t *h = zlistx_first(self->held); h;
	    h = zlistx_next(self->held)) {
		zmsg_t *z = zmsg_new();
		zmsg_append(z, &(zframe_t *){ zframe_dup(h->route.identity) });
		if (h->route.delimiter)
			zmsg_append(z, &(zframe_t *){ zframe_new_empty() });
		zmsg_addmem(z, h->buf.data, h->buf.size);
		zmsg_send(&z, self->router);
	}
	zlistx_purge(self->held);
}

static void
s_on_submit(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	const dg_submit_msg_t *sub = &m->u.submit;
	const char *bad = NULL;

	if (self->draining)
		bad = "busy";
	else if (!sub->prompt || !*sub->prompt)
		bad = "prompt is empty";
	else if (sub->frames < 1 || sub->frames > 100000)
		bad = "frames out of range 1..100000";
	else if (sub->height < 1 || sub->height > 16384 || sub->width < 1 ||
	    sub->width > 16384)
		bad = "height and width must be 1..16384";
	else if (sub->steps < 1 || sub->steps > 100000)
		bad = "steps out of range 1..100000";
	else if (sub->deadline_ms < 0)
		bad = "deadline_ms must not be negative";
	if (bad && strcmp(bad, "busy") == 0) {
		dg_wire_send_error(self->router, route, m->seq, DG_PROTO_E_BUSY,
		    "controller is draining");
		return;
	}
	if (bad) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_INVALID, "%s", bad);
		return;
	}
	if ((int64_t)self->active >= s_conf(self)->max_pending) {
		dg_wire_send_error(self->router, route, m->seq, DG_PROTO_E_BUSY,
		    "%zu requests in flight (max_pending)", self->active);
		return;
	}
	/* One client's flood must not crowd out the others. */
	char cid[2 * 256 + 1];
	intptr_t mine = (intptr_t)zhashx_lookup(self->per_client,
	    s_client_key(route, cid));
	if (mine >= s_conf(self)->max_pending_per_client) {
		dg_wire_send_error(self->router, route, m->seq, DG_PROTO_E_BUSY,
		    "this client has %ld requests in flight "
		    "(max_pending_per_client)", (long)mine);
		return;
	}
	s_req_t *r = calloc(1, sizeof *r);
	if (!r) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_INTERNAL, "out of memory");
		return;
	}
	r->id = ++self->next_request;
	dg_route_copy(&r->client, route);
	snprintf(r->user, sizeof r->user, "%s", route->user);
	int64_t timeout = sub->deadline_ms ? sub->deadline_ms :
	    s_conf(self)->request_timeout_ms;
	if (self->journal && dg_journal_accept(self->journal, r->id,
	    zclock_time() + timeout, m) < 0) {
		dg_log_error("journal: cannot record request %llu: %s",
		    (unsigned long long)r->id, strerror(errno));
		dg_route_clear(&r->client);
		free(r);
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_INTERNAL, "cannot record the request in the "
		    "journal");
		return;
	}
	s_req_admit(self, r, sub, timeout);
	zhashx_update(self->per_client, cid, (void *)(mine + 1));

	dg_msg_t *ok = dg_msg_new(DG_OP_SUBMIT_OK);
	if (ok) {
		ok->seq = m->seq;
		ok->u.submit_ok.request = r->id;
		/* With a journal, the client hears "accepted" only once the
		 * request is on disk: after this turn's sync. */
		if (self->journal)
			s_hold(self, route, ok);
		else
			dg_wire_send(self->router, route, ok);
		dg_msg_destroy(&ok);
	}
	s_req_place(self, r);
}

/* A request the journal had accepted before a restart: its client is
 * gone (it may ask `status`), its deadline kept on the wall clock. */
static void
s_replay(void *arg, uint64_t id, int64_t deadline_wall, dg_msg_t *m)
{
	s_ctl_t *self = arg;
	s_req_t *r = calloc(1, sizeof *r);

	if (!r) {
		dg_msg_destroy(&m);
		return;
	}
	r->id = id;
	if (m->op == DG_OP_RESULT) {
		/* Finished before the restart: kept for `status`. */
		const dg_result_msg_t *res = &m->u.result;
		r->state = R_FAILED;
		for (int st = R_DONE; st <= R_CANCELLED; st++)
			if (res->status && !strcmp(res->status, s_req_states[st]))
				r->state = st;
		r->output = res->output && *res->output ?
		    strdup(res->output) : NULL;
		r->bytes = res->bytes;
		snprintf(r->digest, sizeof r->digest, "%s",
		    res->digest ? res->digest : "");
		snprintf(r->error, sizeof r->error, "%s",
		    res->error ? res->error : "");
		r->created = r->finished = zclock_mono();
		char key[24];
		zhashx_insert(self->reqs, s_key(key, id), r);
		uint64_t *idp = malloc(sizeof *idp);
		if (idp) {
			*idp = id;
			zlistx_add_end(self->finished, idp);
		}
		dg_msg_destroy(&m);
		return;
	}
	/* One whose deadline passed while we were down ends at the first
	 * housekeeping tick, with the journal open to record it. */
	s_req_admit(self, r, &m->u.submit, deadline_wall - zclock_time());
	self->replayed++;
	zlistx_add_end(self->pending, r);
	dg_msg_destroy(&m);
}

static void
s_on_status(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	s_req_t *r = s_req_find(self, m->u.status.request);

	if (!r) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_NOT_FOUND, "no request %llu",
		    (unsigned long long)m->u.status.request);
		return;
	}
	dg_msg_t *ok = dg_msg_new(DG_OP_STATUS_OK);
	if (!ok)
		return;
	ok->seq = m->seq;
	dg_status_ok_msg_t *s = &ok->u.status_ok;
	s->request = r->id;
	s->state = s_req_states[r->state];
	s->room = r->room;
	s->encoder = *r->inst[0] ? r->inst[0] : NULL;
	s->transformer = *r->inst[1] ? r->inst[1] : NULL;
	s->decoder = *r->inst[2] ? r->inst[2] : NULL;
	s->age_ms = (s_terminal(r) ? r->finished : zclock_mono()) - r->created;
	s->retries = r->attempt > 1 ? r->attempt - 1 : 0;
	s->error = *r->error ? r->error : NULL;
	dg_wire_send(self->router, route, ok);
	dg_msg_destroy(&ok);
}

static void
s_on_cancel(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	s_req_t *r = s_req_find(self, m->u.cancel.request);

	if (!r) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_NOT_FOUND, "no request %llu",
		    (unsigned long long)m->u.cancel.request);
		return;
	}
	if (strcmp(r->user, route->user) != 0 &&
	    !dg_daemon_from_admin(self->d, route->user)) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_DENIED, "request %llu is another client's: "
		    "cancelling it needs an admin key",
		    (unsigned long long)r->id);
		return;
	}
	if (s_terminal(r)) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_INVALID, "request %llu is already %s",
		    (unsigned long long)r->id, s_req_states[r->state]);
		return;
	}
	s_finish(self, r, R_CANCELLED, "cancelled");
	dg_msg_t *ok = dg_msg_new(DG_OP_CANCEL_OK);
	if (ok) {
		ok->seq = m->seq;
		ok->u.cancel_ok.request = r->id;
		dg_wire_send(self->router, route, ok);
		dg_msg_destroy(&ok);
	}
}

/* ---- daemon ops -------------------------------------------------------- */

static void
s_on_hello(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	const dg_hello_msg_t *h = &m->u.hello;
	int role = dg_role_parse(h->role);

	if (role <= DG_ROLE_CONTROLLER) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_INVALID, "unknown role '%s'", h->role);
		return;
	}
	s_inst_t *in = s_inst_find(self, h->name);
	if (in && in->state != I_DEAD && in->pid != h->pid) {
		/* Restarted faster than dead_after_ms: its rooms died with
		 * the old process. */
		s_fail_over(self, in->name, "instance restarted");
	}
	if (!in) {
		if (self->ninsts == self->capinsts) {
			size_t cap = self->capinsts ? self->capinsts * 2 : 16;
			s_inst_t *a = realloc(self->insts, cap * sizeof *a);
			if (!a)
				return;
			self->insts = a;
			self->capinsts = cap;
		}
		in = &self->insts[self->ninsts++];
		memset(in, 0, sizeof *in);
		snprintf(in->name, sizeof in->name, "%s", h->name);
	}
	zframe_destroy(&in->identity);
	in->identity = zframe_dup(route->identity);
	in->role = (dg_role_t)role;
	snprintf(in->host, sizeof in->host, "%s", h->host);
	snprintf(in->peer, sizeof in->peer, "%s", h->peer);
	in->pid = h->pid;
	in->id = ++self->next_instance;
	in->state = in->drain_asked ? I_DRAINING : I_UP;
	in->last_seen = zclock_mono();
	in->optimistic = 0;
	self->changed = true;
	dg_log_info("%s %s joined from %s (pid %lld, peer %s)", h->role,
	    h->name, h->host, (long long)h->pid, h->peer);
	s_event(self, "join", h->name, 0, 0, "%s %s joined", h->role, h->name);

	dg_msg_t *ok = dg_msg_new(DG_OP_HELLO_OK);
	if (ok) {
		ok->seq = m->seq;
		ok->u.hello_ok.heartbeat_ms = s_conf(self)->heartbeat_ms;
		ok->u.hello_ok.dead_after_ms = s_conf(self)->dead_after_ms;
		ok->u.hello_ok.instance = in->id;
		dg_wire_send(self->router, route, ok);
		dg_msg_destroy(&ok);
	}
	s_dispatch_pending(self);
}

static void
s_on_heartbeat(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	const dg_heartbeat_msg_t *h = &m->u.heartbeat;
	s_inst_t *in = s_inst_find(self, h->name);

	if (!in || in->state == I_DEAD) {
		/* A controller restart, or declared dead too early: ask it
		 * to introduce itself again. */
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_NOT_FOUND, "unknown instance '%s': send hello",
		    h->name);
		return;
	}
	in->last_seen = zclock_mono();
	in->incoming = h->incoming;
	in->waiting = h->waiting;
	in->ready = h->ready;
	in->running = h->running;
	in->sending = h->sending;
	in->rooms = h->rooms;
	in->free_slots = h->free_slots;
	in->stalled_ms = h->stalled_ms;
	in->optimistic = 0;
	int was = in->state;
	if (in->drain_asked || strcmp(h->state, "draining") == 0 ||
	    strcmp(h->state, "drained") == 0)
		in->state = h->rooms == 0 ? I_DRAINED : I_DRAINING;
	else if (strcmp(h->state, "unhealthy") == 0)
		in->state = I_UNHEALTHY;
	else
		in->state = I_UP;
	if (in->state != was) {
		s_event(self, s_inst_states[in->state], in->name, 0, 0, "%s %s "
		    "is %s", dg_role_name(in->role), in->name,
		    s_inst_states[in->state]);
		if (in->state == I_UP)
			s_dispatch_pending(self);
	}
	self->changed = true;
}

static void
s_on_stats(s_ctl_t *self, const dg_msg_t *m)
{
	s_inst_t *in = s_inst_find(self, m->u.stats.name);

	if (!in)
		return;
	in->rps = m->u.stats.rps;
	in->p50_us = m->u.stats.p50_us;
	in->p99_us = m->u.stats.p99_us;
	in->done = m->u.stats.done;
	in->failed = m->u.stats.failed;
	self->changed = true;
}

static void
s_on_bye(s_ctl_t *self, const dg_msg_t *m)
{
	s_inst_t *in = s_inst_find(self, m->u.bye.name);

	if (!in)
		return;
	in->state = I_DEAD;
	zframe_destroy(&in->identity);
	dg_log_info("%s %s left%s%s", dg_role_name(in->role), in->name,
	    m->u.bye.reason ? ": " : "", m->u.bye.reason ? m->u.bye.reason : "");
	s_event(self, "leave", in->name, 0, 0, "%s %s left",
	    dg_role_name(in->role), in->name);
	s_fail_over(self, in->name, "instance left");
	self->changed = true;
}

static s_req_t *
s_room_req(s_ctl_t *self, uint64_t room, uint64_t request)
{
	char key[24];
	s_req_t *r = zhashx_lookup(self->rooms, s_key(key, room));

	/* A report for an older room of the request is stale: ignore. */
	return r && r->id == request && !s_terminal(r) ? r : NULL;
}

static void
s_on_stage_done(s_ctl_t *self, const dg_msg_t *m)
{
	const dg_stage_done_msg_t *sd = &m->u.stage_done;
	s_req_t *r = s_room_req(self, sd->room, sd->request);
	int role = dg_role_parse(sd->role);

	if (!r || role <= DG_ROLE_CONTROLLER)
		return;
	int s = s_stage_index((dg_role_t)role);
	r->stage_done[s] = true;
	r->stage_ms[s] = sd->ms;
	self->changed = true;
	if (role == DG_ROLE_ENCODER && r->state < R_DENOISING)
		r->state = R_DENOISING;
	else if (role == DG_ROLE_TRANSFORMER && r->state < R_DECODING)
		r->state = R_DECODING;
	else if (role == DG_ROLE_DECODER) {
		free(r->output);
		r->output = sd->output ? strdup(sd->output) : NULL;
		r->bytes = sd->bytes;
		snprintf(r->digest, sizeof r->digest, "%s",
		    sd->digest ? sd->digest : "");
	}
	if (r->stage_done[0] && r->stage_done[1] && r->stage_done[2])
		s_finish(self, r, R_DONE, NULL);
}

static void
s_on_stage_failed(s_ctl_t *self, const dg_msg_t *m)
{
	const dg_stage_failed_msg_t *sf = &m->u.stage_failed;
	s_req_t *r = s_room_req(self, sf->room, sf->request);

	if (!r)
		return;
	char why[300];
	snprintf(why, sizeof why, "%s: %s", sf->role, sf->reason);
	s_retry_or_fail(self, r, why, sf->retryable);
}

static void
s_on_room_phase(s_ctl_t *self, const dg_msg_t *m)
{
	const dg_room_phase_msg_t *p = &m->u.room_phase;
	s_req_t *r = s_room_req(self, p->room, p->request);

	if (!r)
		return;
	for (int st = R_ENCODING; st <= R_DECODING; st++) {
		if (strcmp(p->state, s_req_states[st]) == 0 && st > r->state) {
			r->state = st;
			self->changed = true;
		}
	}
}

/* ---- admin ops --------------------------------------------------------- */

static void
s_on_instances(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	dg_msg_t *ok = dg_msg_new(DG_OP_INSTANCES_OK);
	dg_instance_row_t *rows = calloc(self->ninsts + 1, sizeof *rows);
	int64_t now = zclock_mono();

	if (ok && rows) {
		for (size_t i = 0; i < self->ninsts; i++)
			s_fill_row(&self->insts[i], &rows[i], now);
		ok->seq = m->seq;
		ok->u.instances_ok.instances = rows;
		ok->u.instances_ok.n_instances = self->ninsts;
		/* Where consoles and `disagg watch` subscribe. */
		ok->u.instances_ok.publish = self->pub_endpoint;
		dg_wire_send(self->router, route, ok);
	}
	free(rows);
	dg_msg_destroy(&ok);
}

static void
s_on_drain(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m,
    bool drain)
{
	const char *name = drain ? m->u.drain.name : m->u.undrain.name;
	s_inst_t *in = s_inst_find(self, name);

	if (!in || in->state == I_DEAD) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_NOT_FOUND, "no live instance '%s'", name);
		return;
	}
	in->drain_asked = drain;
	in->state = drain ? (in->rooms ? I_DRAINING : I_DRAINED) : I_UP;
	/* drain --exit: the daemon itself drains, finishes what it holds
	 * within its drain_timeout_ms and exits 0, as on SIGTERM. */
	if (drain && m->u.drain.exit && in->identity) {
		dg_msg_t *d = dg_msg_new(DG_OP_DRAIN);
		if (d) {
			d->u.drain.name = in->name;
			dg_route_t to = { .identity = in->identity };
			dg_wire_post(self->router, &to, d);
			dg_msg_destroy(&d);
		}
	}
	dg_log_info("%s %s: %s", dg_role_name(in->role), in->name,
	    drain ? "draining" : "undrained");
	s_event(self, drain ? "drain" : "undrain", in->name, 0, 0, "%s %s %s",
	    dg_role_name(in->role), in->name, drain ? "draining" : "undrained");
	self->changed = true;
	dg_msg_t *ok = dg_msg_new(drain ? DG_OP_DRAIN_OK : DG_OP_UNDRAIN_OK);
	if (ok) {
		ok->seq = m->seq;
		ok->u.drain_ok.name = in->name;
		dg_wire_send(self->router, route, ok);
		dg_msg_destroy(&ok);
	}
	if (!drain)
		s_dispatch_pending(self);
}

static void
s_on_release(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	char key[24];
	s_req_t *r = zhashx_lookup(self->rooms, s_key(key, m->u.release.room));

	if (!r) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_NOT_FOUND, "no live room %llu",
		    (unsigned long long)m->u.release.room);
		return;
	}
	uint64_t room = r->room, request = r->id;
	char why[300];
	snprintf(why, sizeof why, "room %llu released by an operator%s%s",
	    (unsigned long long)room, m->u.release.reason ? ": " : "",
	    m->u.release.reason ? m->u.release.reason : "");
	dg_log_info("request %llu: %s", (unsigned long long)request, why);
	s_finish(self, r, R_FAILED, why);
	s_event(self, "release", NULL, request, room, "%s", why);
	dg_msg_t *ok = dg_msg_new(DG_OP_RELEASE_OK);
	if (ok) {
		ok->seq = m->seq;
		ok->u.release_ok.room = room;
		dg_wire_send(self->router, route, ok);
		dg_msg_destroy(&ok);
	}
}

static const char *
s_role_of_room(const s_req_t *r, int s)
{
	return *r->inst[s] ? r->inst[s] : "-";
}

/* rooms {name?}: every live room, or those placed on instance `name`. */
static void
s_on_rooms(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	const char *name = m->u.rooms.name;
	dg_msg_t *ok = dg_msg_new(DG_OP_ROOMS_OK);
	size_t cap = zhashx_size(self->rooms), n = 0;
	int64_t now = zclock_mono();

	if (cap > DG_PROTO_MAX_ITEMS)
		cap = DG_PROTO_MAX_ITEMS;
	dg_room_row_t *rows = ok ? dg_msg_alloc(ok, (cap + 1) * sizeof *rows) :
	    NULL;
	if (!rows) {
		dg_msg_destroy(&ok);
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_NOMEM, "out of memory");
		return;
	}
	/* In request order, so that a listing reads oldest first. */
	for (s_req_t *r = zlistx_first(self->live); r && n < cap;
	    r = zlistx_next(self->live)) {
		if (!r->room)
			continue;
		if (name && *name && strcmp(r->inst[0], name) &&
		    strcmp(r->inst[1], name) && strcmp(r->inst[2], name))
			continue;
		rows[n++] = (dg_room_row_t){
			.room = r->room, .request = r->id,
			.state = s_req_states[r->state],
			.encoder = s_role_of_room(r, 0),
			.transformer = s_role_of_room(r, 1),
			.decoder = s_role_of_room(r, 2),
			.bytes = r->bytes, .age_ms = now - r->created,
		};
	}
	ok->seq = m->seq;
	ok->u.rooms_ok.rooms = rows;
	ok->u.rooms_ok.n_rooms = n;
	dg_wire_send(self->router, route, ok);
	dg_msg_destroy(&ok);
}

/* queues of the controller itself: the requests waiting for instances. */
static dg_msg_t *
s_queues_reply(s_ctl_t *self, uint64_t seq)
{
	dg_msg_t *ok = dg_msg_new(DG_OP_QUEUES_OK);
	size_t cap = zlistx_size(self->pending), n = 0;
	int64_t now = zclock_mono();

	if (cap > DG_PROTO_MAX_ITEMS)
		cap = DG_PROTO_MAX_ITEMS;
	dg_queue_row_t *rows = ok ? dg_msg_alloc(ok, (cap + 1) * sizeof *rows) :
	    NULL;
	if (!rows) {
		dg_msg_destroy(&ok);
		return NULL;
	}
	for (s_req_t *r = zlistx_first(self->pending); r && n < cap;
	    r = zlistx_next(self->pending))
		rows[n++] = (dg_queue_row_t){ .room = 0, .request = r->id,
		    .queue = "pending", .age_ms = now - r->created };
	ok->seq = seq;
	ok->u.queues_ok.name = self->d->name;
	ok->u.queues_ok.rooms = rows;
	ok->u.queues_ok.n_rooms = n;
	return ok;
}

/* queues, threads, sockets, reload {name}: answered here for the
 * controller's own name (or none), else relayed to that daemon. */
static void
s_on_admin(s_ctl_t *self, const dg_route_t *route, const dg_msg_t *m)
{
	const char *name = m->u.threads.name;   /* every one is a name_msg */
	dg_msg_t *reply = NULL;

	if (!name || !*name || strcmp(name, self->d->name) == 0) {
		switch (m->op) {
		case DG_OP_QUEUES: reply = s_queues_reply(self, m->seq); break;
		case DG_OP_THREADS:
			reply = dg_admin_threads(self->d->name, m->seq);
			break;
		case DG_OP_SOCKETS:
			reply = dg_admin_sockets(self->d->name, m->seq, NULL);
			break;
		default:
			reply = dg_admin_reload(self->d, m->seq);
			break;
		}
		if (reply)
			dg_wire_send(self->router, route, reply);
		else
			dg_wire_send_error(self->router, route, m->seq,
			    DG_PROTO_E_NOMEM, "out of memory");
		dg_msg_destroy(&reply);
		return;
	}
	s_inst_t *in = s_inst_find(self, name);
	if (!in || in->state == I_DEAD || !in->identity) {
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_NOT_FOUND, "no live instance '%s'", name);
		return;
	}
	s_relay_t *rl = calloc(1, sizeof *rl);
	dg_msg_t *fwd = dg_msg_new(m->op);
	if (!rl || !fwd) {
		free(rl);
		dg_msg_destroy(&fwd);
		dg_wire_send_error(self->router, route, m->seq,
		    DG_PROTO_E_NOMEM, "out of memory");
		return;
	}
	rl->seq = ++self->relay_seq;
	rl->identity = zframe_dup(in->identity);
	snprintf(rl->name, sizeof rl->name, "%s", in->name);
	rl->op = m->op;
	dg_route_copy(&rl->client, route);
	rl->client_seq = m->seq;
	rl->deadline = zclock_mono() + RELAY_MS;
	zlistx_add_end(self->relays, rl);
	fwd->seq = rl->seq;
	fwd->u.threads.name = in->name;
	dg_route_t to = { .identity = in->identity };
	dg_wire_post(self->router, &to, fwd);
	dg_msg_destroy(&fwd);
}

static void
s_relay_destroy(void **item)
{
	s_relay_t *rl = *item;

	if (!rl)
		return;
	zframe_destroy(&rl->identity);
	dg_route_clear(&rl->client);
	free(rl);
	*item = NULL;
}

/* A reply from a daemon: the client's, if it answers a relay from that
 * daemon; anything else (late, or never asked) is dropped.  True when
 * the message was a relay's reply. */
static bool
s_on_relay_reply(s_ctl_t *self, const dg_route_t *route, dg_msg_t *m)
{
	for (s_relay_t *rl = zlistx_first(self->relays); rl;
	    rl = zlistx_next(self->relays)) {
		if (rl->seq != m->seq || !route->identity ||
		    !zframe_eq(rl->identity, route->identity))
			continue;
		m->seq = rl->client_seq;
		dg_wire_send(self->router, &rl->client, m);
		zlistx_delete(self->relays, zlistx_cursor(self->relays));
		return true;
	}
	return false;
}

static void
s_expire_relays(s_ctl_t *self, int64_t now)
{
	s_relay_t *rl;

	while ((rl = zlistx_first(self->relays)) && now >= rl->deadline) {
		dg_wire_send_error(self->router, &rl->client, rl->client_seq,
		    DG_PROTO_E_TIMEOUT, "%s did not answer '%s' within %d ms",
		    rl->name, dg_op_name(rl->op), RELAY_MS);
		zlistx_delete(self->relays, zlistx_cursor(self->relays));
	}
}

/* ---- the loop ---------------------------------------------------------- */

/* With curve = on, who may send what: the daemons' own ops only from
 * the deployment's key, drain/undrain/release/reload only from an admin
 * key.  Refusals are answered and logged. */
static bool
s_allowed(s_ctl_t *self, zsock_t *sock, dg_route_t *route, dg_msg_t *m)
{
	const char *need = NULL;

	switch (m->op) {
	case DG_OP_HELLO: case DG_OP_HEARTBEAT: case DG_OP_STATS:
	case DG_OP_BYE: case DG_OP_STAGE_DONE: case DG_OP_STAGE_FAILED:
	case DG_OP_ROOM_PHASE: case DG_OP_ASSIGN_OK: case DG_OP_RELEASE_OK:
	case DG_OP_QUEUES_OK: case DG_OP_THREADS_OK: case DG_OP_SOCKETS_OK:
	case DG_OP_RELOAD_OK:
		if (!dg_daemon_from_daemon(self->d, route->user))
			need = "the daemons' key";
		break;
	case DG_OP_DRAIN: case DG_OP_UNDRAIN: case DG_OP_RELEASE:
	case DG_OP_RELOAD:
		if (!dg_daemon_from_admin(self->d, route->user))
			need = "an admin key";
		break;
	default:
		break;
	}
	if (!need)
		return true;
	dg_log_warn("refused '%s' from key %s: it needs %s",
	    dg_op_name(m->op), route->user, need);
	dg_wire_send_error(sock, route, m->seq, DG_PROTO_E_DENIED,
	    "'%s' needs %s", dg_op_name(m->op), need);
	return false;
}

static void
s_on_message(s_ctl_t *self, zsock_t *sock, dg_route_t *route, dg_msg_t *m)
{
	if (!s_allowed(self, sock, route, m))
		return;
	switch (m->op) {
	case DG_OP_SUBMIT: s_on_submit(self, route, m); break;
	case DG_OP_STATUS: s_on_status(self, route, m); break;
	case DG_OP_CANCEL: s_on_cancel(self, route, m); break;
	case DG_OP_HELLO: s_on_hello(self, route, m); break;
	case DG_OP_HEARTBEAT: s_on_heartbeat(self, route, m); break;
	case DG_OP_STATS: s_on_stats(self, m); break;
	case DG_OP_BYE: s_on_bye(self, m); break;
	case DG_OP_STAGE_DONE: s_on_stage_done(self, m); break;
	case DG_OP_STAGE_FAILED: s_on_stage_failed(self, m); break;
	case DG_OP_ROOM_PHASE: s_on_room_phase(self, m); break;
	case DG_OP_ASSIGN_OK:
	case DG_OP_RELEASE_OK: break;
	case DG_OP_INSTANCES: s_on_instances(self, route, m); break;
	case DG_OP_DRAIN: s_on_drain(self, route, m, true); break;
	case DG_OP_UNDRAIN: s_on_drain(self, route, m, false); break;
	case DG_OP_RELEASE: s_on_release(self, route, m); break;
	case DG_OP_ROOMS: s_on_rooms(self, route, m); break;
	case DG_OP_QUEUES:
	case DG_OP_THREADS:
	case DG_OP_SOCKETS:
	case DG_OP_RELOAD: s_on_admin(self, route, m); break;
	case DG_OP_QUEUES_OK:
	case DG_OP_THREADS_OK:
	case DG_OP_SOCKETS_OK:
	case DG_OP_RELOAD_OK:
	case DG_OP_ERROR:
		/* Never answer these: an error for an error would loop. */
		if (!s_on_relay_reply(self, route, m))
			dg_log_debug("dropped '%s' seq %llu: no request of "
			    "ours waits for it", dg_op_name(m->op),
			    (unsigned long long)m->seq);
		break;
	default:
		dg_wire_send_error(sock, route, m->seq,
		    DG_PROTO_E_UNKNOWN_OP, "the controller does not "
		    "serve '%s'", dg_op_name(m->op));
		break;
	}
}

static int
s_on_router(zloop_t *loop, zsock_t *sock, void *arg)
{
	s_ctl_t *self = arg;
	dg_route_t route = { 0 };
	dg_msg_t *m = NULL;
	dg_proto_err_t err;

	(void)loop;
	/* Drain what is queued, a bounded number per wake-up; the
	 * daemons' batches count once. */
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	for (int i = 0; i < 256; i++) {
		if (!(zsock_events(sock) & ZMQ_POLLIN))
			break;
		zmsg_t *bodies = NULL;
		int n = dg_wire_recv_batch(sock, &route, &bodies);
		if (n < 0)
			break;
		if (n == 0) {
			dg_wire_send_error(sock, &route, 0,
			    DG_PROTO_E_MALFORMED, "no frame after the "
			    "routing frames");
			zmsg_destroy(&bodies);
		}
		int rc;
		while ((rc = dg_wire_next(&bodies, &m, &err)) >= 0) {
			if (rc == 0) {
				dg_log_debug("bad frame: %s", err.message);
				dg_wire_send_decode_error(sock, &route, &err);
				continue;
			}
			s_on_message(self, sock, &route, m);
			dg_msg_destroy(&m);
		}
		dg_route_clear(&route);
	}
	s_release_held(self);
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}

static void
s_publish_snapshot(s_ctl_t *self, int64_t now)
{
	dg_msg_t *m = dg_msg_new(DG_OP_SNAPSHOT);
	dg_instance_row_t *rows = calloc(self->ninsts + 1, sizeof *rows);

	if (m && rows) {
		for (size_t i = 0; i < self->ninsts; i++)
			s_fill_row(&self->insts[i], &rows[i], now);
		m->u.snapshot.ts_ms = zclock_time();
		m->u.snapshot.instances = rows;
		m->u.snapshot.n_instances = self->ninsts;
		m->u.snapshot.pending = zlistx_size(self->pending);
		m->u.snapshot.active = self->active;
		m->u.snapshot.done = self->ndone;
		m->u.snapshot.failed = self->nfailed;
		dg_wire_send(self->pub, NULL, m);
	}
	free(rows);
	dg_msg_destroy(&m);
	self->changed = false;
	self->last_snapshot = now;
}

static int
s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
	s_ctl_t *self = arg;
	int64_t now = zclock_mono();

	(void)loop;
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	(void)timer_id;
	s_expire_relays(self, now);
	for (size_t i = 0; i < self->ninsts; i++) {
		s_inst_t *in = &self->insts[i];
		if (in->state == I_DEAD ||
		    now - in->last_seen <= s_conf(self)->dead_after_ms)
			continue;
		in->state = I_DEAD;
		/* Its last report no longer describes anything. */
		in->incoming = in->waiting = in->ready = in->running = 0;
		in->sending = in->rooms = 0;
		dg_log_warn("%s %s is dead: silent for %lld ms",
		    dg_role_name(in->role), in->name,
		    (long long)(now - in->last_seen));
		s_event(self, "dead", in->name, 0, 0, "%s %s silent for %lld ms",
		    dg_role_name(in->role), in->name,
		    (long long)(now - in->last_seen));
		char why[128];
		snprintf(why, sizeof why, "instance %s died", in->name);
		s_fail_over(self, in->name, why);
		self->changed = true;
	}
	/* Deadlines: collect, then finish (finishing edits the tables). */
	s_req_t *late[256];
	size_t n = 0;
	for (s_req_t *r = zlistx_first(self->live); r && n < 256;
	    r = zlistx_next(self->live))
		if (now >= r->deadline)
			late[n++] = r;
	for (size_t i = 0; i < n; i++) {
		char why[128];
		snprintf(why, sizeof why, "deadline of %lld ms passed while %s",
		    (long long)late[i]->timeout_ms, s_req_states[late[i]->state]);
		s_finish(self, late[i], R_FAILED, why);
	}
	/* Keep finished requests for status queries, for a while. */
	uint64_t *id;
	while ((id = zlistx_first(self->finished))) {
		s_req_t *r = s_req_find(self, *id);
		if (r && now - r->finished < s_conf(self)->keep_finished_ms &&
		    (int64_t)zlistx_size(self->finished) <=
		    s_conf(self)->keep_finished)
			break;
		char key[24];
		if (r)
			zhashx_delete(self->reqs, s_key(key, *id));
		zlistx_delete(self->finished, zlistx_cursor(self->finished));
	}
	if ((self->changed && now - self->last_snapshot >= 100) ||
	    now - self->last_snapshot >= 5000)
		s_publish_snapshot(self, now);
	/* Ends and room reservations of this turn reach the disk before
	 * the assigns that depend on them leave. */
	s_release_held(self);
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}

static void
s_req_destroy(void **item)
{
	s_req_t *r = *item;

	if (!r)
		return;
	dg_route_clear(&r->client);
	free(r->prompt);
	free(r->negative);
	free(r->output);
	free(r);
	*item = NULL;
}

static void
s_id_destroy(void **item)
{
	free(*item);
	*item = NULL;
}

static int
s_start(dg_daemon_t *d, void **state)
{
	s_ctl_t *self = calloc(1, sizeof *self);
	const dg_controller_conf_t *c = dg_config_controller(d->cfg);

	if (!self)
		return -1;
	*state = self;
	self->d = d;
	self->reqs = zhashx_new();
	self->rooms = zhashx_new();
	self->per_client = zhashx_new();
	self->pending = zlistx_new();
	self->finished = zlistx_new();
	self->live = zlistx_new();
	self->relays = zlistx_new();
	zlistx_set_destructor(self->relays, s_relay_destroy);
	zhashx_set_destructor(self->reqs, s_req_destroy);
	zlistx_set_destructor(self->finished, s_id_destroy);
	self->held = zlistx_new();
	zlistx_set_destructor(self->held, s_held_destroy);
	for (int i = 0; i < DG_ROLE_COUNT; i++)
		self->pol[i].rng = 0x2545f4914f6cdd1dULL + (uint64_t)i;
	if (*c->journal) {
		char why[512];
		self->journal = dg_journal_open(c->journal, s_replay, self,
		    why, sizeof why);
		if (!self->journal) {
			dg_log_error("%s", why);
			return -1;
		}
		self->next_request = dg_journal_last_id(self->journal);
		/* Rooms a killed predecessor placed may still live on the
		 * stages for a moment: start past any it could have used. */
		self->next_room = dg_journal_rooms(self->journal);
		s_reserve_rooms(self);
		dg_log_info("journal %s: %llu accepted, unfinished requests "
		    "replayed; request ids continue after %llu", c->journal,
		    (unsigned long long)self->replayed,
		    (unsigned long long)self->next_request);
	}
	self->router = zsock_new(ZMQ_ROUTER);
	self->pub = zsock_new(ZMQ_PUB);
	if (!self->router || !self->pub)
		return -1;
	zsock_set_maxmsgsize(self->router, DG_PROTO_MAX_FRAME);
	zsock_set_sndhwm(self->router, 100000);
	zsock_set_rcvhwm(self->router, 100000);
	dg_daemon_server_sock(d, self->router);
	dg_daemon_server_sock(d, self->pub);
	if (zsock_bind(self->router, "%s", c->listen) < 0) {
		dg_log_error("cannot bind %s: %s", c->listen,
		    zmq_strerror(zmq_errno()));
		return -1;
	}
	if (zsock_bind(self->pub, "%s", c->publish) < 0) {
		dg_log_error("cannot bind %s: %s", c->publish,
		    zmq_strerror(zmq_errno()));
		return -1;
	}
	dg_daemon_bound(d, self->router, c->listen, "listen");
	dg_daemon_bound(d, self->pub, c->publish, "publish");
	dg_wire_register(self->router, c->listen, true);
	dg_wire_register(self->pub, c->publish, true);
	const char *pe = zsock_endpoint(self->pub);
	snprintf(self->pub_endpoint, sizeof self->pub_endpoint, "%s",
	    pe ? pe : c->publish);
	zloop_reader(d->loop, self->router, s_on_router, self);
	zloop_timer(d->loop, 20, 0, s_on_tick, self);
	dg_log_info("listening on %s, publishing on %s, policy %s",
	    c->listen, c->publish, dg_policy_name(c->policy));
	return 0;
}

static void
s_drain(void *state)
{
	s_ctl_t *self = state;
	self->draining = true;
}

static bool
s_idle(void *state)
{
	s_ctl_t *self = state;
	return self->active == 0;
}

static void
s_stop(void **state)
{
	s_ctl_t *self = *state;

	if (!self)
		return;
	/* Whatever is left ends now, each with its result. */
	s_req_t *open[1024];
	size_t n = 0;
	for (s_req_t *r = self->live ? zlistx_first(self->live) : NULL;
	    r && n < 1024; r = zlistx_next(self->live))
		open[n++] = r;
	for (size_t i = 0; i < n; i++)
		s_finish(self, open[i], R_FAILED, "controller stopped");
	for (size_t i = 0; i < self->ninsts; i++)
		zframe_destroy(&self->insts[i].identity);
	free(self->insts);
	zlistx_destroy(&self->pending);
	zlistx_destroy(&self->live);
	zlistx_destroy(&self->finished);
	zlistx_destroy(&self->relays);
	zhashx_destroy(&self->rooms);
	zhashx_destroy(&self->per_client);
	zlistx_destroy(&self->held);
	dg_journal_destroy(&self->journal);
	zhashx_destroy(&self->reqs);
	dg_wire_unregister(self->router);
	dg_wire_unregister(self->pub);
	zsock_destroy(&self->router);
	zsock_destroy(&self->pub);
	free(self);
	*state = NULL;
}

const dg_role_ops_t dg_controller_ops = {
	.start = s_start,
	.drain = s_drain,
	.idle = s_idle,
	.stop = s_stop,
};
