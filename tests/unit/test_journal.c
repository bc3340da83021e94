/*  test_journal.c: what the controller accepted and did not finish comes
 *  back after a restart, intact and in order; a torn last record is cut
 *  off without losing the ones before it; compaction keeps the live
 *  requests and the highest id.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

typedef struct {
	int n;
	uint64_t ids[8];
	int64_t deadlines[8];
	char prompts[8][64];
	int64_t frames[8];
	int nres;
	uint64_t res_ids[8];
	char res_status[8][16];
} s_seen_t;

static void
s_collect(void *arg, uint64_t id, int64_t deadline, dg_msg_t *m)
{
	s_seen_t *seen = arg;

	if (m->op == DG_OP_RESULT) {
		if (seen->nres < 8) {
			seen->res_ids[seen->nres] = id;
			snprintf(seen->res_status[seen->nres], 16, "%s",
			    m->u.result.status);
		}
		seen->nres++;
		dg_msg_destroy(&m);
		return;
	}
	if (seen->n < 8) {
		seen->ids[seen->n] = id;
		seen->deadlines[seen->n] = deadline;
		snprintf(seen->prompts[seen->n], 64, "%s", m->u.submit.prompt);
		seen->frames[seen->n] = m->u.submit.frames;
	}
	seen->n++;
	dg_msg_destroy(&m);
}

static char *
s_path(void)
{
	char *dir = strdup("/tmp/dg-journal-XXXXXX");
	assert_non_null(mkdtemp(dir));
	char *path = malloc(strlen(dir) + 16);
	sprintf(path, "%s/journal", dir);
	free(dir);
	return path;
}

static void
s_cleanup(char *path)
{
	char tmp[512];

	unlink(path);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	*strrchr(path, '/') = '\0';
	rmdir(path);
	free(path);
}

static void
s_accept(dg_journal_t *j, uint64_t id, const char *prompt, int64_t frames)
{
	dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);

	m->u.submit.prompt = prompt;
	m->u.submit.frames = frames;
	m->u.submit.height = 480;
	m->u.submit.width = 832;
	m->u.submit.steps = 50;
	m->u.submit.seed = 42;
	assert_int_equal(dg_journal_accept(j, id, 1000 + (int64_t)id, m), 0);
	dg_msg_destroy(&m);
}

static dg_journal_t *
s_open(const char *path, s_seen_t *seen)
{
	char err[256];

	memset(seen, 0, sizeof *seen);
	dg_journal_t *j = dg_journal_open(path, s_collect, seen, err,
	    sizeof err);
	assert_non_null(j);
	return j;
}

static void
test_replay_unfinished(void **state)
{
	(void)state;
	char *path = s_path();
	s_seen_t seen;

	dg_journal_t *j = s_open(path, &seen);
	assert_int_equal(seen.n, 0);
	assert_int_equal(dg_journal_last_id(j), 0);
	s_accept(j, 1, "a fox", 81);
	s_accept(j, 2, "a cat\nwith a newline", 17);
	s_accept(j, 3, "an owl", 33);
	assert_int_equal(dg_journal_end(j, 2, NULL), 0);
	assert_int_equal(dg_journal_end(j, 99, NULL), 0);     /* unknown: no-op */
	assert_true(dg_journal_dirty(j));
	assert_int_equal(dg_journal_sync(j), 0);
	assert_false(dg_journal_dirty(j));
	dg_journal_destroy(&j);
	assert_null(j);

	j = s_open(path, &seen);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.ids[0], 1);
	assert_int_equal(seen.ids[1], 3);
	assert_string_equal(seen.prompts[0], "a fox");
	assert_string_equal(seen.prompts[1], "an owl");
	assert_int_equal(seen.frames[1], 33);
	assert_int_equal(seen.deadlines[1], 1003);
	assert_int_equal(dg_journal_last_id(j), 3);
	assert_int_equal(dg_journal_live(j), 2);
	dg_journal_destroy(&j);
	s_cleanup(path);
}

/* A crash in the middle of a write leaves part of a record. */
static void
test_torn_tail(void **state)
{
	(void)state;
	char *path = s_path();
	s_seen_t seen;

	dg_journal_t *j = s_open(path, &seen);
	s_accept(j, 1, "kept", 1);
	s_accept(j, 2, "torn", 2);
	dg_journal_destroy(&j);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 5), 0);

	j = s_open(path, &seen);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.prompts[0], "kept");
	/* The cut file takes new records, and they replay. */
	s_accept(j, 3, "after", 3);
	dg_journal_destroy(&j);
	j = s_open(path, &seen);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.ids[1], 3);
	dg_journal_destroy(&j);

	/* Garbage appended (no valid header) is cut off too. */
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\xff\xff\xff\x7f garbage", 12), 12);
	close(fd);
	j = s_open(path, &seen);
	assert_int_equal(seen.n, 2);
	dg_journal_destroy(&j);
	s_cleanup(path);
}

static void
test_compaction(void **state)
{
	(void)state;
	char *path = s_path();
	s_seen_t seen;
	struct stat big, small;

	dg_journal_t *j = s_open(path, &seen);
	s_accept(j, 1, "old and live", 1);
	for (uint64_t id = 2; id < 6000; id++) {
		s_accept(j, id, "short-lived", 1);
		assert_int_equal(dg_journal_end(j, id, NULL), 0);
	}
	s_accept(j, 6000, "new and live", 1);
	assert_int_equal(stat(path, &big), 0);
	assert_int_equal(dg_journal_sync(j), 0);
	assert_int_equal(stat(path, &small), 0);
	assert_true(small.st_size * 100 < big.st_size);
	assert_int_equal(dg_journal_live(j), 2);
	/* Appending goes on into the rewritten file. */
	s_accept(j, 6001, "after compaction", 1);
	assert_int_equal(dg_journal_end(j, 1, NULL), 0);
	dg_journal_destroy(&j);

	j = s_open(path, &seen);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.ids[0], 6000);
	assert_int_equal(seen.ids[1], 6001);
	assert_int_equal(dg_journal_last_id(j), 6001);
	/* The highest id and the rooms reserved survive even when nothing
	 * is live. */
	assert_int_equal(dg_journal_reserve_rooms(j, 4096), 0);
	assert_int_equal(dg_journal_reserve_rooms(j, 8192), 0);
	assert_int_equal(dg_journal_reserve_rooms(j, 100), 0);     /* no-op */
	assert_int_equal(dg_journal_rooms(j), 8192);
	for (uint64_t id = 7000; id < 12000; id++) {
		s_accept(j, id, "x", 1);
		assert_int_equal(dg_journal_end(j, id, NULL), 0);
	}
	assert_int_equal(dg_journal_end(j, 6000, NULL), 0);
	assert_int_equal(dg_journal_end(j, 6001, NULL), 0);
	assert_int_equal(dg_journal_sync(j), 0);
	dg_journal_destroy(&j);
	j = s_open(path, &seen);
	assert_int_equal(seen.n, 0);
	assert_int_equal(dg_journal_last_id(j), 11999);
	assert_int_equal(dg_journal_rooms(j), 8192);
	dg_journal_destroy(&j);
	s_cleanup(path);
}

/* A restarted controller can still answer status for requests that
 * finished just before it died. */
static void
test_recent_results(void **state)
{
	(void)state;
	char *path = s_path();
	s_seen_t seen;

	dg_journal_t *j = s_open(path, &seen);
	for (uint64_t id = 1; id <= 3; id++)
		s_accept(j, id, "x", 1);
	dg_msg_t *res = dg_msg_new(DG_OP_RESULT);
	res->u.result.request = 2;
	res->u.result.status = "done";
	res->u.result.output = "/out/2.y4m";
	res->u.result.digest = "";
	assert_int_equal(dg_journal_end(j, 2, res), 0);
	res->u.result.request = 3;
	res->u.result.status = "cancelled";
	res->u.result.output = "";
	assert_int_equal(dg_journal_end(j, 3, res), 0);
	dg_msg_destroy(&res);
	dg_journal_destroy(&j);

	j = s_open(path, &seen);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.ids[0], 1);
	assert_int_equal(seen.nres, 2);
	assert_int_equal(seen.res_ids[0], 2);
	assert_string_equal(seen.res_status[0], "done");
	assert_string_equal(seen.res_status[1], "cancelled");
	/* They survive a compaction too. */
	for (uint64_t id = 10; id < 5000; id++) {
		s_accept(j, id, "x", 1);
		assert_int_equal(dg_journal_end(j, id, NULL), 0);
	}
	assert_int_equal(dg_journal_sync(j), 0);
	dg_journal_destroy(&j);
	j = s_open(path, &seen);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.nres, 2);
	dg_journal_destroy(&j);
	s_cleanup(path);
}

static void
test_cannot_open(void **state)
{
	(void)state;
	char err[256] = "";
	s_seen_t seen = { 0 };

	assert_null(dg_journal_open("/nonexistent-dir/journal", s_collect,
	    &seen, err, sizeof err));
	assert_non_null(strstr(err, "/nonexistent-dir/journal"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_unfinished),
		cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_compaction),
		cmocka_unit_test(test_recent_results),
		cmocka_unit_test(test_cannot_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
