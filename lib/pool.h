/*  pool.h: the memory a stage daemon moves tensors in and out of.
 *
 *  One region, allocated once at start-up and registered with libfabric
 *  once (by the transfer engine, xfer.h), split into equal slots.  A room
 *  reserves a run of contiguous slots for its tensors (an extent) and
 *  gives it back; reserve and free are thread-safe and never register
 *  memory.
 *
 *  Every extent follows one state machine, kept for its first slot as one
 *  64-bit word (state and generation together, so a compare-and-swap
 *  checks both and nothing can be recycled under a late caller).  The
 *  word lives in the pool's own records beside the region, never in the
 *  slot's bytes, which belong to the tensors:
 *
 *      FREE -> RESERVED -> FILLING -> READY -> IN_USE -> FREE
 *
 *  and from any state but FREE straight to FREE (a room released or
 *  failed midway).  Reserving bumps the generation.  A transition that
 *  does not match the current (generation, state) is refused, logged and
 *  counted, never forced: DG_SLOT_STALE when the generation moved on (a
 *  late completion for a recycled extent: never retry it), DG_SLOT_ILLEGAL
 *  when the state is not the expected one.  These are the cosmos-rl
 *  single-owner and defensive-transition rules.  */
#ifndef DG_POOL_H
#define DG_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmem.h"

typedef enum {
	DG_SLOT_FREE = 0,
	DG_SLOT_RESERVED,
	DG_SLOT_FILLING,
	DG_SLOT_READY,
	DG_SLOT_IN_USE,
	DG_SLOT_NSTATES
} dg_slot_state_t;

typedef enum {
	DG_SLOT_OK = 0,
	DG_SLOT_STALE = -1,     /* generation moved on: drop, never retry */
	DG_SLOT_ILLEGAL = -2,   /* unexpected state or transition: refused */
	DG_SLOT_NOSPACE = -3,   /* no run of free slots large enough */
	DG_SLOT_INVALID = -4    /* not an extent of this pool */
} dg_slot_rc_t;

/* A reservation: what a room holds and what a manifest names. */
typedef struct {
	uint32_t slot;          /* first slot */
	uint32_t nslots;
	uint64_t gen;           /* generation when reserved (never 0) */
	uint64_t offset;        /* bytes from the start of the pool */
	uint64_t bytes;         /* bytes asked for (<= nslots * slot size) */
} dg_extent_t;

typedef struct {
	uint64_t reserved, freed;
	uint64_t refused_illegal;       /* transitions refused: bad state */
	uint64_t refused_stale;         /* transitions refused: old generation */
	uint64_t nospace;               /* reserve that found no room */
	uint32_t slots, slots_free;
	uint32_t extents[DG_SLOT_NSTATES]; /* live extents per state */
	uint32_t slots_in[DG_SLOT_NSTATES]; /* their slots ([FREE]: free) */
} dg_pool_stats_t;

typedef struct _dg_pool_t dg_pool_t;

/* `bytes` rounded up to whole slots of `slot_size` bytes (a power of two
 * is not required).  Host memory, page aligned.  NULL on failure. */
dg_pool_t *dg_pool_new(size_t bytes, size_t slot_size);
/* The same in memory of `kind` (devmem.h) on CUDA `device`; NULL with
 * the reason in `why` on failure.  Device memory is not addressable
 * from the host: dg_pool_ptr() is for the fabric and the stage only. */
dg_pool_t *dg_pool_new_kind(size_t bytes, size_t slot_size,
    dg_mem_kind_t kind, int device, char *why, size_t whysize);
/* The same, and with `share` host memory another process of this user
 * can map: a sealed memfd (dg_pool_fd), for zero copy on one host
 * (xfer_local.c).  Other kinds ignore `share`. */
dg_pool_t *dg_pool_new_shared(size_t bytes, size_t slot_size,
    dg_mem_kind_t kind, int device, bool share, char *why, size_t whysize);
dg_mem_kind_t dg_pool_kind(const dg_pool_t *self);
/* The memfd of a shared host pool, or -1. */
int dg_pool_fd(const dg_pool_t *self);
int dg_pool_device(const dg_pool_t *self);
void dg_pool_destroy(dg_pool_t **self_p);

void *dg_pool_base(const dg_pool_t *self);
size_t dg_pool_size(const dg_pool_t *self);
size_t dg_pool_slot_size(const dg_pool_t *self);
uint32_t dg_pool_slots(const dg_pool_t *self);

/* Reserve `bytes` (> 0) as one extent in RESERVED with a new generation. */
dg_slot_rc_t dg_pool_reserve(dg_pool_t *self, uint64_t bytes,
    dg_extent_t *out);

/* Move an extent from `from` to `to`; see the state machine above.
 * to == DG_SLOT_FREE gives the slots back. */
dg_slot_rc_t dg_pool_transition(dg_pool_t *self, const dg_extent_t *ext,
    dg_slot_state_t from, dg_slot_state_t to);

/* Give an extent back from whatever state it is in (release, failure).
 * DG_SLOT_STALE when it was already freed and maybe reused. */
dg_slot_rc_t dg_pool_free(dg_pool_t *self, const dg_extent_t *ext);

/* Current state of an extent; DG_SLOT_STALE when the generation moved on. */
int dg_pool_state(const dg_pool_t *self, const dg_extent_t *ext);

/* Look an extent up by (slot, generation), as a manifest names it.
 * DG_SLOT_OK and `out` filled, or STALE/INVALID. */
dg_slot_rc_t dg_pool_lookup(const dg_pool_t *self, uint32_t slot,
    uint64_t gen, dg_extent_t *out);

/* Pointer to the extent's first byte, or NULL for a stale extent. */
void *dg_pool_ptr(const dg_pool_t *self, const dg_extent_t *ext);

/* Whether [offset, offset+len) lies inside the extent (manifest check).
 * It trusts ext->bytes: pass the extent dg_pool_lookup filled in, not one
 * built from the wire. */
bool dg_pool_contains(const dg_extent_t *ext, uint64_t offset, uint64_t len);

void dg_pool_stats(const dg_pool_t *self, dg_pool_stats_t *out);

const char *dg_slot_state_name(int state);
const char *dg_slot_rc_name(int rc);

#endif
