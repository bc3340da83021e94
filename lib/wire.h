/*  wire.h: protocol messages on czmq sockets.
 *
 *  A message is one frame holding the msgpack map (proto.h) after the
 *  routing frames ZeroMQ adds.  On a ROUTER socket the peer's identity
 *  comes first, then an empty delimiter when the peer is a REQ socket;
 *  replies go back the same way, so DEALER and REQ clients both work.  */
#ifndef DG_WIRE_H
#define DG_WIRE_H

#include <czmq.h>
#include <stdbool.h>

#include "proto.h"

/* Where a message came from on a ROUTER socket, to reply to it. */
typedef struct {
	zframe_t *identity;     /* NULL on DEALER/SUB sockets */
	bool delimiter;         /* the peer is a REQ socket */
	char user[48];          /* its CurveZMQ public key (Z85), or "" */
} dg_route_t;

void dg_route_clear(dg_route_t *route);
/* A copy that owns its own identity frame. */
void dg_route_copy(dg_route_t *dst, const dg_route_t *src);

/* Receive one message.  Returns 1 and a message; 0 when the frame was
 * not a valid message (err filled: answer it with dg_wire_send_error);
 * -1 when nothing could be read (interrupted, or no routing frames). */
int dg_wire_recv(zsock_t *sock, dg_route_t *route, dg_msg_t **msg_p,
    dg_proto_err_t *err);

/* Send `msg` (to `route` on a ROUTER, or NULL).  0, or -1. */
int dg_wire_send(zsock_t *sock, const dg_route_t *route,
    const dg_msg_t *msg);
int dg_wire_send_error(zsock_t *sock, const dg_route_t *route,
    uint64_t seq, dg_proto_code_t code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
int dg_wire_send_decode_error(zsock_t *sock, const dg_route_t *route,
    const dg_proto_err_t *err);

/* Batches between daemons.  While the calling thread is corked,
 * dg_wire_post keeps messages and sends those for one peer as a single
 * ZeroMQ message of several body frames when the thread uncorks: under
 * load a stage's phase reports, results and manifests then cost one
 * wake-up of each I/O thread instead of one each.  Only daemons send
 * batches (clients get one frame per message); dg_wire_send first sends
 * what was posted to the same peer, so the order holds. */
void dg_wire_cork(void);
void dg_wire_uncork(void);
int dg_wire_post(zsock_t *sock, const dg_route_t *route,
    const dg_msg_t *msg);

/* The largest batch a receiver accepts. */
#define DG_WIRE_BATCH_MAX 256

/* Receive one ZeroMQ message that may be a batch: the routing frames go
 * to `route` and the bodies stay in *bodies_p for dg_wire_next.  Returns
 * the number of bodies (0: a message with nothing after its routing
 * frames, answer it as malformed), or -1 when nothing could be read. */
int dg_wire_recv_batch(zsock_t *sock, dg_route_t *route,
    zmsg_t **bodies_p);
/* The next body of a batch: 1 and a message, 0 when it was not a valid
 * message (err filled), -1 when none is left (*bodies_p destroyed). */
int dg_wire_next(zmsg_t **bodies_p, dg_msg_t **msg_p, dg_proto_err_t *err);

/* ---- the socket registry ---------------------------------------------- */

/* A daemon registers each ZeroMQ socket it opens, so that `disagg sockets
 * NAME` can show it with the messages and bytes it moved each way
 * (protocol messages: a batch counts each message in it; bytes of the
 * bodies, not of the routing frames).  Counting is a pointer compare
 * against the last socket used and an addition: every send and receive
 * of this file does it.  Sockets that are not registered (the CLI's) are
 * not counted.  Like the sockets themselves, the registry belongs to the
 * thread that runs the control loop. */
void dg_wire_register(zsock_t *sock, const char *endpoint, bool bind);
void dg_wire_unregister(zsock_t *sock);

typedef struct {
	const char *type;               /* "ROUTER", "DEALER", "PUB"... */
	char endpoint[256];
	bool bind;
	uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
} dg_wire_sock_info_t;

/* The registered sockets, oldest first; how many were written. */
size_t dg_wire_sockets(dg_wire_sock_info_t *out, size_t max);

#endif
