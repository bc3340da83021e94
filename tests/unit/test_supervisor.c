/*  test_supervisor.c: a child started through the supervisor shows in
 *  its list and in RUN/pids, another supervisor adopts it from there,
 *  stop ends it and reap sees it gone; a program that cannot be run
 *  says so in its log; the run folder and its lock refuse what they
 *  should.  */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <czmq.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor.h"

#define S_DEADLINE_MS 10000

static char *
s_scratch(void)
{
	char *dir = strdup("/tmp/dg-supervisor-XXXXXX");

	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static void
s_rmrf(const char *dir)
{
	char *cmd;

	assert_true(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* Reap until child i has exited or the deadline passes. */
static bool
s_wait_exited(dg_supervisor_t *sup, size_t i)
{
	int64_t end = zclock_mono() + S_DEADLINE_MS;

	while (!dg_supervisor_exited(sup, i)) {
		if (zclock_mono() >= end)
			return false;
		zclock_sleep(5);
	}
	return true;
}

/* Until `pid` runs `program`: a child is in the test's own image
 * between fork and exec. */
static bool
s_wait_exec(pid_t pid, const char *program)
{
	int64_t end = zclock_mono() + S_DEADLINE_MS;
	char *path, cmd[256];
	bool ran = false;

	assert_true(asprintf(&path, "/proc/%d/cmdline", (int)pid) > 0);
	while (!ran && zclock_mono() < end) {
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(cmd, 1, sizeof cmd - 1, f) : 0;
		if (f)
			fclose(f);
		cmd[n] = '\0';
		ran = strstr(cmd, program) != NULL && getsid(pid) == pid;
		if (!ran)
			zclock_sleep(5);
	}
	free(path);
	return ran;
}

static dg_supervisor_t *
s_new(const char *dir)
{
	char why[512];
	dg_supervisor_t *sup = dg_supervisor_new(dir, false, why, sizeof why);

	assert_non_null(sup);
	return sup;
}

static void
test_spawn_stop_reap(void **state)
{
	(void)state;
	char *dir = s_scratch(), why[512];
	char *const argv[] = { (char *)"/bin/sleep", (char *)"60", NULL };
	dg_supervisor_t *sup = s_new(dir);

	assert_int_equal(dg_supervisor_spawn(sup, "sleeper", argv, why,
	    sizeof why), 0);
	assert_int_equal(dg_supervisor_size(sup), 1);
	const dg_child_t *c = dg_supervisor_child(sup, 0);
	assert_non_null(c);
	assert_null(dg_supervisor_child(sup, 1));
	assert_string_equal(c->name, "sleeper");
	assert_true(c->pid > 0);
	assert_int_equal(c->state, DG_CHILD_RUNNING);
	assert_false(dg_supervisor_exited(sup, 0));
	assert_int_equal(dg_supervisor_reap(sup), 1);
	/* In a session of its own: a terminal's Ctrl-C does not reach it. */
	assert_true(s_wait_exec(c->pid, "sleep"));

	assert_int_equal(dg_supervisor_stop(sup, 0), 0);
	assert_int_equal(c->state, DG_CHILD_STOPPING);
	assert_true(s_wait_exited(sup, 0));
	assert_int_equal(c->state, DG_CHILD_EXITED);
	assert_true(c->reaped);
	assert_true(WIFSIGNALED(c->status));
	assert_int_equal(WTERMSIG(c->status), SIGTERM);
	assert_int_equal(dg_supervisor_reap(sup), 0);
	/* Reaped: no zombie is left behind. */
	assert_int_equal(waitpid(c->pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	/* Stopping what has exited is refused. */
	assert_int_equal(dg_supervisor_stop(sup, 0), -1);
	assert_int_equal(errno, ESRCH);

	dg_supervisor_prune(sup);
	assert_int_equal(dg_supervisor_size(sup), 0);
	dg_supervisor_destroy(&sup);
	assert_null(sup);
	s_rmrf(dir);
	free(dir);
}

static void
test_pids_adopt(void **state)
{
	(void)state;
	char *dir = s_scratch(), why[512];
	char *const argv[] = { (char *)"/bin/sleep", (char *)"60", NULL };
	dg_supervisor_t *parent = s_new(dir), *other = s_new(dir);

	assert_int_equal(dg_supervisor_load_pids(other, "sleep"), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(dg_supervisor_spawn(parent, "a", argv, why,
	    sizeof why), 0);
	assert_int_equal(dg_supervisor_spawn(parent, "b", argv, why,
	    sizeof why), 0);
	assert_int_equal(dg_supervisor_save_pids(parent), 0);
	for (size_t i = 0; i < 2; i++)
		assert_true(s_wait_exec(dg_supervisor_child(parent, i)->pid,
		    "sleep"));

	/* The other one finds both; a program name they do not run makes
	 * their pids someone else's. */
	assert_int_equal(dg_supervisor_load_pids(other, "sleep"), 2);
	assert_int_equal(dg_supervisor_load_pids(other, "disaggd"), 2);
	assert_int_equal(dg_supervisor_size(other), 4);
	for (size_t i = 0; i < 2; i++) {
		const dg_child_t *mine = dg_supervisor_child(parent, i);
		const dg_child_t *seen = dg_supervisor_child(other, i);
		assert_string_equal(seen->name, mine->name);
		assert_int_equal(seen->pid, mine->pid);
		assert_int_equal(seen->state, DG_CHILD_RUNNING);
		assert_int_equal(dg_supervisor_child(other, i + 2)->state,
		    DG_CHILD_EXITED);
	}
	dg_supervisor_prune(other);
	assert_int_equal(dg_supervisor_size(other), 2);

	/* Stopped by the adopter, reaped by the parent; the adopter sees
	 * it gone once it is no longer running (a zombie counts as gone). */
	assert_int_equal(dg_supervisor_stop(other, 0), 0);
	assert_true(s_wait_exited(parent, 0));
	assert_true(s_wait_exited(other, 0));
	assert_false(dg_supervisor_child(other, 0)->reaped);
	assert_int_equal(dg_supervisor_reap(other), 1);

	assert_int_equal(dg_supervisor_kill(parent, 1), 0);
	assert_true(s_wait_exited(parent, 1));
	assert_int_equal(WTERMSIG(dg_supervisor_child(parent, 1)->status),
	    SIGKILL);
	assert_true(s_wait_exited(other, 1));

	dg_supervisor_remove_pids(parent);
	assert_int_equal(dg_supervisor_load_pids(other, "sleep"), -1);
	dg_supervisor_destroy(&other);
	dg_supervisor_destroy(&parent);
	s_rmrf(dir);
	free(dir);
}

static void
test_cannot_run(void **state)
{
	(void)state;
	char *dir = s_scratch(), why[512], *log, line[512];
	char *const argv[] = { (char *)"/nonexistent/program", NULL };
	dg_supervisor_t *sup = s_new(dir);

	dg_supervisor_set_who(sup, "test");
	assert_int_equal(dg_supervisor_spawn(sup, "x", argv, why, sizeof why),
	    0);
	assert_true(s_wait_exited(sup, 0));
	const dg_child_t *c = dg_supervisor_child(sup, 0);
	assert_true(WIFEXITED(c->status));
	assert_int_equal(WEXITSTATUS(c->status), 127);
	assert_true(asprintf(&log, "%s/x.log", dir) > 0);
	assert_string_equal(c->log, log);
	FILE *f = fopen(log, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof line, f));
	fclose(f);
	assert_string_equal(line, "test: cannot run /nonexistent/program\n");
	free(log);
	dg_supervisor_destroy(&sup);
	s_rmrf(dir);
	free(dir);
}

static void
test_folder_and_lock(void **state)
{
	(void)state;
	char *dir = s_scratch(), why[512], *sub, *file;
	dg_supervisor_t *sup;

	assert_true(asprintf(&sub, "%s/a/b", dir) > 0);
	assert_true(asprintf(&file, "%s/file", dir) > 0);
	assert_null(dg_supervisor_new(sub, false, why, sizeof why));
	assert_int_equal(errno, ENOENT);
	sup = dg_supervisor_new(sub, true, why, sizeof why);
	assert_non_null(sup);
	assert_string_equal(dg_supervisor_dir(sup), sub);
	dg_supervisor_destroy(&sup);

	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_null(dg_supervisor_new(file, false, why, sizeof why));
	assert_int_equal(errno, EEXIST);
	assert_non_null(strstr(why, "is not a folder"));

	dg_supervisor_t *one = s_new(dir), *two = s_new(dir);
	assert_int_equal(dg_supervisor_lock(one), 0);
	assert_int_equal(dg_supervisor_lock(two), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	dg_supervisor_destroy(&one);
	assert_int_equal(dg_supervisor_lock(two), 0);
	dg_supervisor_destroy(&two);

	free(sub);
	free(file);
	s_rmrf(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spawn_stop_reap),
		cmocka_unit_test(test_pids_adopt),
		cmocka_unit_test(test_cannot_run),
		cmocka_unit_test(test_folder_and_lock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
