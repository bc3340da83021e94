/*  metrics.c: the Prometheus text exposition format (metrics.h).  Written
 *  by hand: Debian has no C client library for it, and the format is a
 *  few lines of text per sample.  */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

const double dg_hist_seconds[] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
	10, 30, 60, 120, 300, 600,
};
const size_t dg_hist_seconds_n = sizeof dg_hist_seconds /
    sizeof dg_hist_seconds[0];
const double dg_hist_sizes[] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024,
};
const size_t dg_hist_sizes_n = sizeof dg_hist_sizes / sizeof dg_hist_sizes[0];

void
dg_hist_init(dg_hist_t *h, const double *bounds, size_t nbounds)
{
	memset(h, 0, sizeof *h);
	h->bounds = bounds;
	h->nbounds = nbounds < DG_HIST_MAX_BUCKETS ? nbounds :
	    DG_HIST_MAX_BUCKETS;
}

void
dg_hist_observe(dg_hist_t *h, double v)
{
	for (size_t i = 0; i < h->nbounds; i++)
		if (v <= h->bounds[i]) {
			h->counts[i]++;
			break;
		}
	h->count++;
	h->sum += v;
}

struct _dg_metrics_t {
	char *buf;
	size_t len, cap;
	bool failed;
};

dg_metrics_t *
dg_metrics_new(void)
{
	return calloc(1, sizeof(dg_metrics_t));
}

void
dg_metrics_destroy(dg_metrics_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	free((*self_p)->buf);
	free(*self_p);
	*self_p = NULL;
}

void
dg_metrics_reset(dg_metrics_t *self)
{
	self->len = 0;
	self->failed = false;
	if (self->buf)
		self->buf[0] = '\0';
}

static void
s_put(dg_metrics_t *self, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
s_put(dg_metrics_t *self, const char *fmt, ...)
{
	va_list ap;

	if (self->failed)
		return;
	for (;;) {
		size_t room = self->cap - self->len;
		va_start(ap, fmt);
		int n = self->buf ? vsnprintf(self->buf + self->len, room, fmt,
		    ap) : -1;
		va_end(ap);
		if (n >= 0 && (size_t)n < room) {
			self->len += (size_t)n;
			return;
		}
		size_t cap = self->cap ? 2 * self->cap : 16384;
		while (n >= 0 && cap - self->len <= (size_t)n)
			cap *= 2;
		char *b = realloc(self->buf, cap);
		if (!b) {
			self->failed = true;
			return;
		}
		self->buf = b;
		self->cap = cap;
	}
}

/* A label value with \, " and newline escaped. */
static void
s_put_value(dg_metrics_t *self, const char *v)
{
	for (const char *p = v ? v : ""; *p; p++) {
		if (*p == '\\')
			s_put(self, "\\\\");
		else if (*p == '"')
			s_put(self, "\\\"");
		else if (*p == '\n')
			s_put(self, "\\n");
		else
			s_put(self, "%c", *p);
	}
}

static void
s_put_labels(dg_metrics_t *self, dg_labels_t l, const char *le)
{
	if (l.n == 0 && !le)
		return;
	s_put(self, "{");
	for (size_t i = 0; i < l.n; i++) {
		s_put(self, "%s%s=\"", i ? "," : "", l.kv[2 * i]);
		s_put_value(self, l.kv[2 * i + 1]);
		s_put(self, "\"");
	}
	if (le)
		s_put(self, "%sle=\"%s\"", l.n ? "," : "", le);
	s_put(self, "}");
}

/* Go's strconv formatting, as Prometheus writes: integers plainly, the
 * rest with enough digits to read back, and +Inf, -Inf, NaN. */
static void
s_put_number(dg_metrics_t *self, double v)
{
	if (isnan(v))
		s_put(self, "NaN");
	else if (isinf(v))
		s_put(self, v > 0 ? "+Inf" : "-Inf");
	else if (v == (double)(int64_t)v && fabs(v) < 1e15)
		s_put(self, "%lld", (long long)v);
	else
		s_put(self, "%.17g", v);
}

static const char *const s_kinds[DG_METRIC_KIND_COUNT] = {
	"counter", "gauge", "histogram",
};

void
dg_metrics_family(dg_metrics_t *self, const char *name,
    dg_metric_kind_t kind, const char *help)
{
	s_put(self, "# HELP %s ", name);
	for (const char *p = help; *p; p++) {
		/* HELP escapes only backslash and newline. */
		if (*p == '\\')
			s_put(self, "\\\\");
		else if (*p == '\n')
			s_put(self, "\\n");
		else
			s_put(self, "%c", *p);
	}
	s_put(self, "\n# TYPE %s %s\n", name, s_kinds[kind]);
}

void
dg_metrics_sample(dg_metrics_t *self, const char *name, dg_labels_t labels,
    double value)
{
	s_put(self, "%s", name);
	s_put_labels(self, labels, NULL);
	s_put(self, " ");
	s_put_number(self, value);
	s_put(self, "\n");
}

void
dg_metrics_histogram(dg_metrics_t *self, const char *name,
    dg_labels_t labels, const dg_hist_t *h)
{
	uint64_t cum = 0;
	char le[32];

	for (size_t i = 0; i < h->nbounds; i++) {
		cum += h->counts[i];
		snprintf(le, sizeof le, "%g", h->bounds[i]);
		s_put(self, "%s_bucket", name);
		s_put_labels(self, labels, le);
		s_put(self, " %llu\n", (unsigned long long)cum);
	}
	s_put(self, "%s_bucket", name);
	s_put_labels(self, labels, "+Inf");
	s_put(self, " %llu\n%s_sum", (unsigned long long)h->count, name);
	s_put_labels(self, labels, NULL);
	s_put(self, " ");
	s_put_number(self, h->sum);
	s_put(self, "\n%s_count", name);
	s_put_labels(self, labels, NULL);
	s_put(self, " %llu\n", (unsigned long long)h->count);
}

const char *
dg_metrics_text(const dg_metrics_t *self, size_t *len)
{
	if (self->failed)
		return NULL;
	if (len)
		*len = self->len;
	return self->buf ? self->buf : "";
}
