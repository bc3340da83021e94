/*  wire.c: protocol messages on czmq sockets; see wire.h.  */
#include <stdarg.h>

#include "log.h"
#include "wire.h"

void
dg_route_clear(dg_route_t *route)
{
	zframe_destroy(&route->identity);
	route->delimiter = false;
}

void
dg_route_copy(dg_route_t *dst, const dg_route_t *src)
{
	dst->identity = src->identity ? zframe_dup(src->identity) : NULL;
	dst->delimiter = src->delimiter;
}

int
dg_wire_recv(zsock_t *sock, dg_route_t *route, dg_msg_t **msg_p,
    dg_proto_err_t *err)
{
	zmsg_t *zmsg = zmsg_recv(sock);

	*msg_p = NULL;
	if (route) {
		route->identity = NULL;
		route->delimiter = false;
	}
	if (!zmsg)
		return -1;
	if (zsock_type(sock) == ZMQ_ROUTER) {
		zframe_t *id = zmsg_pop(zmsg);
		if (!id || zmsg_size(zmsg) == 0) {
			zframe_destroy(&id);
			zmsg_destroy(&zmsg);
			return -1;
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
	}
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

static int
s_send_buf(zsock_t *sock, const dg_route_t *route, dg_buf_t *buf)
{
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
	zmsg_addmem(zmsg, buf->data, buf->size);
	dg_buf_free(buf);
	return zmsg_send(&zmsg, sock);
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
