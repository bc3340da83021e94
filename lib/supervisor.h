/*  supervisor.h: the daemons started on this host from one run folder
 *  (run.h), for `disagg up`, `disagg down` and whatever else starts or
 *  stops them.
 *
 *  Each child runs in a session of its own (a Ctrl-C in the terminal
 *  that started it must not reach it), with stdin from /dev/null and
 *  stdout and stderr appended to RUN/NAME.log.  RUN/pids ("NAME PID"
 *  lines) is how a later process, `disagg down` say, finds them again; the
 *  children it reads from there are adopted: it cannot wait for them,
 *  so it watches their pids instead.  RUN/lock keeps two of these from
 *  working on the same run folder at once.
 *
 *  Nothing here waits: stop sends SIGTERM, and reap, called as often as
 *  the caller likes, tells which children have exited since.  */
#ifndef DG_SUPERVISOR_H
#define DG_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct dg_supervisor dg_supervisor_t;

typedef enum {
	DG_CHILD_RUNNING,
	DG_CHILD_STOPPING,      /* signalled by stop or kill, not yet exited */
	DG_CHILD_EXITED
} dg_child_state_t;

/* A child as the list shows it, kept up to date in place; valid until
 * prune drops it or destroy. */
typedef struct {
	const char *name;
	const char *log;        /* RUN/NAME.log */
	pid_t pid;
	dg_child_state_t state;
	bool reaped;            /* exited and waited for here: status is set */
	int status;             /* its wait status, when reaped */
} dg_child_t;

/* The run folder `dir` (see dg_run_open: create, and the reasons in
 * `why` and errno when NULL), with no children yet. */
dg_supervisor_t *dg_supervisor_new(const char *dir, bool create, char *why,
    size_t whysize);
/* Forgets the children, never stops them: they outlive the supervisor,
 * and RUN/pids is how another one finds them.  Releases the lock. */
void dg_supervisor_destroy(dg_supervisor_t **self_p);

/* The run folder's absolute path. */
const char *dg_supervisor_dir(const dg_supervisor_t *self);
/* How the line a child writes to its log when its program cannot be
 * run begins ("WHO: cannot run PROGRAM"); "supervisor" until set. */
void dg_supervisor_set_who(dg_supervisor_t *self, const char *who);

/* Take RUN/lock until destroy.  0, or -1 with errno: EWOULDBLOCK when
 * another process holds it, else why RUN/lock could not be opened. */
int dg_supervisor_lock(dg_supervisor_t *self);

/* Start argv[0] (a path) with `argv` as the child `name`, its log
 * appended to.  0, or -1 with the reason in `why` (nothing started). */
int dg_supervisor_spawn(dg_supervisor_t *self, const char *name,
    char *const argv[], char *why, size_t whysize);
/* The daemon of one section of a topology: `disaggd -d -f file -N
 * name`. */
int dg_supervisor_spawn_section(dg_supervisor_t *self, const char *disaggd,
    const char *file, const char *name, char *why, size_t whysize);
/* A child this process did not start.  `program` is what its command
 * line's first word must contain: a pid the kernel has since given to
 * another program counts as exited.  0, or -1 (out of memory). */
int dg_supervisor_adopt(dg_supervisor_t *self, const char *name, pid_t pid,
    const char *program);

/* The children in the order they were added; child returns NULL past
 * the end. */
size_t dg_supervisor_size(const dg_supervisor_t *self);
const dg_child_t *dg_supervisor_child(const dg_supervisor_t *self,
    size_t i);

/* SIGTERM (stop) or SIGKILL (kill) to child i, which becomes STOPPING.
 * 0, or -1 with errno (ESRCH: no such child, or it has exited). */
int dg_supervisor_stop(dg_supervisor_t *self, size_t i);
int dg_supervisor_kill(dg_supervisor_t *self, size_t i);
/* Whether child i has exited (true past the end), waiting for it if it
 * was forked here, so that it does not stay a zombie. */
bool dg_supervisor_exited(dg_supervisor_t *self, size_t i);
/* The same for every child; how many still run. */
size_t dg_supervisor_reap(dg_supervisor_t *self);
/* Drop the exited children from the list (the others move up). */
void dg_supervisor_prune(dg_supervisor_t *self);

/* RUN/pids: every child in the list, replaced at once, so that a
 * reader never sees half of it.  0, or -1 with errno. */
int dg_supervisor_save_pids(const dg_supervisor_t *self);
/* Adopt every child RUN/pids names (see adopt for `program`); how many,
 * or -1 with errno (ENOENT: there is no RUN/pids). */
int dg_supervisor_load_pids(dg_supervisor_t *self, const char *program);
void dg_supervisor_remove_pids(const dg_supervisor_t *self);

#endif
