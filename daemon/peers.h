/*  peers.h: a stage daemon's sockets to the other stages (ARCHITECTURE.md,
 *  "The stage daemon").
 *
 *  One ROUTER, the `peer` endpoint, where the stage after us sends its
 *  manifests and we answer transfer.done and transfer.failed; and one
 *  DEALER per upstream daemon (a handful, never one per room), created
 *  on first use, to send ours and hear back.  With curve = on only the
 *  deployment's daemons may ask us to write into their memory: others
 *  are answered "denied" and counted.  Messages that pass go to the
 *  handler; the sockets, batching and errors stay here.  */
#ifndef DG_PEERS_H
#define DG_PEERS_H

#include <czmq.h>
#include <stdint.h>

#include "daemon.h"
#include "wire.h"

typedef struct _dg_peers_t dg_peers_t;

/* A message from a peer.  `sock_is_router`: it came on our ROUTER (a
 * reply to it goes on `route`).  *mp and *route may be taken. */
typedef void (dg_peers_fn)(void *arg, dg_msg_t **mp, dg_route_t *route,
    bool from_router);
/* After each wake-up's messages: move what can move. */
typedef void (dg_peers_after_fn)(void *arg);

/* Bind `endpoint` and read it in d->loop.  NULL with a logged reason. */
dg_peers_t *dg_peers_new(dg_daemon_t *d, const char *endpoint,
    dg_peers_fn *fn, dg_peers_after_fn *after, void *arg);
void dg_peers_destroy(dg_peers_t **self_p);

/* Post to the daemon whose peer endpoint is `endpoint`: 0 or -1. */
int dg_peers_to_upstream(dg_peers_t *self, const char *endpoint,
    dg_msg_t *m);
/* Post on our ROUTER to `route`. */
void dg_peers_to_downstream(dg_peers_t *self, const dg_route_t *route,
    dg_msg_t *m);
void dg_peers_error(dg_peers_t *self, const dg_route_t *route, uint64_t seq,
    dg_proto_code_t code, const char *text);
/* Messages refused for who sent them, or malformed. */
uint64_t dg_peers_refused(const dg_peers_t *self);

#endif
