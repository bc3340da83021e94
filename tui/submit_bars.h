/*  submit_bars.h: what `disagg submit --wait` shows of a request while
 *  it runs (disagg.1): a bar per stage of the chain on a terminal,
 *  redrawn in place, and off a terminal one plain line per change, for
 *  logs.  It only formats; cmd_pipeline.c feeds it the controller's
 *  `progress` messages.  */
#ifndef DG_SUBMIT_BARS_H
#define DG_SUBMIT_BARS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"

/* One request's stages, in the order their first word came (the chain's
 * order: a request goes through it in order). */
typedef struct {
	struct {
		char role[DG_NAME_MAX];
		int64_t step, steps;
	} at[DG_CHAIN_MAX];
	size_t n;
} dg_bars_t;

/* Take a progress word; false when it says nothing new. */
bool dg_bars_take(dg_bars_t *b, const dg_progress_msg_t *p);

/* The terminal line for request `id`, `cols` wide at most:
 *   request 7  encoder [#####] 1/1  transformer [###.......] 12/50  4.2 s */
void dg_bars_line(const dg_bars_t *b, uint64_t id, double age_s, int cols,
    char *out, size_t size);

/* The plain line for a change: "request 7 transformer step 12/50". */
void dg_bars_change(const dg_progress_msg_t *p, char *out, size_t size);

#endif
