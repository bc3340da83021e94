/*  run.c: see run.h.  */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* `path` and its missing parents; the last one gets `mode`. */
static int
s_mkdirs(const char *path, mode_t mode)
{
	char *buf = strdup(path);

	if (!buf)
		return -1;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			goto fail;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		goto fail;
	free(buf);
	return 0;
fail:;
	int err = errno;
	free(buf);
	errno = err;
	return -1;
}

/* A failure of dg_run_open: the reason, and errno kept for the caller. */
static char *s_refuse(int err, char *why, size_t whysize, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static char *
s_refuse(int err, char *why, size_t whysize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whysize, fmt, ap);
	va_end(ap);
	errno = err;
	return NULL;
}

char *
dg_run_open(const char *dir, bool create, char *why, size_t whysize)
{
	struct stat st;

	if (create && s_mkdirs(dir, 0700) < 0)
		return s_refuse(errno, why, whysize, "cannot create the run "
		    "folder %s: %s", dir, strerror(errno));
	if (stat(dir, &st) < 0)
		return s_refuse(errno, why, whysize, "run folder %s: %s", dir,
		    strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return s_refuse(EEXIST, why, whysize, "%s is not a folder", dir);
	if (st.st_uid != geteuid())
		return s_refuse(EPERM, why, whysize, "the run folder %s belongs "
		    "to another user", dir);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return s_refuse(EPERM, why, whysize, "the run folder %s is "
		    "writable by %s (mode %04o): chmod go-w it", dir,
		    st.st_mode & S_IWOTH ? "everyone" : "its group",
		    (unsigned)(st.st_mode & 07777));
	char *abs = realpath(dir, NULL);
	if (!abs)
		return s_refuse(errno, why, whysize, "run folder %s: %s", dir,
		    strerror(errno));
	/* Room for the file names under it, and ipc endpoints. */
	if (strlen(abs) > PATH_MAX - 256) {
		s_refuse(ENAMETOOLONG, why, whysize, "the run folder's path is "
		    "too long: %s", abs);
		free(abs);
		return NULL;
	}
	return abs;
}
