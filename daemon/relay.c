/*  relay.c: admin requests relayed to daemons (relay.h).  */
#include <stdlib.h>
#include <string.h>

#include "relay.h"

typedef struct {
	uint64_t seq;                   /* ours, on the daemon's DEALER */
	zframe_t *identity;             /* the daemon's */
	char name[64];
	dg_op_t op;
	dg_route_t client;
	uint64_t client_seq;
	int64_t deadline;
} s_relay_t;

struct _dg_relays_t {
	zsock_t *router;
	zlistx_t *list;                 /* s_relay_t, oldest first */
	uint64_t seq;
};

static void
s_relay_destroy(void **item)
{
	s_relay_t *rl = *item;

	if (!rl)
		return;
	zframe_destroy(&rl->identity);
	dg_route_clear(&rl->client);
	free(rl);
	*item = NULL;
}

dg_relays_t *
dg_relays_new(zsock_t *router)
{
	dg_relays_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->router = router;
	self->list = zlistx_new();
	if (!self->list) {
		free(self);
		return NULL;
	}
	zlistx_set_destructor(self->list, s_relay_destroy);
	return self;
}

void
dg_relays_destroy(dg_relays_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	zlistx_destroy(&(*self_p)->list);
	free(*self_p);
	*self_p = NULL;
}

void
dg_relays_forward(dg_relays_t *self, int64_t now, const char *name,
    zframe_t *identity, const dg_route_t *client, const dg_msg_t *m)
{
	s_relay_t *rl = calloc(1, sizeof *rl);
	dg_msg_t *fwd = dg_msg_new(m->op);

	if (!rl || !fwd) {
		free(rl);
		dg_msg_destroy(&fwd);
		dg_wire_send_error(self->router, client, m->seq,
		    DG_PROTO_E_NOMEM, "out of memory");
		return;
	}
	rl->seq = ++self->seq;
	rl->identity = zframe_dup(identity);
	snprintf(rl->name, sizeof rl->name, "%s", name);
	rl->op = m->op;
	dg_route_copy(&rl->client, client);
	rl->client_seq = m->seq;
	rl->deadline = now + DG_RELAY_MS;
	zlistx_add_end(self->list, rl);
	fwd->seq = rl->seq;
	fwd->u.threads.name = rl->name;         /* every one is a name_msg */
	dg_route_t to = { .identity = identity };
	dg_wire_post(self->router, &to, fwd);
	dg_msg_destroy(&fwd);
}

bool
dg_relays_reply(dg_relays_t *self, const dg_route_t *from, dg_msg_t *m)
{
	for (s_relay_t *rl = zlistx_first(self->list); rl;
	    rl = zlistx_next(self->list)) {
		if (rl->seq != m->seq || !from->identity ||
		    !zframe_eq(rl->identity, from->identity))
			continue;
		m->seq = rl->client_seq;
		dg_wire_send(self->router, &rl->client, m);
		zlistx_delete(self->list, zlistx_cursor(self->list));
		return true;
	}
	return false;
}

void
dg_relays_expire(dg_relays_t *self, int64_t now)
{
	s_relay_t *rl;

	while ((rl = zlistx_first(self->list)) && now >= rl->deadline) {
		dg_wire_send_error(self->router, &rl->client, rl->client_seq,
		    DG_PROTO_E_TIMEOUT, "%s did not answer '%s' within %d ms",
		    rl->name, dg_op_name(rl->op), DG_RELAY_MS);
		zlistx_delete(self->list, zlistx_cursor(self->list));
	}
}

int64_t
dg_relays_next(dg_relays_t *self)
{
	s_relay_t *rl = zlistx_first(self->list);

	return rl ? rl->deadline : INT64_MAX;
}
