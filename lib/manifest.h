/*  manifest.h: the checks a stage makes on a manifest before it writes
 *  into the memory the manifest names (ARCHITECTURE.md, "A request's path").
 *
 *  A manifest arrives from the network and says where, in the
 *  receiver's registered pool, each tensor goes.  Before a sender acts
 *  on one it must know the manifest is for the room and phase it
 *  expects, holds what this stage produces (same count, same sizes),
 *  and that its offsets stay inside the extent it claims: no overflow,
 *  no overlap, no zero generation.  A pure function, so a fuzzer can
 *  drive it with whatever the codec lets through.  */
#ifndef DG_MANIFEST_H
#define DG_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* What the checking stage expects; a field left 0 is not checked. */
typedef struct {
	uint64_t room;
	int64_t phase;
	size_t n_tensors;               /* with `bytes` */
	const uint64_t *bytes;          /* per tensor, as this stage makes */
	uint64_t max_extent;            /* largest pool span we accept */
} dg_manifest_want_t;

/* 0 when `m` may be acted on; -1 with the first problem in `why`. */
int dg_manifest_check(const dg_manifest_msg_t *m,
    const dg_manifest_want_t *want, char *why, size_t whylen);

#endif
