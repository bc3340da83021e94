/*  devmem.h: where a pool's memory comes from, and moving tensors between
 *  a stage's GPU memory and the pool.
 *
 *  A pool is host memory (the default), pinned host memory from
 *  cudaHostAlloc, or device memory from cudaMalloc.  Device memory is
 *  used only when the fabric can register it (FI_HMEM_CUDA, probed at
 *  run time); Debian's libfabric 1.17 cannot, so on it a stage with
 *  `memory = cuda` gets a pinned host pool and its device tensors are
 *  staged through the pool's slots (the ring the fabric reads and
 *  writes) with cudaMemcpyAsync.  Without a device at run time the pool
 *  falls back to host memory, with one log line.
 *
 *  The staging copier has a host stand-in (memcpy, deferred until sync
 *  as a CUDA stream would) so the staging logic is tested without a GPU.  */
#ifndef DG_DEVMEM_H
#define DG_DEVMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	DG_MEM_HOST = 0,        /* mmap */
	DG_MEM_PINNED,          /* cudaHostAlloc: fabric-registered, DMA-able */
	DG_MEM_DEVICE           /* cudaMalloc: only with FI_HMEM_CUDA */
} dg_mem_kind_t;

const char *dg_mem_kind_name(dg_mem_kind_t kind);

/* NULL on failure, with the reason in `why`. */
void *dg_mem_alloc(dg_mem_kind_t kind, size_t size, int device, char *why,
    size_t whysize);
void dg_mem_free(dg_mem_kind_t kind, void *ptr, size_t size);
/* Host memory in a memfd sealed at its size (it can neither shrink
 * under a process that maps it, nor grow), mapped shared; *fd is the
 * memfd, close-on-exec.  Freed with dg_mem_free(DG_MEM_HOST) and
 * close(*fd). */
void *dg_mem_alloc_shared(size_t size, int *fd, char *why, size_t whysize);

/* The kind a stage's pool gets: `want_cuda` from `memory = cuda`,
 * `hmem` whether the fabric can register device memory.  Writes what
 * was decided and why into `note` (one log line's worth). */
dg_mem_kind_t dg_mem_choose(bool want_cuda, int device, bool hmem,
    char *note, size_t notesize);

/* ---- staging ----------------------------------------------------------- */

typedef enum { DG_STAGE_TO_POOL, DG_STAGE_FROM_POOL } dg_stage_dir_t;

typedef struct {
	uint64_t bytes, pieces, syncs, errors;
} dg_staging_stats_t;

typedef struct _dg_staging_t dg_staging_t;

/* `piece`: the largest single copy; a tensor is cut into pieces so a
 * long copy does not hold the stream, and so a ring of slots can be
 * refilled piece by piece. */
dg_staging_t *dg_staging_new_host(size_t piece);
/* CUDA builds with a device only; NULL with the reason otherwise. */
dg_staging_t *dg_staging_new_cuda(int device, size_t piece, char *why,
    size_t whysize);
void dg_staging_destroy(dg_staging_t **self_p);

/* Queue a copy of n bytes; it is done once dg_staging_sync() returns 0.
 * TO_POOL: from device `dev` into the pool at `pool`; FROM_POOL back. */
int dg_staging_copy(dg_staging_t *self, dg_stage_dir_t dir, void *pool,
    void *dev, size_t n);
/* Wait for every queued copy: 0, or -1 if any failed (reason in why). */
int dg_staging_sync(dg_staging_t *self, char *why, size_t whysize);
void dg_staging_stats(const dg_staging_t *self, dg_staging_stats_t *out);

#endif
