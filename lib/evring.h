/*  evring.h: the controller's newest events, kept so that a console
 *  opened later sees what happened before it (the `events` request,
 *  disagg-protocol(7)).
 *
 *  A ring of at most `keep` events.  Each event gets an id that counts
 *  every event of this controller's run, so a reader that remembers the
 *  last id it saw asks only for what came after and merges the live
 *  stream without duplicates; the run's `epoch` tells it when ids
 *  started again (a restarted controller).  No clock, no socket: the
 *  driver stamps the events and sends the replies.  */
#ifndef DG_EVRING_H
#define DG_EVRING_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

typedef struct _dg_evring_t dg_evring_t;

/* At most `keep` events (0: none kept, ids still counted); `epoch`
 * names the run in every reply.  NULL when memory is short. */
dg_evring_t *dg_evring_new(size_t keep, uint64_t epoch);
void dg_evring_destroy(dg_evring_t **self_p);
/* Keep at most `keep` from now on, the newest of those held (a
 * reload).  -1 when memory is short, and nothing changed. */
int dg_evring_set_keep(dg_evring_t *self, size_t keep);
size_t dg_evring_keep(const dg_evring_t *self);
/* Number `e` (e->id gets the next id, from 1) and keep a copy of it,
 * the oldest going when the ring is full.  The id. */
uint64_t dg_evring_add(dg_evring_t *self, dg_event_msg_t *e);
/* Events held now. */
size_t dg_evring_size(const dg_evring_t *self);
/* events.ok answering `seq`: the events held whose id is above
 * `after`, oldest first.  Its rows point into the ring: send it before
 * the next add.  NULL when memory is short. */
dg_msg_t *dg_evring_reply(const dg_evring_t *self, uint64_t after,
    uint64_t seq);

#endif
