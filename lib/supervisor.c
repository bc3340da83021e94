/*  supervisor.c: see supervisor.h.  */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"
#include "supervisor.h"

typedef struct {
	dg_child_t pub;
	char *name;
	char *log;
	char *program;          /* what its command line names, see s_alive */
	bool ours;              /* forked here and still ours to wait for */
} s_child_t;

struct dg_supervisor {
	char *dir;
	char *who;
	int lock;
	s_child_t **children;   /* pointers, so that a grown list moves none */
	size_t n, cap;
};

dg_supervisor_t *
dg_supervisor_new(const char *dir, bool create, char *why, size_t whysize)
{
	char *abs = dg_run_open(dir, create, why, whysize);

	if (!abs)
		return NULL;
	dg_supervisor_t *self = calloc(1, sizeof *self);
	if (!self || !(self->who = strdup("supervisor"))) {
		snprintf(why, whysize, "out of memory");
		free(self);
		free(abs);
		errno = ENOMEM;
		return NULL;
	}
	self->dir = abs;
	self->lock = -1;
	return self;
}

static void
s_child_free(s_child_t *c)
{
	free(c->name);
	free(c->log);
	free(c->program);
	free(c);
}

void
dg_supervisor_destroy(dg_supervisor_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_supervisor_t *self = *self_p;
	for (size_t i = 0; i < self->n; i++)
		s_child_free(self->children[i]);
	free(self->children);
	if (self->lock >= 0)
		close(self->lock);
	free(self->who);
	free(self->dir);
	free(self);
	*self_p = NULL;
}

const char *
dg_supervisor_dir(const dg_supervisor_t *self)
{
	return self->dir;
}

void
dg_supervisor_set_who(dg_supervisor_t *self, const char *who)
{
	char *copy = strdup(who);

	if (copy) {
		free(self->who);
		self->who = copy;
	}
}

int
dg_supervisor_lock(dg_supervisor_t *self)
{
	char *path;

	if (self->lock >= 0)
		return 0;
	if (asprintf(&path, "%s/lock", self->dir) < 0)
		return -1;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(path);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		errno = EWOULDBLOCK;
		return -1;
	}
	self->lock = fd;
	return 0;
}

/* Whether `pid` runs `program`.  A zombie (exited, not yet reaped) has
 * an empty command line and counts as gone; so does a pid the kernel
 * has since given to another program. */
static bool
s_alive(pid_t pid, const char *program)
{
	char path[64], cmd[512];

	if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
		return false;
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return access("/proc/self", F_OK) != 0; /* no /proc: trust kill */
	size_t n = fread(cmd, 1, sizeof cmd - 1, f);
	fclose(f);
	if (n == 0)
		return false;
	cmd[n] = '\0';          /* argv[0] ends at the first NUL */
	const char *base = strrchr(cmd, '/');
	return strstr(base ? base + 1 : cmd, program) != NULL;
}

/* A new child at the end of the list; NULL when out of memory. */
static s_child_t *
s_add(dg_supervisor_t *self, const char *name, pid_t pid,
    const char *program)
{
	if (self->n == self->cap) {
		size_t cap = self->cap ? self->cap * 2 : 8;
		s_child_t **more = realloc(self->children, cap * sizeof *more);
		if (!more)
			return NULL;
		self->children = more;
		self->cap = cap;
	}
	s_child_t *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	const char *slash = strrchr(program, '/');
	c->name = strdup(name);
	c->program = strdup(slash ? slash + 1 : program);
	if (!c->name || !c->program ||
	    asprintf(&c->log, "%s/%s.log", self->dir, name) < 0) {
		c->log = NULL;
		s_child_free(c);
		return NULL;
	}
	c->pub.name = c->name;
	c->pub.log = c->log;
	c->pub.pid = pid;
	c->pub.state = DG_CHILD_RUNNING;
	self->children[self->n++] = c;
	return c;
}

int
dg_supervisor_adopt(dg_supervisor_t *self, const char *name, pid_t pid,
    const char *program)
{
	s_child_t *c = s_add(self, name, pid, program);

	if (!c)
		return -1;
	if (!s_alive(pid, program))
		c->pub.state = DG_CHILD_EXITED;
	return 0;
}

int
dg_supervisor_spawn(dg_supervisor_t *self, const char *name,
    char *const argv[], char *why, size_t whysize)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE,
	    SIGUSR1, SIGUSR2, SIGCHLD };
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	char *fail = NULL;

	/* Everything the child needs is made before fork: between fork and
	 * exec only async-signal-safe calls. */
	s_child_t *c = s_add(self, name, 0, argv[0]);
	int flen = asprintf(&fail, "%s: cannot run %s\n", self->who, argv[0]);
	if (flen < 0)
		fail = NULL;
	if (!c || !fail) {
		snprintf(why, whysize, "out of memory");
		goto fail;
	}
	/* Appended: an earlier run's lines are what explains it, and
	 * the daemon rotates the file by size (log_size). */
	int fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0644);
	if (fd < 0) {
		snprintf(why, whysize, "%s: %s", c->log, strerror(errno));
		goto fail;
	}
	sigemptyset(&none);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, whysize, "fork: %s", strerror(errno));
		close(fd);
		goto fail;
	}
	if (pid == 0) {
		/* Dispositions this process changed or inherited as "ignore"
		 * (sh runs '&' jobs with SIGINT ignored) would stick across
		 * exec; a daemon wants its signals. */
		for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
			sigaction(sigs[i], &dfl, NULL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		int nul = open("/dev/null", O_RDONLY);
		if (nul > 0) {
			dup2(nul, 0);
			close(nul);
		}
		dup2(fd, 1);
		dup2(fd, 2);
		close_range(3, ~0U, 0);
		execv(argv[0], argv);
		ssize_t w = write(2, fail, (size_t)flen);
		(void)w;
		_exit(127);
	}
	close(fd);
	free(fail);
	c->pub.pid = pid;
	c->ours = true;
	return 0;
fail:
	free(fail);
	if (c) {
		self->n--;
		s_child_free(c);
	}
	return -1;
}

int
dg_supervisor_spawn_section(dg_supervisor_t *self, const char *disaggd,
    const char *file, const char *name, char *why, size_t whysize)
{
	char *const argv[] = { (char *)disaggd, (char *)"-d", (char *)"-f",
	    (char *)file, (char *)"-N", (char *)name, NULL };

	return dg_supervisor_spawn(self, name, argv, why, whysize);
}

size_t
dg_supervisor_size(const dg_supervisor_t *self)
{
	return self->n;
}

const dg_child_t *
dg_supervisor_child(const dg_supervisor_t *self, size_t i)
{
	return i < self->n ? &self->children[i]->pub : NULL;
}

static int
s_signal(dg_supervisor_t *self, size_t i, int sig)
{
	if (i >= self->n || self->children[i]->pub.state == DG_CHILD_EXITED) {
		errno = ESRCH;
		return -1;
	}
	dg_child_t *c = &self->children[i]->pub;
	if (kill(c->pid, sig) < 0)
		return -1;
	c->state = DG_CHILD_STOPPING;
	return 0;
}

int
dg_supervisor_stop(dg_supervisor_t *self, size_t i)
{
	return s_signal(self, i, SIGTERM);
}

int
dg_supervisor_kill(dg_supervisor_t *self, size_t i)
{
	return s_signal(self, i, SIGKILL);
}

bool
dg_supervisor_exited(dg_supervisor_t *self, size_t i)
{
	if (i >= self->n)
		return true;
	s_child_t *c = self->children[i];
	if (c->pub.state == DG_CHILD_EXITED)
		return true;
	if (c->ours) {
		int st;
		pid_t r = waitpid(c->pub.pid, &st, WNOHANG);
		if (r == c->pub.pid) {
			c->pub.state = DG_CHILD_EXITED;
			c->pub.reaped = true;
			c->pub.status = st;
		} else if (r < 0 && errno == ECHILD) {
			/* Someone else reaped it (SIGCHLD ignored, say). */
			c->ours = false;
		}
	}
	if (!c->ours && !s_alive(c->pub.pid, c->program))
		c->pub.state = DG_CHILD_EXITED;
	return c->pub.state == DG_CHILD_EXITED;
}

size_t
dg_supervisor_reap(dg_supervisor_t *self)
{
	size_t running = 0;

	for (size_t i = 0; i < self->n; i++)
		running += !dg_supervisor_exited(self, i);
	return running;
}

void
dg_supervisor_prune(dg_supervisor_t *self)
{
	size_t kept = 0;

	for (size_t i = 0; i < self->n; i++) {
		s_child_t *c = self->children[i];
		if (c->pub.state == DG_CHILD_EXITED)
			s_child_free(c);
		else
			self->children[kept++] = c;
	}
	self->n = kept;
}
