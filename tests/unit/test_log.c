/*  test_log.c: levels filter before formatting, lines carry the
 *  program's name, and czmq's own log lines obey our level.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <czmq.h>
#include <string.h>

#include "log.h"

struct capture {
	int count;
	int level;
	char line[512];
};

static void
s_sink(int level, const char *line, void *arg)
{
	struct capture *c = arg;
	c->count++;
	c->level = level;
	snprintf(c->line, sizeof c->line, "%s", line);
}

static int s_evaluated;

static int
s_side_effect(void)
{
	return ++s_evaluated;
}

static void
test_levels(void **state)
{
	(void)state;
	struct capture c = { 0 };

	dg_log_init("t0", true, DG_LOG_INFO);
	dg_log_set_sink(s_sink, &c);
	s_evaluated = 0;
	dg_log_debug("hidden %d", s_side_effect());
	assert_int_equal(c.count, 0);
	/* Below the level, the arguments are not even evaluated. */
	assert_int_equal(s_evaluated, 0);
	dg_log_info("room=%d ready", 42);
	assert_int_equal(c.count, 1);
	assert_int_equal(c.level, DG_LOG_INFO);
	assert_string_equal(c.line, "t0 info: room=42 ready");
	dg_log_set_level(DG_LOG_ERROR);
	dg_log_warn("quiet");
	assert_int_equal(c.count, 1);
	dg_log_error("loud");
	assert_string_equal(c.line, "t0 error: loud");
	dg_log_set_level(DG_LOG_DEBUG);
	dg_log_debug("now %d", s_side_effect());
	assert_int_equal(s_evaluated, 1);
	assert_string_equal(c.line, "t0 debug: now 1");
	dg_log_set_sink(NULL, NULL);
}

static void
test_names(void **state)
{
	(void)state;
	assert_int_equal(dg_log_level_parse("warn"), DG_LOG_WARN);
	assert_int_equal(dg_log_level_parse("loud"), -1);
	assert_int_equal(dg_log_level_parse(NULL), -1);
	assert_string_equal(dg_log_level_name(DG_LOG_DEBUG), "debug");
	assert_string_equal(dg_log_level_name(9), "?");
}

static void
test_czmq(void **state)
{
	(void)state;
	struct capture c = { 0 };

	dg_log_init("e0", true, DG_LOG_INFO);
	dg_log_set_sink(s_sink, &c);
	dg_log_route_czmq();
	zsys_error("socket %s failed", "x");
	assert_int_equal(c.count, 1);
	assert_int_equal(c.level, DG_LOG_ERROR);
	assert_string_equal(c.line, "e0 error: czmq: socket x failed");
	zsys_debug("chatter");
	assert_int_equal(c.count, 1);
	zsys_warning("careful");
	assert_int_equal(c.level, DG_LOG_WARN);
	assert_string_equal(c.line, "e0 warn: czmq: careful");
	dg_log_set_sink(NULL, NULL);
	zsys_shutdown();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_czmq),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
