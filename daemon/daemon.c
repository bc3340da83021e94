/*  daemon.c: the life of a disaggd process, whatever its role.
 *
 *  czmq's own SIGINT/SIGTERM handler is switched off: the signals we care
 *  about are blocked in every thread and read from a signalfd that the
 *  control loop polls, so no work ever happens in signal context.
 *  SIGTERM and a first SIGINT drain; a second SIGINT exits at once;
 *  SIGHUP re-reads and validates the whole file and applies only the
 *  reloadable keys; SIGUSR1 reopens the log.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "version.h"

typedef struct {
	dg_config_t *cfg;
	char file[DG_PATH_MAX];
	char name[DG_NAME_MAX];
	dg_role_t role;
	int verbose;
	int sigfd;
	bool draining;
	int exit_code;
} s_daemon_t;

static int
s_level_of(const s_daemon_t *self)
{
	int level = self->role == DG_ROLE_CONTROLLER ?
	    dg_config_controller(self->cfg)->log_level :
	    dg_config_stage(self->cfg, self->name)->log_level;
	level += self->verbose;
	return level > DG_LOG_DEBUG ? DG_LOG_DEBUG : level;
}

static void
s_log_change(const char *section, const char *key, bool reloadable,
    void *arg)
{
	(void)arg;
	if (reloadable)
		dg_log_info("reload: %s %s changed, applied", section, key);
	else
		dg_log_warn("reload: %s %s changed; it takes effect only on "
		    "restart", section, key);
}

static void
s_reload(s_daemon_t *self)
{
	dg_config_t *fresh = dg_config_load(self->file);

	if (!fresh) {
		dg_log_error("reload: out of memory; keeping the old "
		    "configuration");
		return;
	}
	size_t n = dg_config_error_count(fresh);
	if (n) {
		for (size_t i = 0; i < n; i++)
			dg_log_error("reload: %s", dg_config_error(fresh, i));
		dg_log_error("reload failed; keeping the old configuration");
		dg_config_destroy(&fresh);
		return;
	}
	int restart = dg_config_changes(self->cfg, fresh, self->name,
	    s_log_change, NULL);
	if (restart < 0) {
		dg_log_error("reload: section '%s' is gone from %s; keeping "
		    "the old configuration", self->name, self->file);
		dg_config_destroy(&fresh);
		return;
	}
	dg_config_destroy(&self->cfg);
	self->cfg = fresh;
	dg_log_set_level(s_level_of(self));
	dg_log_info("configuration reloaded from %s", self->file);
}

static int
s_on_signal(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
	s_daemon_t *self = arg;
	struct signalfd_siginfo si;

	(void)loop;
	(void)item;
	if (read(self->sigfd, &si, sizeof si) != (ssize_t)sizeof si)
		return 0;
	switch (si.ssi_signo) {
	case SIGINT:
		if (self->draining) {
			dg_log_warn("second SIGINT: exiting now");
			self->exit_code = 1;
			return -1;
		}
		/* fall through */
	case SIGTERM:
		dg_log_info("SIG%s: draining", sigabbrev_np((int)si.ssi_signo));
		self->draining = true;
		/* Nothing is in flight until the roles take work; the
		 * drain is over as soon as it starts. */
		dg_log_info("drained; exiting");
		return -1;
	case SIGHUP:
		s_reload(self);
		return 0;
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

int
dg_daemon_run(dg_config_t **cfg_p, const char *name, bool foreground,
    int verbose)
{
	s_daemon_t self = { .cfg = *cfg_p, .verbose = verbose };
	sigset_t set;

	*cfg_p = NULL;
	snprintf(self.file, sizeof self.file, "%s", dg_config_file(self.cfg));
	const dg_stage_conf_t *st = dg_config_stage(self.cfg, name);
	if (strcmp(name, "controller") == 0) {
		self.role = DG_ROLE_CONTROLLER;
		snprintf(self.name, sizeof self.name, "controller");
	} else {
		self.role = st->role;
		snprintf(self.name, sizeof self.name, "%s", st->name);
	}

	zsys_handler_set(NULL);
	self.sigfd = s_signals_open(&set);
	if (self.sigfd < 0) {
		fprintf(stderr, "disaggd: signals: %s\n", strerror(errno));
		dg_config_destroy(&self.cfg);
		return 1;
	}
	if (!foreground && daemon(0, 0) < 0) {
		fprintf(stderr, "disaggd: daemon: %s\n", strerror(errno));
		dg_config_destroy(&self.cfg);
		return 1;
	}
	dg_log_init(self.name, foreground, s_level_of(&self));
	dg_log_route_czmq();

	zloop_t *loop = zloop_new();
	if (!loop) {
		dg_log_error("cannot create the control loop");
		dg_config_destroy(&self.cfg);
		return 1;
	}
	zmq_pollitem_t sigitem = { .fd = self.sigfd, .events = ZMQ_POLLIN };
	zloop_poller(loop, &sigitem, s_on_signal, &self);
	/* Without czmq's handler zsys_interrupted never changes, but be
	 * explicit: only our signalfd ends this loop. */
	zloop_set_nonstop(loop, true);

	dg_log_info("disaggd %s: %s %s starting (pid %d, config %s)",
	    DG_VERSION, dg_role_name(self.role), self.name, (int)getpid(),
	    self.file);
	zloop_start(loop);
	zloop_destroy(&loop);
	close(self.sigfd);
	dg_log_info("stopped");
	dg_config_destroy(&self.cfg);
	zsys_shutdown();
	return self.exit_code;
}
