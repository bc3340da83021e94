/*  test_log.c: levels filter before formatting, lines carry the
 *  program's name, and czmq's own log lines obey our level; lines on
 *  stderr are dated in UTC ISO 8601, and a log file there is appended
 *  to and rotated by size.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <czmq.h>
#include <fcntl.h>
#include <regex.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "scratch.h"

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

static off_t
s_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void
test_stamp_and_rotate(void **state)
{
	(void)state;
	char path[128], old[140], line[256], stamp[32];
	regex_t re;

	assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:"
	    "[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$", REG_EXTENDED | REG_NOSUB), 0);
	assert_int_equal(regexec(&re, dg_log_stamp(stamp, sizeof stamp), 0,
	    NULL, 0), 0);
	regfree(&re);

	assert_int_equal(s_scratch_make("dg-log"), 0);
	snprintf(path, sizeof path, "%s/t0.log", s_dir);
	/* An earlier run's line, which must stay. */
	FILE *f = fopen(path, "w");
	fputs("earlier run\n", f);
	fclose(f);
	int saved = dup(STDERR_FILENO);
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	dg_log_init("t0", true, DG_LOG_INFO);
	dg_log_set_rotate(4096);
	dg_log_info("first line");
	f = fopen(path, "r");
	assert_non_null(fgets(line, sizeof line, f));
	assert_string_equal(line, "earlier run\n");
	assert_non_null(fgets(line, sizeof line, f));
	fclose(f);
	/* "2026-12-02T02:10:00.123Z t0 info: first line" */
	assert_int_equal(strlen(line), 24 + strlen(" t0 info: first line\n"));
	assert_string_equal(line + 24, " t0 info: first line\n");
	for (int i = 0; i < 300; i++)
		dg_log_info("line %d of a log that outgrows its limit", i);
	snprintf(old, sizeof old, "%s.1", path);
	assert_true(s_size(old) >= 4096);
	assert_true(s_size(path) < 4096);
	snprintf(old, sizeof old, "%s.%d", path, DG_LOG_KEEP);
	assert_true(s_size(old) > 0);
	snprintf(old, sizeof old, "%s.%d", path, DG_LOG_KEEP + 1);
	assert_int_equal(s_size(old), -1);
	/* The newest lines are in the file stderr goes to now. */
	dg_log_info("the last line");
	f = fopen(path, "r");
	char *last = NULL;
	while (fgets(line, sizeof line, f))
		last = line;
	fclose(f);
	assert_non_null(last);
	assert_non_null(strstr(last, "t0 info: the last line"));
	dg_log_set_rotate(0);
	dup2(saved, STDERR_FILENO);
	close(saved);
	s_scratch_remove(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_czmq),
		cmocka_unit_test(test_stamp_and_rotate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
