/*  wire.c: protocol messages on czmq sockets; see wire.h.  */
#include <stdarg.h>

#include "log.h"
#include "wire.h"

/* ---- the socket registry ---------------------------------------------- */

#define SOCKETS_MAX 64

typedef struct {
	zsock_t *sock;
	dg_wire_sock_info_t info;
} s_sock_t;

static s_sock_t s_socks[SOCKETS_MAX];
static int s_nsocks;
static s_sock_t *s_last;        /* the one used last: most calls hit it */

static s_sock_t *
s_sock_find(zsock_t *sock)
{
	if (s_last && s_last->sock == sock)
		return s_last;
	for (int i = 0; i < s_nsocks; i++)
		if (s_socks[i].sock == sock)
			return s_last = &s_socks[i];
	return NULL;
}

void
dg_wire_register(zsock_t *sock, const char *endpoint, bool bind)
{
	if (!sock || s_sock_find(sock) || s_nsocks == SOCKETS_MAX)
		return;
	s_sock_t *s = &s_socks[s_nsocks++];
	memset(s, 0, sizeof *s);
	s->sock = sock;
	s->info.type = zsock_type_str(sock);
	/* A bound wildcard port is useless to a reader: show the port
	 * ZeroMQ chose (czmq keeps the last endpoint bound). */
	const char *resolved = bind ? zsock_endpoint(sock) : NULL;
	snprintf(s->info.endpoint, sizeof s->info.endpoint, "%s",
	    resolved ? resolved : endpoint ? endpoint : "");
	s->info.bind = bind;
}

void
dg_wire_unregister(zsock_t *sock)
{
	for (int i = 0; i < s_nsocks; i++) {
		if (s_socks[i].sock != sock)
			continue;
		memmove(&s_socks[i], &s_socks[i + 1],
		    (size_t)(s_nsocks - i - 1) * sizeof s_socks[0]);
		s_nsocks--;
		s_last = NULL;
		return;
	}
}

size_t
dg_wire_sockets(dg_wire_sock_info_t *out, size_t max)
{
	size_t n = 0;

	for (int i = 0; i < s_nsocks && n < max; i++)
		out[n++] = s_socks[i].info;
	return n;
}

static void
s_count_in(zsock_t *sock, zmsg_t *bodies)
{
	s_sock_t *s = s_sock_find(sock);

	if (!s)
		return;
	s->info.msgs_in += zmsg_size(bodies);
	s->info.bytes_in += zmsg_content_size(bodies);
}

static void
s_count_out(zsock_t *sock, uint64_t msgs, uint64_t bytes)
{
	s_sock_t *s = s_sock_find(sock);

	if (!s)
		return;
	s->info.msgs_out += msgs;
	s->info.bytes_out += bytes;
}

/* ---- routes ------------------------------------------------------------ */

void
dg_route_clear(dg_route_t *route)
{
	zframe_destroy(&route->identity);
	route->delimiter = false;
	route->user[0] = '\0';
}

void
dg_route_copy(dg_route_t *dst, const dg_route_t *src)
{
	dst->identity = src->identity ? zframe_dup(src->identity) : NULL;
	dst->delimiter = src->delimiter;
	memcpy(dst->user, src->user, sizeof dst->user);
}

/* Pop the routing frames of a message received on `sock`; false when
 * it has none. */
static bool
s_take_route(zsock_t *sock, zmsg_t *zmsg, dg_route_t *route)
{
	if (route) {
		route->identity = NULL;
		route->delimiter = false;
		/* ZeroMQ puts the ZAP User-Id on the frames the peer sent
		 * (not on the identity a ROUTER makes up). */
		const char *user = zmsg_last(zmsg) ?
		    zframe_meta(zmsg_last(zmsg), "User-Id") : NULL;
		snprintf(route->user, sizeof route->user, "%s",
		    user ? user : "");
	}
	if (zsock_type(sock) != ZMQ_ROUTER)
		return true;
	zframe_t *id = zmsg_pop(zmsg);
	if (!id || zmsg_size(zmsg) == 0) {
		zframe_destroy(&id);
		return false;
	}
	if (route)
		route->identity = id;
	else
		zframe_destroy(&id);
	zframe_t *first = zmsg_first(zmsg);
	if (zmsg_size(zmsg) >= 2 && zframe_size(first) == 0) {
		zframe_t *empty = zmsg_pop(zmsg);
		zframe_destroy(&empty);
		if (route)
			route->delimiter = true;
	}
	return true;
}

int
dg_wire_recv_batch(zsock_t *sock, dg_route_t *route, zmsg_t **bodies_p)
{
	zmsg_t *zmsg = zmsg_recv(sock);

	*bodies_p = NULL;
	if (!zmsg)
		return -1;
	if (!s_take_route(sock, zmsg, route)) {
		zmsg_destroy(&zmsg);
		if (route)
			dg_route_clear(route);
		return -1;
	}
	*bodies_p = zmsg;
	s_count_in(sock, zmsg);
	return (int)zmsg_size(zmsg);
}

int
dg_wire_next(zmsg_t **bodies_p, dg_msg_t **msg_p, dg_proto_err_t *err)
{
	*msg_p = NULL;
	if (!*bodies_p)
		return -1;
	zframe_t *body = zmsg_pop(*bodies_p);
	if (!body) {
		zmsg_destroy(bodies_p);
		return -1;
	}
	int rc = 1;
	if (zmsg_size(*bodies_p) >= DG_WIRE_BATCH_MAX) {
		memset(err, 0, sizeof *err);
		err->code = DG_PROTO_E_MALFORMED;
		snprintf(err->message, sizeof err->message, "a batch of more "
		    "than %d messages", DG_WIRE_BATCH_MAX);
		zmsg_destroy(bodies_p);
		rc = 0;
	} else if (dg_proto_decode(zframe_data(body), zframe_size(body),
	    msg_p, err) < 0) {
		rc = 0;
	}
	zframe_destroy(&body);
	return rc;
}

int
dg_wire_recv(zsock_t *sock, dg_route_t *route, dg_msg_t **msg_p,
    dg_proto_err_t *err)
{
	zmsg_t *zmsg = NULL;

	*msg_p = NULL;
	if (dg_wire_recv_batch(sock, route, &zmsg) < 0)
		return -1;
	zframe_t *body = zmsg_last(zmsg);
	int rc = 1;
	if (!body || zmsg_size(zmsg) != 1) {
		memset(err, 0, sizeof *err);
		err->code = DG_PROTO_E_MALFORMED;
		snprintf(err->message, sizeof err->message, "expected one "
		    "frame after the routing frames, got %zu",
		    zmsg_size(zmsg));
		rc = 0;
	} else if (dg_proto_decode(zframe_data(body), zframe_size(body),
	    msg_p, err) < 0) {
		rc = 0;
	}
	zmsg_destroy(&zmsg);
	return rc;
}

/* ---- batches ------------------------------------------------------------ */

/* What one thread has posted while corked: one ZeroMQ message under
 * construction per (socket, peer). */
#define OUTBOX_PEERS 32
#define OUTBOX_FRAMES 128

typedef struct {
	zsock_t *sock;
	zframe_t *identity;     /* NULL on a DEALER */
	zmsg_t *zmsg;           /* routing frames, then bodies */
	int bodies;
	size_t bytes;           /* of the bodies */
} s_pending_t;

static __thread struct {
	int depth;
	int n;
	s_pending_t peer[OUTBOX_PEERS];
} s_box;

static bool
s_same_peer(const s_pending_t *p, zsock_t *sock, const dg_route_t *route)
{
	zframe_t *id = route ? route->identity : NULL;

	if (p->sock != sock || !p->identity != !id)
		return false;
	return !id || zframe_eq(p->identity, id);
}

static int
s_send_pending(s_pending_t *p)
{
	int rc = zmsg_send(&p->zmsg, p->sock);

	if (rc == 0)
		s_count_out(p->sock, (uint64_t)p->bodies, p->bytes);
	zmsg_destroy(&p->zmsg);
	zframe_destroy(&p->identity);
	p->sock = NULL;
	p->bodies = 0;
	p->bytes = 0;
	return rc;
}

/* Send what waits for this peer, keeping the order of the others. */
static void
s_flush_peer(zsock_t *sock, const dg_route_t *route)
{
	for (int i = 0; i < s_box.n; i++) {
		if (!s_same_peer(&s_box.peer[i], sock, route))
			continue;
		s_send_pending(&s_box.peer[i]);
		s_box.peer[i] = s_box.peer[--s_box.n];
		return;
	}
}

void
dg_wire_cork(void)
{
	s_box.depth++;
}

static void
s_flush_all(void)
{
	for (int i = 0; i < s_box.n; i++)
		s_send_pending(&s_box.peer[i]);
	s_box.n = 0;
}

void
dg_wire_uncork(void)
{
	if (s_box.depth > 0 && --s_box.depth > 0)
		return;
	s_flush_all();
}

int
dg_wire_post(zsock_t *sock, const dg_route_t *route, const dg_msg_t *msg)
{
	if (s_box.depth == 0)
		return dg_wire_send(sock, route, msg);

	s_pending_t *p = NULL;
	for (int i = 0; i < s_box.n && !p; i++)
		if (s_same_peer(&s_box.peer[i], sock, route))
			p = &s_box.peer[i];
	if (!p) {
		if (s_box.n == OUTBOX_PEERS)
			s_flush_all();
		p = &s_box.peer[s_box.n];
		*p = (s_pending_t){ .sock = sock, .zmsg = zmsg_new() };
		if (!p->zmsg)
			return -1;
		if (route && route->identity) {
			p->identity = zframe_dup(route->identity);
			zmsg_append(p->zmsg, &(zframe_t *){
			    zframe_dup(route->identity) });
			if (route->delimiter)
				zmsg_append(p->zmsg,
				    &(zframe_t *){ zframe_new_empty() });
		}
		s_box.n++;
	}

	dg_buf_t buf = { 0 };
	if (dg_proto_encode(msg, &buf) < 0) {
		dg_log_error("cannot encode '%s': %s", dg_op_name(msg->op),
		    strerror(errno));
		return -1;
	}
	zmsg_addmem(p->zmsg, buf.data, buf.size);
	p->bytes += buf.size;
	dg_buf_free(&buf);
	if (++p->bodies >= OUTBOX_FRAMES)
		s_flush_peer(sock, route);
	return 0;
}

/* ---- single messages --------------------------------------------------- */

static int
s_send_buf(zsock_t *sock, const dg_route_t *route, dg_buf_t *buf)
{
	if (s_box.n)
		s_flush_peer(sock, route);

	zmsg_t *zmsg = zmsg_new();

	if (!zmsg) {
		dg_buf_free(buf);
		return -1;
	}
	if (route && route->identity) {
		zmsg_append(zmsg, &(zframe_t *){ zframe_dup(route->identity) });
		if (route->delimiter)
			zmsg_append(zmsg, &(zframe_t *){ zframe_new_empty() });
	}
	size_t size = buf->size;
	zmsg_addmem(zmsg, buf->data, buf->size);
	dg_buf_free(buf);
	int rc = zmsg_send(&zmsg, sock);
	if (rc == 0)
		s_count_out(sock, 1, size);
	return rc;
}

int
dg_wire_send(zsock_t *sock, const dg_route_t *route, const dg_msg_t *msg)
{
	dg_buf_t buf = { 0 };

	if (dg_proto_encode(msg, &buf) < 0) {
		dg_log_error("cannot encode '%s': %s", dg_op_name(msg->op),
		    strerror(errno));
		return -1;
	}
	return s_send_buf(sock, route, &buf);
}

int
dg_wire_send_error(zsock_t *sock, const dg_route_t *route, uint64_t seq,
    dg_proto_code_t code, const char *fmt, ...)
{
	char text[DG_PROTO_ERR_MAX];
	dg_buf_t buf = { 0 };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (dg_proto_encode_error(&buf, seq, code, "%s", text) < 0)
		return -1;
	return s_send_buf(sock, route, &buf);
}

int
dg_wire_send_decode_error(zsock_t *sock, const dg_route_t *route,
    const dg_proto_err_t *err)
{
	dg_buf_t buf = { 0 };

	if (dg_proto_encode_err(&buf, err) < 0)
		return -1;
	return s_send_buf(sock, route, &buf);
}
