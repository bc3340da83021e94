/*  bench_topo.c: a benchmark's own topology in a run folder of its own.
 *
 *  The benchmarks that measure daemons start them with the code of
 *  `disagg up` (up.c), quietly: what up and down print goes to a file in
 *  the run folder, next to the daemons' logs, where a failed run points.  */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_topo.h"
#include "up.h"

int
dg_bench_run_open(const char *who, const char *tag, const char *dir,
    const char *longest, char *run, size_t size, bool *made)
{
	char path[PATH_MAX];

	*made = false;
	if (dir) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr, "%s: cannot create %s: %s\n", who, dir,
			    strerror(errno));
			return -1;
		}
		if (!realpath(dir, path)) {
			fprintf(stderr, "%s: %s: %s\n", who, dir, strerror(errno));
			return -1;
		}
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(path, sizeof path, "%s/disagg-%s.XXXXXX",
		    tmp && *tmp ? tmp : "/tmp", tag);
		if (!mkdtemp(path)) {
			fprintf(stderr, "%s: cannot create %s: %s\n", who, path,
			    strerror(errno));
			return -1;
		}
		*made = true;
	}
	if (strlen(path) + strlen(longest) > DG_BENCH_IPC_MAX ||
	    strlen(path) >= size) {
		fprintf(stderr, "%s: the run folder %s is too long a path for "
		    "ipc endpoints; use -d with a shorter one\n", who, path);
		if (*made)
			rmdir(path);
		*made = false;
		return -1;
	}
	snprintf(run, size, "%s", path);
	return 0;
}

/* stdout into `path` while up or down talk; the saved stdout, or -1. */
static int
s_quiet(const char *path)
{
	fflush(stdout);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	int saved = fcntl(1, F_DUPFD_CLOEXEC, 3);
	if (saved < 0 || dup2(fd, 1) < 0) {
		if (saved >= 0)
			close(saved);
		close(fd);
		return -1;
	}
	close(fd);
	return saved;
}

static void
s_loud(int saved)
{
	fflush(stdout);
	if (saved >= 0) {
		dup2(saved, 1);
		close(saved);
	}
}

int
dg_bench_up_down(const char *run, bool up, const char *ini)
{
	char cmd[8], f[4] = "-f", d[4] = "-d", file[PATH_MAX], dir[PATH_MAX];
	char out[PATH_MAX + 16], t[16] = "--timeout", secs[8] = "60";
	char *argv[8];
	int argc = 0;

	snprintf(cmd, sizeof cmd, "%s", up ? "up" : "down");
	snprintf(dir, sizeof dir, "%s", run);
	argv[argc++] = cmd;
	argv[argc++] = d;
	argv[argc++] = dir;
	if (up) {
		snprintf(file, sizeof file, "%s", ini);
		argv[argc++] = f;
		argv[argc++] = file;
		argv[argc++] = t;
		argv[argc++] = secs;
	}
	argv[argc] = NULL;
	snprintf(out, sizeof out, "%s/%s.out", run, cmd);
	int saved = s_quiet(out);
	int rc = up ? dg_cmd_up(argc, argv) : dg_cmd_down(argc, argv);
	s_loud(saved);
	return rc;
}

volatile sig_atomic_t dg_bench_stop;

static void
s_on_signal(int sig)
{
	dg_bench_stop = sig;
}

void
dg_bench_catch_stop(void)
{
	struct sigaction sa = { .sa_handler = s_on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static int
s_remove_one(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void
dg_bench_run_remove(const char *run)
{
	nftw(run, s_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}
