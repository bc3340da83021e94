/*  console_history.c: what the Overview's sparklines draw: each
 *  instance's req/s and p50 as sampled at every refresh (one sample per
 *  instances.ok), the last DG_HISTORY_MS of them, and a sparkline of a
 *  series in Unicode blocks (a UTF-8 locale) or ASCII.
 *
 *  A glyph is a slice of time aligned to the clock, not to the newest
 *  sample, so a sparkline moves left one glyph at a time instead of
 *  shimmering as samples cross slice edges.  */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "console.h"

typedef struct {
	int64_t at;                     /* monotonic ms */
	double v[DG_SERIES_COUNT];
} s_sample_t;

typedef struct {
	char name[64];
	s_sample_t *s;                  /* ring of cap */
	size_t first, n;
} s_inst_t;

struct dg_history {
	int64_t window_ms;
	size_t cap;                     /* samples per instance */
	s_inst_t *inst;
	size_t ninst;
};

dg_history_t *
dg_history_new(int64_t window_ms, int64_t interval_ms)
{
	dg_history_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->window_ms = window_ms;
	/* Room for the window at the refresh interval, and some to spare
	 * for replies that come early. */
	self->cap = (size_t)(window_ms / (interval_ms > 0 ? interval_ms : 1))
	    * 2 + 2;
	return self;
}

void
dg_history_destroy(dg_history_t **self_p)
{
	dg_history_t *self = *self_p;

	if (!self)
		return;
	for (size_t i = 0; i < self->ninst; i++)
		free(self->inst[i].s);
	free(self->inst);
	free(self);
	*self_p = NULL;
}

static s_inst_t *
s_find(const dg_history_t *self, const char *name)
{
	for (size_t i = 0; name && i < self->ninst; i++)
		if (strcmp(self->inst[i].name, name) == 0)
			return &self->inst[i];
	return NULL;
}

static s_inst_t *
s_get(dg_history_t *self, const char *name)
{
	s_inst_t *in = s_find(self, name);

	if (in || !name)
		return in;
	s_inst_t *all = realloc(self->inst, (self->ninst + 1) * sizeof *all);
	if (!all)
		return NULL;
	self->inst = all;
	in = &all[self->ninst];
	memset(in, 0, sizeof *in);
	in->s = calloc(self->cap, sizeof *in->s);
	if (!in->s)
		return NULL;
	snprintf(in->name, sizeof in->name, "%s", name);
	self->ninst++;
	return in;
}

void
dg_history_sample(dg_history_t *self, int64_t now,
    const dg_instance_row_t *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		s_inst_t *in = s_get(self, rows[i].name);
		if (!in)
			continue;
		/* Past the window, or the ring full: the oldest go. */
		while (in->n && (in->n == self->cap ||
		    now - in->s[in->first].at > self->window_ms)) {
			in->first = (in->first + 1) % self->cap;
			in->n--;
		}
		s_sample_t *s = &in->s[(in->first + in->n++) % self->cap];
		s->at = now;
		s->v[DG_SERIES_RPS] = rows[i].rps;
		s->v[DG_SERIES_P50] = (double)rows[i].p50_us / 1000.0;
	}
}

size_t
dg_history_count(const dg_history_t *self, const char *name)
{
	const s_inst_t *in = s_find(self, name);

	return in ? in->n : 0;
}

/* Eight levels, lowest first: block elements, or ASCII. */
static const char *const s_blocks[8] = {
	"\u2581", "\u2582", "\u2583", "\u2584",
	"\u2585", "\u2586", "\u2587", "\u2588"
};
static const char s_ascii[8] = { '_', '.', ',', '-', '=', '+', '*', '#' };

const char *
dg_history_spark(const dg_history_t *self, const char *name,
    dg_series_t series, int width, int64_t now, bool utf8, char *buf,
    size_t size)
{
	const s_inst_t *in = s_find(self, name);
	int64_t slice = width > 0 ? self->window_ms / width : 1;
	double sum[256], max = 0;
	int count[256];
	size_t len = 0;

	if (width > 256)
		width = 256;
	memset(count, 0, sizeof count);
	memset(sum, 0, sizeof sum);
	if (slice < 1)
		slice = 1;
	/* Glyph width-1 is the slice that holds now. */
	int64_t last = now / slice;
	for (size_t i = 0; in && i < in->n; i++) {
		const s_sample_t *s = &in->s[(in->first + i) % self->cap];
		int64_t g = width - 1 - (last - s->at / slice);
		if (g < 0 || g >= width)
			continue;
		sum[g] += s->v[series];
		count[g]++;
	}
	for (int g = 0; g < width; g++)
		if (count[g] && sum[g] / count[g] > max)
			max = sum[g] / count[g];
	buf[0] = '\0';
	for (int g = 0; g < width; g++) {
		/* A slice with no sample is blank: the console was not
		 * there, or not connected. */
		int level = 0;
		char one[2] = " ";
		if (count[g] && max > 0)
			level = (int)(sum[g] / count[g] / max * 7 + 0.5);
		one[0] = count[g] ? s_ascii[level] : ' ';
		const char *glyph = utf8 && count[g] ? s_blocks[level] : one;
		size_t gl = strlen(glyph);
		if (len + gl + 1 > size)
			break;
		memcpy(buf + len, glyph, gl + 1);
		len += gl;
	}
	return buf;
}
