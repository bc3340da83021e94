/*  stage_metrics.c: a stage daemon's GET /metrics (stage_metrics.h).  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "metrics_http.h"
#include "stage_metrics.h"
#include "version.h"

#define EVERY_MS 1000

struct _dg_stage_metrics_t {
	char role[64], name[64];
	dg_metrics_t *m;
	dg_metrics_http_t *http;
	int64_t at;
	dg_hist_t compute, batch, xfer[2];      /* xfer: send, receive */
	dg_hist_t parts[5];                     /* s_parts */
};

static const char *const s_dirs[2] = { "send", "receive" };
/* result.timings' words for a room's time at a stage. */
static const char *const s_parts[5] =
	{ "queue", "transfer_in", "compute", "transfer_out", "total" };

dg_stage_metrics_t *
dg_stage_metrics_new(const char *hostport, const char *role,
    const char *name, char *why, size_t whysize)
{
	dg_stage_metrics_t *self = calloc(1, sizeof *self);

	if (!self || !(self->m = dg_metrics_new())) {
		free(self);
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	self->http = dg_metrics_http_new(hostport, why, whysize);
	if (!self->http) {
		dg_metrics_destroy(&self->m);
		free(self);
		return NULL;
	}
	snprintf(self->role, sizeof self->role, "%s", role);
	snprintf(self->name, sizeof self->name, "%s", name);
	dg_hist_init(&self->compute, dg_hist_seconds, dg_hist_seconds_n);
	dg_hist_init(&self->batch, dg_hist_sizes, dg_hist_sizes_n);
	for (int d = 0; d < 2; d++)
		dg_hist_init(&self->xfer[d], dg_hist_seconds,
		    dg_hist_seconds_n);
	for (int p = 0; p < 5; p++)
		dg_hist_init(&self->parts[p], dg_hist_seconds,
		    dg_hist_seconds_n);
	return self;
}

void
dg_stage_metrics_destroy(dg_stage_metrics_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_metrics_http_destroy(&(*self_p)->http);
	dg_metrics_destroy(&(*self_p)->m);
	free(*self_p);
	*self_p = NULL;
}

void
dg_stage_metrics_batch(dg_stage_metrics_t *self, const dg_room_batch_t *b)
{
	dg_hist_observe(&self->compute, b->compute_s);
	dg_hist_observe(&self->batch, (double)b->n);
}

void
dg_stage_metrics_xfer(dg_stage_metrics_t *self, const dg_xfer_event_t *ev)
{
	if (ev->status == DG_XFER_DONE)
		dg_hist_observe(&self->xfer[ev->dir == DG_XFER_SEND ? 0 : 1],
		    (double)ev->ms / 1000);
}

void
dg_stage_metrics_room(dg_stage_metrics_t *self, const dg_stage_done_msg_t *sd)
{
	const int64_t us[5] = { sd->queue_us, sd->in_us, sd->compute_us,
	    sd->out_us, sd->total_us };

	for (int p = 0; p < 5; p++)
		dg_hist_observe(&self->parts[p], (double)us[p] / 1e6);
}

/* One sample labelled role, instance and one more label (or none). */
static void
s_one(dg_stage_metrics_t *self, const char *metric, const char *key,
    const char *value, double v)
{
	const char *l[] = { "role", self->role, "instance", self->name, key,
	    value };
	dg_metrics_sample(self->m, metric, (dg_labels_t){ l, key ? 3 : 2 },
	    v);
}

static void
s_transfers(dg_stage_metrics_t *self, dg_xfer_t *xfer)
{
	dg_metrics_t *m = self->m;
	dg_xfer_stats_t xs;

	dg_xfer_stats(xfer, &xs);
	dg_metrics_family(m, "disagg_transfer_bytes_total", DG_METRIC_COUNTER,
	    "Tensor bytes moved over the fabric, by direction.");
	s_one(self, "disagg_transfer_bytes_total", "direction", "send",
	    (double)xs.bytes_sent);
	s_one(self, "disagg_transfer_bytes_total", "direction", "receive",
	    (double)xs.bytes_received);
	dg_metrics_family(m, "disagg_transfer_seconds", DG_METRIC_HISTOGRAM,
	    "Tensor transfers that completed, from start to end.");
	for (int d = 0; d < 2; d++) {
		const char *l[] = { "role", self->role, "instance", self->name,
		    "direction", s_dirs[d] };
		dg_metrics_histogram(m, "disagg_transfer_seconds",
		    (dg_labels_t){ l, 3 }, &self->xfer[d]);
	}
	dg_metrics_family(m, "disagg_transfer_errors_total",
	    DG_METRIC_COUNTER, "Transfers that failed, by class.");
	const struct { const char *cls; uint64_t n; } errs[] = {
		{ "send_failed", xs.sends_failed },
		{ "receive_failed", xs.recvs_failed },
		{ "stale", xs.recvs_stale },
		{ "chunk_retried", xs.chunks_retried },
		{ "attempt_retried", xs.attempts_retried },
	};
	for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
		s_one(self, "disagg_transfer_errors_total", "class",
		    errs[i].cls, (double)errs[i].n);
	dg_metrics_family(m, "disagg_transfer_local_total", DG_METRIC_COUNTER,
	    "Sends to a receiver on this host (zero copy), by kind: handoff "
	    "(written in place), copy (through its mapped pool).");
	s_one(self, "disagg_transfer_local_total", "kind", "handoff",
	    (double)xs.handoffs);
	s_one(self, "disagg_transfer_local_total", "kind", "copy",
	    (double)xs.local_copies);
	/* Every (peer, rail): grow until the list is not cut. */
	size_t cap = 64, n;
	dg_xfer_rail_t *rails = NULL;
	for (;;) {
		dg_xfer_rail_t *r = realloc(rails, cap * sizeof *rails);
		if (!r) {
			free(rails);
			return;
		}
		rails = r;
		n = dg_xfer_rail_health(xfer, rails, cap);
		if (n < cap)
			break;
		cap *= 2;
	}
	dg_metrics_family(m, "disagg_transfer_rail_errors_total",
	    DG_METRIC_COUNTER, "Chunk errors per peer and rail.");
	for (size_t i = 0; i < n; i++) {
		char rail[16];
		snprintf(rail, sizeof rail, "%d", rails[i].rail);
		const char *l[] = { "role", self->role, "instance", self->name,
		    "peer", rails[i].peer, "rail", rail };
		dg_metrics_sample(m, "disagg_transfer_rail_errors_total",
		    (dg_labels_t){ l, 4 }, (double)rails[i].errors);
	}
	free(rails);
}

void
dg_stage_metrics_tick(dg_stage_metrics_t *self, int64_t now,
    dg_rooms_t *rooms, dg_pool_t *pool, dg_xfer_t *xfer)
{
	dg_metrics_t *m = self->m;
	const char *me[] = { "role", self->role, "instance", self->name };
	size_t len;

	if (self->at && now - self->at < EVERY_MS)
		return;
	self->at = now;
	dg_metrics_reset(m);
	dg_metrics_family(m, "disagg_build_info", DG_METRIC_GAUGE,
	    "Always 1; the version of this daemon.");
	s_one(self, "disagg_build_info", "version", DG_VERSION, 1);
	dg_metrics_family(m, "disagg_stage_rooms", DG_METRIC_GAUGE,
	    "Rooms in this stage, by queue.");
	for (int q = 0; q < DG_QUEUE_COUNT; q++)
		s_one(self, "disagg_stage_rooms", "queue",
		    dg_room_queue_name((dg_room_queue_t)q),
		    (double)dg_rooms_queued(rooms, (dg_room_queue_t)q));
	dg_metrics_family(m, "disagg_stage_rooms_total", DG_METRIC_COUNTER,
	    "Rooms that ended in this stage, by status.");
	s_one(self, "disagg_stage_rooms_total", "status", "done",
	    (double)dg_rooms_done(rooms));
	s_one(self, "disagg_stage_rooms_total", "status", "failed",
	    (double)dg_rooms_failed(rooms));
	dg_metrics_family(m, "disagg_stage_suspensions_total",
	    DG_METRIC_COUNTER, "Runs suspended at a step boundary for a more "
	    "urgent room (they resume later).");
	s_one(self, "disagg_stage_suspensions_total", NULL, NULL,
	    (double)dg_rooms_suspensions(rooms));
	dg_metrics_family(m, "disagg_stage_compute_seconds",
	    DG_METRIC_HISTOGRAM, "The stage's run of one batch.");
	dg_metrics_histogram(m, "disagg_stage_compute_seconds",
	    (dg_labels_t){ me, 2 }, &self->compute);
	dg_metrics_family(m, "disagg_stage_batch_size", DG_METRIC_HISTOGRAM,
	    "Rooms per batch run.");
	dg_metrics_histogram(m, "disagg_stage_batch_size",
	    (dg_labels_t){ me, 2 }, &self->batch);
	dg_metrics_family(m, "disagg_stage_room_seconds", DG_METRIC_HISTOGRAM,
	    "Where a room's time at this stage went, as result.timings "
	    "has it: queue, transfer_in, compute, transfer_out, total.");
	for (int p = 0; p < 5; p++) {
		const char *l[] = { "role", self->role, "instance", self->name,
		    "component", s_parts[p] };
		dg_metrics_histogram(m, "disagg_stage_room_seconds",
		    (dg_labels_t){ l, 3 }, &self->parts[p]);
	}

	dg_pool_stats_t ps;
	dg_pool_stats(pool, &ps);
	double slot = (double)dg_pool_slot_size(pool);
	dg_metrics_family(m, "disagg_pool_bytes", DG_METRIC_GAUGE,
	    "The pool's bytes by slot state: free, reserved (for a room's "
	    "input or output), filling (data arriving), ready, in_use.");
	for (int s = 0; s < DG_SLOT_NSTATES; s++)
		s_one(self, "disagg_pool_bytes", "state",
		    dg_slot_state_name(s), ps.slots_in[s] * slot);
	dg_metrics_family(m, "disagg_pool_extents", DG_METRIC_GAUGE,
	    "Extents (one room's input or output) held, by slot state.");
	for (int s = 1; s < DG_SLOT_NSTATES; s++)
		s_one(self, "disagg_pool_extents", "state",
		    dg_slot_state_name(s), ps.extents[s]);
	s_transfers(self, xfer);
	const char *text = dg_metrics_text(m, &len);
	if (text)
		dg_metrics_http_publish(self->http, text, len);
}
