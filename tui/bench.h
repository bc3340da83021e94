/*  bench.h: `disagg bench`, the transfer benchmark, and the bare
 *  libfabric loop it measures the engine against.
 *
 *  Both sides of a measurement look the same to the driver in bench.c:
 *  a window of positions, each a source and a destination region of one
 *  transfer's size; start() begins a transfer at a free position and
 *  wait() hands back a position whose transfer has landed at the
 *  receiver.  The driver alone decides how many are in flight and for
 *  how long, so the engine and the bare loop are timed the same way.  */
#ifndef DG_BENCH_H
#define DG_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* `disagg bench ...`: argv[0] is "bench".  Exit status as disagg's. */
int dg_bench_main(int argc, char *argv[]);

/* ---- the bare loop (bench_bare.c) -------------------------------------- */

typedef struct _dg_bare_t dg_bare_t;

/* Two RDM endpoints of `provider` in this process, each with a
 * registered buffer of `window` regions of `size` bytes, `stride` bytes
 * apart.  The buffers are `src` and `dst` when given (the engine's
 * pools: the same pages for both, see bench_bare.c), else its own.
 * `node` as for dg_xfer_new.  `threads` 1: the caller's thread drives
 * both ends; 2: a thread of its own polls the target's CQ.  NULL with
 * the reason in `why`. */
dg_bare_t *dg_bare_new(const char *provider, const char *node, size_t size,
    int window, int threads, void *src, void *dst, size_t stride, char *why,
    size_t whysize);
void dg_bare_destroy(dg_bare_t **self_p);

/* Write region `pos` of the source into region `pos` of the target. */
int dg_bare_start(dg_bare_t *self, int pos, char *why, size_t whysize);
/* Spin on the CQs until a write has landed at the target; its position
 * in `pos`.  -1 on an error or after `timeout_ms` without one. */
int dg_bare_wait(dg_bare_t *self, int *pos, int64_t timeout_ms, char *why,
    size_t whysize);
/* Source and target regions, to fill and to check. */
void *dg_bare_source(dg_bare_t *self, int pos);
void *dg_bare_target(dg_bare_t *self, int pos);

#endif
