/*  autoscale.h: how many instances each role of the chain wants
 *  (ARCHITECTURE.md, "Autoscaling").
 *
 *  The controller hands in, per place of the chain, what it measured:
 *  instances counted, their rooms in flight, the requests waiting for
 *  the role, the role's throughput and per-request service time.  Out
 *  comes, per place, hold, out (start instances) or in (drain one), with
 *  the reason in words.  No I/O, no clock: `now` comes in.
 *
 *  The wanted count is LightX2V's E = N/(1+t_t/t_e) generalised to a
 *  chain: at a throughput L every role needs L * t_r / workers busy
 *  instances, so the roles' shares are proportional to their service
 *  times; dividing by the target utilisation leaves headroom.  Queue
 *  pressure (rooms in flight per worker) gives a second bound that
 *  reacts to a burst before any throughput is measured.  The larger of
 *  the two, clamped to [min, max], is the wanted count.  */
#ifndef DG_AUTOSCALE_H
#define DG_AUTOSCALE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Decisions; their words in one table (dg_scale_name). */
typedef enum {
	DG_SCALE_HOLD = 0,
	DG_SCALE_OUT,           /* start instances up to `to` */
	DG_SCALE_IN,            /* drain one instance: `to` = from - 1 */
	DG_SCALE_COUNT
} dg_scale_t;

const char *dg_scale_name(int action);

/* Scale-in waits until the role would stay this far below its target
 * with one instance less: the band between the two thresholds is the
 * hysteresis. */
#define DG_SCALE_BAND 0.25
/* The chain's throughput is averaged over about this long (an
 * exponential moving average), so that one report does not swing it. */
#define DG_SCALE_SMOOTH_MS 5000.0

/* What the controller measured of one place of the chain. */
typedef struct {
	int64_t live;           /* instances up and not draining */
	int64_t starting;       /* asked to start, not yet registered */
	int64_t workers;        /* compute threads per instance (mean) */
	int64_t rooms;          /* rooms in flight on the live instances */
	int64_t pending;        /* requests waiting for this role */
	double rps;             /* rooms finished per second, all instances */
	double service_s;       /* seconds per room (p50); 0: unknown */
} dg_scale_load_t;

typedef struct {
	dg_scale_t action;
	int64_t from;           /* live + starting */
	int64_t to;             /* after the action */
	int64_t wanted;         /* the computed count, clamped */
	double utilisation;     /* rooms per worker of `from` */
	char reason[192];       /* "queue 14 rooms, utilisation 0.97 > 0.80" */
} dg_scale_decision_t;

typedef struct _dg_autoscale_t dg_autoscale_t;

/* A chain of `nplaces` places, none scaled until set. */
dg_autoscale_t *dg_autoscale_new(size_t nplaces);
void dg_autoscale_destroy(dg_autoscale_t **self_p);
/* Scale place `place` by `conf` (copied; NULL: never). */
void dg_autoscale_set(dg_autoscale_t *self, size_t place,
    const dg_autoscale_conf_t *conf);
/* One decision per place into out[0..nplaces-1].  An action decided is
 * taken as done: the place's cooldown starts at `now`. */
void dg_autoscale_decide(dg_autoscale_t *self, int64_t now,
    const dg_scale_load_t *load, dg_scale_decision_t *out);

#endif
