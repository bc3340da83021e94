/*  supervisor_pids.c: RUN/pids, the list of children a supervisor
 *  leaves for the next one to find (see supervisor.h).  */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "supervisor.h"

static char *
s_path(const dg_supervisor_t *self, const char *name)
{
	char *path;

	return asprintf(&path, "%s/%s", dg_supervisor_dir(self), name) < 0 ?
	    NULL : path;
}

int
dg_supervisor_save_pids(const dg_supervisor_t *self)
{
	char *path = s_path(self, "pids"), *tmp = s_path(self, "pids.tmp");
	int rc = -1;

	if (!path || !tmp)
		goto out;
	FILE *f = fopen(tmp, "w");
	if (!f)
		goto out;
	for (size_t i = 0; i < dg_supervisor_size(self); i++) {
		const dg_child_t *c = dg_supervisor_child(self, i);
		if (c->pid > 0)
			fprintf(f, "%s %d\n", c->name, (int)c->pid);
	}
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		unlink(tmp);
	else
		rc = 0;
out:
	free(path);
	free(tmp);
	return rc;
}

int
dg_supervisor_load_pids(dg_supervisor_t *self, const char *program)
{
	char *path = s_path(self, "pids"), *line = NULL;
	size_t size = 0;
	int n = 0;

	FILE *f = path ? fopen(path, "r") : NULL;
	free(path);
	if (!f)
		return -1;
	while (getline(&line, &size, f) >= 0) {
		char *name = NULL;
		int pid;
		/* A line that is not "NAME PID" is skipped, not fatal: down
		 * must still stop the others. */
		bool good = sscanf(line, "%ms %d", &name, &pid) == 2 && pid > 0;
		if (good && dg_supervisor_adopt(self, name, pid, program) < 0) {
			free(name);
			n = -1;
			break;
		}
		n += good;
		free(name);
	}
	free(line);
	fclose(f);
	return n;
}

void
dg_supervisor_remove_pids(const dg_supervisor_t *self)
{
	char *path = s_path(self, "pids");

	if (path)
		unlink(path);
	free(path);
}
