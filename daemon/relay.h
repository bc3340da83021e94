/*  relay.h: admin requests the controller relays to a daemon on a
 *  client's behalf (queues, threads, sockets, reload NAME).
 *
 *  The daemon's reply carries our seq; it goes back to the client with
 *  the client's own seq.  Past RELAY_MS the client gets a timeout error
 *  instead, so a daemon that never answers costs nothing but that.  */
#ifndef DG_RELAY_H
#define DG_RELAY_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "wire.h"

#define DG_RELAY_MS 2000

typedef struct _dg_relays_t dg_relays_t;

dg_relays_t *dg_relays_new(zsock_t *router);
void dg_relays_destroy(dg_relays_t **self_p);
/* Forward `m` (from `client`) to the daemon `name` at `identity`. */
void dg_relays_forward(dg_relays_t *self, int64_t now, const char *name,
    zframe_t *identity, const dg_route_t *client, const dg_msg_t *m);
/* A daemon's reply: true when it answered a relay (sent on). */
bool dg_relays_reply(dg_relays_t *self, const dg_route_t *from,
    dg_msg_t *m);
/* Time out the relays past their deadline. */
void dg_relays_expire(dg_relays_t *self, int64_t now);
/* The earliest deadline of a relay still open, INT64_MAX when none. */
int64_t dg_relays_next(dg_relays_t *self);

#endif
