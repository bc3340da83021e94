/*  trust.c: folders and files this process trusts (trust.h).  */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trust.h"

static int
s_check(const struct stat *st, const char *path, const char *what, char *why,
    size_t whysize)
{
	if (st->st_uid != geteuid() && st->st_uid != 0) {
		snprintf(why, whysize, "%s %s belongs to another user (uid %u): "
		    "refusing to trust it", what, path, (unsigned)st->st_uid);
		return -1;
	}
	if (!S_ISLNK(st->st_mode) && (st->st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(why, whysize, "%s %s is writable by %s (mode %04o): "
		    "refusing to trust it; chmod go-w it", what, path,
		    st->st_mode & S_IWOTH ? "everyone" : "its group",
		    (unsigned)(st->st_mode & 07777));
		return -1;
	}
	return 0;
}

int
dg_trust_check(const char *path, const char *what, char *why,
    size_t whysize)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		snprintf(why, whysize, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (s_check(&st, path, what, why, whysize) < 0)
		return -1;
	if (S_ISLNK(st.st_mode)) {
		if (stat(path, &st) < 0) {
			snprintf(why, whysize, "%s %s: %s", what, path,
			    strerror(errno));
			return -1;
		}
		return s_check(&st, path, what, why, whysize);
	}
	return 0;
}

int
dg_trust_if_there(const char *path, const char *what, char *why,
    size_t whysize)
{
	struct stat st;

	if (lstat(path, &st) < 0 && errno == ENOENT)
		return 0;
	return dg_trust_check(path, what, why, whysize);
}
