/*  window.c: see window.h.  */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "window.h"

#define SUB     16                      /* bins per power of two */
#define OCTAVES 40                      /* up to 2^44: 557 years of ms */
#define NBINS   (SUB + OCTAVES * SUB)

typedef struct {
	int64_t second;                 /* which second it counts; -1: none */
	uint32_t count[NBINS];
} s_slot_t;

struct _dg_window_t {
	int64_t span_s;
	s_slot_t *slots;
};

dg_window_t *
dg_window_new(int64_t span_ms)
{
	if (span_ms < 1000 || span_ms > 3600000)
		return NULL;
	dg_window_t *self = calloc(1, sizeof *self);
	if (!self)
		return NULL;
	self->span_s = span_ms / 1000;
	self->slots = calloc((size_t)self->span_s, sizeof *self->slots);
	if (!self->slots) {
		free(self);
		return NULL;
	}
	for (int64_t i = 0; i < self->span_s; i++)
		self->slots[i].second = -1;
	return self;
}

void
dg_window_destroy(dg_window_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	free((*self_p)->slots);
	free(*self_p);
	*self_p = NULL;
}

/* Values below SUB have a bin each; above, [2^k, 2^(k+1)) is cut into
 * SUB equal bins. */
static size_t
s_bin(int64_t v)
{
	if (v < SUB)
		return v < 0 ? 0 : (size_t)v;
	int k = 63 - __builtin_clzll((unsigned long long)v);
	if (k - 4 >= OCTAVES)
		return NBINS - 1;
	return SUB + (size_t)(k - 4) * SUB + (size_t)((v >> (k - 4)) & (SUB - 1));
}

/* The middle of a bin: what a quantile that falls in it reports. */
static int64_t
s_value(size_t bin)
{
	if (bin < SUB)
		return (int64_t)bin;
	int k = (int)((bin - SUB) / SUB) + 4;
	int64_t lo = (int64_t)(SUB + (bin - SUB) % SUB) << (k - 4);
	return lo + (((int64_t)1 << (k - 4)) >> 1);
}

void
dg_window_add(dg_window_t *self, int64_t now, int64_t value)
{
	int64_t sec = now / 1000;
	s_slot_t *s = &self->slots[sec % self->span_s];

	if (s->second != sec) {
		memset(s->count, 0, sizeof s->count);
		s->second = sec;
	}
	s->count[s_bin(value)]++;
}

/* Whether slot s counts at `now`: its second is within the span. */
static bool
s_live(const dg_window_t *self, const s_slot_t *s, int64_t now)
{
	return s->second >= 0 && s->second > now / 1000 - self->span_s &&
	    s->second <= now / 1000;
}

uint64_t
dg_window_count(const dg_window_t *self, int64_t now)
{
	uint64_t n = 0;

	for (int64_t i = 0; i < self->span_s; i++) {
		const s_slot_t *s = &self->slots[i];
		for (size_t b = 0; s_live(self, s, now) && b < NBINS; b++)
			n += s->count[b];
	}
	return n;
}

int64_t
dg_window_quantile(const dg_window_t *self, int64_t now, double q)
{
	uint64_t total = dg_window_count(self, now);

	if (total == 0)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)total);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (size_t b = 0; b < NBINS; b++) {
		for (int64_t i = 0; i < self->span_s; i++)
			if (s_live(self, &self->slots[i], now))
				seen += self->slots[i].count[b];
		if (seen >= rank)
			return s_value(b);
	}
	return s_value(NBINS - 1);
}
