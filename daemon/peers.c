/*  peers.c: a stage daemon's sockets to the other stages (peers.h).  */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "peers.h"
#include "threads.h"

struct _dg_peers_t {
	dg_daemon_t *d;
	zsock_t *router;
	zhashx_t *ups;                  /* endpoint -> DEALER */
	dg_peers_fn *fn;
	dg_peers_after_fn *after;
	void *arg;
	uint64_t seq;
	uint64_t refused;
};

static int s_on_sock(zloop_t *loop, zsock_t *sock, void *arg);

static void
s_sock_destroy(void **item)
{
	zsock_t *s = *item;
	dg_wire_unregister(s);
	zsock_destroy(&s);
	*item = NULL;
}

dg_peers_t *
dg_peers_new(dg_daemon_t *d, const char *endpoint, dg_peers_fn *fn,
    dg_peers_after_fn *after, void *arg)
{
	dg_peers_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->d = d;
	self->fn = fn;
	self->after = after;
	self->arg = arg;
	self->ups = zhashx_new();
	self->router = zsock_new(ZMQ_ROUTER);
	if (!self->ups || !self->router) {
		dg_peers_destroy(&self);
		return NULL;
	}
	zhashx_set_destructor(self->ups, s_sock_destroy);
	zsock_set_maxmsgsize(self->router, DG_PROTO_MAX_FRAME);
	zsock_set_sndhwm(self->router, 100000);
	zsock_set_rcvhwm(self->router, 100000);
	dg_daemon_server_sock(d, self->router);
	if (zsock_bind(self->router, "%s", endpoint) < 0) {
		dg_log_error("cannot bind %s: %s", endpoint,
		    zmq_strerror(zmq_errno()));
		dg_peers_destroy(&self);
		return NULL;
	}
	dg_daemon_bound(d, self->router, endpoint, "peer");
	dg_wire_register(self->router, endpoint, true);
	zloop_reader(d->loop, self->router, s_on_sock, self);
	return self;
}

void
dg_peers_destroy(dg_peers_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_peers_t *self = *self_p;
	if (self->router) {
		zloop_reader_end(self->d->loop, self->router);
		dg_wire_unregister(self->router);
	}
	for (zsock_t *s = self->ups ? zhashx_first(self->ups) : NULL; s;
	    s = zhashx_next(self->ups))
		zloop_reader_end(self->d->loop, s);
	zhashx_destroy(&self->ups);
	zsock_destroy(&self->router);
	free(self);
	*self_p = NULL;
}

static zsock_t *
s_up(dg_peers_t *self, const char *endpoint)
{
	zsock_t *s = zhashx_lookup(self->ups, endpoint);

	if (s)
		return s;
	s = zsock_new(ZMQ_DEALER);
	if (!s)
		return NULL;
	zsock_set_identity(s, self->d->name);
	zsock_set_sndhwm(s, 100000);
	zsock_set_rcvhwm(s, 100000);
	zsock_set_maxmsgsize(s, DG_PROTO_MAX_FRAME);
	dg_daemon_client_sock(self->d, s);
	if (zsock_connect(s, "%s", endpoint) < 0) {
		dg_log_error("cannot connect to peer %s", endpoint);
		zsock_destroy(&s);
		return NULL;
	}
	zhashx_insert(self->ups, endpoint, s);
	dg_wire_register(s, endpoint, false);
	/* transfer.done and transfer.failed come back on it. */
	zloop_reader(self->d->loop, s, s_on_sock, self);
	return s;
}

int
dg_peers_to_upstream(dg_peers_t *self, const char *endpoint, dg_msg_t *m)
{
	zsock_t *up = s_up(self, endpoint);

	m->seq = ++self->seq;
	return up ? dg_wire_post(up, NULL, m) : -1;
}

void
dg_peers_to_downstream(dg_peers_t *self, const dg_route_t *route,
    dg_msg_t *m)
{
	dg_wire_post(self->router, route, m);
}

void
dg_peers_error(dg_peers_t *self, const dg_route_t *route, uint64_t seq,
    dg_proto_code_t code, const char *text)
{
	dg_wire_send_error(self->router, route, seq, code, "%s", text);
}

uint64_t
dg_peers_refused(const dg_peers_t *self)
{
	return self->refused;
}

static int
s_on_sock(zloop_t *loop, zsock_t *sock, void *arg)
{
	dg_peers_t *self = arg;
	bool router = zsock_type(sock) == ZMQ_ROUTER;

	(void)loop;
	dg_thread_set(DG_THREAD_BUSY, 0);
	dg_wire_cork();
	for (int i = 0; i < 256 && (zsock_events(sock) & ZMQ_POLLIN); i++) {
		dg_route_t route = { 0 };
		zmsg_t *bodies = NULL;
		dg_msg_t *m = NULL;
		dg_proto_err_t err;
		int n = dg_wire_recv_batch(sock, &route, &bodies);
		if (n < 0)
			break;
		if (n == 0 && router)
			dg_wire_send_error(sock, &route, 0,
			    DG_PROTO_E_MALFORMED, "no frame after the "
			    "routing frames");
		/* With curve = on only the deployment's daemons may ask us
		 * to write into their memory. */
		bool trusted = !router ||
		    dg_daemon_from_daemon(self->d, route.user);
		int rc;
		while ((rc = dg_wire_next(&bodies, &m, &err)) >= 0) {
			if (rc == 0) {
				if (router)
					dg_wire_send_decode_error(sock, &route,
					    &err);
			} else if (!trusted) {
				self->refused++;
				dg_log_warn("peer: refused '%s' from key %s: "
				    "not a daemon of this deployment",
				    dg_op_name(m->op), route.user);
				dg_wire_send_error(sock, &route, m->seq,
				    DG_PROTO_E_DENIED, "a stage's peer "
				    "endpoint serves only the deployment's "
				    "daemons");
			} else {
				/* The handler may keep the route: give it a
				 * copy, the batch's next message needs one
				 * too. */
				dg_route_t own;
				dg_route_copy(&own, &route);
				self->fn(self->arg, &m, &own, router);
				dg_route_clear(&own);
			}
			dg_msg_destroy(&m);
		}
		zmsg_destroy(&bodies);
		dg_route_clear(&route);
	}
	if (self->after)
		self->after(self->arg);
	dg_wire_uncork();
	dg_thread_set(DG_THREAD_IDLE, 0);
	return 0;
}
