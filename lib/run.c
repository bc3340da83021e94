/*  run.c: see run.h.  */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "run.h"

const char *
dg_run_dir(void)
{
	static char dir[1024];
	const char *env = getenv("DISAGG_RUN");
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (env && *env)
		snprintf(dir, sizeof dir, "%s", env);
	else if (xdg && *xdg)
		snprintf(dir, sizeof dir, "%s/disagg", xdg);
	else
		snprintf(dir, sizeof dir, "/tmp/disagg-%u", (unsigned)getuid());
	return dir;
}

char *
dg_run_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dg_run_dir(), name);
	return buf;
}
