/*  autoscale.c: the autoscaler's decisions, see autoscale.h.  */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoscale.h"

static const char *const s_scale_names[DG_SCALE_COUNT] =
	{ "hold", "out", "in" };

typedef struct {
	bool scaled;
	dg_autoscale_conf_t conf;
	int64_t changed_at;     /* last action; INT64_MIN: none yet */
	int64_t low_since;      /* below the band since; -1: not below */
} s_place_t;

struct _dg_autoscale_t {
	s_place_t *places;
	size_t n;
	double lambda;          /* the chain's throughput, smoothed */
	int64_t lambda_at;      /* its last sample; INT64_MIN: none yet */
};

const char *
dg_scale_name(int action)
{
	return action >= 0 && action < DG_SCALE_COUNT ?
	    s_scale_names[action] : "?";
}

dg_autoscale_t *
dg_autoscale_new(size_t nplaces)
{
	dg_autoscale_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->places = calloc(nplaces ? nplaces : 1, sizeof *self->places);
	if (!self->places) {
		free(self);
		return NULL;
	}
	self->n = nplaces;
	self->lambda_at = INT64_MIN;
	for (size_t i = 0; i < nplaces; i++) {
		self->places[i].changed_at = INT64_MIN;
		self->places[i].low_since = -1;
	}
	return self;
}

void
dg_autoscale_destroy(dg_autoscale_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	free((*self_p)->places);
	free(*self_p);
	*self_p = NULL;
}

void
dg_autoscale_set(dg_autoscale_t *self, size_t place,
    const dg_autoscale_conf_t *conf)
{
	if (place >= self->n)
		return;
	self->places[place].scaled = conf != NULL;
	if (conf)
		self->places[place].conf = *conf;
}

static int64_t
s_clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Instances needed: the throughput bound (the chain's E) and the queue
 * bound, whichever is larger.  A hair under an integer is that integer:
 * 2.0000001 from rounding must not ask for a third. */
static int64_t
s_wanted(const dg_scale_load_t *l, double lambda, double target)
{
	double w = (double)(l->workers > 0 ? l->workers : 1);
	double flow = lambda * l->service_s / (w * target);
	double queue = (double)(l->rooms + l->pending) / (w * target);
	double need = flow > queue ? flow : queue;

	return (int64_t)ceil(need - 1e-6);
}

static void
s_decide(s_place_t *p, int64_t now, const dg_scale_load_t *l, double lambda,
    dg_scale_decision_t *d)
{
	const dg_autoscale_conf_t *c = &p->conf;
	double target = (double)c->target / 1e6;
	double w = (double)(l->workers > 0 ? l->workers : 1);
	int64_t demand = l->rooms + l->pending;
	int64_t n = l->live + l->starting;

	memset(d, 0, sizeof *d);
	d->from = d->to = n;
	d->wanted = s_clamp(s_wanted(l, lambda, target), c->min, c->max);
	/* No instance at all: any demand is more than it can take. */
	d->utilisation = n > 0 ? (double)demand / ((double)n * w) :
	    demand > 0 ? INFINITY : 0;
	bool cool = p->changed_at == INT64_MIN ||
	    now - p->changed_at >= c->cooldown_ms;

	if (n < c->min && cool) {
		d->action = DG_SCALE_OUT;
		d->to = c->min;
		snprintf(d->reason, sizeof d->reason, "below min %lld",
		    (long long)c->min);
	} else if (d->wanted > n && d->utilisation > target && cool) {
		d->action = DG_SCALE_OUT;
		d->to = d->wanted;
		snprintf(d->reason, sizeof d->reason, "queue %lld rooms, "
		    "utilisation %.2f > %.2f", (long long)demand,
		    d->utilisation, target);
	} else if (n > c->max && l->starting == 0) {
		d->action = DG_SCALE_IN;
		d->to = n - 1;
		snprintf(d->reason, sizeof d->reason, "above max %lld",
		    (long long)c->max);
	}
	if (d->action != DG_SCALE_HOLD) {
		p->changed_at = now;
		p->low_since = -1;
		return;
	}
	/* Scale-in: with one instance less the role would still sit below
	 * the band, and has done so for a whole cooldown; never while an
	 * instance is still starting (its start was wanted). */
	double low = target * (1 - DG_SCALE_BAND);
	double u_less = n > 1 ? (double)demand / ((double)(n - 1) * w) : 0;
	double flow_less = n > 1 ? lambda * l->service_s /
	    ((double)(n - 1) * w) : 0;
	bool below = n > c->min && d->wanted < n && l->starting == 0 &&
	    u_less <= low && flow_less <= low;
	if (!below) {
		p->low_since = -1;
		return;
	}
	if (p->low_since < 0)
		p->low_since = now;
	if (now - p->low_since < c->cooldown_ms || !cool)
		return;
	d->action = DG_SCALE_IN;
	d->to = n - 1;
	snprintf(d->reason, sizeof d->reason, "queue %lld rooms, utilisation "
	    "%.2f < %.2f for %.1f s", (long long)demand, u_less, low,
	    (double)(now - p->low_since) / 1000.0);
	p->changed_at = now;
	p->low_since = -1;
}

void
dg_autoscale_decide(dg_autoscale_t *self, int64_t now,
    const dg_scale_load_t *load, dg_scale_decision_t *out)
{
	/* The chain's throughput: in a steady state every place finishes
	 * what the first one takes, so the busiest place's rate is the
	 * offered load the others must match. */
	double lambda = 0;

	for (size_t i = 0; i < self->n; i++)
		if (load[i].rps > lambda)
			lambda = load[i].rps;
	/* A stage's rps counts rooms finished since its last report, a
	 * few hundred ms: a burst of sawteeth.  Smoothed over
	 * DG_SCALE_SMOOTH_MS, it is the load the chain sustains. */
	if (self->lambda_at == INT64_MIN) {
		self->lambda = lambda;
		self->lambda_at = now;
	} else if (now > self->lambda_at) {
		double a = 1 - exp(-(double)(now - self->lambda_at) /
		    DG_SCALE_SMOOTH_MS);
		self->lambda += a * (lambda - self->lambda);
		self->lambda_at = now;
	}
	lambda = self->lambda;
	for (size_t i = 0; i < self->n; i++) {
		if (!self->places[i].scaled) {
			memset(&out[i], 0, sizeof out[i]);
			out[i].from = out[i].to = out[i].wanted =
			    load[i].live + load[i].starting;
			continue;
		}
		s_decide(&self->places[i], now, &load[i], lambda, &out[i]);
	}
}
