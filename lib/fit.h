/*  fit.h: whether a request can ever fit a stage's pool.
 *
 *  A room holds its input and its output in its stage's pool, each a run
 *  of whole slots (rooms.c).  A request whose tensors need more than a
 *  whole pool would wait in `incoming` until its deadline, holding back
 *  every room behind it; the controller refuses it at `submit` instead,
 *  naming the sizes, and a stage refuses it at `assign` for plans the
 *  controller cannot compute (Python and plugin stages).  */
#ifndef DG_FIT_H
#define DG_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "stage.h"

/* The bytes a plan's tensors take in one extent: each tensor starts on
 * a 256-byte boundary (what the stage is handed); at least 1. */
uint64_t dg_fit_plan_bytes(const dg_tensor_plan_t *plan);
/* What one request holds in a pool of `slot`-byte slots: its input and
 * its output, each rounded up to whole slots (none for an empty plan). */
uint64_t dg_fit_need(const dg_tensor_plan_t *in, const dg_tensor_plan_t *out,
    uint64_t slot);
/* What a pool of `pool` bytes in `slot`-byte slots can hold (pool.h
 * rounds up to whole slots). */
uint64_t dg_fit_capacity(uint64_t pool, uint64_t slot);
/* "needs 1.9 GiB in a transformer pool; the largest is 256 MiB"
 * (`which` "the largest" or "t0's"). */
void dg_fit_say(char *why, size_t whysize, uint64_t need, const char *role,
    const char *which, uint64_t capacity);
/* Whether `req` fits some instance of every role of `cfg`'s chain whose
 * plan the library computes without loading the stage (the reference
 * stages).  0; or -1 with the reason: the pool sizes, or what the
 * reference stage says of the request ("frames must be 4k+1 ...").  */
int dg_fit_check(const dg_config_t *cfg, const dg_request_t *req, char *why,
    size_t whysize);

#endif
