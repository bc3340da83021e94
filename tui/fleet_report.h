/*  fleet_report.h: what `disagg bench fleet` measured, per policy, and
 *  its table and JSON.  */
#ifndef DG_FLEET_REPORT_H
#define DG_FLEET_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fleet_load.h"

/* Counts by word (an error code, a reason of failure), in first-seen
 * order; it grows with every new word. */
typedef struct {
	char **names;
	long *counts;
	size_t n, cap;
} dg_fleet_tally_t;

int dg_fleet_tally_add(dg_fleet_tally_t *t, const char *name);
long dg_fleet_tally_get(const dg_fleet_tally_t *t, const char *name);
void dg_fleet_tally_free(dg_fleet_tally_t *t);

/* One policy's run.  offered = accepted + refused (a submit never
 * answered is refused as "no-reply"); accepted = done_in + done_late +
 * failed (a request never ended fails as "no-result"). */
typedef struct {
	const char *policy;
	const char *error;              /* NULL, or why the run stopped */
	long offered, accepted, refused, done_in, done_late, failed;
	dg_fleet_tally_t refused_by;    /* error code -> submits */
	dg_fleet_tally_t failed_by;     /* reason class -> requests */
	int64_t *lat_ms;                /* of every done request */
	size_t n_lat, cap_lat;
	int64_t lag_max_ms;             /* the sender behind its plan */
} dg_fleet_result_t;

int dg_fleet_result_latency(dg_fleet_result_t *r, int64_t ms);
void dg_fleet_result_free(dg_fleet_result_t *r);

/* The invocation, as the report states it. */
typedef struct {
	long encoders, transformers, decoders, workers;
	int64_t step_ms;
	double load, capacity, rate;    /* per second */
	double duration_s;
	long burst;                     /* 0: Poisson */
	int64_t every_ms;
	uint64_t seed;
	const dg_fleet_mix_t *mix;
	double deadline_factor;
	size_t arrivals;
	const char *approximated;       /* "" or what the baseline lacks */
} dg_fleet_setup_t;

/* A job's ideal end-to-end time and its deadline, in ms. */
int64_t dg_fleet_ideal_ms(const dg_fleet_setup_t *s, int64_t steps);
int64_t dg_fleet_deadline_ms(const dg_fleet_setup_t *s, int64_t steps);

void dg_fleet_print_header(FILE *out, const dg_fleet_setup_t *s);
void dg_fleet_print_table(FILE *out, dg_fleet_result_t *r, size_t n);
void dg_fleet_print_json(FILE *out, const dg_fleet_setup_t *s,
    dg_fleet_result_t *r, size_t n);

#endif
