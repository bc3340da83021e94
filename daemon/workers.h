/*  workers.h: a stage daemon's compute threads (ARCHITECTURE.md,
 *  "Threads").
 *
 *  A fixed number of threads, whatever the number of rooms.  The control
 *  loop hands a batch to the pool; a free thread runs the plugin on it
 *  and puts it on the finished list, and an eventfd wakes the loop,
 *  which takes finished batches back.  Rooms are touched by a worker
 *  only while their batch is out, and only through their items.  */
#ifndef DG_WORKERS_H
#define DG_WORKERS_H

#include <stdbool.h>

#include "rooms.h"
#include "stage.h"

typedef struct _dg_workers_t dg_workers_t;

/* `n` threads running `ops` on `plugin`.  NULL on failure. */
dg_workers_t *dg_workers_new(int n, const dg_stage_ops_t *ops, void *plugin);
/* Stops and joins the threads; batches never run or never taken back
 * are freed (their rooms belong to the caller). */
void dg_workers_destroy(dg_workers_t **self_p);

/* Readable when finished batches wait. */
int dg_workers_fd(const dg_workers_t *self);
int dg_workers_count(const dg_workers_t *self);
/* A thread is free for one more batch. */
bool dg_workers_free(const dg_workers_t *self);
/* Takes `b`. */
void dg_workers_run(dg_workers_t *self, dg_room_batch_t *b);
/* A finished batch (the caller takes it), or NULL. */
dg_room_batch_t *dg_workers_next_done(dg_workers_t *self);

#endif
