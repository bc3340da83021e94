/*  test_y4m.c: the video writer in a shared output folder.  A link
 *  planted at the name of its temporary file is never written through
 *  (the file it points at stays as it was); a stale temporary of ours
 *  (a dead process that had our pid) is replaced; a finished file is
 *  renamed into place whole; the highest request id among the files of
 *  a folder is found, whatever else lies there.  */
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

#include "scratch.h"
#include "y4m.h"

static int
s_setup(void **state)
{
	(void)state;
	return s_scratch_make("disagg-y4m");
}

static void
s_paths(char *video, char *tmp, char *victim, size_t size)
{
	snprintf(video, size, "%s/7.y4m", s_dir);
	snprintf(tmp, size, "%s/.7.y4m.%ld.tmp", s_dir, (long)getpid());
	snprintf(victim, size, "%s/victim", s_dir);
}

static void
test_planted_link_not_followed(void **state)
{
	char video[128], tmp[128], victim[128], why[256] = "";
	(void)state;

	s_paths(video, tmp, victim, sizeof video);
	FILE *f = fopen(victim, "w");
	assert_non_null(f);
	fputs("precious", f);
	fclose(f);
	assert_int_equal(symlink(victim, tmp), 0);
	dg_y4m_t *y = dg_y4m_new(video, 16, 16, 1, why, sizeof why);
	assert_null(y);
	assert_non_null(strstr(why, "not written through"));
	char buf[32] = "";
	f = fopen(victim, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof buf, f));
	fclose(f);
	assert_string_equal(buf, "precious");
	unlink(tmp);
	unlink(victim);
}

static void
test_stale_temporary_replaced(void **state)
{
	char video[128], tmp[128], victim[128], why[256] = "";
	uint64_t bytes = 0;
	char digest[40];
	(void)state;

	s_paths(video, tmp, victim, sizeof video);
	FILE *f = fopen(tmp, "w");
	assert_non_null(f);
	fputs("half a video from a process that died", f);
	fclose(f);
	dg_y4m_t *y = dg_y4m_new(video, 16, 16, 1, why, sizeof why);
	assert_non_null(y);
	memset(dg_y4m_frame(y), 0x80, 16 * 16 * 3 / 2);
	assert_int_equal(dg_y4m_write(y, 1, why, sizeof why), 0);
	assert_int_equal(dg_y4m_commit(y, &bytes, digest, sizeof digest, why,
	    sizeof why), 0);
	dg_y4m_destroy(&y);
	struct stat st;
	assert_int_equal(stat(video, &st), 0);
	assert_int_equal((uint64_t)st.st_size, bytes);
	assert_int_equal(access(tmp, F_OK), -1);
	unlink(video);
}

static void
s_touch(const char *name)
{
	char path[256];

	snprintf(path, sizeof path, "%s/%s", s_dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
}

static void
test_last_request(void **state)
{
	char sub[128];

	(void)state;
	snprintf(sub, sizeof sub, "%s/nowhere", s_dir);
	assert_int_equal(dg_y4m_last_request(sub), 0);
	s_touch("9.y4m");
	s_touch("12.y4m");
	s_touch("3.mp4");
	/* Not request files: a temporary, a name, no extension, a number
	 * past 64 bits. */
	s_touch(".40.y4m.77.tmp");
	s_touch("x50.y4m");
	s_touch("60");
	s_touch("99999999999999999999999.y4m");
	assert_int_equal(dg_y4m_last_request(s_dir), 12);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_planted_link_not_followed),
		cmocka_unit_test(test_stale_temporary_replaced),
		cmocka_unit_test(test_last_request),
	};
	return cmocka_run_group_tests(tests, s_setup, s_scratch_remove);
}
