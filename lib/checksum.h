/*  checksum.h: the per-tensor checksum carried in transfer.done and
 *  checked by a receiver when verify = on.  XXH3-64 from libxxhash:
 *  several GB/s per core, so verification costs little next to the
 *  transfer itself.  */
#ifndef DG_CHECKSUM_H
#define DG_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

uint64_t dg_checksum(const void *data, size_t len);

/* Check tensors `got` (as the sender reports them: bytes and checksum)
 * against the receiver's own manifest rows `want` (offsets in the pool
 * at `base`): same count, same sizes, and every checksum matching the
 * bytes that arrived.  0, or -1 with the first mismatch in `why`. */
int dg_checksum_verify(const void *base, const dg_tensor_row_t *want,
    const dg_tensor_row_t *got, size_t n, size_t ngot, char *why,
    size_t whysize);

#endif
