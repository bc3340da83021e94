/*  test_trust.c: folders and files a daemon trusts (lib/trust.c), and
 *  where it trusts them: a stage's output folder, the journal.  One that
 *  another user owns or anyone but us can write is refused with a reason
 *  that names it; as root, one owned by another user too.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "stage_host.h"
#include "trust.h"
#include "scratch.h"

static int
s_setup(void **state)
{
	(void)state;
	return s_scratch_make("disagg-trust");
}

static void
s_made(char *path, size_t size, const char *name, mode_t mode)
{
	snprintf(path, size, "%s/%s", s_dir, name);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_modes(void **state)
{
	char path[128], link[128], why[256];
	(void)state;

	s_made(path, sizeof path, "private", 0700);
	assert_int_equal(dg_trust_check(path, "folder", why, sizeof why), 0);
	s_made(path, sizeof path, "everyone", 0777);
	assert_int_equal(dg_trust_check(path, "folder", why, sizeof why), -1);
	assert_non_null(strstr(why, "writable by everyone"));
	s_made(path, sizeof path, "group", 0770);
	assert_int_equal(dg_trust_check(path, "folder", why, sizeof why), -1);
	assert_non_null(strstr(why, "its group"));
	/* A link of ours to a folder anyone can write: what counts is
	 * where it leads. */
	snprintf(path, sizeof path, "%s/everyone", s_dir);
	snprintf(link, sizeof link, "%s/link", s_dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(dg_trust_check(link, "folder", why, sizeof why), -1);
	/* Missing: refused, unless it may not exist yet. */
	snprintf(path, sizeof path, "%s/none", s_dir);
	assert_int_equal(dg_trust_check(path, "folder", why, sizeof why), -1);
	assert_int_equal(dg_trust_if_there(path, "folder", why, sizeof why),
	    0);
	if (geteuid() == 0) {
		s_made(path, sizeof path, "theirs", 0755);
		assert_int_equal(chown(path, 65534, 65534), 0);
		assert_int_equal(dg_trust_check(path, "folder", why,
		    sizeof why), -1);
		assert_non_null(strstr(why, "another user"));
	}
}

static void
s_nothing(void *arg, uint64_t id, int64_t deadline, dg_msg_t *m)
{
	(void)arg;
	(void)id;
	(void)deadline;
	dg_msg_destroy(&m);
}

/* Where the daemons trust folders: a world-writable output folder or
 * journal folder stops them with the reason. */
static void
test_where_it_is_used(void **state)
{
	char path[128], file[160], why[512];
	(void)state;

	s_made(path, sizeof path, "out", 0777);
	assert_null(dg_stage_output_dir(path, why, sizeof why));
	assert_non_null(strstr(why, "output folder"));
	assert_non_null(strstr(why, "writable by everyone"));
	snprintf(file, sizeof file, "%s/journal", path);
	assert_null(dg_journal_open(file, s_nothing, NULL, why, sizeof why));
	assert_non_null(strstr(why, "journal folder"));
	assert_int_equal(chmod(path, 0755), 0);
	char *abs = dg_stage_output_dir(path, why, sizeof why);
	assert_non_null(abs);
	free(abs);
	dg_journal_t *j = dg_journal_open(file, s_nothing, NULL, why,
	    sizeof why);
	assert_non_null(j);
	dg_journal_destroy(&j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_where_it_is_used),
	};
	return cmocka_run_group_tests(tests, s_setup, s_scratch_remove);
}
