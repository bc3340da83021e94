/*  scaler.c: the controller's autoscaler, see scaler.h.
 *
 *  Only spares are started and stopped: the sections `disagg up` or an
 *  operator starts (autostart = yes) are the fleet's floor, and the
 *  scaler never takes one of them away.  Nothing here blocks the loop:
 *  a command runs in the background and is reaped at a later tick; the
 *  supervisor's spawn is a fork.  */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "autoscale.h"
#include "log.h"
#include "proto.h"
#include "scaler.h"
#include "supervisor.h"

#define S_EVERY_MS         250          /* between two decisions */
#define S_START_TIMEOUT_MS 30000        /* a start not registered by then
                                           has failed */
#define S_PROGRAM          "disaggd"

/* A spare's life as the scaler drives it; the words for the log. */
typedef enum {
	S_IDLE = 0,             /* not started by the scaler, or gone */
	S_STARTING,             /* started, not yet registered */
	S_UP,                   /* registered after our start */
	S_STOPPING,             /* drained with exit, not yet gone */
	S_STATE_COUNT
} s_state_t;

static const char *const s_state_names[S_STATE_COUNT] =
	{ "idle", "starting", "up", "stopping" };

typedef struct {
	char name[DG_NAME_MAX];
	char role[DG_NAME_MAX];
	int index;
	bool spare;             /* autostart = no */
	int64_t workers;
	s_state_t state;
	int64_t since;          /* of the state */
} s_section_t;

/* A scale_command or stop_command running in the background. */
typedef struct {
	pid_t pid;
	char name[DG_NAME_MAX];         /* its section's */
	char what[DG_NAME_MAX + 32];
} s_command_t;

struct _dg_scaler_t {
	dg_registry_t *reg;
	dg_scaler_io_t io;
	dg_autoscale_t *as;
	size_t nplaces;
	bool scaled[DG_CHAIN_MAX];
	dg_autoscale_conf_t conf[DG_CHAIN_MAX];
	s_section_t *secs;
	size_t nsecs;
	s_command_t *cmds;
	size_t ncmds;
	char file[PATH_MAX];            /* the topology, absolute */
	char disaggd[PATH_MAX];         /* this program */
	char *run;                      /* DISAGG_RUN: started by disagg up */
	dg_supervisor_t *own;           /* the daemons started here */
	int64_t next_at, warm_at;
	bool stopped;
};

static void
s_say(dg_scaler_t *self, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Logged, and published as a "scale" event. */
static void
s_say(dg_scaler_t *self, const char *name, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	dg_log_info("autoscale: %s", text);
	self->io.event(self->io.arg, name, text);
}

dg_scaler_t *
dg_scaler_new(const dg_config_t *cfg, dg_registry_t *reg,
    const dg_scaler_io_t *io, int64_t now, bool *nomem)
{
	const dg_pipeline_conf_t *chain = dg_config_pipeline(cfg);

	*nomem = false;
	if (dg_config_autoscale_count(cfg) == 0)
		return NULL;
	dg_scaler_t *self = calloc(1, sizeof *self);
	if (!self)
		goto nomem;
	self->reg = reg;
	self->io = *io;
	self->nplaces = chain->nroles;
	self->as = dg_autoscale_new(chain->nroles);
	self->nsecs = dg_config_stage_count(cfg);
	self->secs = calloc(self->nsecs + 1, sizeof *self->secs);
	if (!self->as || !self->secs)
		goto nomem;
	for (size_t i = 0; i < dg_config_autoscale_count(cfg); i++) {
		const dg_autoscale_conf_t *a = dg_config_autoscale_at(cfg, i);
		self->scaled[a->index] = true;
		self->conf[a->index] = *a;
		dg_autoscale_set(self->as, (size_t)a->index, a);
	}
	for (size_t i = 0; i < self->nsecs; i++) {
		const dg_stage_conf_t *st = dg_config_stage_at(cfg, i);
		s_section_t *s = &self->secs[i];
		snprintf(s->name, sizeof s->name, "%s", st->name);
		snprintf(s->role, sizeof s->role, "%s", st->role);
		s->index = st->index;
		s->spare = !st->autostart;
		s->workers = st->workers;
	}
	if (!realpath(dg_config_file(cfg), self->file))
		snprintf(self->file, sizeof self->file, "%s",
		    dg_config_file(cfg));
	ssize_t n = readlink("/proc/self/exe", self->disaggd,
	    sizeof self->disaggd - 1);
	self->disaggd[n > 0 ? n : 0] = '\0';
	const char *run = getenv("DISAGG_RUN");
	if (run && *run && !(self->run = strdup(run)))
		goto nomem;
	/* Instances say hello within a heartbeat or two of a controller's
	 * start: until then, "below min" would only be our ignorance. */
	self->warm_at = now + 2 * dg_config_controller(cfg)->dead_after_ms;
	return self;
nomem:
	*nomem = true;
	dg_scaler_destroy(&self);
	return NULL;
}

void
dg_scaler_destroy(dg_scaler_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_scaler_t *self = *self_p;
	/* Started daemons outlive the controller (RUN/pids finds them);
	 * commands still running are left to finish. */
	dg_supervisor_destroy(&self->own);
	dg_autoscale_destroy(&self->as);
	free(self->secs);
	free(self->cmds);
	free(self->run);
	free(self);
	*self_p = NULL;
}

void
dg_scaler_stop(dg_scaler_t *self)
{
	if (self)
		self->stopped = true;
}

static s_section_t *
s_section(dg_scaler_t *self, const char *name)
{
	for (size_t i = 0; i < self->nsecs; i++)
		if (strcmp(self->secs[i].name, name) == 0)
			return &self->secs[i];
	return NULL;
}

static void
s_set(s_section_t *s, s_state_t state, int64_t now)
{
	dg_log_debug("autoscale: %s %s -> %s", s->name,
	    s_state_names[s->state], s_state_names[state]);
	s->state = state;
	s->since = now;
}

/* ---- commands ------------------------------------------------------- */

/* `tmpl` with %n, %r and %% replaced; -1 when too long. */
static int
s_expand(const char *tmpl, const s_section_t *s, char *out, size_t size)
{
	size_t n = 0;

	for (const char *p = tmpl; *p; p++) {
		const char *add = NULL;
		char one[2] = { *p, 0 };
		if (*p == '%' && p[1]) {
			p++;
			add = *p == 'n' ? s->name : *p == 'r' ? s->role : "%";
		}
		add = add ? add : one;
		size_t len = strlen(add);
		if (n + len >= size)
			return -1;
		memcpy(out + n, add, len);
		n += len;
	}
	out[n] = '\0';
	return 0;
}

/* Run `tmpl` for section `s` with /bin/sh in the background; its exit
 * is reaped and said by s_reap.  0, or -1 with the reason in `why`. */
static int
s_run(dg_scaler_t *self, const char *tmpl, const s_section_t *s,
    const char *key, char *why, size_t whysize)
{
	char cmd[DG_PATH_MAX + 4 * DG_NAME_MAX];

	if (s_expand(tmpl, s, cmd, sizeof cmd) < 0) {
		snprintf(why, whysize, "%s too long once expanded", key);
		return -1;
	}
	s_command_t *more = realloc(self->cmds,
	    (self->ncmds + 1) * sizeof *more);
	if (!more) {
		snprintf(why, whysize, "out of memory");
		return -1;
	}
	self->cmds = more;
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, whysize, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* The daemon blocks its signals for its signalfd and ignores
		 * SIGPIPE; a command wants them as usual. */
		sigset_t none;
		sigemptyset(&none);
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int nul = open("/dev/null", O_RDONLY);
		if (nul > 0) {
			dup2(nul, 0);
			close(nul);
		}
		close_range(3, ~0U, 0);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	s_command_t *c = &self->cmds[self->ncmds++];
	c->pid = pid;
	snprintf(c->name, sizeof c->name, "%s", s->name);
	snprintf(c->what, sizeof c->what, "%s of %s", key, s->name);
	dg_log_info("autoscale: %s: running '%s' (pid %d)", c->what, cmd,
	    (int)pid);
	return 0;
}

/* Commands that ended, and daemons started here that exited. */
static void
s_reap(dg_scaler_t *self)
{
	for (size_t i = 0; i < self->ncmds;) {
		s_command_t *c = &self->cmds[i];
		int st;
		pid_t r = waitpid(c->pid, &st, WNOHANG);
		if (r == 0 || (r < 0 && errno == EINTR)) {
			i++;
			continue;
		}
		if (r < 0)
			dg_log_warn("autoscale: %s: %s", c->what, strerror(errno));
		else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			s_say(self, NULL, "%s exited 0", c->what);
		else if (WIFEXITED(st))
			s_say(self, NULL, "%s failed: exit status %d", c->what,
			    WEXITSTATUS(st));
		else
			s_say(self, NULL, "%s failed: killed by signal %d",
			    c->what, WTERMSIG(st));
		self->cmds[i] = self->cmds[--self->ncmds];
	}
	if (self->own) {
		dg_supervisor_reap(self->own);
		dg_supervisor_prune(self->own);
	}
}

/* ---- starting and stopping ------------------------------------------ */

/* Start section `s` as `disagg up` would, and add it to RUN/pids so
 * that `disagg down` stops it.  RUN/lock held by up or down means they
 * are at work on the run folder: no start then. */
static int
s_spawn(dg_scaler_t *self, const s_section_t *s, char *why, size_t whysize)
{
	if (!self->own) {
		self->own = dg_supervisor_new(self->run, false, why, whysize);
		if (!self->own)
			return -1;
		dg_supervisor_set_who(self->own, "disaggd controller");
	}
	dg_supervisor_t *pids = dg_supervisor_new(self->run, false, why,
	    whysize);
	if (!pids)
		return -1;
	int rc = -1;
	if (dg_supervisor_lock(pids) < 0) {
		snprintf(why, whysize, "%s/lock: %s", self->run,
		    errno == EWOULDBLOCK ? "disagg up or down is at work" :
		    strerror(errno));
		goto out;
	}
	(void)dg_supervisor_load_pids(pids, S_PROGRAM);
	dg_supervisor_reap(pids);
	dg_supervisor_prune(pids);
	if (dg_supervisor_spawn_section(self->own, self->disaggd, self->file,
	    s->name, why, whysize) < 0)
		goto out;
	const dg_child_t *c = dg_supervisor_child(self->own,
	    dg_supervisor_size(self->own) - 1);
	if (dg_supervisor_adopt(pids, s->name, c->pid, S_PROGRAM) < 0 ||
	    dg_supervisor_save_pids(pids) < 0)
		dg_log_warn("autoscale: %s/pids: %s: disagg down will not stop "
		    "%s (pid %d)", self->run, strerror(errno), s->name,
		    (int)c->pid);
	dg_log_info("autoscale: started %s, pid %d, log %s", s->name,
	    (int)c->pid, c->log);
	rc = 0;
out:
	dg_supervisor_destroy(&pids);
	return rc;
}

/* Whether a daemon of section `name` started here, or a command for it,
 * still runs: a daemon that said bye may take a moment to exit, and a
 * second one would find its endpoints taken. */
static bool
s_still_running(dg_scaler_t *self, const char *name)
{
	for (size_t i = 0; i < self->ncmds; i++)
		if (strcmp(self->cmds[i].name, name) == 0)
			return true;
	for (size_t i = 0; self->own && i < dg_supervisor_size(self->own);
	    i++) {
		const dg_child_t *c = dg_supervisor_child(self->own, i);
		if (strcmp(c->name, name) == 0 && !dg_supervisor_exited(
		    self->own, i))
			return true;
	}
	return false;
}

/* Start spares of place `index` until `k` are starting; what was
 * started, in words, into `done`. */
static void
s_start(dg_scaler_t *self, int64_t now, size_t index, int64_t k,
    char *done, size_t size)
{
	const dg_autoscale_conf_t *a = &self->conf[index];
	size_t n = 0;

	*done = '\0';
	for (size_t i = 0; i < self->nsecs && k > 0; i++) {
		s_section_t *s = &self->secs[i];
		if ((size_t)s->index != index || !s->spare || s->state != S_IDLE)
			continue;
		dg_inst_t *in = dg_registry_find(self->reg, s->name);
		if ((in && in->state != DG_INST_DEAD) ||
		    s_still_running(self, s->name))
			continue;       /* up, drained by an operator, or
			                   still exiting */
		char why[512];
		int rc;
		if (*a->scale_command)
			rc = s_run(self, a->scale_command, s, "scale_command",
			    why, sizeof why);
		else if (self->run)
			rc = s_spawn(self, s, why, sizeof why);
		else {
			snprintf(why, sizeof why, "no scale_command, and not "
			    "started by disagg up (DISAGG_RUN unset)");
			rc = -1;
		}
		if (rc < 0) {
			n += (size_t)snprintf(done + n, size - n, "%scannot start "
			    "%s: %.200s", n ? "; " : "", s->name, why);
			break;
		}
		s_set(s, S_STARTING, now);
		n += (size_t)snprintf(done + n, size - n, "%s%s", n ? ", " :
		    "starting ", s->name);
		k--;
		if (n >= size)
			break;
	}
	if (!*done)
		snprintf(done, size, "no spare section left to start");
}

/* Drain one spare of place `index` with exit: the live one holding the
 * fewest rooms.  It takes no new room and leaves once its own are
 * done. */
static void
s_stop_one(dg_scaler_t *self, int64_t now, size_t index, char *done,
    size_t size)
{
	dg_inst_t *best = NULL;
	s_section_t *bs = NULL;

	for (size_t i = 0; i < dg_registry_count(self->reg); i++) {
		dg_inst_t *in = dg_registry_at(self->reg, i);
		s_section_t *s = s_section(self, in->name);
		if ((size_t)in->index != index || in->state != DG_INST_UP ||
		    in->drain_asked || !s || !s->spare)
			continue;
		if (!best || in->rooms < best->rooms) {
			best = in;
			bs = s;
		}
	}
	if (!best) {
		snprintf(done, size, "no spare up to drain");
		return;
	}
	dg_registry_drain(self->reg, best, true);
	dg_msg_t *d = dg_msg_new(DG_OP_DRAIN);
	if (d) {
		d->u.drain.name = best->name;
		d->u.drain.exit = true;
		self->io.to_instance(self->io.arg, best, d);
		dg_msg_destroy(&d);
	}
	s_set(bs, S_STOPPING, now);
	snprintf(done, size, "draining %s (%lld rooms)", best->name,
	    (long long)best->rooms);
}

/* ---- each tick ------------------------------------------------------ */

/* What became of the spares started or stopped here. */
static void
s_track(dg_scaler_t *self, int64_t now)
{
	for (size_t i = 0; i < self->nsecs; i++) {
		s_section_t *s = &self->secs[i];
		dg_inst_t *in = dg_registry_find(self->reg, s->name);
		bool up = in && in->state == DG_INST_UP;
		bool gone = !in || in->state == DG_INST_DEAD;
		switch (s->state) {
		case S_STARTING:
			if (up) {
				s_say(self, s->name, "%s %s: registered %.1f s after "
				    "its start", s->role, s->name,
				    (double)(now - s->since) / 1000.0);
				s_set(s, S_UP, now);
			} else if (now - s->since >= S_START_TIMEOUT_MS) {
				s_say(self, s->name, "%s %s: not registered %d s "
				    "after its start; see its log", s->role,
				    s->name, S_START_TIMEOUT_MS / 1000);
				s_set(s, S_IDLE, now);
			}
			break;
		case S_UP:
			if (gone)
				s_set(s, S_IDLE, now);
			break;
		case S_STOPPING:
			if (!gone)
				break;
			s_say(self, s->name, "%s %s: drained and left", s->role,
			    s->name);
			const dg_autoscale_conf_t *a = &self->conf[s->index];
			char why[256];
			if (*a->stop_command && s_run(self, a->stop_command, s,
			    "stop_command", why, sizeof why) < 0)
				s_say(self, s->name, "%s %s: stop_command: %s",
				    s->role, s->name, why);
			s_set(s, S_IDLE, now);
			break;
		default:
			break;
		}
	}
}

/* The load of every place, from the registry; a scaled place's floor
 * and ceiling take in the fixed instances (autostart = yes) that the
 * scaler never stops. */
static void
s_measure(dg_scaler_t *self, size_t pending, dg_scale_load_t *load)
{
	int64_t fixed[DG_CHAIN_MAX] = { 0 }, workers[DG_CHAIN_MAX] = { 0 };
	int64_t p50[DG_CHAIN_MAX] = { 0 }, timed[DG_CHAIN_MAX] = { 0 };

	memset(load, 0, self->nplaces * sizeof *load);
	for (size_t i = 0; i < dg_registry_count(self->reg); i++) {
		dg_inst_t *in = dg_registry_at(self->reg, i);
		if (in->index < 0 || (size_t)in->index >= self->nplaces ||
		    in->state != DG_INST_UP || in->drain_asked)
			continue;
		dg_scale_load_t *l = &load[in->index];
		s_section_t *s = s_section(self, in->name);
		l->live++;
		l->rooms += in->incoming + in->waiting + in->ready +
		    in->running;
		l->rps += in->rps;
		workers[in->index] += s ? s->workers : 1;
		if (in->p50_us > 0) {
			p50[in->index] += in->p50_us;
			timed[in->index]++;
		}
		fixed[in->index] += !s || !s->spare;
	}
	for (size_t i = 0; i < self->nsecs; i++)
		load[self->secs[i].index].starting +=
		    self->secs[i].state == S_STARTING;
	for (size_t p = 0; p < self->nplaces; p++) {
		dg_scale_load_t *l = &load[p];
		l->workers = l->live ? (workers[p] + l->live - 1) / l->live : 1;
		l->service_s = timed[p] ? (double)p50[p] / (double)timed[p] /
		    1e6 : 0;
		/* Requests wait at the controller when no instance can
		 * take them: they count against the places that are full. */
		if (l->rooms >= l->live * l->workers)
			l->pending = (int64_t)pending;
		if (!self->scaled[p])
			continue;
		dg_autoscale_conf_t c = self->conf[p];
		c.min = c.min > fixed[p] ? c.min : fixed[p];
		c.max = c.max > fixed[p] ? c.max : fixed[p];
		dg_autoscale_set(self->as, p, &c);
	}
}

void
dg_scaler_tick(dg_scaler_t *self, int64_t now, size_t pending)
{
	dg_scale_load_t load[DG_CHAIN_MAX];
	dg_scale_decision_t out[DG_CHAIN_MAX];

	if (!self)
		return;
	s_reap(self);
	if (now < self->next_at)
		return;
	self->next_at = now + S_EVERY_MS;
	s_track(self, now);
	if (self->stopped || now < self->warm_at)
		return;
	s_measure(self, pending, load);
	dg_autoscale_decide(self->as, now, load, out);
	for (size_t p = 0; p < self->nplaces; p++) {
		const dg_scale_decision_t *d = &out[p];
		char done[512];
		if (d->action == DG_SCALE_HOLD)
			continue;
		if (d->action == DG_SCALE_OUT)
			s_start(self, now, p, d->to - d->from, done, sizeof done);
		else
			s_stop_one(self, now, p, done, sizeof done);
		s_say(self, NULL, "%s: %lld -> %lld (%s); %s",
		    self->conf[p].role, (long long)d->from, (long long)d->to,
		    d->reason, done);
	}
}
