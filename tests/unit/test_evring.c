/*  test_evring.c: the controller's ring of its newest events
 *  (lib/evring.c): ids count every event, the oldest go first, a reply
 *  holds only what came after the id asked for and survives the wire,
 *  and a reload's new size keeps the newest.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "evring.h"

/* Add event number i ("e<i>" in its message). */
static uint64_t
s_add(dg_evring_t *r, int i)
{
	char text[32];
	dg_event_msg_t e = { .kind = "join", .ts_ms = 1000 + i,
	    .name = i % 2 ? "t0" : NULL, .request = (uint64_t)i,
	    .message = text };

	snprintf(text, sizeof text, "e%d", i);
	uint64_t id = dg_evring_add(r, &e);
	assert_int_equal(e.id, id);
	return id;
}

/* The reply after `after` holds ids first..last. */
static void
s_expect(dg_evring_t *r, uint64_t after, uint64_t first, uint64_t last)
{
	dg_msg_t *m = dg_evring_reply(r, after, 9);
	char text[32];

	assert_non_null(m);
	assert_int_equal(m->op, DG_OP_EVENTS_OK);
	assert_int_equal(m->seq, 9);
	assert_int_equal(m->u.events_ok.epoch, 555);
	size_t n = first > last ? 0 : (size_t)(last - first + 1);
	assert_int_equal(m->u.events_ok.n_events, n);
	for (size_t i = 0; i < n; i++) {
		const dg_event_msg_t *e = &m->u.events_ok.events[i];
		assert_int_equal(e->id, first + i);
		snprintf(text, sizeof text, "e%d", (int)(first + i));
		assert_string_equal(e->message, text);
		assert_string_equal(e->kind, "join");
		assert_int_equal(e->ts_ms, 1000 + (int64_t)(first + i));
	}
	dg_msg_destroy(&m);
}

static void
test_ring(void **state)
{
	(void)state;
	dg_evring_t *r = dg_evring_new(4, 555);
	assert_non_null(r);
	s_expect(r, 0, 1, 0);
	for (int i = 1; i <= 3; i++)
		assert_int_equal(s_add(r, i), (uint64_t)i);
	assert_int_equal(dg_evring_size(r), 3);
	s_expect(r, 0, 1, 3);
	s_expect(r, 2, 3, 3);
	s_expect(r, 3, 1, 0);
	s_expect(r, 99, 1, 0);
	/* Full: the oldest go, ids go on. */
	for (int i = 4; i <= 10; i++)
		s_add(r, i);
	assert_int_equal(dg_evring_size(r), 4);
	s_expect(r, 0, 7, 10);
	s_expect(r, 5, 7, 10);
	s_expect(r, 8, 9, 10);
	dg_msg_t *m = dg_evring_reply(r, 0, 1);
	assert_int_equal(m->u.events_ok.last, 10);
	dg_msg_destroy(&m);
	dg_evring_destroy(&r);
	assert_null(r);
	dg_evring_destroy(&r);
}

static void
test_keep(void **state)
{
	(void)state;
	dg_evring_t *r = dg_evring_new(5, 555);
	assert_non_null(r);
	for (int i = 1; i <= 7; i++)
		s_add(r, i);
	s_expect(r, 0, 3, 7);
	/* Smaller: the newest stay. */
	assert_int_equal(dg_evring_set_keep(r, 2), 0);
	assert_int_equal(dg_evring_keep(r), 2);
	s_expect(r, 0, 6, 7);
	/* Larger: nothing lost, room to grow. */
	assert_int_equal(dg_evring_set_keep(r, 6), 0);
	s_expect(r, 0, 6, 7);
	for (int i = 8; i <= 11; i++)
		s_add(r, i);
	s_expect(r, 0, 6, 11);
	s_add(r, 12);
	s_expect(r, 0, 7, 12);
	/* None kept: ids still count. */
	assert_int_equal(dg_evring_set_keep(r, 0), 0);
	assert_int_equal(dg_evring_size(r), 0);
	assert_int_equal(s_add(r, 13), 13);
	s_expect(r, 0, 1, 0);
	dg_msg_t *m = dg_evring_reply(r, 0, 1);
	assert_int_equal(m->u.events_ok.last, 13);
	dg_msg_destroy(&m);
	dg_evring_destroy(&r);

	r = dg_evring_new(0, 555);
	assert_non_null(r);
	assert_int_equal(s_add(r, 1), 1);
	s_expect(r, 0, 1, 0);
	dg_evring_destroy(&r);
}

/* A reply goes over the wire and back whole, optional fields absent
 * where the event had none. */
static void
test_wire(void **state)
{
	(void)state;
	dg_evring_t *r = dg_evring_new(300, 555);
	dg_buf_t b;
	dg_msg_t *back = NULL;

	for (int i = 1; i <= 300; i++)
		s_add(r, i);
	dg_msg_t *m = dg_evring_reply(r, 100, 3);
	assert_int_equal(dg_proto_encode(m, &b), 0);
	dg_msg_destroy(&m);
	assert_int_equal(dg_proto_decode(b.data, b.size, &back, NULL), 0);
	dg_buf_free(&b);
	assert_int_equal(back->op, DG_OP_EVENTS_OK);
	assert_int_equal(back->seq, 3);
	assert_int_equal(back->u.events_ok.n_events, 200);
	assert_int_equal(back->u.events_ok.last, 300);
	const dg_event_msg_t *e = &back->u.events_ok.events[0];
	assert_int_equal(e->id, 101);
	assert_string_equal(e->name, "t0");
	assert_int_equal(e->request, 101);
	assert_null(back->u.events_ok.events[1].name);
	dg_msg_destroy(&back);
	dg_evring_destroy(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring),
		cmocka_unit_test(test_keep),
		cmocka_unit_test(test_wire),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
