/*  metrics.h: the Prometheus text exposition format (version 0.0.4), and
 *  the histograms behind it.
 *
 *  A daemon's loop writes its whole exposition into a dg_metrics_t when
 *  it wants (families in order, each with its # HELP and # TYPE lines
 *  once, then its samples), and hands the text to the HTTP server
 *  (metrics_http.c), which serves the latest.  No shared counters cross
 *  threads: the loop owns every figure.
 *
 *  Names follow Prometheus conventions: a `disagg_` prefix, base units
 *  (`_seconds`, `_bytes`), `_total` for counters.  Label values are
 *  escaped (backslash, double quote, newline); names are the caller's.  */
#ifndef DG_METRICS_H
#define DG_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	DG_METRIC_COUNTER = 0,
	DG_METRIC_GAUGE,
	DG_METRIC_HISTOGRAM,
	DG_METRIC_KIND_COUNT
} dg_metric_kind_t;

/* A histogram with fixed upper bounds (ascending, +Inf implied). */
#define DG_HIST_MAX_BUCKETS 24
typedef struct {
	const double *bounds;
	size_t nbounds;
	uint64_t counts[DG_HIST_MAX_BUCKETS];   /* not cumulative */
	uint64_t count;                         /* +Inf: every observation */
	double sum;
} dg_hist_t;

/* Bounds for seconds, 1 ms to 10 min, and for sizes (batch sizes, 1 to
 * 1024). */
extern const double dg_hist_seconds[];
extern const size_t dg_hist_seconds_n;
extern const double dg_hist_sizes[];
extern const size_t dg_hist_sizes_n;

void dg_hist_init(dg_hist_t *h, const double *bounds, size_t nbounds);
void dg_hist_observe(dg_hist_t *h, double v);

typedef struct _dg_metrics_t dg_metrics_t;

dg_metrics_t *dg_metrics_new(void);
void dg_metrics_destroy(dg_metrics_t **self_p);
/* Start again (the text and the families said). */
void dg_metrics_reset(dg_metrics_t *self);

/* Labels are `n` pairs: name, value, name, value... */
typedef struct {
	const char *const *kv;
	size_t n;
} dg_labels_t;

/* The # HELP and # TYPE lines of a family; samples of it follow. */
void dg_metrics_family(dg_metrics_t *self, const char *name,
    dg_metric_kind_t kind, const char *help);
void dg_metrics_sample(dg_metrics_t *self, const char *name,
    dg_labels_t labels, double value);
/* NAME_bucket{...,le="B"} for every bound and +Inf, NAME_sum,
 * NAME_count. */
void dg_metrics_histogram(dg_metrics_t *self, const char *name,
    dg_labels_t labels, const dg_hist_t *h);

/* The text so far (NUL-terminated), or NULL when a write ran out of
 * memory since the reset. */
const char *dg_metrics_text(const dg_metrics_t *self, size_t *len);

#endif
