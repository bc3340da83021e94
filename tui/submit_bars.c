/*  submit_bars.c: see submit_bars.h.  */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "submit_bars.h"

bool
dg_bars_take(dg_bars_t *b, const dg_progress_msg_t *p)
{
	size_t i = 0;

	while (i < b->n && strcmp(b->at[i].role, p->role) != 0)
		i++;
	if (i == b->n) {
		if (b->n == DG_CHAIN_MAX)
			return false;   /* more roles than a chain has */
		snprintf(b->at[i].role, sizeof b->at[i].role, "%s", p->role);
		b->n++;
	} else if (b->at[i].step == p->step && b->at[i].steps == p->steps) {
		return false;
	}
	b->at[i].step = p->step;
	b->at[i].steps = p->steps;
	/* A stage that spoke before this one is through with the request. */
	for (size_t k = 0; k < i; k++)
		b->at[k].step = b->at[k].steps;
	return true;
}

/* Room the fixed text of a stage takes: " role [" "] k/n". */
static size_t
s_fixed(const dg_bars_t *b, size_t i)
{
	char nums[48];

	return strlen(b->at[i].role) + 5 + (size_t)snprintf(nums, sizeof nums,
	    "%lld/%lld", (long long)b->at[i].step, (long long)b->at[i].steps);
}

void
dg_bars_line(const dg_bars_t *b, uint64_t id, double age_s, int cols,
    char *out, size_t size)
{
	size_t len = 0, room, fixed = 0;
	char tail[32];

	len = (size_t)snprintf(out, size, "request %llu ",
	    (unsigned long long)id);
	snprintf(tail, sizeof tail, "  %.1f s", age_s);
	for (size_t i = 0; i < b->n; i++)
		fixed += s_fixed(b, i);
	room = (size_t)(cols > 0 ? cols : 80) - 1;
	room = room > len + fixed + strlen(tail) ?
	    room - len - fixed - strlen(tail) : 0;
	/* The bars share what is left; each gets 3 to 20 cells. */
	size_t width = b->n ? room / b->n : 0;
	if (width > 20)
		width = 20;
	for (size_t i = 0; i < b->n && len < size; i++) {
		int64_t steps = b->at[i].steps, step = b->at[i].step;
		size_t full = steps > 0 ? (size_t)(step * (int64_t)width /
		    steps) : 0;
		len += (size_t)snprintf(out + len, size - len, " %s",
		    b->at[i].role);
		if (width >= 3 && len < size) {
			len += (size_t)snprintf(out + len, size - len, " [");
			for (size_t k = 0; k < width && len + 1 < size; k++)
				out[len++] = k < full ? '#' : '.';
			out[len < size ? len : size - 1] = 0;
			len += (size_t)snprintf(out + len, len < size ?
			    size - len : 0, "]");
		}
		if (len < size)
			len += (size_t)snprintf(out + len, size - len,
			    " %lld/%lld", (long long)step, (long long)steps);
	}
	if (len < size)
		snprintf(out + len, size - len, "%s", tail);
}

void
dg_bars_change(const dg_progress_msg_t *p, char *out, size_t size)
{
	snprintf(out, size, "request %llu %s step %lld/%lld",
	    (unsigned long long)p->request, p->role, (long long)p->step,
	    (long long)p->steps);
}
