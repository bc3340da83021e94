/*  lifecycle_metrics.c: the controller's Prometheus metrics, read from
 *  its core (lifecycle.h, dg_lc_metrics).  Names follow the conventions
 *  operators already scrape: vLLM's num_requests_waiting and
 *  e2e_request_latency_seconds become disagg_requests_waiting and
 *  disagg_request_duration_seconds.  */
#include <stdio.h>

#include "lifecycle.h"
#include "lifecycle_impl.h"
#include "metrics.h"
#include "version.h"

void
dg_lc_metrics(dg_lifecycle_t *self, const char *name, dg_metrics_t *m)
{
	const char *base[] = { "role", "controller", "instance", name };
	const dg_labels_t me = { base, 2 };
	dg_lc_counts_t c;

	dg_lc_counts(self, &c);
	dg_metrics_family(m, "disagg_build_info", DG_METRIC_GAUGE,
	    "Always 1; the version of this daemon.");
	const char *build[] = { "role", "controller", "instance", name,
	    "version", DG_VERSION };
	dg_metrics_sample(m, "disagg_build_info", (dg_labels_t){ build, 3 },
	    1);

	dg_metrics_family(m, "disagg_requests_total", DG_METRIC_COUNTER,
	    "Requests ended, by terminal status.");
	const struct { dg_req_state_t st; uint64_t n; } ends[] = {
		{ DG_REQ_DONE, c.done }, { DG_REQ_FAILED, c.failed },
		{ DG_REQ_CANCELLED, c.cancelled },
	};
	for (size_t i = 0; i < 3; i++) {
		const char *l[] = { "role", "controller", "instance", name,
		    "status", dg_req_state_name(ends[i].st) };
		dg_metrics_sample(m, "disagg_requests_total",
		    (dg_labels_t){ l, 3 }, (double)ends[i].n);
	}
	dg_metrics_family(m, "disagg_requests_in_flight", DG_METRIC_GAUGE,
	    "Requests accepted and not yet ended.");
	dg_metrics_sample(m, "disagg_requests_in_flight", me,
	    (double)c.active);
	dg_metrics_family(m, "disagg_requests_waiting", DG_METRIC_GAUGE,
	    "Accepted requests waiting for an instance of every role (the "
	    "admission queue).");
	dg_metrics_sample(m, "disagg_requests_waiting", me,
	    (double)c.pending);
	dg_metrics_family(m, "disagg_requests_in_flight_limit",
	    DG_METRIC_GAUGE, "max_pending: past it, submit is answered "
	    "busy.");
	dg_metrics_sample(m, "disagg_requests_in_flight_limit", me,
	    (double)self->conf->max_pending);
	dg_metrics_family(m, "disagg_request_duration_seconds",
	    DG_METRIC_HISTOGRAM, "From submit to result, every request "
	    "that ended.");
	dg_metrics_histogram(m, "disagg_request_duration_seconds", me,
	    &self->duration);

	/* Every role and state, zero too: a series that vanishes reads as
	 * a scrape that failed. */
	dg_metrics_family(m, "disagg_instances", DG_METRIC_GAUGE,
	    "Instances the controller knows, by role and state.");
	for (size_t i = 0; i < self->chain.nroles; i++) {
		size_t n[DG_INST_STATE_COUNT] = { 0 };
		for (size_t k = 0; k < dg_registry_count(self->reg); k++) {
			const dg_inst_t *in = dg_registry_at(self->reg, k);
			if (in->index == (int)i)
				n[in->state]++;
		}
		for (int s = 0; s < DG_INST_STATE_COUNT; s++) {
			const char *l[] = { "role", self->chain.roles[i],
			    "instance", name, "state",
			    dg_inst_state_name((dg_inst_state_t)s) };
			dg_metrics_sample(m, "disagg_instances",
			    (dg_labels_t){ l, 3 }, (double)n[s]);
		}
	}

	/* The cost model (cost.h), per stage instance. */
	dg_metrics_family(m, "disagg_instance_backlog_seconds",
	    DG_METRIC_GAUGE, "Predicted compute of the rooms placed on a "
	    "stage instance and not done there.");
	dg_metrics_family(m, "disagg_instance_cost_seconds_per_megapixel",
	    DG_METRIC_GAUGE, "A stage instance's learned compute per "
	    "megapixel-step (0: nothing learned yet).");
	for (size_t k = 0; k < dg_registry_count(self->reg); k++) {
		const dg_inst_t *in = dg_registry_at(self->reg, k);
		const char *l[] = { "role", in->role, "instance", name,
		    "stage", in->name };
		dg_metrics_sample(m, "disagg_instance_backlog_seconds",
		    (dg_labels_t){ l, 3 }, in->backlog_us > 0 ?
		    (double)in->backlog_us / 1e6 : 0);
		dg_metrics_sample(m, "disagg_instance_cost_seconds_per_megapixel",
		    (dg_labels_t){ l, 3 }, in->cost.us_per_unit);
	}
}
