/*  cost.c: see cost.h.  */
#include <stdbool.h>

#include "cost.h"

#define ALPHA 0.2

double
dg_cost_units(int64_t frames, int64_t height, int64_t width, int64_t steps,
    size_t index, size_t places)
{
	double pixels = (double)frames * (double)height * (double)width;
	int middle = index > 0 && index + 1 < places;

	return pixels * (middle && steps > 0 ? (double)steps : 1.0);
}

void
dg_cost_observe(dg_cost_t *c, double units, int64_t compute_us)
{
	if (units <= 0 || compute_us < 0)
		return;
	double x = (double)compute_us / units;
	c->us_per_unit = c->samples ? (1 - ALPHA) * c->us_per_unit + ALPHA * x :
	    x;
	if (!c->samples || units < c->lo)
		c->lo = units;
	if (!c->samples || units > c->hi)
		c->hi = units;
	c->samples++;
}

bool
dg_cost_covers(const dg_cost_t *c, double units)
{
	return c->samples && units >= c->lo / DG_COST_REACH &&
	    units <= c->hi * DG_COST_REACH;
}

int64_t
dg_cost_predict(const dg_cost_t *c, double units)
{
	return dg_cost_covers(c, units) ?
	    (int64_t)(c->us_per_unit * units + 0.5) : 0;
}
