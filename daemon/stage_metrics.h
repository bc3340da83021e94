/*  stage_metrics.h: a stage daemon's GET /metrics (metrics.h): its rooms
 *  by queue, compute time and batch sizes, transfers (bytes, time,
 *  errors by class and per peer and rail) and its pool, labelled with
 *  its role and instance.  The loop observes and publishes; the HTTP
 *  thread serves the last text.  */
#ifndef DG_STAGE_METRICS_H
#define DG_STAGE_METRICS_H

#include <stdint.h>

#include "pool.h"
#include "rooms.h"
#include "xfer.h"

typedef struct _dg_stage_metrics_t dg_stage_metrics_t;

/* Serving on `hostport`; NULL with the reason. */
dg_stage_metrics_t *dg_stage_metrics_new(const char *hostport,
    const char *role, const char *name, char *why, size_t whysize);
void dg_stage_metrics_destroy(dg_stage_metrics_t **self_p);
/* A batch back from a worker; a transfer's event. */
void dg_stage_metrics_batch(dg_stage_metrics_t *self,
    const dg_room_batch_t *b);
void dg_stage_metrics_xfer(dg_stage_metrics_t *self,
    const dg_xfer_event_t *ev);
/* A room that ended well here: where its time went (stage.done). */
void dg_stage_metrics_room(dg_stage_metrics_t *self,
    const dg_stage_done_msg_t *sd);
/* Write and publish the text, at most once a second. */
void dg_stage_metrics_tick(dg_stage_metrics_t *self, int64_t now,
    dg_rooms_t *rooms, dg_pool_t *pool, dg_xfer_t *xfer);

#endif
