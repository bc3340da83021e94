/*  pipeline_test.c: the whole pipeline with real daemons on loopback,
 *  for one provider (--provider shm, or "tcp;ofi_rxm").
 *
 *  Each group writes its own INI into a private temporary folder (ipc
 *  endpoints inside it, so groups and providers can run in parallel),
 *  starts `disaggd -d -f FILE -N NAME` for the daemons it needs (logs in
 *  the folder), waits for them to register by polling `instances`, talks
 *  to the controller as a client (lib/client.h) and stops the daemons
 *  with SIGTERM.  Every wait is a poll with a deadline; nothing sleeps
 *  blindly.  Whatever way this process ends, its daemons die with it
 *  (PR_SET_PDEATHSIG, plus an atexit and signal handler).
 *
 *  Groups:
 *    1  200 requests of mixed sizes, 1 encoder, 2 transformers, 1 decoder:
 *       every one done, every file byte-identical to dg_stage_ref_run();
 *    2  policies: round-robin alternates, least-loaded and p2c use both
 *       transformers, neither more than 75 %;
 *    3  admission: max_pending = 4, the 5th submit gets busy at once;
 *    4  deadline: deadline_ms = 1 ends failed, the reason names it; a
 *       deadline that passes while a stage works ends the request there
 *       (no re-dispatch with no time left);
 *    5  cancel in every state, then no room left anywhere;
 *    6  a transformer killed with SIGKILL mid-transfer: everything ends,
 *       the survivors hold no room, every slot is free, and they still
 *       serve new requests;
 *    7  elastic scale: a transformer started while requests flow gets work;
 *    8  a burst of 48 at once, more rooms than a transformer's pool has
 *       contexts for: all done (the other groups keep at most 12 in
 *       flight so that they test what they are about).
 *
 *  Output is TAP ("ok - ...", "not ok - ...", "ok - ... # SKIP ...") and a
 *  closing "pipeline(PROVIDER): N passed, N failed, N skipped" line.  Exit
 *  0 when all passed, 1 otherwise, 77 when the provider is unavailable.
 *  A failure that shows a known defect of the daemons is followed by a
 *  "# DAEMON BUG: ..." comment saying which, and the group's logs.
 *
 *    pipeline_test [--provider P] [--disaggd PATH] [--group 1..8]... [--keep]
 *
 *  DG_TEST_KEEP=1 (or --keep) keeps the temporary folders; they are kept
 *  anyway for a group that failed, and their path is printed.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "stage_ref.h"
#include "xfer.h"

#define POOL_BYTES   (64LL << 20)       /* pool = 64M in every section */
#define SLOT_BYTES   (64LL << 10)       /* slot = 64K */
#define POOL_SLOTS   (POOL_BYTES / SLOT_BYTES)
#define CALL_MS      5000               /* one request/reply */
#define START_MS     15000              /* daemons up and registered */
#define STOP_MS      10000              /* SIGTERM to exit */
#define MAX_DAEMONS  8

static const char *s_provider = "shm";
static const char *s_disaggd = "daemon/disaggd";
static bool s_keep;
static int s_pass, s_fail, s_skip;

/* ---- TAP ---------------------------------------------------------------- */

static bool
s_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool
s_ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	printf(cond ? "ok - " : "not ok - ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" [%s]\n", s_provider);
	fflush(stdout);
	if (cond)
		s_pass++;
	else
		s_fail++;
	return cond;
}

static void
s_skip_test(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
s_skip_test(const char *fmt, ...)
{
	va_list ap;

	printf("ok - ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" [%s] # SKIP\n", s_provider);
	fflush(stdout);
	s_skip++;
}

static void
s_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
s_note(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static int64_t
s_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double
s_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ---- every child, killed on any way out --------------------------------- */

static volatile pid_t s_children[64];
static pid_t s_parent;

static void
s_child_add(pid_t pid)
{
	for (size_t i = 0; i < sizeof s_children / sizeof s_children[0]; i++)
		if (s_children[i] == 0) {
			s_children[i] = pid;
			return;
		}
}

static void
s_child_gone(pid_t pid)
{
	for (size_t i = 0; i < sizeof s_children / sizeof s_children[0]; i++)
		if (s_children[i] == pid)
			s_children[i] = 0;
}

static void
s_kill_children(void)
{
	if (getpid() != s_parent)
		return;
	for (size_t i = 0; i < sizeof s_children / sizeof s_children[0]; i++)
		if (s_children[i] > 0) {
			kill(s_children[i], SIGKILL);
			waitpid(s_children[i], NULL, 0);
			s_children[i] = 0;
		}
}

static void
s_on_fatal_signal(int sig)
{
	s_kill_children();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- files --------------------------------------------------------------- */

static int
s_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void
s_rm_rf(const char *dir)
{
	nftw(dir, s_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The whole file, malloc'd; NULL when it cannot be read. */
static char *
s_slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *b = realloc(buf, ncap + 1);
			if (!b) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = b;
			cap = ncap;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	bool bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*size = n;
	return buf;
}

/* 1 when both files hold the same bytes, 0 when not, -1 when one cannot
 * be read; `why` says what differs. */
static int
s_same_file(const char *a, const char *b, char *why, size_t whysize)
{
	size_t na = 0, nb = 0;
	char *x = s_slurp(a, &na), *y = s_slurp(b, &nb);
	int rc;

	if (!x || !y) {
		snprintf(why, whysize, "cannot read %s", !x ? a : b);
		rc = -1;
	} else if (na != nb) {
		snprintf(why, whysize, "%s has %zu bytes, %s %zu", a, na, b, nb);
		rc = 0;
	} else if (memcmp(x, y, na) != 0) {
		size_t i = 0;
		while (x[i] == y[i])
			i++;
		snprintf(why, whysize, "%s and %s differ at byte %zu", a, b, i);
		rc = 0;
	} else {
		rc = 1;
	}
	free(x);
	free(y);
	return rc;
}

/* The last `lines` lines of a log, as TAP comments. */
static void
s_print_tail(const char *path, int lines)
{
	size_t n = 0;
	char *buf = s_slurp(path, &n);

	if (!buf) {
		s_note("(no log %s)", path);
		return;
	}
	size_t start = n;
	int seen = 0;
	while (start > 0) {
		if (buf[start - 1] == '\n' && start != n && ++seen > lines)
			break;
		start--;
	}
	s_note("---- %s (last %d lines)", path, lines);
	char *save = NULL;
	for (char *l = strtok_r(buf + start, "\n", &save); l;
	    l = strtok_r(NULL, "\n", &save))
		printf("#   %s\n", l);
	fflush(stdout);
	free(buf);
}

/* ---- a cluster: one INI, its daemons, one client -------------------------- */

typedef struct {
	const char *role;               /* "encoder", "transformer", "decoder" */
	const char *name;
	int64_t step_ms;
	int workers;                    /* 0: the default */
} s_stage_spec_t;

typedef struct {
	const char *policy;             /* NULL: the default */
	int max_pending;                /* 0: the default */
	int max_retries;                /* -1: the default */
	int heartbeat_ms;
	int dead_after_ms;
	int request_timeout_ms;
	const char *chunk;              /* NULL: the default */
	int inflight;                   /* 0: the default */
	/* zero_copy = off: transfers through the fabric even on one host,
	 * for the cases that catch one in flight (tests/zerocopy has the
	 * handoff's). */
	bool fabric_only;
	s_stage_spec_t stages[6];
	int nstages;
} s_topo_t;

typedef struct {
	char name[DG_NAME_MAX];
	char log[600];
	pid_t pid;                      /* 0: not running */
	bool killed;                    /* by the test, on purpose */
} s_proc_t;

typedef struct {
	int n;                          /* results received */
	char status[16];
	char error[256];
	char output[1024];
	uint64_t bytes;
	char digest[40];
	int64_t at;                     /* s_now() when it came */
} s_res_t;

typedef struct {
	char role[16];
	char name[DG_NAME_MAX];
	char state[16];
	int64_t incoming, waiting, ready, running, sending, rooms;
	uint64_t free_slots;
} s_inst_t;

typedef struct {
	const char *group;
	char dir[512];
	char ini[600];
	char listen[600];
	char outdir[600];
	s_topo_t topo;
	s_proc_t procs[MAX_DAEMONS];
	int nprocs;
	dg_client_t *cli;
	s_res_t *res;                   /* by request id */
	size_t nres;
	int fail_at_start;
	bool broken;                    /* the controller stopped answering */
} s_cluster_t;

static s_res_t *
s_res(s_cluster_t *cl, uint64_t id)
{
	if (id >= cl->nres) {
		size_t n = cl->nres ? cl->nres : 256;
		while (n <= id)
			n *= 2;
		s_res_t *r = realloc(cl->res, n * sizeof *r);
		if (!r)
			abort();
		memset(r + cl->nres, 0, (n - cl->nres) * sizeof *r);
		cl->res = r;
		cl->nres = n;
	}
	return &cl->res[id];
}

static void
s_take(s_cluster_t *cl, dg_msg_t *m)
{
	if (m->op == DG_OP_RESULT) {
		const dg_result_msg_t *r = &m->u.result;
		s_res_t *x = s_res(cl, r->request);
		x->n++;
		x->at = s_now();
		snprintf(x->status, sizeof x->status, "%s",
		    r->status ? r->status : "");
		snprintf(x->error, sizeof x->error, "%s",
		    r->error ? r->error : "");
		snprintf(x->output, sizeof x->output, "%s",
		    r->output ? r->output : "");
		snprintf(x->digest, sizeof x->digest, "%s",
		    r->digest ? r->digest : "");
		x->bytes = r->bytes;
	}
	/* Anything else (a reply to a call that timed out) is dropped. */
	dg_msg_destroy(&m);
}

/* Take what the controller sent, waiting up to `ms` for the first. */
static void
s_pump(s_cluster_t *cl, int ms)
{
	dg_msg_t *m = dg_client_next(cl->cli, ms > 0 ? ms : 0);

	while (m) {
		s_take(cl, m);
		m = dg_client_next(cl->cli, 0);
	}
}

/* Wait (taking messages) until `until` on the monotonic clock. */
static void
s_pump_until(s_cluster_t *cl, int64_t until)
{
	for (int64_t left; (left = until - s_now()) > 0;)
		s_pump(cl, (int)left);
}

/* One request/reply.  Once the controller has failed to answer, every
 * later call fails at once: a dead controller costs one CALL_MS, not one
 * per remaining call. */
static dg_msg_t *
s_call(s_cluster_t *cl, dg_msg_t *m)
{
	dg_msg_t *reply = NULL;

	if (!cl->broken)
		reply = dg_client_call(cl->cli, m, CALL_MS);
	dg_msg_destroy(&m);
	if (!reply && !cl->broken) {
		cl->broken = true;
		s_ok(false, "%s: the controller answers within %d ms", cl->group,
		    CALL_MS);
	}
	s_pump(cl, 0);          /* results queued while waiting */
	return reply;
}

static bool
s_is_error(const dg_msg_t *m, const char *code)
{
	return m && m->op == DG_OP_ERROR && m->u.error.code &&
	    (!code || strcmp(m->u.error.code, code) == 0);
}

/* Up to `max` instance rows; -1 when the controller does not answer. */
static int
s_instances(s_cluster_t *cl, s_inst_t *out, int max)
{
	dg_msg_t *m = dg_msg_new(DG_OP_INSTANCES);
	dg_msg_t *r = m ? s_call(cl, m) : NULL;
	int n = -1;

	if (r && r->op == DG_OP_INSTANCES_OK) {
		n = 0;
		for (size_t i = 0; i < r->u.instances_ok.n_instances &&
		    n < max; i++) {
			const dg_instance_row_t *row =
			    &r->u.instances_ok.instances[i];
			s_inst_t *x = &out[n++];
			memset(x, 0, sizeof *x);
			snprintf(x->role, sizeof x->role, "%s",
			    row->role ? row->role : "");
			snprintf(x->name, sizeof x->name, "%s",
			    row->name ? row->name : "");
			snprintf(x->state, sizeof x->state, "%s",
			    row->state ? row->state : "");
			x->incoming = row->incoming;
			x->waiting = row->waiting;
			x->ready = row->ready;
			x->running = row->running;
			x->sending = row->sending;
			x->rooms = row->rooms;
			x->free_slots = row->free_slots;
		}
	}
	dg_msg_destroy(&r);
	return n;
}

static const s_inst_t *
s_inst_find(const s_inst_t *v, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

static s_proc_t *
s_proc(s_cluster_t *cl, const char *name)
{
	for (int i = 0; i < cl->nprocs; i++)
		if (strcmp(cl->procs[i].name, name) == 0)
			return &cl->procs[i];
	return NULL;
}

/* A daemon that exited on its own: say so (once) and forget its pid. */
static bool
s_reap(s_cluster_t *cl)
{
	bool lost = false;

	for (int i = 0; i < cl->nprocs; i++) {
		s_proc_t *p = &cl->procs[i];
		int st;
		if (p->pid <= 0 || waitpid(p->pid, &st, WNOHANG) != p->pid)
			continue;
		s_child_gone(p->pid);
		p->pid = 0;
		if (p->killed)
			continue;
		lost = true;
		s_ok(false, "%s: daemon %s stays up (it exited: %s %d)",
		    cl->group, p->name, WIFSIGNALED(st) ? "signal" : "status",
		    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	}
	return lost;
}

static void
s_write_ini(s_cluster_t *cl)
{
	const s_topo_t *t = &cl->topo;
	FILE *f = fopen(cl->ini, "w");

	if (!f) {
		perror(cl->ini);
		exit(1);
	}
	fprintf(f, "; %s, written by pipeline_test\n", cl->group);
	fprintf(f, "[controller]\nlisten = ipc://%s/ctl\npublish = ipc://%s/pub\n",
	    cl->dir, cl->dir);
	if (t->policy)
		fprintf(f, "policy = %s\n", t->policy);
	if (t->max_pending)
		fprintf(f, "max_pending = %d\n", t->max_pending);
	if (t->max_retries >= 0)
		fprintf(f, "max_retries = %d\n", t->max_retries);
	fprintf(f, "heartbeat_ms = %dms\n", t->heartbeat_ms ? t->heartbeat_ms : 100);
	fprintf(f, "dead_after_ms = %dms\n",
	    t->dead_after_ms ? t->dead_after_ms : 1000);
	fprintf(f, "request_timeout_ms = %dms\n",
	    t->request_timeout_ms ? t->request_timeout_ms : 20000);
	fprintf(f, "log_level = debug\n");
	fprintf(f, "\n[fabric]\nprovider = %s\nverify = on\n", s_provider);
	if (t->chunk)
		fprintf(f, "chunk = %s\n", t->chunk);
	if (t->inflight)
		fprintf(f, "inflight = %d\n", t->inflight);
	if (t->fabric_only)
		fprintf(f, "zero_copy = off\n");
	for (int i = 0; i < t->nstages; i++) {
		const s_stage_spec_t *s = &t->stages[i];
		fprintf(f, "\n[%s %s]\npeer = ipc://%s/%s\npool = %lldM\n"
		    "slot = %lldK\nstep_ms = %lldms\n", s->role, s->name,
		    cl->dir, s->name, POOL_BYTES >> 20, SLOT_BYTES >> 10,
		    (long long)s->step_ms);
		if (s->workers)
			fprintf(f, "workers = %d\n", s->workers);
		fprintf(f, "log_level = debug\n");
		if (strcmp(s->role, "decoder") == 0)
			fprintf(f, "output_dir = %s\n", cl->outdir);
	}
	fclose(f);
}

static bool
s_start(s_cluster_t *cl, const char *name)
{
	if (cl->nprocs == MAX_DAEMONS)
		return false;
	s_proc_t *p = &cl->procs[cl->nprocs++];
	memset(p, 0, sizeof *p);
	snprintf(p->name, sizeof p->name, "%s", name);
	snprintf(p->log, sizeof p->log, "%s/%s.log", cl->dir, name);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		s_ok(false, "%s: fork for %s: %s", cl->group, name,
		    strerror(errno));
		return false;
	}
	if (pid == 0) {
		/* Die with the test, whatever way it ends. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != s_parent)
			_exit(127);
		int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		    0644);
		int null = open("/dev/null", O_RDONLY);
		if (fd < 0 || null < 0)
			_exit(127);
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (close_range(3, ~0U, 0) < 0)
			for (int i = 3; i < 1024; i++)
				close(i);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl(s_disaggd, s_disaggd, "-d", "-f", cl->ini, "-N", name,
		    (char *)NULL);
		dprintf(2, "pipeline_test: exec %s: %s\n", s_disaggd,
		    strerror(errno));
		_exit(127);
	}
	p->pid = pid;
	s_child_add(pid);
	return true;
}

/* Wait until each of `names` is registered and up. */
static bool
s_wait_up(s_cluster_t *cl, const char *const *names, int n, int64_t ms)
{
	int64_t end = s_now() + ms;
	s_inst_t v[16];

	for (;;) {
		if (s_reap(cl))
			return false;
		int k = s_instances(cl, v, 16), up = 0;
		for (int i = 0; i < n && k > 0; i++) {
			const s_inst_t *x = s_inst_find(v, k, names[i]);
			up += x && strcmp(x->state, "up") == 0;
		}
		if (up == n)
			return true;
		if (s_now() >= end)
			return false;
		s_pump(cl, 20);         /* the poll interval */
	}
}

/* Every stage daemon still running (not killed by the test) reports
 * no room, empty queues and every slot free. */
static bool
s_wait_quiet(s_cluster_t *cl, int64_t ms, char *why, size_t whysize)
{
	int64_t end = s_now() + ms;
	s_inst_t v[16];

	for (;;) {
		int k = s_instances(cl, v, 16);
		bool quiet = k >= 0;
		if (k < 0)
			snprintf(why, whysize, "the controller does not answer");
		for (int i = 0; quiet && i < cl->nprocs; i++) {
			const s_proc_t *p = &cl->procs[i];
			if (p->pid <= 0 || p->killed ||
			    strcmp(p->name, "controller") == 0)
				continue;
			const s_inst_t *x = s_inst_find(v, k, p->name);
			if (!x) {
				snprintf(why, whysize, "%s is not registered",
				    p->name);
				quiet = false;
			} else if (x->rooms || x->incoming || x->waiting ||
			    x->ready || x->running || x->sending ||
			    x->free_slots != (uint64_t)POOL_SLOTS) {
				snprintf(why, whysize, "%s (%s) reports rooms %lld, "
				    "queues %lld/%lld/%lld/%lld/%lld, free slots "
				    "%llu of %lld", x->name, x->state,
				    (long long)x->rooms, (long long)x->incoming,
				    (long long)x->waiting, (long long)x->ready,
				    (long long)x->running, (long long)x->sending,
				    (unsigned long long)x->free_slots,
				    (long long)POOL_SLOTS);
				quiet = false;
			}
		}
		if (quiet) {
			snprintf(why, whysize, "every stage: rooms 0, %lld of %lld "
			    "slots free", (long long)POOL_SLOTS,
			    (long long)POOL_SLOTS);
			return true;
		}
		if (s_now() >= end)
			return false;
		s_pump(cl, 20);
	}
}

/* A cluster with its INI written and the named daemons started and
 * registered (the controller first); a failure to start is reported and
 * shows in s_cluster_ok(). */
static s_cluster_t *
s_cluster_new(const char *group, const s_topo_t *topo,
    const char *const *start, int nstart)
{
	s_cluster_t *cl = calloc(1, sizeof *cl);
	const char *tmp = getenv("TMPDIR");

	if (!cl)
		abort();
	cl->group = group;
	cl->topo = *topo;
	cl->fail_at_start = s_fail;
	/* ipc paths must fit in sun_path (108 bytes). */
	if (!tmp || !*tmp || strlen(tmp) > 60)
		tmp = "/tmp";
	snprintf(cl->dir, sizeof cl->dir, "%s/dg-pipeline.XXXXXX", tmp);
	if (!mkdtemp(cl->dir)) {
		perror(cl->dir);
		exit(1);
	}
	snprintf(cl->ini, sizeof cl->ini, "%s/pipeline.ini", cl->dir);
	snprintf(cl->listen, sizeof cl->listen, "ipc://%s/ctl", cl->dir);
	snprintf(cl->outdir, sizeof cl->outdir, "%s/out", cl->dir);
	s_write_ini(cl);
	cl->cli = dg_client_new(cl->listen);
	if (!cl->cli)
		abort();
	s_start(cl, "controller");
	for (int i = 0; i < nstart; i++)
		s_start(cl, start[i]);
	int64_t t0 = s_now();
	bool up = s_wait_up(cl, start, nstart, START_MS);
	if (!up)
		s_ok(false, "%s: %d daemons start and register within %d ms",
		    group, nstart + 1, START_MS);
	else
		s_note("%s: %d daemons registered in %lld ms (%s)", group,
		    nstart + 1, (long long)(s_now() - t0), cl->dir);
	return cl;
}

static bool
s_cluster_ok(const s_cluster_t *cl)
{
	for (int i = 0; i < cl->nprocs; i++)
		if (cl->procs[i].pid > 0 || cl->procs[i].killed)
			continue;
		else
			return false;
	return true;
}

static void
s_kill(s_cluster_t *cl, const char *name, int sig)
{
	s_proc_t *p = s_proc(cl, name);

	if (!p || p->pid <= 0)
		return;
	if (sig == SIGKILL) {
		p->killed = true;
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		s_child_gone(p->pid);
		p->pid = 0;
	} else {
		kill(p->pid, sig);
	}
}

/* SIGTERM to every daemon; each must exit 0 within STOP_MS, else
 * SIGKILL and a failure.  Then the logs' tails when the group failed,
 * and the folder goes (unless kept). */
static void
s_cluster_stop(s_cluster_t *cl)
{
	char bad[512] = "";
	size_t nb = 0;

	for (int i = 0; i < cl->nprocs; i++)
		if (cl->procs[i].pid > 0)
			kill(cl->procs[i].pid, SIGTERM);
	int64_t end = s_now() + STOP_MS;
	for (;;) {
		int left = 0;
		for (int i = 0; i < cl->nprocs; i++) {
			s_proc_t *p = &cl->procs[i];
			int st;
			if (p->pid <= 0)
				continue;
			pid_t w = waitpid(p->pid, &st, WNOHANG);
			if (w == 0) {
				left++;
				continue;
			}
			s_child_gone(p->pid);
			p->pid = 0;
			if (w < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
				nb += (size_t)snprintf(bad + nb, nb < sizeof bad ?
				    sizeof bad - nb : 0, " %s:%s%d", p->name,
				    w < 0 ? "lost" : WIFSIGNALED(st) ? "signal " :
				    "exit ", w < 0 ? 0 : WIFSIGNALED(st) ?
				    WTERMSIG(st) : WEXITSTATUS(st));
			if (nb >= sizeof bad)
				nb = sizeof bad - 1;
		}
		if (!left || s_now() >= end)
			break;
		/* Not a blind sleep: the deadline above bounds the wait,
		 * and waitpid has no timeout to poll with. */
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < cl->nprocs; i++) {
		s_proc_t *p = &cl->procs[i];
		if (p->pid <= 0)
			continue;
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		s_child_gone(p->pid);
		p->pid = 0;
		nb += (size_t)snprintf(bad + nb, nb < sizeof bad ? sizeof bad -
		    nb : 0, " %s:SIGKILL after %d ms", p->name, STOP_MS);
		if (nb >= sizeof bad)
			nb = sizeof bad - 1;
	}
	s_ok(!*bad, "%s: every daemon exits 0 on SIGTERM%s%s", cl->group,
	    *bad ? ":" : "", bad);
	dg_client_destroy(&cl->cli);
	if (s_fail > cl->fail_at_start) {
		for (int i = 0; i < cl->nprocs; i++)
			s_print_tail(cl->procs[i].log, 25);
		s_note("%s: logs and INI kept in %s", cl->group, cl->dir);
	} else if (s_keep) {
		s_note("%s: kept %s", cl->group, cl->dir);
	} else {
		s_rm_rf(cl->dir);
	}
	free(cl->res);
	free(cl);
}

/* ---- requests ------------------------------------------------------------ */

typedef struct {
	uint64_t id;                    /* 0: not accepted */
	char prompt[160];
	char negative[64];
	int64_t frames, height, width, steps, seed, deadline_ms;
	int64_t submitted;              /* s_now() */
	char error[128];                /* submit refused: code: message */
	char transformer[DG_NAME_MAX];  /* from status.ok */
	int64_t retries;
} s_job_t;

static void
s_job_init(s_job_t *j, int i, int64_t seed)
{
	static const char *const things[] = { "cat", "lighthouse", "forest",
	    "river at dusk", "city street in the rain", "red kite", "glacier" };
	static const int64_t frames[] = { 1, 5, 9 };
	static const int64_t heights[] = { 64, 80, 96, 112, 128 };
	static const int64_t widths[] = { 64, 96, 128, 160, 192 };

	memset(j, 0, sizeof *j);
	/* Prompts of different lengths: different numbers of tokens. */
	snprintf(j->prompt, sizeof j->prompt, "job %d: a %s%s", i,
	    things[i % 7], i % 3 == 0 ? ", slow pan, golden light, 35mm "
	    "film, shallow depth of field" : "");
	if (i % 4 == 1)
		snprintf(j->negative, sizeof j->negative, "blurry, low quality");
	j->frames = frames[i % 3];
	j->height = heights[(i / 3) % 5];
	j->width = widths[(i / 7) % 5];
	j->steps = 2 + i % 5;
	j->seed = seed;
}

static void
s_job_small(s_job_t *j, int i, int64_t steps)
{
	memset(j, 0, sizeof *j);
	snprintf(j->prompt, sizeof j->prompt, "small job %d", i);
	j->frames = 1;
	j->height = 64;
	j->width = 64;
	j->steps = steps;
	j->seed = 1000 + i;
}

/* Submit; the request id, or 0 with the refusal in j->error. */
static uint64_t
s_submit(s_cluster_t *cl, s_job_t *j)
{
	dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);

	if (!m)
		abort();
	m->u.submit.prompt = j->prompt;
	m->u.submit.negative_prompt = *j->negative ? j->negative : NULL;
	m->u.submit.frames = j->frames;
	m->u.submit.height = j->height;
	m->u.submit.width = j->width;
	m->u.submit.steps = j->steps;
	m->u.submit.seed = j->seed;
	m->u.submit.deadline_ms = j->deadline_ms;
	j->submitted = s_now();
	dg_msg_t *r = s_call(cl, m);
	j->id = 0;
	if (r && r->op == DG_OP_SUBMIT_OK)
		j->id = r->u.submit_ok.request;
	else if (r && r->op == DG_OP_ERROR)
		snprintf(j->error, sizeof j->error, "%s: %s", r->u.error.code,
		    r->u.error.message ? r->u.error.message : "");
	else
		snprintf(j->error, sizeof j->error, "no reply");
	dg_msg_destroy(&r);
	return j->id;
}

typedef struct {
	char state[16];
	char transformer[DG_NAME_MAX];
	char error[256];
	int64_t retries;
} s_status_t;

static bool
s_status(s_cluster_t *cl, uint64_t id, s_status_t *st)
{
	dg_msg_t *m = dg_msg_new(DG_OP_STATUS);

	if (!m)
		abort();
	memset(st, 0, sizeof *st);
	m->u.status.request = id;
	dg_msg_t *r = s_call(cl, m);
	bool ok = r && r->op == DG_OP_STATUS_OK;
	if (ok) {
		const dg_status_ok_msg_t *s = &r->u.status_ok;
		snprintf(st->state, sizeof st->state, "%s",
		    s->state ? s->state : "");
		snprintf(st->transformer, sizeof st->transformer, "%s",
		    s->transformer ? s->transformer : "");
		snprintf(st->error, sizeof st->error, "%s",
		    s->error ? s->error : "");
		st->retries = s->retries;
	}
	dg_msg_destroy(&r);
	return ok;
}

/* Wait until every accepted job has its result, or until `end`. */
static bool
s_wait_results(s_cluster_t *cl, const s_job_t *jobs, int n, int64_t end)
{
	for (;;) {
		int missing = 0;
		for (int i = 0; i < n; i++)
			if (jobs[i].id && s_res(cl, jobs[i].id)->n == 0)
				missing++;
		if (!missing)
			return true;
		if (s_now() >= end)
			return false;
		s_pump(cl, 50);
	}
}

/* Names the jobs with no result, for a failure message. */
static void
s_list_missing(s_cluster_t *cl, const s_job_t *jobs, int n)
{
	char buf[400] = "";
	size_t k = 0;
	int missing = 0;

	for (int i = 0; i < n; i++) {
		if (!jobs[i].id || s_res(cl, jobs[i].id)->n)
			continue;
		missing++;
		s_status_t st;
		if (k < sizeof buf - 40) {
			bool have = s_status(cl, jobs[i].id, &st);
			k += (size_t)snprintf(buf + k, sizeof buf - k,
			    " %llu(%s%s%s)", (unsigned long long)jobs[i].id,
			    have ? st.state : "?", have && *st.transformer ?
			    " on " : "", have ? st.transformer : "");
		}
	}
	if (missing)
		s_note("%d requests without a result:%s", missing, buf);
}

/* The transformer each job ran on (its last attempt), from status.ok. */
static void
s_placements(s_cluster_t *cl, s_job_t *jobs, int n)
{
	for (int i = 0; i < n; i++) {
		s_status_t st;
		if (jobs[i].id && s_status(cl, jobs[i].id, &st)) {
			snprintf(jobs[i].transformer,
			    sizeof jobs[i].transformer, "%s", st.transformer);
			jobs[i].retries = st.retries;
		}
	}
}

static int
s_count_on(const s_job_t *jobs, int from, int to, const char *name)
{
	int c = 0;
	for (int i = from; i < to; i++)
		c += jobs[i].id && strcmp(jobs[i].transformer, name) == 0;
	return c;
}

/* The oracle: the three reference stages in this process. */
static bool
s_oracle(const s_job_t *j, const char *dir, dg_stage_ref_result_t *res,
    char *why, size_t whysize)
{
	dg_request_t req = {
		.request = j->id, .room = 0, .prompt = j->prompt,
		.negative_prompt = j->negative, .frames = j->frames,
		.height = j->height, .width = j->width, .steps = j->steps,
		.seed = j->seed,
	};
	return dg_stage_ref_run(&req, dir, res, why, whysize) == 0;
}

/* Compare every done job's file with the oracle's: counts identical ones,
 * reports the first differences. */
static int
s_check_outputs(s_cluster_t *cl, const s_job_t *jobs, int n, int *ndone,
    int *digest_ok)
{
	char refdir[700], why[2400];
	int same = 0, shown = 0;

	snprintf(refdir, sizeof refdir, "%s/ref", cl->dir);
	*ndone = 0;
	*digest_ok = 0;
	for (int i = 0; i < n; i++) {
		const s_res_t *r = jobs[i].id ? s_res(cl, jobs[i].id) : NULL;
		if (!r || strcmp(r->status, "done") != 0)
			continue;
		(*ndone)++;
		dg_stage_ref_result_t ref;
		if (!s_oracle(&jobs[i], refdir, &ref, why, sizeof why)) {
			if (shown++ < 5)
				s_note("oracle for request %llu: %s",
				    (unsigned long long)jobs[i].id, why);
			continue;
		}
		int rc = s_same_file(r->output, ref.output, why, sizeof why);
		if (rc == 1)
			same++;
		else if (shown++ < 5)
			s_note("request %llu (%lldx%lldx%lld, %lld steps): %s",
			    (unsigned long long)jobs[i].id,
			    (long long)jobs[i].frames, (long long)jobs[i].height,
			    (long long)jobs[i].width, (long long)jobs[i].steps,
			    why);
		if (r->bytes == ref.bytes && strcmp(r->digest, ref.digest) == 0)
			(*digest_ok)++;
		else if (shown++ < 5)
			s_note("request %llu: result says %llu bytes digest %s, "
			    "the oracle %llu bytes digest %s",
			    (unsigned long long)jobs[i].id,
			    (unsigned long long)r->bytes, r->digest,
			    (unsigned long long)ref.bytes, ref.digest);
		remove(ref.output);
	}
	return same;
}

/* Submit jobs[0..n) keeping at most `window` without a result (a
 * client-side window: see the burst group for why).  Returns how many
 * were accepted. */
static int
s_submit_window(s_cluster_t *cl, s_job_t *jobs, int n, int window,
    int64_t end)
{
	int accepted = 0;

	for (int i = 0; i < n; i++) {
		for (;;) {
			int open = 0;
			for (int k = 0; k < i; k++)
				open += jobs[k].id && s_res(cl, jobs[k].id)->n == 0;
			if (open < window || s_now() >= end)
				break;
			s_pump(cl, 50);
		}
		accepted += s_submit(cl, &jobs[i]) != 0;
	}
	return accepted;
}

/* The instance rows, as TAP comments: the evidence for a stall. */
static void
s_print_instances(s_cluster_t *cl)
{
	s_inst_t v[16];
	int k = s_instances(cl, v, 16);

	for (int i = 0; i < k; i++)
		s_note("  %-11s %-3s %-9s incoming %lld waiting %lld ready %lld "
		    "running %lld sending %lld rooms %lld free slots %llu",
		    v[i].role, v[i].name, v[i].state, (long long)v[i].incoming,
		    (long long)v[i].waiting, (long long)v[i].ready,
		    (long long)v[i].running, (long long)v[i].sending,
		    (long long)v[i].rooms, (unsigned long long)v[i].free_slots);
}

/* ---- group 1: 200 mixed requests, byte-identical to the oracle ----------- */

static void
s_group_mixed(void)
{
	enum { N = 200 };
	s_topo_t t = { .max_retries = -1, .stages = {
		{ "encoder", "e0", 0, 0 }, { "transformer", "t0", 0, 0 },
		{ "transformer", "t1", 0, 0 }, { "decoder", "d0", 0, 0 },
	}, .nstages = 4 };
	const char *names[] = { "e0", "t0", "t1", "d0" };
	s_cluster_t *cl = s_cluster_new("mixed", &t, names, 4);
	static s_job_t jobs[N];
	char why[400];

	if (!s_cluster_ok(cl))
		goto out;
	int64_t t0 = s_now();
	for (int i = 0; i < N; i++) {
		s_job_init(&jobs[i], i, 0x5eed0000LL + (int64_t)i * 7919);
		jobs[i].deadline_ms = 30000;
	}
	/* At most 12 in flight, 6 per transformer: below the 16 contexts
	 * a 64M transformer pool holds (the burst group goes beyond). */
	int accepted = s_submit_window(cl, jobs, N, 12, s_now() + 120000);
	s_ok(accepted == N, "mixed: %d of %d requests accepted%s%s", accepted,
	    N, accepted < N ? ": " : "", accepted < N ? jobs[0].error : "");
	bool all = s_wait_results(cl, jobs, N, s_now() + 35000);
	if (!all)
		s_print_instances(cl);
	int64_t elapsed = s_now() - t0;
	if (!all)
		s_list_missing(cl, jobs, N);
	int done = 0, once = 0, shown = 0;
	for (int i = 0; i < N; i++) {
		const s_res_t *r = jobs[i].id ? s_res(cl, jobs[i].id) : NULL;
		if (r && strcmp(r->status, "done") == 0)
			done++;
		else if (r && r->n && shown++ < 5)
			s_note("request %llu ended %s: %s",
			    (unsigned long long)jobs[i].id, r->status, r->error);
	}
	s_ok(done == N, "mixed: every request ends done (%d of %d, %lld ms, "
	    "%.1f requests/s)", done, N, (long long)elapsed,
	    elapsed ? N * 1000.0 / (double)elapsed : 0.0);
	int ndone = 0, digest_ok = 0;
	int same = s_check_outputs(cl, jobs, N, &ndone, &digest_ok);
	s_ok(same == N, "mixed: every output file byte-identical to "
	    "dg_stage_ref_run() (%d of %d)", same, N);
	s_ok(digest_ok == N, "mixed: every result's bytes and digest equal "
	    "the oracle's (%d of %d)", digest_ok, N);
	s_placements(cl, jobs, N);
	int on0 = s_count_on(jobs, 0, N, "t0"), on1 = s_count_on(jobs, 0, N,
	    "t1");
	s_ok(on0 > 0 && on1 > 0 && on0 + on1 == accepted,
	    "mixed: placements t0 %d, t1 %d (both used, every request on one of them)",
	    on0, on1);
	s_pump(cl, 200);        /* a duplicate result would come by now */
	for (int i = 0; i < N; i++)
		once += jobs[i].id && s_res(cl, jobs[i].id)->n == 1;
	s_ok(once == accepted, "mixed: exactly one result per request (%d of "
	    "%d)", once, accepted);
	s_ok(s_wait_quiet(cl, 5000, why, sizeof why), "mixed: afterwards "
	    "no room anywhere and every slot free (%s)", why);
out:
	s_cluster_stop(cl);
}

/* ---- group 1b: a burst beyond the transformers' pools -------------------- */

/* A transformer reserves a room's input (the 4 MiB context) when the room
 * is assigned, and its output (the latents) only when a worker takes the
 * room.  A 64M pool holds exactly 16 contexts: with more than 16 rooms
 * assigned at once, inputs can take every slot and no ready room can get
 * its output memory, so nothing runs and nothing frees.  The burst must
 * still complete. */
static void
s_group_burst(void)
{
	enum { N = 48 };
	/* The encoder takes 300 ms (16 workers), so every assignment lands
	 * before the first context does: the stall, if there is one, does
	 * not depend on how fast this process submits. */
	s_topo_t t = { .policy = "round-robin", .max_retries = 0, .stages = {
		{ "encoder", "e0", 300, 16 }, { "transformer", "t0", 0, 0 },
		{ "transformer", "t1", 0, 0 }, { "decoder", "d0", 0, 0 },
	}, .nstages = 4 };
	const char *names[] = { "e0", "t0", "t1", "d0" };
	s_cluster_t *cl = s_cluster_new("burst", &t, names, 4);
	s_job_t jobs[N];
	char why[400];

	if (!s_cluster_ok(cl))
		goto out;
	int accepted = 0;
	for (int i = 0; i < N; i++) {
		s_job_small(&jobs[i], i, 2);
		jobs[i].deadline_ms = 8000;
		accepted += s_submit(cl, &jobs[i]) != 0;
	}
	/* Look while it should be busy: a stall shows as ready rooms with
	 * nothing running and no free slot. */
	int64_t until = s_now() + 1500;
	bool all = false;
	while (!(all = s_wait_results(cl, jobs, N, s_now())) &&
	    s_now() < until)
		s_pump(cl, 50);
	if (!all) {
		s_note("burst: after 1.5 s, %s", "the instances say:");
		s_print_instances(cl);
	}
	all = s_wait_results(cl, jobs, N, s_now() + 10000);
	int done = 0, shown = 0;
	for (int i = 0; i < N; i++) {
		const s_res_t *r = jobs[i].id ? s_res(cl, jobs[i].id) : NULL;
		if (r && strcmp(r->status, "done") == 0)
			done++;
		else if (r && r->n && shown++ < 3)
			s_note("request %llu ended %s: %s",
			    (unsigned long long)jobs[i].id, r->status, r->error);
	}
	if (!s_ok(accepted == N && done == N, "burst: %d requests at once, 24 "
	    "per transformer, more than the 16 contexts its 64M pool holds: "
	    "all done (%d)", N, done))
		s_note("DAEMON BUG: transformer pool deadlock: inputs reserved "
		    "at assignment fill the pool, ready rooms wait for output "
		    "slots that never free (see ready/running above)");
	s_ok(s_wait_quiet(cl, 5000, why, sizeof why), "burst: afterwards no "
	    "room anywhere and every slot free (%s)", why);
out:
	s_cluster_stop(cl);
}

/* ---- group 2: policies ---------------------------------------------------- */

static void
s_group_policy(const char *policy)
{
	enum { N = 24 };        /* 12 per transformer: within its pool */
	s_topo_t t = { .policy = policy, .max_retries = -1, .stages = {
		{ "encoder", "e0", 0, 0 }, { "transformer", "t0", 10, 0 },
		{ "transformer", "t1", 10, 0 }, { "decoder", "d0", 0, 0 },
	}, .nstages = 4 };
	const char *names[] = { "e0", "t0", "t1", "d0" };
	char group[64];
	snprintf(group, sizeof group, "policy %s", policy);
	s_cluster_t *cl = s_cluster_new(group, &t, names, 4);
	s_job_t jobs[N];

	if (!s_cluster_ok(cl))
		goto out;
	for (int i = 0; i < N; i++) {
		s_job_small(&jobs[i], i, 2);
		s_submit(cl, &jobs[i]);
	}
	bool all = s_wait_results(cl, jobs, N, s_now() + 25000);
	int done = 0;
	for (int i = 0; i < N; i++)
		done += jobs[i].id && strcmp(s_res(cl, jobs[i].id)->status,
		    "done") == 0;
	if (!s_ok(all && done == N, "%s: %d requests done (%d)", group, N,
	    done))
		s_print_instances(cl);
	s_placements(cl, jobs, N);
	int on0 = s_count_on(jobs, 0, N, "t0"), on1 = s_count_on(jobs, 0, N,
	    "t1");
	char seq[N + 1];
	for (int i = 0; i < N; i++)
		seq[i] = strcmp(jobs[i].transformer, "t0") == 0 ? '0' :
		    strcmp(jobs[i].transformer, "t1") == 0 ? '1' : '?';
	seq[N] = '\0';
	if (strcmp(policy, "round-robin") == 0) {
		int alternations = 0;
		for (int i = 1; i < N; i++)
			alternations += seq[i] != seq[i - 1] && seq[i] != '?';
		s_ok(abs(on0 - on1) <= 1 && on0 + on1 == N,
		    "%s: each transformer gets half +-1 (t0 %d, t1 %d)", group,
		    on0, on1);
		s_ok(alternations == N - 1, "%s: consecutive requests alternate "
		    "(%s)", group, seq);
	} else {
		/* 75 %: both instances are equal and idle at the start, so a
		 * load-aware choice (4 waiting + running, plus the optimistic
		 * count between heartbeats) keeps them within a request or
		 * two of each other; heartbeats every 100 ms reset the
		 * optimistic counts, which can skew a burst a little, never
		 * to 18 of 24.  Even a coin toss per request goes past 75 %
		 * of 24 with probability 0.7 %, so the bound does not flake,
		 * yet it catches a policy stuck on one instance or blind to
		 * load. */
		int most = on0 > on1 ? on0 : on1;
		s_ok(on0 > 0 && on1 > 0 && on0 + on1 == N && most * 4 <= N * 3,
		    "%s: both transformers used, neither above 75%% (t0 %d, "
		    "t1 %d: %s)", group, on0, on1, seq);
	}
out:
	s_cluster_stop(cl);
}

/* ---- group 3: admission --------------------------------------------------- */

static void
s_group_admission(void)
{
	s_topo_t t = { .max_pending = 4, .max_retries = -1, .stages = {
		{ "encoder", "e0", 0, 0 }, { "transformer", "t0", 100, 0 },
		{ "decoder", "d0", 0, 0 },
	}, .nstages = 3 };
	const char *names[] = { "e0", "t0", "d0" };
	s_cluster_t *cl = s_cluster_new("admission", &t, names, 3);
	s_job_t jobs[6];
	char why[400];

	if (!s_cluster_ok(cl))
		goto out;
	int accepted = 0;
	for (int i = 0; i < 4; i++) {
		s_job_small(&jobs[i], i, 3);    /* 300 ms each on t0 */
		accepted += s_submit(cl, &jobs[i]) != 0;
	}
	s_ok(accepted == 4, "admission: the first 4 submits are accepted (%d)",
	    accepted);
	s_job_small(&jobs[4], 4, 3);
	double u0 = s_now_us();
	s_submit(cl, &jobs[4]);
	double us = s_now_us() - u0;
	bool busy = !jobs[4].id && strncmp(jobs[4].error, "busy:", 5) == 0;
	s_ok(busy, "admission: the 5th submit gets error busy (%s)",
	    jobs[4].id ? "accepted" : jobs[4].error);
	s_ok(us < 100000, "admission: the busy reply comes at once (%.2f ms, "
	    "bound 100 ms)", us / 1000.0);
	bool all = s_wait_results(cl, jobs, 4, s_now() + 20000);
	int done = 0;
	for (int i = 0; i < 4; i++)
		done += jobs[i].id && strcmp(s_res(cl, jobs[i].id)->status,
		    "done") == 0;
	s_ok(all && done == 4, "admission: the first 4 still complete (%d done)",
	    done);
	/* Room again once they are done. */
	s_job_small(&jobs[5], 5, 1);
	s_submit(cl, &jobs[5]);
	all = jobs[5].id && s_wait_results(cl, &jobs[5], 1, s_now() + 20000);
	s_ok(all && strcmp(s_res(cl, jobs[5].id)->status, "done") == 0,
	    "admission: once they are done a new submit is accepted and done "
	    "(%s)", jobs[5].id ? s_res(cl, jobs[5].id)->status : jobs[5].error);
	s_ok(s_wait_quiet(cl, 5000, why, sizeof why), "admission: afterwards "
	    "no room anywhere and every slot free (%s)", why);
out:
	s_cluster_stop(cl);
}

/* ---- group 4: a 1 ms deadline ---------------------------------------------- */

static void
s_group_deadline(void)
{
	enum { N = 5, M = 8 };
	/* t0 takes 100 ms a step: a 3-step request is busy there for 300 ms. */
	s_topo_t t = { .max_retries = 2, .stages = {
		{ "encoder", "e0", 0, 0 }, { "transformer", "t0", 100, 8 },
		{ "decoder", "d0", 0, 0 },
	}, .nstages = 3 };
	const char *names[] = { "e0", "t0", "d0" };
	s_cluster_t *cl = s_cluster_new("deadline", &t, names, 3);
	s_job_t jobs[N + 1], busy[M];
	char why[400];

	if (!s_cluster_ok(cl))
		goto out;
	/* A deadline that passes while t0 is busy with the request: the
	 * decoder's receive times out at the same moment as the controller's
	 * deadline.  Past its deadline a request must end, with the deadline
	 * as its reason, not be placed again with no time left.  (First:
	 * the 1 ms requests below leave transfers cut short behind them.) */
	for (int i = 0; i < M; i++) {
		/* 3 ms apart: the deadlines fall at different points of the
		 * controller's 20 ms housekeeping tick. */
		s_pump_until(cl, s_now() + 3);
		s_job_small(&busy[i], 100 + i, 3);
		busy[i].deadline_ms = 150;
		s_submit(cl, &busy[i]);
	}
	bool all = s_wait_results(cl, busy, M, s_now() + 10000);
	s_placements(cl, busy, M);
	int ok_reason = 0, redispatched = 0;
	for (int i = 0; i < M; i++) {
		const s_res_t *r = busy[i].id ? s_res(cl, busy[i].id) : NULL;
		if (!r || !r->n)
			continue;
		if (strcmp(r->status, "failed") == 0 && strstr(r->error,
		    "deadline"))
			ok_reason++;
		else
			s_note("request %llu: %s, reason \"%s\"",
			    (unsigned long long)busy[i].id, r->status, r->error);
		if (busy[i].retries > 0) {
			redispatched++;
			s_note("request %llu was placed %lld more time(s) after "
			    "its deadline of %lld ms", (unsigned long long)
			    busy[i].id, (long long)busy[i].retries,
			    (long long)busy[i].deadline_ms);
		}
	}
	s_ok(all && ok_reason == M, "deadline: passing while t0 works, it ends "
	    "failed and the reason names the deadline (%d of %d)", ok_reason,
	    M);
	if (!s_ok(redispatched == 0, "deadline: a request past its deadline is "
	    "not re-dispatched (%d of %d were)", redispatched, M))
		s_note("DAEMON BUG: a stage's timeout at the deadline comes as a "
		    "retryable stage.failed before the controller's deadline "
		    "tick, and the controller places the request again with no "
		    "time left (a 1 ms room), sometimes more than once");
	for (int i = 0; i < N; i++) {
		s_job_small(&jobs[i], i, 2);
		jobs[i].deadline_ms = 1;
		s_submit(cl, &jobs[i]);
	}
	all = s_wait_results(cl, jobs, N, s_now() + 10000);
	int failed = 0, named = 0, late = 0;
	for (int i = 0; i < N; i++) {
		const s_res_t *r = jobs[i].id ? s_res(cl, jobs[i].id) : NULL;
		if (!r || !r->n)
			continue;
		if (strcmp(r->status, "failed") == 0)
			failed++;
		if (strstr(r->error, "deadline"))
			named++;
		else
			s_note("request %llu: %s, reason \"%s\"",
			    (unsigned long long)jobs[i].id, r->status, r->error);
		late += r->at - jobs[i].submitted > 1000;
	}
	s_ok(all && failed == N, "deadline: deadline_ms = 1 ends failed (%d of "
	    "%d)", failed, N);
	if (!s_ok(named == N, "deadline: the reason names the deadline (%d of "
	    "%d: \"%s\")", named, N, jobs[0].id ? s_res(cl, jobs[0].id)->error :
	    ""))
		s_note("DAEMON BUG: as above: each 1 ms room times out in a "
		    "stage and is placed again, and the retries run out before "
		    "the controller's 20 ms deadline tick, so the reason is a "
		    "stage's timeout \"(after N attempts)\"");
	s_ok(late == 0, "deadline: the result comes within 1 s (%d late)",
	    late);
	s_status_t st;
	bool have = jobs[0].id && s_status(cl, jobs[0].id, &st);
	s_ok(have && strcmp(st.state, "failed") == 0 && strstr(st.error,
	    "deadline"), "deadline: status says failed with the reason (%s: %s)",
	    have ? st.state : "?", have ? st.error : "");
	/* And the pipeline still serves a request with time to spare. */
	s_job_small(&jobs[N], N, 2);
	s_submit(cl, &jobs[N]);
	all = jobs[N].id && s_wait_results(cl, &jobs[N], 1, s_now() + 20000);
	s_ok(all && strcmp(s_res(cl, jobs[N].id)->status, "done") == 0,
	    "deadline: a later request without a deadline is done");
	s_ok(s_wait_quiet(cl, 5000, why, sizeof why), "deadline: afterwards "
	    "no room anywhere and every slot free (%s)", why);
out:
	s_cluster_stop(cl);
}

/* ---- group 5: cancel in every state --------------------------------------- */

static const char *const s_order[] = { "pending", "assigned", "encoding",
	"phase1", "denoising", "phase2", "decoding", "done", "failed",
	"cancelled" };

static int
s_rank(const char *state)
{
	for (int i = 0; i < (int)(sizeof s_order / sizeof s_order[0]); i++)
		if (strcmp(s_order[i], state) == 0)
			return i;
	return -1;
}

/* Poll status until `id` is in `state`: 1 caught, 0 it went past (the
 * states seen in `seen`), -1 timeout or no answer. */
static int
s_catch_state(s_cluster_t *cl, uint64_t id, const char *state, int64_t ms,
    char *seen, size_t seensize)
{
	int64_t end = s_now() + ms;
	size_t k = 0;
	char last[16] = "";

	*seen = '\0';
	for (;;) {
		s_status_t st;
		if (!s_status(cl, id, &st))
			return -1;
		if (strcmp(st.state, last) != 0 && k < seensize) {
			k += (size_t)snprintf(seen + k, seensize - k, "%s%s",
			    k ? ">" : "", st.state);
			snprintf(last, sizeof last, "%s", st.state);
		}
		if (strcmp(st.state, state) == 0)
			return 1;
		if (s_rank(st.state) > s_rank(state))
			return 0;
		if (s_now() >= end)
			return -1;
		/* Tight for the short phases; status is cheap. */
		s_pump(cl, s_rank(state) == 3 || s_rank(state) == 5 ? 0 : 2);
	}
}

/* Cancel `id`: cancel.ok, a result `cancelled`, and then no room and
 * every slot free everywhere. */
static void
s_cancel_and_check(s_cluster_t *cl, uint64_t id, const char *state)
{
	char why[400];
	dg_msg_t *m = dg_msg_new(DG_OP_CANCEL);

	if (!m)
		abort();
	m->u.cancel.request = id;
	dg_msg_t *r = s_call(cl, m);
	s_ok(r && r->op == DG_OP_CANCEL_OK && r->u.cancel_ok.request == id,
	    "cancel in %s: cancel.ok for request %llu (%s%s%s)", state,
	    (unsigned long long)id, r ? dg_op_name(r->op) : "no reply",
	    s_is_error(r, NULL) ? " " : "", s_is_error(r, NULL) ?
	    r->u.error.code : "");
	dg_msg_destroy(&r);
	s_job_t j = { .id = id };
	bool got = s_wait_results(cl, &j, 1, s_now() + 5000);
	const s_res_t *x = s_res(cl, id);
	s_ok(got && strcmp(x->status, "cancelled") == 0, "cancel in %s: result "
	    "status cancelled (%s%s%s)", state, got ? x->status : "none",
	    *x->error ? ": " : "", x->error);
	s_ok(s_wait_quiet(cl, 5000, why, sizeof why), "cancel in %s: then every "
	    "daemon reports rooms 0 and every slot free (%s)", state, why);
}

static void
s_group_cancel(void)
{
	/* Every state long enough to catch: the encoder and the decoder
	 * take 400 ms per batch, the transformer 100 ms per step.  The
	 * transfers (phase1: the 4 MiB context; phase2: the latents) are
	 * slowed with 4 KiB chunks, one in flight: about a thousand
	 * round trips, 10-20 ms on shm, which polling status back to back
	 * catches; three tries, and a SKIP if it still slips through. */
	s_topo_t t = { .max_retries = -1, .chunk = "4K", .inflight = 1,
	    .fabric_only = true, .stages = {
		{ "encoder", "e0", 400, 0 }, { "transformer", "t0", 100, 0 },
		{ "decoder", "d0", 400, 0 },
	}, .nstages = 3 };
	const char *early[] = { "e0", "t0" };
	s_cluster_t *cl = s_cluster_new("cancel", &t, early, 2);
	char seen[200];
	uint64_t seed = 77;

	if (!s_cluster_ok(cl))
		goto out;
	/* pending: no decoder has registered yet. */
	s_job_t j;
	s_job_small(&j, 0, 3);
	s_submit(cl, &j);
	int rc = j.id ? s_catch_state(cl, j.id, "pending", 5000, seen,
	    sizeof seen) : -1;
	s_ok(rc == 1, "cancel in pending: request %llu waits for a decoder "
	    "(%s)", (unsigned long long)j.id, seen);
	if (rc == 1)
		s_cancel_and_check(cl, j.id, "pending");
	const char *d0[] = { "d0" };
	s_start(cl, "d0");
	if (!s_ok(s_wait_up(cl, d0, 1, START_MS), "cancel: d0 starts and "
	    "registers"))
		goto out;

	/* How long each state lasts, seen by polling one request through
	 * (a comment that explains a SKIP below, should one come). */
	{
		int64_t first[10], last[10];
		for (int i = 0; i < 10; i++)
			first[i] = last[i] = -1;
		s_job_small(&j, 900, 3);
		s_submit(cl, &j);
		int64_t end = s_now() + 10000, start = s_now();
		s_status_t st;
		while (j.id && s_now() < end && s_status(cl, j.id, &st)) {
			int r = s_rank(st.state);
			if (r >= 0) {
				if (first[r] < 0)
					first[r] = s_now() - start;
				last[r] = s_now() - start;
			}
			if (r >= 7)
				break;
		}
		char line[300] = "";
		size_t k = 0;
		for (int i = 0; i < 7; i++)
			if (first[i] >= 0 && k < sizeof line)
				k += (size_t)snprintf(line + k, sizeof line - k,
				    " %s %lld ms", s_order[i],
				    (long long)(last[i] - first[i]));
		s_note("cancel: states seen polling request %llu:%s",
		    (unsigned long long)j.id, line);
		s_wait_results(cl, &j, 1, s_now() + 10000);
	}
	static const char *const states[] = { "encoding", "phase1",
	    "denoising", "phase2", "decoding" };
	for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
		bool transfer = s == 1 || s == 3;
		int tries = transfer ? 3 : 1, caught = 0;
		char all_seen[600] = "";
		for (int k = 0; k < tries && !caught; k++) {
			s_job_small(&j, (int)seed, 3);
			j.seed = (int64_t)++seed;
			if (s == 3) {
				/* Latents about as big as the context
				 * (16 x 17 x 64 x 64 f32, 4.25 MiB), so that
				 * phase2 lasts as long as phase1. */
				j.frames = 65;
				j.height = 512;
				j.width = 512;
				j.steps = 1;
			}
			if (!s_submit(cl, &j)) {
				s_ok(false, "cancel in %s: submit (%s)",
				    states[s], j.error);
				break;
			}
			rc = s_catch_state(cl, j.id, states[s], 10000, seen,
			    sizeof seen);
			if (rc == 1) {
				caught = 1;
				if (transfer)
					s_note("cancel: %s caught on try %d (%s)",
					    states[s], k + 1, seen);
				s_cancel_and_check(cl, j.id, states[s]);
				break;
			}
			size_t n = strlen(all_seen);
			snprintf(all_seen + n, sizeof all_seen - n, "%s%s",
			    n ? "; " : "", seen);
			/* Let it finish before the next try. */
			s_job_t w = j;
			s_wait_results(cl, &w, 1, s_now() + 10000);
		}
		if (caught)
			continue;
		if (transfer)
			s_skip_test("cancel in %s: not caught in %d tries (%s): "
			    "it lasts one RMA transfer, too short to poll for "
			    "reliably", states[s], tries, all_seen);
		else
			s_ok(false, "cancel in %s: request reaches the state "
			    "(%s)", states[s], all_seen);
	}
out:
	s_cluster_stop(cl);
}

/* ---- group 6: a transformer killed with SIGKILL --------------------------- */

/* The state of instance `name` ("" when it is not listed). */
static void
s_inst_state(s_cluster_t *cl, const char *name, char *state, size_t size,
    int64_t *rooms)
{
	s_inst_t v[16];
	int k = s_instances(cl, v, 16);
	const s_inst_t *x = k > 0 ? s_inst_find(v, k, name) : NULL;

	snprintf(state, size, "%s", x ? x->state : "");
	*rooms = x ? x->rooms : 0;
}

/* A job of jobs[0..n) in phase1 toward `transformer`: its request id,
 * or 0. */
static uint64_t
s_find_phase1(s_cluster_t *cl, const s_job_t *jobs, int n,
    const char *transformer)
{
	for (int i = 0; i < n; i++) {
		s_status_t st;
		if (!jobs[i].id || s_res(cl, jobs[i].id)->n ||
		    !s_status(cl, jobs[i].id, &st))
			continue;
		if (strcmp(st.state, "phase1") == 0 &&
		    strcmp(st.transformer, transformer) == 0)
			return jobs[i].id;
	}
	return 0;
}

static void
s_group_kill(void)
{
	enum { N = 40, WINDOW = 12, DEAD_MS = 1000, DEADLINE = 8000 };
	/* 4 KiB chunks, one in flight: phase1 lasts long enough (10-20 ms)
	 * to kill t1 in the middle of a transfer into it, the hard case. */
	s_topo_t t = { .max_retries = 2, .dead_after_ms = DEAD_MS,
	    .heartbeat_ms = 100, .policy = "round-robin", .chunk = "4K",
	    .inflight = 1, .fabric_only = true, .stages = {
		{ "encoder", "e0", 0, 0 }, { "transformer", "t0", 50, 2 },
		{ "transformer", "t1", 50, 2 }, { "decoder", "d0", 0, 0 },
	}, .nstages = 4 };
	const char *names[] = { "e0", "t0", "t1", "d0" };
	s_cluster_t *cl = s_cluster_new("kill", &t, names, 4);
	static s_job_t jobs[N + 2];
	char why[400], state[16];

	if (!s_cluster_ok(cl))
		goto out;
	for (int i = 0; i < N; i++) {
		s_job_init(&jobs[i], i, 0x4b1110000LL + i);
		jobs[i].frames = 1;
		jobs[i].steps = 3;              /* 150 ms on a transformer */
		jobs[i].deadline_ms = DEADLINE;
	}
	/* A stream, at most WINDOW in flight (below the 16 contexts of a
	 * pool even with all of them on t0 after the kill), all of it
	 * submitted within 4 s whatever happens; t1 dies once it holds two
	 * rooms or more; meanwhile, watch for the controller to declare it
	 * dead. */
	int accepted = 0, before = 0;
	int64_t on_t1 = 0, killed_at = 0, dead_at = 0;
	int64_t submit_end = s_now() + 4000, give_up = s_now() + 3000;
	uint64_t mid = 0;
	for (int i = 0; i < N; i++) {
		for (;;) {
			int open = 0;
			for (int k = 0; k < i; k++)
				open += jobs[k].id && s_res(cl, jobs[k].id)->n == 0;
			if (!killed_at && i >= 8) {
				s_inst_state(cl, "t1", state, sizeof state,
				    &on_t1);
				if (on_t1 >= 2 && !mid)
					mid = s_find_phase1(cl, jobs, i, "t1");
				if ((on_t1 >= 2 && mid) || s_now() >= give_up) {
					for (int m = 0; m < i; m++)
						before += jobs[m].id && s_res(cl,
						    jobs[m].id)->n;
					s_kill(cl, "t1", SIGKILL);
					killed_at = s_now();
				}
			} else if (killed_at && !dead_at) {
				int64_t r;
				s_inst_state(cl, "t1", state, sizeof state, &r);
				if (strcmp(state, "dead") == 0)
					dead_at = s_now();
			}
			if (open < WINDOW || s_now() >= submit_end)
				break;
			s_pump(cl, 10);
		}
		accepted += s_submit(cl, &jobs[i]) != 0;
	}
	s_ok(accepted == N, "kill: %d requests accepted (%d)", N, accepted);
	s_ok(killed_at && on_t1 >= 2 && mid, "kill: SIGKILL t1 with %lld rooms "
	    "on it, while e0 writes request %llu's context into it (%d of %d "
	    "requests finished before)", (long long)on_t1,
	    (unsigned long long)mid, before, N);
	while (killed_at && !dead_at && s_now() < killed_at + DEAD_MS + 3000) {
		int64_t r;
		s_inst_state(cl, "t1", state, sizeof state, &r);
		if (strcmp(state, "dead") == 0)
			dead_at = s_now();
		else
			s_pump(cl, 20);
	}
	s_ok(dead_at && dead_at - killed_at <= DEAD_MS + 3000, "kill: the "
	    "controller declares t1 dead within dead_after_ms + 3 s (seen "
	    "%lld ms after the kill)", dead_at ? (long long)(dead_at -
	    killed_at) : -1LL);
	bool all = s_wait_results(cl, jobs, N, s_now() + DEADLINE + 3000);
	if (!all)
		s_list_missing(cl, jobs, N);
	int done = 0, failed = 0, reasonless = 0, late = 0, shown = 0;
	for (int i = 0; i < N; i++) {
		const s_res_t *r = jobs[i].id ? s_res(cl, jobs[i].id) : NULL;
		if (!r || !r->n)
			continue;
		if (strcmp(r->status, "done") == 0) {
			done++;
		} else if (strcmp(r->status, "failed") == 0) {
			failed++;
			reasonless += !*r->error;
			if (shown++ < 3)
				s_note("request %llu failed: %s",
				    (unsigned long long)jobs[i].id, r->error);
		}
		late += r->at > jobs[i].submitted + DEADLINE + 1000;
	}
	s_ok(all && done + failed == accepted && reasonless == 0,
	    "kill: every accepted request ends done or failed with a reason "
	    "(%d done, %d failed, %d without a reason, %d without a result)",
	    done, failed, reasonless, all ? 0 : accepted - done - failed);
	s_ok(late == 0, "kill: no result comes after its deadline + 1 s (%d "
	    "late)", late);
	s_placements(cl, jobs, N);
	int redispatched = 0, redone = 0;
	for (int i = 0; i < N; i++)
		if (jobs[i].id && jobs[i].retries > 0) {
			redispatched++;
			redone += strcmp(s_res(cl, jobs[i].id)->status, "done") ==
			    0;
		}
	s_ok(redispatched > 0, "kill: the rooms caught on t1 are re-dispatched "
	    "(%d requests, %d of them done)", redispatched, redone);
	int ndone = 0, digest_ok = 0;
	int same = s_check_outputs(cl, jobs, N, &ndone, &digest_ok);
	s_ok(same == ndone && digest_ok == ndone, "kill: every done output "
	    "byte-identical to the oracle (%d of %d)", same, ndone);
	s_ok(s_wait_quiet(cl, DEAD_MS + 3000, why, sizeof why), "kill: within "
	    "dead_after_ms + 3 s every surviving daemon reports no room and "
	    "every slot free (%s)", why);
	/* The survivors go on serving: re-dispatch is only worth something
	 * if e0, t0 and d0 still work. */
	int fresh_done = 0;
	for (int i = N; i < N + 2; i++) {
		s_job_small(&jobs[i], i, 1);
		jobs[i].deadline_ms = 5000;
		s_submit(cl, &jobs[i]);
	}
	s_wait_results(cl, &jobs[N], 2, s_now() + 6000);
	for (int i = N; i < N + 2; i++)
		fresh_done += jobs[i].id && strcmp(s_res(cl, jobs[i].id)->status,
		    "done") == 0;
	if (!s_ok(fresh_done == 2, "kill: afterwards the survivors still serve "
	    "new requests (%d of 2 done%s%s)", fresh_done,
	    jobs[N].id && fresh_done < 2 ? ": " : "",
	    jobs[N].id && fresh_done < 2 ? s_res(cl, jobs[N].id)->error : "")) {
		s_print_instances(cl);
		s_note("DAEMON BUG: a transformer killed mid-transfer leaves the "
		    "survivors unable to serve (see the instance states above "
		    "and the encoder's log)");
	}
out:
	s_cluster_stop(cl);
}

/* ---- group 7: elastic scale ----------------------------------------------- */

static void
s_group_elastic(void)
{
	enum { BEFORE = 10, AFTER = 20, N = BEFORE + AFTER };
	s_topo_t t = { .max_retries = -1, .policy = "least-loaded", .stages = {
		{ "encoder", "e0", 0, 0 }, { "transformer", "t0", 20, 0 },
		{ "transformer", "t1", 20, 0 }, { "decoder", "d0", 0, 0 },
	}, .nstages = 4 };
	const char *names[] = { "e0", "t0", "d0" };
	s_cluster_t *cl = s_cluster_new("elastic", &t, names, 3);
	s_job_t jobs[N];
	char why[400];

	if (!s_cluster_ok(cl))
		goto out;
	/* A steady flow: one request every 40 ms, 60 ms of work each. */
	int64_t next = s_now();
	for (int i = 0; i < BEFORE; i++) {
		s_pump_until(cl, next);
		s_job_small(&jobs[i], i, 3);
		s_submit(cl, &jobs[i]);
		next += 40;
	}
	s_start(cl, "t1");
	const char *t1[] = { "t1" };
	int64_t t0 = s_now();
	bool up = s_wait_up(cl, t1, 1, START_MS);
	s_ok(up, "elastic: t1 started while requests flow registers (%lld ms)",
	    (long long)(s_now() - t0));
	next = s_now();
	for (int i = BEFORE; i < N; i++) {
		s_pump_until(cl, next);
		s_job_small(&jobs[i], i, 3);
		s_submit(cl, &jobs[i]);
		next += 40;
	}
	bool all = s_wait_results(cl, jobs, N, s_now() + 30000);
	int done = 0;
	for (int i = 0; i < N; i++)
		done += jobs[i].id && strcmp(s_res(cl, jobs[i].id)->status,
		    "done") == 0;
	s_ok(all && done == N, "elastic: every request done (%d of %d)", done,
	    N);
	s_placements(cl, jobs, N);
	int pre1 = s_count_on(jobs, 0, BEFORE, "t1");
	int post0 = s_count_on(jobs, BEFORE, N, "t0");
	int post1 = s_count_on(jobs, BEFORE, N, "t1");
	s_ok(pre1 == 0, "elastic: before it joined t1 got nothing (%d)", pre1);
	s_ok(post1 > 0, "elastic: t1 receives work once it joined (t0 %d, t1 "
	    "%d of %d later requests)", post0, post1, AFTER);
	s_ok(s_wait_quiet(cl, 5000, why, sizeof why), "elastic: afterwards no "
	    "room anywhere and every slot free (%s)", why);
out:
	s_cluster_stop(cl);
}

/* ---- main ----------------------------------------------------------------- */

/* Whether this process can open the provider: 0, or -1 with the reason. */
static int
s_provider_probe(char *why, size_t whysize)
{
	dg_fabric_conf_t conf = { .rails = 1, .chunk = 65536, .inflight = 4,
	    .quarantine_ms = 1000, .transfer_timeout_ms = 1000,
	    .chunk_retries = 1, .transfer_attempts = 1 };
	dg_pool_t *pool = dg_pool_new(1 << 20, 64 * 1024);
	dg_xfer_t *x = NULL;

	snprintf(why, whysize, "out of memory");
	snprintf(conf.provider, sizeof conf.provider, "%s", s_provider);
	if (pool)
		x = dg_xfer_new(&conf, pool, "127.0.0.1", why, whysize);
	int rc = x ? 0 : -1;
	dg_xfer_destroy(&x);
	dg_pool_destroy(&pool);
	return rc;
}

int
main(int argc, char *argv[])
{
	bool only[9] = { false };
	bool any = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--provider") == 0 && i + 1 < argc)
			s_provider = argv[++i];
		else if (strcmp(argv[i], "--disaggd") == 0 && i + 1 < argc)
			s_disaggd = argv[++i];
		else if (strcmp(argv[i], "--group") == 0 && i + 1 < argc) {
			int g = atoi(argv[++i]);
			if (g >= 1 && g <= 8)
				only[g] = any = true;
		} else if (strcmp(argv[i], "--keep") == 0)
			s_keep = true;
		else {
			fprintf(stderr, "usage: pipeline_test [--provider P] "
			    "[--disaggd PATH] [--group 1..8]... [--keep]\n");
			return 2;
		}
	}
	if (getenv("DG_TEST_KEEP") && *getenv("DG_TEST_KEEP") == '1')
		s_keep = true;
	setvbuf(stdout, NULL, _IOLBF, 0);
	s_parent = getpid();
	zsys_handler_set(NULL);
	dg_log_init("pipeline_test", true,
	    getenv("DG_TEST_VERBOSE") ? DG_LOG_DEBUG : DG_LOG_ERROR);
	signal(SIGPIPE, SIG_IGN);
	atexit(s_kill_children);
	struct sigaction sa = { .sa_handler = s_on_fatal_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);

	if (access(s_disaggd, X_OK) < 0) {
		printf("not ok - pipeline: %s is not built [%s]\n", s_disaggd,
		    s_provider);
		printf("pipeline(%s): 0 passed, 1 failed\n", s_provider);
		return 1;
	}
	/* Without the provider there is nothing to test. */
	char why[256] = "";
	if (s_provider_probe(why, sizeof why) < 0) {
		printf("ok - pipeline: provider %s unavailable (%s) # SKIP\n",
		    s_provider, why);
		printf("pipeline(%s): 0 passed, 0 failed, 1 skipped\n",
		    s_provider);
		return 77;
	}

	int64_t t0 = s_now();
	if (!any || only[1])
		s_group_mixed();
	if (!any || only[2]) {
		s_group_policy("round-robin");
		s_group_policy("least-loaded");
		s_group_policy("p2c");
	}
	if (!any || only[3])
		s_group_admission();
	if (!any || only[4])
		s_group_deadline();
	if (!any || only[5])
		s_group_cancel();
	if (!any || only[6])
		s_group_kill();
	if (!any || only[7])
		s_group_elastic();
	if (!any || only[8])
		s_group_burst();
	s_note("pipeline(%s): %.1f s", s_provider,
	    (double)(s_now() - t0) / 1000.0);
	printf("pipeline(%s): %d passed, %d failed, %d skipped\n", s_provider,
	    s_pass, s_fail, s_skip);
	return s_fail ? 1 : 0;
}
