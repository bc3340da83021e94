/*  daemon.c: the life of a disaggd process, whatever its role.
 *
 *  czmq's own SIGINT/SIGTERM handler is switched off: the signals we care
 *  about are blocked in every thread and read from a signalfd that the
 *  control loop polls, so no work ever happens in signal context.
 *  SIGTERM and a first SIGINT drain: the role takes no new work, and the
 *  loop ends once nothing is in flight or drain_timeout_ms has passed;
 *  a second SIGINT exits at once; SIGHUP re-reads and validates the
 *  whole file and applies only the reloadable keys; SIGUSR1 reopens the
 *  log.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <systemd/sd-daemon.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "proctitle.h"
#include "run.h"
#include "threads.h"
#include "version.h"
#include "trust.h"

/* After a drain's work was ended at its deadline, how long the loop
 * still turns to deliver the results. */
#define EXPIRE_GRACE_MS 1000
/* While draining, how often the loop looks whether the work is done. */
#define DRAIN_TICK_MS   50

typedef struct {
	dg_daemon_t d;                  /* first: roles see only this */
	bool expired;                   /* the role ended its work */
	int sigfd;
	int exit_code;
	const dg_role_ops_t *ops;
	void *state;
} s_daemon_t;

int64_t
dg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
dg_tick_init(dg_tick_t *t, zloop_t *loop, zloop_timer_fn *fn, void *arg)
{
	*t = (dg_tick_t){ .loop = loop, .fn = fn, .arg = arg, .id = -1 };
}

void
dg_tick_arm(dg_tick_t *t, int64_t now, int64_t due)
{
	if (t->id >= 0)
		zloop_timer_end(t->loop, t->id);
	t->id = zloop_timer(t->loop, (size_t)(due > now ? due - now : 1), 1,
	    t->fn, t->arg);
	t->at = due;
}

void
dg_tick_sooner(dg_tick_t *t, int64_t now, int64_t due)
{
	if (t->id >= 0 && due < t->at)
		dg_tick_arm(t, now, due);
}

void
dg_tick_fired(dg_tick_t *t)
{
	t->id = -1;
}

/* The section's log_size: when its log file is rotated. */
static int64_t
s_log_size_of(const s_daemon_t *self)
{
	return self->d.controller ?
	    dg_config_controller(self->d.cfg)->log_size :
	    dg_config_stage(self->d.cfg, self->d.name)->log_size;
}

static int
s_level_of(const s_daemon_t *self)
{
	int level = self->d.controller ?
	    dg_config_controller(self->d.cfg)->log_level :
	    dg_config_stage(self->d.cfg, self->d.name)->log_level;
	level += self->d.verbose;
	return level > DG_LOG_DEBUG ? DG_LOG_DEBUG : level;
}

/* What a reload changed, for the log and for the reply to `reload`. */
typedef struct {
	char *text;
	size_t size, len;
	int applied, restart;
} s_report_t;

static void
s_log_change(const char *section, const char *key, bool reloadable,
    void *arg)
{
	s_report_t *rep = arg;

	if (reloadable) {
		rep->applied++;
		dg_log_info("reload: %s %s changed, applied", section, key);
	} else {
		rep->restart++;
		dg_log_warn("reload: %s %s changed; it takes effect only on "
		    "restart", section, key);
	}
	if (rep->len < rep->size)
		rep->len += (size_t)snprintf(rep->text + rep->len,
		    rep->size - rep->len, "%s%s %s%s", rep->len ? "; " : "",
		    section, key, reloadable ? " applied" :
		    " changed (takes effect on restart)");
}

int
dg_daemon_reload(dg_daemon_t *d, char *report, size_t size)
{
	s_daemon_t *self = (s_daemon_t *)d;
	dg_config_t *fresh = dg_config_load(d->file);
	s_report_t rep = { .text = report, .size = size };

	if (size)
		report[0] = '\0';
	if (!fresh) {
		snprintf(report, size, "out of memory; the old configuration "
		    "stays");
		dg_log_error("reload: %s", report);
		return -1;
	}
	size_t n = dg_config_error_count(fresh);
	if (n) {
		for (size_t i = 0; i < n; i++)
			dg_log_error("reload: %s", dg_config_error(fresh, i));
		snprintf(report, size, "%s%s; the old configuration stays",
		    dg_config_error(fresh, 0), n > 1 ? " (and more)" : "");
		dg_log_error("reload failed; keeping the old configuration");
		dg_config_destroy(&fresh);
		return -1;
	}
	int restart = dg_config_changes(d->cfg, fresh, d->name,
	    s_log_change, &rep);
	if (restart < 0) {
		snprintf(report, size, "section '%s' is gone from %s; the old "
		    "configuration stays", d->name, d->file);
		dg_log_error("reload: %s", report);
		dg_config_destroy(&fresh);
		return -1;
	}
	if (!rep.applied && !rep.restart)
		snprintf(report, size, "nothing changed");
	dg_config_destroy(&d->cfg);
	d->cfg = fresh;
	dg_log_set_level(s_level_of(self));
	dg_log_set_rotate(s_log_size_of(self));
	if (self->ops->reload)
		self->ops->reload(self->state);
	dg_log_info("configuration reloaded from %s", d->file);
	return 0;
}

/* Only stdin, stdout and stderr may cross a restart in place: the new
 * image opens its own sockets, fabric and log.  libfabric's tcp provider
 * opens its sockets and epoll sets without O_CLOEXEC, so each restart
 * would otherwise keep the last one's (its listening sockets among
 * them). */
static void
s_cloexec_all(void)
{
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	/* Kernels before 5.11.  Without /proc the exec of /proc/self/exe
	 * fails too. */
	DIR *dir = opendir("/proc/self/fd");
	if (!dir) {
		dg_log_warn("restart in place: /proc/self/fd: %s",
		    strerror(errno));
		return;
	}
	struct dirent *e;
	while ((e = readdir(dir))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (end == e->d_name || *end || fd <= 2 || fd == dirfd(dir))
			continue;
		int flags = fcntl((int)fd, F_GETFD);
		if (flags >= 0 && !(flags & FD_CLOEXEC))
			(void)fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
	}
	closedir(dir);
}

/* The names operators look for.  The process's comm (pgrep -x, top)
 * is its main thread's: "disaggd", not the "main" the thread registry
 * just gave it, nor the "exe" a restart in place through /proc/self/exe
 * leaves.  The command line (ps, top -c, pgrep -f) says which daemon
 * it is: "disaggd: t0 transformer", "disaggd: controller".  Threads
 * started later rename themselves (threads.c). */
static void
s_name_process(const dg_daemon_t *d)
{
	(void)prctl(PR_SET_NAME, "disaggd", 0, 0, 0);
	if (d->controller)
		dg_proctitle_set("disaggd: %s", d->name);
	else
		dg_proctitle_set("disaggd: %s %s", d->name, d->role);
}

/* How many times this process has restarted in place. */
static long
s_restarts(void)
{
	const char *n = getenv("DISAGG_REEXEC");

	return n ? strtol(n, NULL, 10) : 0;
}

void
dg_daemon_reexec(dg_daemon_t *d)
{
	char *argv[16], count[24];
	int n = 0;

	argv[n++] = (char *)"disaggd";
	if (d->foreground)
		argv[n++] = (char *)"-d";
	for (int i = 0; i < d->verbose && i < 4; i++)
		argv[n++] = (char *)"-v";
	argv[n++] = (char *)"-f";
	argv[n++] = d->file;
	argv[n++] = (char *)"-N";
	argv[n++] = d->name;
	argv[n] = NULL;
	snprintf(count, sizeof count, "%ld", s_restarts() + 1);
	setenv("DISAGG_REEXEC", count, 1);
	s_cloexec_all();
	execv("/proc/self/exe", argv);
}

bool
dg_daemon_test_wedge(const dg_daemon_t *d)
{
	const char *v = getenv("DISAGG_TEST_WEDGE");
	const char *colon = v ? strrchr(v, ':') : NULL;

	if (!colon || (size_t)(colon - v) != strlen(d->name) ||
	    strncmp(v, d->name, strlen(d->name)) != 0)
		return false;
	return s_restarts() < strtol(colon + 1, NULL, 10);
}

static int s_on_drain_tick(zloop_t *loop, int timer_id, void *arg);

void
dg_daemon_drain(dg_daemon_t *d, const char *why)
{
	s_daemon_t *self = (s_daemon_t *)d;
	int64_t timeout = d->controller ?
	    dg_config_controller(d->cfg)->drain_timeout_ms :
	    dg_config_stage(d->cfg, d->name)->drain_timeout_ms;

	if (d->draining)
		return;
	d->draining = true;
	d->drain_deadline = dg_now_ms() + timeout;
	sd_notify(0, "STOPPING=1");
	dg_log_info("%s: draining (at most %lld ms)", why, (long long)timeout);
	if (self->ops->drain)
		self->ops->drain(self->state);
	/* Watched only while draining: an idle daemon has no reason to
	 * wake 20 times a second. */
	if (d->loop)
		zloop_timer(d->loop, DRAIN_TICK_MS, 0, s_on_drain_tick, self);
}

/* While draining: stop once nothing is in flight, or at the deadline. */
static int
s_on_drain_tick(zloop_t *loop, int timer_id, void *arg)
{
	s_daemon_t *self = arg;

	(void)loop;
	(void)timer_id;
	dg_thread_progress();
	if (!self->d.draining)
		return 0;
	bool idle = !self->ops->idle || self->ops->idle(self->state);
	if ((!idle || self->expired) && dg_now_ms() < self->d.drain_deadline)
		return 0;
	if (idle) {
		dg_log_info("drained; exiting");
		return -1;
	}
	/* Once: the role ends its work and the loop turns a while longer
	 * (EXPIRE_GRACE_MS) to deliver it, then exits. */
	if (self->ops->expire && !self->expired) {
		dg_log_warn("drain timeout: ending the work in flight");
		self->ops->expire(self->state);
		self->expired = true;
		self->d.drain_deadline = dg_now_ms() + EXPIRE_GRACE_MS;
		return 0;
	}
	dg_log_warn("drain timeout: exiting with work in flight");
	return -1;
}

static int
s_on_signal(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
	s_daemon_t *self = arg;
	struct signalfd_siginfo si;
	char why[32];

	(void)loop;
	(void)item;
	if (read(self->sigfd, &si, sizeof si) != (ssize_t)sizeof si)
		return 0;
	switch (si.ssi_signo) {
	case SIGINT:
		if (self->d.draining) {
			dg_log_warn("second SIGINT: exiting now");
			self->exit_code = 1;
			return -1;
		}
		/* fall through */
	case SIGTERM:
		snprintf(why, sizeof why, "SIG%s",
		    sigabbrev_np((int)si.ssi_signo));
		dg_daemon_drain(&self->d, why);
		return 0;
	case SIGHUP: {
		char report[512];
		/* systemd's ExecReload waits for READY=1 again. */
		sd_notify(0, "RELOADING=1");
		dg_daemon_reload(&self->d, report, sizeof report);
		sd_notify(0, "READY=1");
		return 0;
	}
	case SIGUSR1:
		dg_log_reopen();
		dg_log_info("log reopened");
		return 0;
	}
	return 0;
}

static int
s_signals_open(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	/* Before any thread exists, so every thread inherits the mask. */
	if (sigprocmask(SIG_BLOCK, set, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
}

void
dg_daemon_server_sock(dg_daemon_t *d, zsock_t *sock)
{
	if (d->auth)
		dg_auth_server(d->auth, sock);
}

void
dg_daemon_client_sock(dg_daemon_t *d, zsock_t *sock)
{
	if (d->auth)
		dg_auth_daemon_client(d->auth, sock);
}

void
dg_daemon_bound(dg_daemon_t *d, zsock_t *sock, const char *endpoint,
    const char *what)
{
	if (dg_auth_ipc_private(endpoint) < 0)
		dg_log_warn("cannot make %s owner-only: %s", endpoint,
		    strerror(errno));
	if (d->auth && dg_auth_watch(d->auth, sock, what, d->loop) < 0)
		dg_log_warn("curve: cannot watch the %s endpoint's handshakes",
		    what);
}

bool
dg_daemon_from_daemon(dg_daemon_t *d, const char *user)
{
	return dg_auth_is_daemon(d->auth, user);
}

bool
dg_daemon_from_admin(dg_daemon_t *d, const char *user)
{
	return dg_auth_is_admin(d->auth, user);
}

/* [security] curve = on: the ZAP handler, before any socket exists. */
static int
s_auth_start(s_daemon_t *self)
{
	const dg_security_conf_t *sec = dg_config_security(self->d.cfg);
	char scratch[DG_PATH_MAX], err[512];

	if (!sec->curve)
		return 0;
	snprintf(scratch, sizeof scratch, "%s/%s", dg_run_dir(), self->d.name);
	zsys_dir_create("%s", scratch);
	(void)chmod(scratch, 0700);
	/* The allowed keys go in there: a folder another user made first
	 * (the default run folder is under /tmp) would let them plant one. */
	if (dg_trust_check(dg_run_dir(), "run folder", err, sizeof err) < 0 ||
	    dg_trust_check(scratch, "run folder", err, sizeof err) < 0) {
		dg_log_error("curve: %s", err);
		return -1;
	}
	self->d.auth = dg_auth_new(sec, scratch, err, sizeof err);
	if (!self->d.auth) {
		dg_log_error("curve: %s", err);
		return -1;
	}
	dg_log_info("curve: on, keys from %s", sec->key_dir);
	return 0;
}

int
dg_daemon_run(dg_config_t **cfg_p, const char *name, bool foreground,
    int verbose)
{
	s_daemon_t self = { .d.cfg = *cfg_p, .d.verbose = verbose,
	    .d.foreground = foreground };
	sigset_t set;

	*cfg_p = NULL;
	/* Absolute: without -d the daemon leaves for "/", and a reload or
	 * a restart in place must still find the file. */
	char *abs = realpath(dg_config_file(self.d.cfg), NULL);
	snprintf(self.d.file, sizeof self.d.file, "%s",
	    abs ? abs : dg_config_file(self.d.cfg));
	free(abs);
	const dg_stage_conf_t *st = dg_config_stage(self.d.cfg, name);
	if (strcmp(name, "controller") == 0) {
		self.d.controller = true;
		snprintf(self.d.role, sizeof self.d.role, "controller");
		snprintf(self.d.name, sizeof self.d.name, "controller");
		self.ops = &dg_controller_ops;
	} else {
		snprintf(self.d.role, sizeof self.d.role, "%s", st->role);
		snprintf(self.d.name, sizeof self.d.name, "%s", st->name);
		self.ops = &dg_stage_role_ops;
	}

	zsys_handler_set(NULL);
	self.sigfd = s_signals_open(&set);
	if (self.sigfd < 0) {
		fprintf(stderr, "disaggd: signals: %s\n", strerror(errno));
		dg_config_destroy(&self.d.cfg);
		return 1;
	}
	/* A restart in place is detached already, and keeps its pid. */
	if (!foreground && s_restarts() == 0 && daemon(0, 0) < 0) {
		fprintf(stderr, "disaggd: daemon: %s\n", strerror(errno));
		dg_config_destroy(&self.d.cfg);
		return 1;
	}
	dg_log_init(self.d.name, foreground, s_level_of(&self));
	dg_log_set_rotate(s_log_size_of(&self));
	dg_log_route_czmq();

	self.d.loop = zloop_new();
	if (!self.d.loop) {
		dg_log_error("cannot create the control loop");
		dg_config_destroy(&self.d.cfg);
		return 1;
	}
	zmq_pollitem_t sigitem = { .fd = self.sigfd, .events = ZMQ_POLLIN };
	zloop_poller(self.d.loop, &sigitem, s_on_signal, &self);
	/* The control loop's row in `disagg threads`: its handlers mark it
	 * busy and idle, and the roles' ticks show that it still turns. */
	dg_thread_register("main");
	s_name_process(&self.d);
	/* Without czmq's handler zsys_interrupted never changes, but be
	 * explicit: only our handlers end this loop. */
	zloop_set_nonstop(self.d.loop, true);

	/* "controller starting", "transformer t0 starting". */
	dg_log_info("disaggd %s: %s%s%s starting (pid %d, config %s)",
	    DG_VERSION, self.d.controller ? "" : self.d.role,
	    self.d.controller ? "" : " ", self.d.name, (int)getpid(),
	    self.d.file);
	if (s_auth_start(&self) < 0 ||
	    self.ops->start(&self.d, &self.state) < 0) {
		dg_log_error("%s %s could not start", self.d.role,
		    self.d.name);
		self.exit_code = 1;
	} else {
		/* Type=notify: ready once the sockets are bound and the
		 * role's state is up; a no-op outside systemd. */
		sd_notifyf(0, "READY=1\nMAINPID=%d\nSTATUS=%s %s serving",
		    (int)getpid(), self.d.role, self.d.name);
		zloop_start(self.d.loop);
	}
	if (self.ops->stop)
		self.ops->stop(&self.state);
	zloop_destroy(&self.d.loop);
	dg_auth_destroy(&self.d.auth);
	close(self.sigfd);
	dg_log_info("stopped");
	dg_config_destroy(&self.d.cfg);
	zsys_shutdown();
	return self.exit_code;
}
