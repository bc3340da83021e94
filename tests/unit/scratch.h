/*  scratch.h: a private folder under /tmp for one unit test's files,
 *  made at setup and removed with everything in it at teardown.  Header
 *  only: each test is its own program.  */
#ifndef DG_TEST_SCRATCH_H
#define DG_TEST_SCRATCH_H

#include <stdio.h>
#include <stdlib.h>

static char s_dir[64];

/* Make s_dir as /tmp/PREFIX-XXXXXX: 0, or -1. */
static int
s_scratch_make(const char *prefix)
{
	snprintf(s_dir, sizeof s_dir, "/tmp/%s-XXXXXX", prefix);
	return mkdtemp(s_dir) ? 0 : -1;
}

static int
s_scratch_remove(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
