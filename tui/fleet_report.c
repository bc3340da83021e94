/*  fleet_report.c: the table and the JSON of `disagg bench fleet`, one
 *  row per policy, and the arithmetic they share (deadlines, ratios,
 *  percentiles), so that the two outputs cannot disagree.  */
#include <stdlib.h>
#include <string.h>

#include "fleet_report.h"
#include "json.h"

int
dg_fleet_tally_add(dg_fleet_tally_t *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->names[i], name) == 0) {
			t->counts[i]++;
			return 0;
		}
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 4;
		char **names = realloc(t->names, cap * sizeof *names);
		if (!names)
			return -1;
		t->names = names;
		long *counts = realloc(t->counts, cap * sizeof *counts);
		if (!counts)
			return -1;
		t->counts = counts;
		t->cap = cap;
	}
	if (!(t->names[t->n] = strdup(name)))
		return -1;
	t->counts[t->n++] = 1;
	return 0;
}

long
dg_fleet_tally_get(const dg_fleet_tally_t *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->names[i], name) == 0)
			return t->counts[i];
	return 0;
}

void
dg_fleet_tally_free(dg_fleet_tally_t *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->names[i]);
	free(t->names);
	free(t->counts);
	memset(t, 0, sizeof *t);
}

int
dg_fleet_result_latency(dg_fleet_result_t *r, int64_t ms)
{
	if (r->n_lat == r->cap_lat) {
		size_t cap = r->cap_lat ? 2 * r->cap_lat : 256;
		int64_t *v = realloc(r->lat_ms, cap * sizeof *v);
		if (!v)
			return -1;
		r->lat_ms = v;
		r->cap_lat = cap;
	}
	r->lat_ms[r->n_lat++] = ms;
	return 0;
}

void
dg_fleet_result_free(dg_fleet_result_t *r)
{
	dg_fleet_tally_free(&r->refused_by);
	dg_fleet_tally_free(&r->failed_by);
	free(r->lat_ms);
	r->lat_ms = NULL;
	r->n_lat = r->cap_lat = 0;
}

/* The encoder and the decoder pay step_ms once a request (stage_ref.c),
 * the transformer once a step. */
int64_t
dg_fleet_ideal_ms(const dg_fleet_setup_t *s, int64_t steps)
{
	return (steps + 2) * s->step_ms;
}

int64_t
dg_fleet_deadline_ms(const dg_fleet_setup_t *s, int64_t steps)
{
	double ms = s->deadline_factor * (double)dg_fleet_ideal_ms(s, steps);
	return ms < 1 ? 1 : (int64_t)(ms + 0.5);
}

static int
s_cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
	return (a > b) - (a < b);
}

/* Nearest rank; -1 with no sample. */
static int64_t
s_pct(const dg_fleet_result_t *r, int pct)
{
	if (!r->n_lat)
		return -1;
	size_t rank = (r->n_lat * (size_t)pct + 99) / 100;
	return r->lat_ms[rank ? rank - 1 : 0];
}

static double
s_ratio(long num, long den)
{
	return den > 0 ? (double)num / (double)den : 0.0;
}

static void
s_sort(dg_fleet_result_t *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		qsort(r[i].lat_ms, r[i].n_lat, sizeof *r[i].lat_ms, s_cmp_i64);
}

void
dg_fleet_print_header(FILE *out, const dg_fleet_setup_t *s)
{
	fprintf(out, "disagg bench fleet: %ld encoder%s, %ld transformer%s, "
	    "%ld decoder%s; reference stages, %ld worker%s each, step_ms %lld\n",
	    s->encoders, s->encoders == 1 ? "" : "s", s->transformers,
	    s->transformers == 1 ? "" : "s", s->decoders,
	    s->decoders == 1 ? "" : "s", s->workers,
	    s->workers == 1 ? "" : "s", (long long)s->step_ms);
	fprintf(out, "  load %.2f of the transformers' %.2f req/s: ", s->load,
	    s->capacity);
	if (s->burst)
		fprintf(out, "bursts of %ld every %lld ms", s->burst,
		    (long long)s->every_ms);
	else
		fprintf(out, "Poisson at %.2f/s", s->rate);
	fprintf(out, " for %g s, %zu arrivals (seed %llu)\n", s->duration_s,
	    s->arrivals, (unsigned long long)s->seed);
	fprintf(out, "  mix (64x64, 5 frames):");
	for (size_t i = 0; i < s->mix->n; i++)
		fprintf(out, "%s %lld steps %.0f%% (deadline %lld ms)",
		    i ? "," : "", (long long)s->mix->kinds[i].steps,
		    100.0 * s->mix->kinds[i].share,
		    (long long)dg_fleet_deadline_ms(s, s->mix->kinds[i].steps));
	fprintf(out, "; deadline %g x ideal\n", s->deadline_factor);
	if (*s->approximated)
		fprintf(out, "  lightx2v approximated: %s\n", s->approximated);
}

static void
s_cell(FILE *out, int64_t v)
{
	if (v < 0)
		fprintf(out, " %7s", "-");
	else
		fprintf(out, " %7lld", (long long)v);
}

static void
s_tally_line(FILE *out, const char *what, const dg_fleet_tally_t *t)
{
	fprintf(out, " %s:", what);
	if (!t->n)
		fprintf(out, " none");
	for (size_t i = 0; i < t->n; i++)
		fprintf(out, "%s %s %ld", i ? "," : "", t->names[i],
		    t->counts[i]);
	fprintf(out, ";");
}

void
dg_fleet_print_table(FILE *out, dg_fleet_result_t *r, size_t n)
{
	s_sort(r, n);
	fprintf(out, "\n%-16s %7s %8s %7s %7s %5s %6s %6s %7s %7s %7s %7s\n",
	    "POLICY", "OFFERED", "ACCEPTED", "REFUSED", "DONE-IN", "LATE",
	    "FAILED", "SLO", "DL-FAIL", "P50-MS", "P90-MS", "P99-MS");
	for (size_t i = 0; i < n; i++) {
		const dg_fleet_result_t *x = &r[i];
		fprintf(out, "%-16s %7ld %8ld %7ld %7ld %5ld %6ld %6.3f %7.3f",
		    x->policy, x->offered, x->accepted, x->refused, x->done_in,
		    x->done_late, x->failed, s_ratio(x->done_in, x->offered),
		    s_ratio(dg_fleet_tally_get(&x->failed_by, "deadline"),
		    x->accepted));
		s_cell(out, s_pct(x, 50));
		s_cell(out, s_pct(x, 90));
		s_cell(out, s_pct(x, 99));
		fprintf(out, "\n");
	}
	fprintf(out, "\nSLO = done within deadline / offered; DL-FAIL = "
	    "accepted that failed on their deadline / accepted;\nlatency "
	    "from submit to result, of done requests.\n");
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "  %-16s", r[i].policy);
		s_tally_line(out, "refused", &r[i].refused_by);
		s_tally_line(out, " failed", &r[i].failed_by);
		fprintf(out, " sender late by <= %lld ms\n",
		    (long long)r[i].lag_max_ms);
		if (r[i].error)
			fprintf(out, "  %-16s run FAILED: %s\n", "", r[i].error);
	}
}

/* A percentile, or null without a sample. */
static void
s_json_pct(FILE *out, const char *key, const dg_fleet_result_t *r, int pct)
{
	int64_t v = s_pct(r, pct);

	if (v < 0)
		fprintf(out, ", \"%s\": null", key);
	else
		fprintf(out, ", \"%s\": %lld", key, (long long)v);
}

static void
s_json_tally(FILE *out, const dg_fleet_tally_t *t)
{
	fprintf(out, "{");
	for (size_t i = 0; i < t->n; i++) {
		fprintf(out, "%s", i ? ", " : "");
		dg_json_str(out, t->names[i]);
		fprintf(out, ": %ld", t->counts[i]);
	}
	fprintf(out, "}");
}

void
dg_fleet_print_json(FILE *out, const dg_fleet_setup_t *s,
    dg_fleet_result_t *r, size_t n)
{
	s_sort(r, n);
	fprintf(out, "{\"encoders\": %ld, \"transformers\": %ld, "
	    "\"decoders\": %ld, \"workers\": %ld, \"step_ms\": %lld,\n"
	    " \"load\": %g, \"capacity_per_s\": %g, \"rate_per_s\": %g, "
	    "\"duration_s\": %g, \"burst\": %ld, \"every_ms\": %lld, "
	    "\"seed\": %llu, \"arrivals\": %zu,\n \"deadline_factor\": %g, "
	    "\"mix\": [", s->encoders, s->transformers, s->decoders,
	    s->workers, (long long)s->step_ms, s->load, s->capacity, s->rate,
	    s->duration_s, s->burst, (long long)s->every_ms,
	    (unsigned long long)s->seed, s->arrivals, s->deadline_factor);
	for (size_t i = 0; i < s->mix->n; i++)
		fprintf(out, "%s{\"steps\": %lld, \"share\": %g, "
		    "\"deadline_ms\": %lld}", i ? ", " : "",
		    (long long)s->mix->kinds[i].steps, s->mix->kinds[i].share,
		    (long long)dg_fleet_deadline_ms(s, s->mix->kinds[i].steps));
	fprintf(out, "],\n \"baseline_approximated\": ");
	if (*s->approximated)
		dg_json_str(out, s->approximated);
	else
		fprintf(out, "null");
	fprintf(out, ",\n \"policies\": [");
	for (size_t i = 0; i < n; i++) {
		const dg_fleet_result_t *x = &r[i];
		fprintf(out, "%s\n  {\"policy\": ", i ? "," : "");
		dg_json_str(out, x->policy);
		fprintf(out, ", \"offered\": %ld, \"accepted\": %ld, "
		    "\"refused\": %ld, \"refused_by_code\": ", x->offered,
		    x->accepted, x->refused);
		s_json_tally(out, &x->refused_by);
		fprintf(out, ",\n   \"done_in_deadline\": %ld, \"done_late\": "
		    "%ld, \"failed\": %ld, \"failed_by_reason\": ", x->done_in,
		    x->done_late, x->failed);
		s_json_tally(out, &x->failed_by);
		fprintf(out, ",\n   \"slo_attainment\": %.4f, "
		    "\"deadline_failed_of_accepted\": %.4f",
		    s_ratio(x->done_in, x->offered),
		    s_ratio(dg_fleet_tally_get(&x->failed_by, "deadline"),
		    x->accepted));
		s_json_pct(out, "p50_ms", x, 50);
		s_json_pct(out, "p90_ms", x, 90);
		s_json_pct(out, "p99_ms", x, 99);
		fprintf(out, ", \"sender_lag_max_ms\": %lld, \"error\": ",
		    (long long)x->lag_max_ms);
		if (x->error)
			dg_json_str(out, x->error);
		else
			fprintf(out, "null");
		fprintf(out, "}");
	}
	fprintf(out, "\n]}\n");
}
