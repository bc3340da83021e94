/*  window.h: durations over a sliding span of time (the last 60 s, say):
 *  how many, and their quantiles, for the p50 and p99 an operator reads
 *  as "lately", whatever the rate.  A slot per second holds a histogram
 *  of log-linear bins (16 a power of two: a quantile is within about 3%
 *  of the exact one; exact below 16); a slot older than the span is
 *  reused.  Memory is fixed: about 2.3 KiB a second of span.  */
#ifndef DG_WINDOW_H
#define DG_WINDOW_H

#include <stddef.h>
#include <stdint.h>

typedef struct _dg_window_t dg_window_t;

/* A window of span_ms (whole seconds, 1 s to 1 h); NULL when out of
 * memory or the span is out of range. */
dg_window_t *dg_window_new(int64_t span_ms);
void dg_window_destroy(dg_window_t **self_p);

/* One duration (negative counts as 0) observed at `now` (monotonic
 * milliseconds, never going back). */
void dg_window_add(dg_window_t *self, int64_t now, int64_t value);

/* How many were added within the span before `now`. */
uint64_t dg_window_count(const dg_window_t *self, int64_t now);

/* The q-quantile (0 < q <= 1) of those: the smallest value with at
 * least q of them at or below it; 0 when there are none. */
int64_t dg_window_quantile(const dg_window_t *self, int64_t now, double q);

#endif
