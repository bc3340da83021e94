/*  test_wire.c: messages posted while corked reach their peer intact, in
 *  order, as one ZeroMQ message per peer; a direct send never overtakes
 *  what was posted before it; an oversized batch is refused.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "wire.h"

typedef struct {
	zsock_t *router;
	zsock_t *a, *b;         /* two DEALER peers */
} s_net_t;

static int
s_setup(void **state)
{
	static int serial;
	s_net_t *n = calloc(1, sizeof *n);
	char ep[64];

	/* A fresh name each time: an inproc name is freed asynchronously. */
	snprintf(ep, sizeof ep, "inproc://test-wire-%d", ++serial);
	n->router = zsock_new_router(ep);
	n->a = zsock_new_dealer(ep);
	n->b = zsock_new_dealer(ep);
	if (!n->router || !n->a || !n->b)
		return -1;
	zsock_set_rcvtimeo(n->router, 2000);
	zsock_set_rcvtimeo(n->a, 2000);
	*state = n;
	return 0;
}

static int
s_teardown(void **state)
{
	s_net_t *n = *state;

	zsock_destroy(&n->a);
	zsock_destroy(&n->b);
	zsock_destroy(&n->router);
	free(n);
	return 0;
}

static dg_msg_t *
s_phase(uint64_t room)
{
	dg_msg_t *m = dg_msg_new(DG_OP_ROOM_PHASE);

	m->seq = room;
	m->u.room_phase.room = room;
	m->u.room_phase.request = room + 1000;
	m->u.room_phase.role = "encoder";
	m->u.room_phase.state = "encoding";
	return m;
}

static void
s_post(zsock_t *sock, const dg_route_t *route, uint64_t room)
{
	dg_msg_t *m = s_phase(room);

	assert_int_equal(dg_wire_post(sock, route, m), 0);
	dg_msg_destroy(&m);
}

/* Receive one ZeroMQ message and check that it carries `rooms`, in order. */
static void
s_expect(zsock_t *sock, dg_route_t *route, const uint64_t *rooms, int n)
{
	zmsg_t *bodies = NULL;
	dg_msg_t *m = NULL;
	dg_proto_err_t err;

	assert_int_equal(dg_wire_recv_batch(sock, route, &bodies), n);
	for (int i = 0; i < n; i++) {
		assert_int_equal(dg_wire_next(&bodies, &m, &err), 1);
		assert_int_equal(m->op, DG_OP_ROOM_PHASE);
		assert_int_equal(m->u.room_phase.room, rooms[i]);
		assert_int_equal(m->u.room_phase.request, rooms[i] + 1000);
		dg_msg_destroy(&m);
	}
	assert_int_equal(dg_wire_next(&bodies, &m, &err), -1);
	assert_null(bodies);
}

static void
test_batch_per_peer(void **state)
{
	s_net_t *n = *state;
	dg_route_t ra = { 0 }, rb = { 0 };

	dg_wire_cork();
	s_post(n->a, NULL, 1);
	s_post(n->b, NULL, 10);
	s_post(n->a, NULL, 2);
	s_post(n->a, NULL, 3);
	dg_wire_uncork();
	/* a's three arrive as one message, b's one as another. */
	for (int i = 0; i < 2; i++) {
		dg_route_t route = { 0 };
		zmsg_t *bodies = NULL;
		int got = dg_wire_recv_batch(n->router, &route, &bodies);
		zmsg_destroy(&bodies);
		assert_true(got == 3 || got == 1);
		dg_route_copy(got == 3 ? &ra : &rb, &route);
		dg_route_clear(&route);
	}
	assert_non_null(ra.identity);
	assert_non_null(rb.identity);

	/* Replies batch per identity on the ROUTER too. */
	dg_wire_cork();
	s_post(n->router, &ra, 4);
	s_post(n->router, &rb, 11);
	s_post(n->router, &ra, 5);
	dg_wire_uncork();
	s_expect(n->a, NULL, (uint64_t[]){ 4, 5 }, 2);
	zsock_set_rcvtimeo(n->b, 2000);
	s_expect(n->b, NULL, (uint64_t[]){ 11 }, 1);
	dg_route_clear(&ra);
	dg_route_clear(&rb);
}

static void
test_uncorked_post_sends_at_once(void **state)
{
	s_net_t *n = *state;

	s_post(n->a, NULL, 7);
	s_expect(n->router, NULL, (uint64_t[]){ 7 }, 1);
}

/* Nested corks flush only at the outermost uncork. */
static void
test_nested_cork(void **state)
{
	s_net_t *n = *state;

	dg_wire_cork();
	dg_wire_cork();
	s_post(n->a, NULL, 1);
	dg_wire_uncork();
	zsock_set_rcvtimeo(n->router, 50);
	zmsg_t *none = zmsg_recv(n->router);
	assert_null(none);
	zsock_set_rcvtimeo(n->router, 2000);
	s_post(n->a, NULL, 2);
	dg_wire_uncork();
	s_expect(n->router, NULL, (uint64_t[]){ 1, 2 }, 2);
}

/* A direct send first sends what was posted to the same peer. */
static void
test_send_keeps_order(void **state)
{
	s_net_t *n = *state;
	dg_msg_t *m = s_phase(3);

	dg_wire_cork();
	s_post(n->a, NULL, 1);
	s_post(n->a, NULL, 2);
	assert_int_equal(dg_wire_send(n->a, NULL, m), 0);
	dg_wire_uncork();
	dg_msg_destroy(&m);
	s_expect(n->router, NULL, (uint64_t[]){ 1, 2 }, 2);
	s_expect(n->router, NULL, (uint64_t[]){ 3 }, 1);
}

/* A long burst is cut into several messages, none lost. */
static void
test_long_burst(void **state)
{
	s_net_t *n = *state;
	int total = 0;
	uint64_t want = 0;

	dg_wire_cork();
	for (uint64_t i = 0; i < 1000; i++)
		s_post(n->a, NULL, i);
	dg_wire_uncork();
	while (total < 1000) {
		zmsg_t *bodies = NULL;
		dg_msg_t *m = NULL;
		dg_proto_err_t err;
		int got = dg_wire_recv_batch(n->router, NULL, &bodies);
		assert_true(got > 0 && got < DG_WIRE_BATCH_MAX);
		while (dg_wire_next(&bodies, &m, &err) == 1) {
			assert_int_equal(m->u.room_phase.room, want++);
			dg_msg_destroy(&m);
			total++;
		}
	}
	assert_int_equal(total, 1000);
}

static void
test_oversized_batch_refused(void **state)
{
	s_net_t *n = *state;
	zmsg_t *z = zmsg_new();
	dg_msg_t *m = s_phase(1);
	dg_buf_t buf = { 0 };

	assert_int_equal(dg_proto_encode(m, &buf), 0);
	for (int i = 0; i < DG_WIRE_BATCH_MAX + 1; i++)
		zmsg_addmem(z, buf.data, buf.size);
	dg_buf_free(&buf);
	dg_msg_destroy(&m);
	assert_int_equal(zmsg_send(&z, n->a), 0);

	zmsg_t *bodies = NULL;
	dg_proto_err_t err;
	assert_int_equal(dg_wire_recv_batch(n->router, NULL, &bodies),
	    DG_WIRE_BATCH_MAX + 1);
	assert_int_equal(dg_wire_next(&bodies, &m, &err), 0);
	assert_int_equal(err.code, DG_PROTO_E_MALFORMED);
	assert_null(bodies);
	assert_int_equal(dg_wire_next(&bodies, &m, &err), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batch_per_peer,
		    s_setup, s_teardown),
		cmocka_unit_test_setup_teardown(test_uncorked_post_sends_at_once,
		    s_setup, s_teardown),
		cmocka_unit_test_setup_teardown(test_nested_cork,
		    s_setup, s_teardown),
		cmocka_unit_test_setup_teardown(test_send_keeps_order,
		    s_setup, s_teardown),
		cmocka_unit_test_setup_teardown(test_long_burst,
		    s_setup, s_teardown),
		cmocka_unit_test_setup_teardown(test_oversized_batch_refused,
		    s_setup, s_teardown),
	};

	zsys_init();
	zsys_set_linger(0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
