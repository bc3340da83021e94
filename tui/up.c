/*  up.c: `disagg up` and `disagg down`, see up.h.
 *
 *  up starts one `disaggd -d -f FILE -N NAME` per section through a
 *  supervisor (supervisor.h: its own session, RUN/NAME.log) and rewrites
 *  RUN/pids after every start, so that down can stop even a
 *  half-started pipeline.  Readiness is what the controller's instance
 *  list says, polled against a deadline; a daemon that exits meanwhile
 *  ends the wait at once.  The lock on RUN/lock keeps two ups (or an up
 *  and a down) from racing on the same run folder.  */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "run.h"
#include "supervisor.h"
#include "up.h"
#include "up_impl.h"
#include "registry.h"

#define S_START_TIMEOUT_MS 20000
#define S_POLL_MS          50   /* between two instance queries */
#define S_TAIL_LINES       15
#define S_IPC_MAX          107  /* sun_path is 108 bytes with its NUL */

/* A daemon as up shows it: section i is the supervisor's child i once
 * started. */
typedef struct {
	const char *name;
	const char *role;
	bool registered;
} s_daemon_t;

static volatile sig_atomic_t s_interrupted;

static void
s_on_signal(int sig)
{
	s_interrupted = sig;
}

static bool
s_is_controller(const char *name)
{
	return strcmp(name, "controller") == 0;
}

/* ---- the run folder ---------------------------------------------------- */

/* The run folder, locked while up or down works; NULL, said why, when
 * refused, or when it does not exist (*absent, only when not
 * `create`).  DISAGG_RUN is set to it, so that run.h and the client
 * agree on it whatever -d or the environment said. */
dg_supervisor_t *
dg_up_open(const char *cmd, bool create, bool *absent)
{
	const char *dir = dg_run_dir();
	char why[PATH_MAX + 128];
	dg_supervisor_t *sup = dg_supervisor_new(dir, create, why, sizeof why);

	*absent = false;
	if (!sup) {
		if (!create && errno == ENOENT) {
			*absent = true;
			return NULL;
		}
		fprintf(stderr, "disagg %s: %s%s\n", cmd, why, errno == EEXIST ?
		    "; set DISAGG_RUN or -d to another one" : errno == EPERM ?
		    "; set DISAGG_RUN or -d to a folder of yours" : "");
		return NULL;
	}
	const char *run = dg_supervisor_dir(sup);
	setenv("DISAGG_RUN", run, 1);
	if (dg_supervisor_lock(sup) < 0) {
		if (errno == EWOULDBLOCK)
			fprintf(stderr, "disagg %s: another 'disagg up' or 'disagg "
			    "down' is at work in %s; try again when it is done\n",
			    cmd, run);
		else
			fprintf(stderr, "disagg %s: %s/lock: %s\n", cmd, run,
			    strerror(errno));
		dg_supervisor_destroy(&sup);
	}
	return sup;
}

/* The last `lines` lines of a log, indented, on stderr. */
void
dg_up_tail(const char *path, int lines)
{
	char buf[8192];
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, "  (no log at %s)\n", path);
		return;
	}
	long from = 0;
	if (fseek(f, 0, SEEK_END) == 0) {
		long size = ftell(f);
		if (size > (long)sizeof buf - 1)
			from = size - ((long)sizeof buf - 1);
	}
	fseek(f, from, SEEK_SET);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *start = buf, *end = buf + n;
	if (from > 0 && (start = memchr(buf, '\n', n)) != NULL)
		start++;                /* skip the cut first line */
	else if (from > 0)
		start = buf;
	while (end > start && end[-1] == '\n')
		end--;
	if (end == start) {
		fprintf(stderr, "  (its log %s is empty)\n", path);
		return;
	}
	char *p = end;
	for (int count = 0; p > start; p--)
		if (p[-1] == '\n' && ++count == lines)
			break;
	fprintf(stderr, "  the end of %s:\n", path);
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		int len = (int)((nl ? nl : end) - p);
		fprintf(stderr, "  | %.*s\n", len, p);
		p += len + 1;
	}
}

/* ---- starting and stopping daemons ------------------------------------ */

/* disaggd next to this disagg (../daemon/disaggd, as built, or the same
 * folder, as installed), else the first on PATH.  0 and `out`
 * (PATH_MAX bytes) filled, or -1. */
int
dg_up_find_disaggd(char *out)
{
	char self[PATH_MAX], cand[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			static const char *const rel[] = { "../daemon/disaggd",
			    "disaggd" };
			for (size_t i = 0; i < 2; i++) {
				snprintf(cand, sizeof cand, "%s/%s", self, rel[i]);
				if (access(cand, X_OK) == 0 && realpath(cand, out))
					return 0;
			}
		}
	}
	const char *path = getenv("PATH");
	while (path && *path) {
		size_t len = strcspn(path, ":");
		snprintf(cand, sizeof cand, "%.*s/disaggd", len ? (int)len : 1,
		    len ? path : ".");
		if (access(cand, X_OK) == 0 && realpath(cand, out))
			return 0;
		path += len + (path[len] == ':');
	}
	return -1;
}

/* How a child ended, for messages. */
static const char *
s_how(const dg_child_t *c, char *buf, size_t size)
{
	if (!c->reaped)
		snprintf(buf, size, "exited");
	else if (WIFEXITED(c->status))
		snprintf(buf, size, "exited with status %d",
		    WEXITSTATUS(c->status));
	else if (WIFSIGNALED(c->status))
		snprintf(buf, size, "was killed by signal %d (%s)",
		    WTERMSIG(c->status), strsignal(WTERMSIG(c->status)));
	else
		snprintf(buf, size, "ended");
	return buf;
}

int
dg_up_stop(dg_supervisor_t *sup, bool controller, const char *only,
    int64_t timeout_ms, bool say)
{
	int bad = 0;
	size_t n = dg_supervisor_size(sup), todo = 0;
	int64_t t0 = zclock_mono();

	for (size_t i = 0; i < n; i++) {
		const dg_child_t *x = dg_supervisor_child(sup, i);
		if (only ? strcmp(x->name, only) != 0 :
		    s_is_controller(x->name) != controller)
			continue;
		if (dg_supervisor_exited(sup, i)) {
			if (say)
				printf("  %-11s pid %-7d was not running (see %s)\n",
				    x->name, (int)x->pid, x->log);
			continue;
		}
		if (dg_supervisor_stop(sup, i) < 0) {
			fprintf(stderr, "disagg: cannot signal %s (pid %d): %s\n",
			    x->name, (int)x->pid, strerror(errno));
			bad++;
			continue;
		}
		todo++;
	}
	while (todo > 0) {
		todo = 0;
		for (size_t i = 0; i < n; i++) {
			const dg_child_t *x = dg_supervisor_child(sup, i);
			if (x->state != DG_CHILD_STOPPING)
				continue;
			if (dg_supervisor_exited(sup, i)) {
				if (say)
					printf("  %-11s pid %-7d stopped (%.1f s)\n",
					    x->name, (int)x->pid,
					    (double)(zclock_mono() - t0) / 1000.0);
			} else {
				todo++;
			}
		}
		if (todo == 0 || zclock_mono() - t0 >= timeout_ms)
			break;
		zclock_sleep(20);       /* poll interval; bounded above */
	}
	for (size_t i = 0; i < n; i++) {
		const dg_child_t *x = dg_supervisor_child(sup, i);
		if (x->state != DG_CHILD_STOPPING)
			continue;
		bad++;
		dg_supervisor_kill(sup, i);
		printf("  %-11s pid %-7d did not stop within %.0f s: killed "
		    "with SIGKILL (see %s)\n", x->name, (int)x->pid,
		    (double)timeout_ms / 1000.0, x->log);
		/* SIGKILL cannot be refused; this bound only guards against a
		 * process stuck in the kernel. */
		int64_t end = zclock_mono() + 2000;
		while (!dg_supervisor_exited(sup, i) && zclock_mono() < end)
			zclock_sleep(10);
	}
	return bad;
}

/* ---- up ---------------------------------------------------------------- */

/* The built-in topology: everything on this host, ipc endpoints in the
 * run folder so that two users or two tests never meet on a port. */
static char *
s_default_ini(const char *run, const char *out)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	fprintf(f,
	    "; up.ini: the built-in one-host topology of `disagg up`: the\n"
	    "; controller, one encoder, one transformer and one decoder running\n"
	    "; the reference stages on host memory, tensors over the shm provider,\n"
	    "; every transfer checksummed.  The endpoints are ipc sockets in the\n"
	    "; run folder, so two users (or two tests) never clash on a port.\n"
	    "; Copy it to start a topology of your own: disagg up -f FILE.\n"
	    "\n"
	    "[controller]\n"
	    "listen  = ipc://%s/controller.sock\n"
	    "publish = ipc://%s/events.sock\n"
	    "policy  = least-loaded\n"
	    "journal = %s/controller.journal\n"
	    "\n"
	    "[fabric]\n"
	    "provider = shm\n"
	    "verify   = on\n"
	    "\n"
	    "[encoder e0]\n"
	    "peer   = ipc://%s/e0.sock\n"
	    "stage  = ref-encoder\n"
	    "memory = host\n"
	    "\n"
	    "[transformer t0]\n"
	    "peer   = ipc://%s/t0.sock\n"
	    "stage  = ref-transformer\n"
	    "memory = host\n"
	    "pool   = 256M\n"
	    "\n"
	    "[decoder d0]\n"
	    "peer   = ipc://%s/d0.sock\n"
	    "stage  = ref-decoder\n"
	    "memory = host\n"
	    "output_dir = %s\n", run, run, run, run, run, run, out);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* A whole file into a string; NULL with errno set. */
static char *
s_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t len = 0;

	if (!f)
		return NULL;
	FILE *m = open_memstream(&text, &len);
	if (m) {
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof buf, f)) > 0)
			fwrite(buf, 1, n, m);
		if (ferror(f) || fclose(m) != 0) {
			free(text);
			text = NULL;
			errno = EIO;
		}
	}
	fclose(f);
	return text;
}

static int
s_write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX + 16];

	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fputs(text, f);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* `path` made absolute against `cwd`, into out (PATH_MAX + 16 bytes). */
static void
s_absolute(const char *cwd, const char *path, char *out, size_t size)
{
	if (path[0] == '/')
		snprintf(out, size, "%s", path);
	else if (strcmp(path, ".") == 0)
		snprintf(out, size, "%s", cwd);
	else
		snprintf(out, size, "%s/%s", cwd, strncmp(path, "./", 2) == 0 ?
		    path + 2 : path);
}

/* The controller's listen endpoint as a client reaches it: a wildcard
 * address is bound everywhere, so loopback is one of them. */
void
dg_up_reach(const char *listen, char *out, size_t size)
{
	static const char *const any[] = { "tcp://*:", "tcp://0.0.0.0:" };

	for (size_t i = 0; i < 2; i++) {
		size_t len = strlen(any[i]);
		if (strncmp(listen, any[i], len) == 0) {
			snprintf(out, size, "tcp://127.0.0.1:%s", listen + len);
			return;
		}
	}
	snprintf(out, size, "%s", listen);
}

/* Whether something already accepts connections on a tcp or ipc
 * endpoint.  Another pipeline there would answer in place of ours: its
 * controller would list its stages, and ours would die unseen. */
static bool
s_in_use(const char *endpoint)
{
	int fd = -1;
	bool used = false;

	if (strncmp(endpoint, "ipc://", 6) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		size_t len = strlen(endpoint + 6);
		if (len >= sizeof sun.sun_path)
			return false;
		memcpy(sun.sun_path, endpoint + 6, len + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		used = fd >= 0 && connect(fd, (struct sockaddr *)&sun,
		    sizeof sun) == 0;
	} else if (strncmp(endpoint, "tcp://", 6) == 0) {
		const char *hp = endpoint + 6, *colon = strrchr(hp, ':');
		char host[DG_ENDPOINT_MAX];
		if (!colon)
			return false;
		if (*hp == '[' && colon > hp + 1 && colon[-1] == ']')
			snprintf(host, sizeof host, "%.*s", (int)(colon - hp - 2),
			    hp + 1);
		else
			snprintf(host, sizeof host, "%.*s", (int)(colon - hp), hp);
		if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0)
			snprintf(host, sizeof host, "127.0.0.1");
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
		    .ai_flags = AI_NUMERICSERV }, *ai = NULL;
		if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
			return false;   /* an interface name: zmq's business */
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			used = true;
		} else if (fd >= 0 && errno == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int err = 0;
			socklen_t elen = sizeof err;
			used = poll(&p, 1, 200) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 &&
			    err == 0;
		}
		freeaddrinfo(ai);
	}
	if (fd >= 0)
		close(fd);
	return used;
}

/* Every endpoint the topology binds that something already holds,
 * after a header, one line each; how many. */
static int
s_endpoints_in_use(const dg_config_t *cfg)
{
	const dg_controller_conf_t *c = dg_config_controller(cfg);
	size_t n = dg_config_stage_count(cfg);
	int busy = 0;

	for (size_t i = 0; i < n + 2; i++) {
		const dg_stage_conf_t *s = i >= 2 ? dg_config_stage_at(cfg,
		    i - 2) : NULL;
		const char *ep = i == 0 ? c->listen : i == 1 ? c->publish :
		    s->peer;
		if (!s_in_use(ep))
			continue;
		if (busy++ == 0)
			fprintf(stderr, "disagg up: something already listens on "
			    "endpoints of this topology:\n");
		if (s)
			fprintf(stderr, "  %s (peer of [%s %s])\n", ep,
			    s->role, s->name);
		else
			fprintf(stderr, "  %s (%s of [controller])\n", ep,
			    i == 0 ? "listen" : "publish");
	}
	return busy;
}

/* Ask the controller which instances it has; mark the stages it lists
 * as up.  The number up, or -1 when it did not answer in time. */
static int
s_poll(dg_client_t *cl, s_daemon_t *d, size_t n, int timeout_ms)
{
	dg_msg_t *m = dg_msg_new(DG_OP_INSTANCES);

	if (!m)
		return -1;
	dg_msg_t *reply = dg_client_call(cl, m, timeout_ms);
	dg_msg_destroy(&m);
	if (!reply)
		return -1;
	int up = 0;
	if (reply->op == DG_OP_INSTANCES_OK) {
		const dg_instances_ok_msg_t *ok = &reply->u.instances_ok;
		for (size_t i = 0; i < n; i++) {
			if (s_is_controller(d[i].name))
				continue;
			d[i].registered = false;
			for (size_t j = 0; j < ok->n_instances; j++) {
				const dg_instance_row_t *r = &ok->instances[j];
				if (r->name && r->state &&
				    strcmp(r->name, d[i].name) == 0 &&
				    dg_inst_state_lookup(r->state) == DG_INST_UP)
					d[i].registered = true;
			}
			up += d[i].registered;
		}
	} else if (reply->op == DG_OP_ERROR) {
		static bool said;       /* once, not at every poll */
		if (!said)
			fprintf(stderr, "disagg up: the controller refused to list "
			    "its instances: %s: %s\n", reply->u.error.code,
			    reply->u.error.message);
		said = true;
	}
	dg_msg_destroy(&reply);
	return up;
}

enum { S_READY, S_EXITED, S_TIMEOUT, S_SIGNAL };

/* Whether a started daemon has exited; *which says which. */
static bool
s_any_exited(dg_supervisor_t *sup, size_t *which)
{
	for (size_t i = 0; i < dg_supervisor_size(sup); i++) {
		if (dg_supervisor_exited(sup, i)) {
			*which = i;
			return true;
		}
	}
	return false;
}

/* Until the controller answers and `want` stages are up, a daemon
 * exits (*which says which), the deadline passes, or a signal. */
static int
s_wait(dg_client_t *cl, dg_supervisor_t *sup, s_daemon_t *d, size_t n,
    int want, int64_t deadline, size_t *which)
{
	for (;;) {
		if (s_interrupted)
			return S_SIGNAL;
		if (s_any_exited(sup, which))
			return S_EXITED;
		int64_t t = zclock_mono(), left = deadline - t;
		if (left <= 0)
			return S_TIMEOUT;
		int up = s_poll(cl, d, n, left < 500 ? (int)left : 500);
		if (up >= want) {
			/* Ours must still be there: what answered could be
			 * someone else's on the same endpoint. */
			return s_any_exited(sup, which) ? S_EXITED : S_READY;
		}
		int64_t pause = S_POLL_MS - (zclock_mono() - t);
		if (pause > 0)
			zclock_sleep((int)pause);
	}
}

static void
s_up_usage(FILE *out)
{
	fprintf(out,
	    "usage: disagg up [-f file] [-d dir] [--timeout S]\n"
	    "\n"
	    "Start every daemon of a topology on this host: the controller, "
	    "then each\n"
	    "stage, and wait until every stage has registered.  Without -f, a "
	    "built-in\n"
	    "one-host pipeline (e0, t0, d0; ref stages, shm, ipc endpoints), "
	    "writing\n"
	    "into ./out.\n"
	    "\n"
	    "  -f, --file FILE   the topology (default: the built-in one)\n"
	    "  -d, --dir DIR     run folder for up.ini, pids and logs "
	    "(default\n"
	    "                    $DISAGG_RUN, $XDG_RUNTIME_DIR/disagg or "
	    "/tmp/disagg-UID)\n"
	    "  --timeout S       how long to wait for the stages (default 20)\n");
}

/* A --timeout: seconds, or a duration such as 500ms. */
int
dg_up_parse_timeout(const char *text, int64_t *ms)
{
	char *end;

	errno = 0;
	double s = strtod(text, &end);
	if (end != text && !*end && !errno && s > 0 && s <= 86400) {
		*ms = (int64_t)(s * 1000.0);
		return 0;
	}
	if (dg_parse_duration_ms(text, ms) == 0 && *ms > 0)
		return 0;
	return -1;
}

static int
s_up_fail(dg_supervisor_t *sup)
{
	printf("disagg up: stopping the daemons already started\n");
	dg_up_stop(sup, false, NULL, 5000, true);
	dg_up_stop(sup, true, NULL, 5000, true);
	dg_supervisor_remove_pids(sup);
	fprintf(stderr, "disagg up: failed; the logs are in %s\n",
	    dg_supervisor_dir(sup));
	return DG_EXIT_FAIL;
}

/* Print a configuration's errors; how many. */
static size_t
s_config_errors(const dg_config_t *cfg)
{
	size_t ne = cfg ? dg_config_error_count(cfg) : 0;

	for (size_t i = 0; i < ne; i++)
		fprintf(stderr, "%s\n", dg_config_error(cfg, i));
	return ne;
}

/* Whether daemons of an earlier up in this run folder still run; they
 * must be brought down first, or two pipelines would fight over the
 * same endpoints. */
static bool
s_still_running(dg_supervisor_t *sup, const char *dir)
{
	size_t nalive = 0;

	dg_supervisor_load_pids(sup, DG_UP_DAEMON);
	for (size_t i = 0; i < dg_supervisor_size(sup); i++) {
		const dg_child_t *old = dg_supervisor_child(sup, i);
		if (old->state == DG_CHILD_EXITED)
			continue;
		if (nalive++ == 0)
			fprintf(stderr, "disagg up: a pipeline started by an "
			    "earlier 'disagg up' is still running from %s:\n",
			    dg_supervisor_dir(sup));
		fprintf(stderr, "  %-11s pid %d\n", old->name, (int)old->pid);
	}
	/* The new pids replace these in RUN/pids. */
	dg_supervisor_prune(sup);
	if (nalive > 0)
		fprintf(stderr, "disagg up: run 'disagg down%s%s' first\n",
		    dir ? " -d " : "", dir ? dir : "");
	return nalive > 0;
}

/* Our own handlers, not czmq's: a Ctrl-C while up waits must still stop
 * what it started. */
static void
s_catch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = s_on_signal }, was;

	zsys_init();            /* first, or it would install its own later */
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		/* A signal the caller ignores (sh's '&' does SIGINT) stays
		 * ignored, as is the custom. */
		if (sigaction(sigs[i], NULL, &was) == 0 &&
		    was.sa_handler == SIG_IGN)
			continue;
		sigaction(sigs[i], &sa, NULL);
	}
}

/* Start the daemon of section `name` and add it to RUN/pids; 0, or -1
 * (said why when the start failed). */
static int
s_start(dg_supervisor_t *sup, const char *disaggd, const char *cfgpath,
    const char *name)
{
	char why[PATH_MAX + 128];

	if (dg_supervisor_spawn_section(sup, disaggd, cfgpath, name, why,
	    sizeof why) < 0) {
		fprintf(stderr, "disagg up: %s\n", why);
		return -1;
	}
	return dg_supervisor_save_pids(sup);
}

/* Start the controller, wait until it answers, start the stages, wait
 * until they are registered.  On any failure, say why, stop what was
 * started and return DG_EXIT_FAIL. */
static int
s_up_start(dg_supervisor_t *sup, const char *disaggd, const char *cfgpath,
    const char *endpoint, int64_t timeout_ms, s_daemon_t *d, size_t n)
{
	int64_t deadline = zclock_mono() + timeout_ms;
	size_t which = 0;
	int st = S_READY;
	char how[64];
	const dg_child_t *c;

	if (s_start(sup, disaggd, cfgpath, d[0].name) < 0)
		return s_up_fail(sup);
	c = dg_supervisor_child(sup, 0);
	printf("  started controller   pid %-7d log %s\n", (int)c->pid, c->log);
	fflush(stdout);
	dg_client_t *cl = dg_client_new(endpoint);
	if (!cl) {
		fprintf(stderr, "disagg up: cannot connect to %s\n", endpoint);
		return s_up_fail(sup);
	}
	/* The stages register with the controller as they start, so it
	 * must be listening first. */
	st = s_wait(cl, sup, d, 1, 0, deadline, &which);
	if (st == S_TIMEOUT) {
		fprintf(stderr, "disagg up: the controller did not answer on "
		    "%s within %g s\n", endpoint, (double)timeout_ms / 1000.0);
		dg_up_tail(c->log, S_TAIL_LINES);
	}
	for (size_t i = 1; i < n && st == S_READY; i++) {
		if (s_start(sup, disaggd, cfgpath, d[i].name) < 0) {
			dg_client_destroy(&cl);
			return s_up_fail(sup);
		}
		c = dg_supervisor_child(sup, i);
		printf("  started %-12s pid %-7d log %s\n", d[i].name,
		    (int)c->pid, c->log);
	}
	if (st == S_READY && n > 1) {
		printf("  waiting for the %zu stage%s to register with the "
		    "controller (at most %.0f s)\n", n - 1, n == 2 ? "" : "s",
		    (double)(deadline - zclock_mono()) / 1000.0);
		fflush(stdout);
		st = s_wait(cl, sup, d, n, (int)(n - 1), deadline, &which);
	}
	dg_client_destroy(&cl);
	switch (st) {
	case S_READY:
		return DG_EXIT_OK;
	case S_TIMEOUT:
		if (dg_supervisor_size(sup) < 2)
			break;          /* the controller's, said above */
		fprintf(stderr, "disagg up: not registered within %g s:",
		    (double)timeout_ms / 1000.0);
		for (size_t i = 1; i < n; i++)
			if (!d[i].registered)
				fprintf(stderr, " %s", d[i].name);
		fprintf(stderr, "\n");
		for (size_t i = 1; i < n; i++)
			if (!d[i].registered)
				dg_up_tail(dg_supervisor_child(sup, i)->log, 8);
		break;
	case S_EXITED:
		c = dg_supervisor_child(sup, which);
		fprintf(stderr, "disagg up: %s (%s, pid %d) %s during start-up\n",
		    d[which].name, d[which].role, (int)c->pid,
		    s_how(c, how, sizeof how));
		dg_up_tail(c->log, S_TAIL_LINES);
		break;
	case S_SIGNAL:
		fprintf(stderr, "disagg up: interrupted (%s)\n",
		    strsignal(s_interrupted));
		break;
	}
	return s_up_fail(sup);
}

/* Where everything is, and what to try next. */
static void
s_up_report(const dg_config_t *cfg, const dg_supervisor_t *sup,
    const s_daemon_t *d, size_t n, const char *endpoint, bool builtin,
    bool dir, const char *cwd, int64_t ms)
{
	const char *run = dg_supervisor_dir(sup);

	printf("\nThe pipeline is up: %zu stage%s registered in %.1f s.\n\n",
	    n - 1, n == 2 ? "" : "s", (double)ms / 1000.0);
	printf("  controller  %s\n", endpoint);
	printf("  topology    %s/up.ini (%s)\n", run, builtin ?
	    "the built-in one" : "a copy of it");
	for (size_t i = 0; i < dg_config_stage_count(cfg); i++) {
		const dg_stage_conf_t *s = dg_config_stage_at(cfg, i);
		if ((size_t)s->index + 1 != dg_config_pipeline(cfg)->nroles)
			continue;
		char o[PATH_MAX + 16];
		s_absolute(cwd, s->output_dir, o, sizeof o);
		printf("  output      %s (%s writes REQUEST.y4m there)\n", o,
		    s->name);
	}
	printf("  run folder  %s (pids, logs)\n\n", run);
	printf("  %-11s %-12s %-8s %s\n", "NAME", "ROLE", "PID", "LOG");
	for (size_t i = 0; i < n; i++) {
		const dg_child_t *c = dg_supervisor_child(sup, i);
		printf("  %-11s %-12s %-8d %s\n", d[i].name, d[i].role,
		    (int)c->pid, c->log);
	}
	printf("\nNext:\n");
	if (dir)
		printf("  export DISAGG_RUN=%s  so that the commands below find "
		    "this pipeline\n", run);
	printf("  disagg submit --wait    send a sample request and follow it "
	    "to its result\n");
	printf("  disagg instances        what the controller sees\n");
	printf("  disagg down             stop every daemon started here\n");
}

int
dg_cmd_up(int argc, char *argv[])
{
	enum { O_TIMEOUT = 1000 };
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "dir", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *file = NULL, *dir = NULL;
	int64_t timeout_ms = S_START_TIMEOUT_MS;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "f:d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': file = optarg; break;
		case 'd': dir = optarg; break;
		case 'h': s_up_usage(stdout); return DG_EXIT_OK;
		case O_TIMEOUT:
			if (dg_up_parse_timeout(optarg, &timeout_ms) == 0)
				break;
			fprintf(stderr, "disagg up: --timeout wants seconds, got "
			    "'%s'\n", optarg);
			return DG_EXIT_USAGE;
		default:
			s_up_usage(stderr);
			return DG_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "disagg up: unexpected argument '%s'\n",
		    argv[optind]);
		s_up_usage(stderr);
		return DG_EXIT_USAGE;
	}

	char cwd[PATH_MAX], cfgpath[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd)) {
		fprintf(stderr, "disagg up: getcwd: %s\n", strerror(errno));
		return DG_EXIT_FAIL;
	}
	/* A given file is checked before anything is created or started. */
	char *text = NULL;
	dg_config_t *cfg = NULL;
	if (file) {
		if (!(text = s_slurp(file)) || !realpath(file, cfgpath)) {
			fprintf(stderr, "disagg up: cannot read %s: %s\n", file,
			    strerror(errno));
			free(text);
			return DG_EXIT_FAIL;
		}
		cfg = dg_config_load(file);
		if (!cfg || dg_config_error_count(cfg) > 0) {
			size_t ne = s_config_errors(cfg);
			fprintf(stderr, "disagg up: %s has %zu error%s; nothing "
			    "started\n", file, ne, ne == 1 ? "" : "s");
			dg_config_destroy(&cfg);
			free(text);
			return DG_EXIT_FAIL;
		}
		/* Without a key this disagg could never hear the controller
		 * say the stages are up: say so now, not at the timeout. */
		const char *key = getenv("DISAGG_KEY");
		if (dg_config_security(cfg)->curve && (!key || !*key)) {
			fprintf(stderr, "disagg up: %s has curve = on, and this "
			    "disagg has no key to reach its controller: set "
			    "DISAGG_KEY to a client or admin secret key (disagg "
			    "keygen); nothing started\n", file);
			dg_config_destroy(&cfg);
			free(text);
			return DG_EXIT_FAIL;
		}
	}

	if (dir)
		setenv("DISAGG_RUN", dir, 1);
	int rc = DG_EXIT_FAIL;
	bool absent;
	dg_supervisor_t *sup = dg_up_open("up", true, &absent);
	if (!sup || s_still_running(sup, dir))
		goto out;
	dg_supervisor_set_who(sup, "disagg up");
	const char *run = dg_supervisor_dir(sup);
	if (!file) {
		char ep[PATH_MAX + 32], outdir[PATH_MAX + 16];
		snprintf(ep, sizeof ep, "%s/controller.sock", run);
		if (strlen(ep) > S_IPC_MAX) {
			fprintf(stderr, "disagg up: the run folder %s is too long "
			    "a path for ipc endpoints (at most %d characters "
			    "with /controller.sock); use -d with a shorter one\n",
			    run, S_IPC_MAX);
			goto out;
		}
		s_absolute(cwd, "out", outdir, sizeof outdir);
		text = s_default_ini(run, outdir);
		cfg = text ? dg_config_parse_string("built-in topology", text) :
		    NULL;
		if (!cfg || dg_config_error_count(cfg) > 0) {
			/* Only a path the INI syntax cannot carry gets here. */
			s_config_errors(cfg);
			fprintf(stderr, "disagg up: cannot make the built-in "
			    "topology for %s and %s\n", run, outdir);
			goto out;
		}
		if (snprintf(cfgpath, sizeof cfgpath, "%s/up.ini", run) >=
		    (int)sizeof cfgpath)
			goto out;       /* dg_run_open keeps run shorter */
	}
	if (s_endpoints_in_use(cfg) > 0) {
		fprintf(stderr, "disagg up: another pipeline or program holds "
		    "them; stop it (for one of 'disagg up': disagg down -d "
		    "ITS_RUN_FOLDER) or change them%s%s\n", file ? " in " : "",
		    file ? file : "");
		goto out;
	}
	char upini[PATH_MAX + 16], disaggd[PATH_MAX];
	snprintf(upini, sizeof upini, "%s/up.ini", run);
	char cfgnote[PATH_MAX + 16], cfgline[PATH_MAX + 2];
	snprintf(cfgnote, sizeof cfgnote, "%s/" DG_UP_CONFIG, run);
	snprintf(cfgline, sizeof cfgline, "%s\n", cfgpath);
	if (s_write_file(upini, text) < 0 ||
	    s_write_file(cfgnote, cfgline) < 0) {
		fprintf(stderr, "disagg up: cannot write in %s: %s\n", run,
		    strerror(errno));
		goto out;
	}
	if (dg_up_find_disaggd(disaggd) < 0) {
		fprintf(stderr, "disagg up: cannot find disaggd, neither next "
		    "to this disagg (../daemon/disaggd) nor on PATH\n");
		goto out;
	}

	/* The controller, then every stage section, in file order, but the
	 * spares (autostart = no): the controller's autoscaler starts those
	 * when the load asks for them. */
	size_t n = 1;
	s_daemon_t *d = calloc(dg_config_stage_count(cfg) + 1, sizeof *d);
	if (!d)
		goto out;
	d[0].name = "controller";
	d[0].role = "controller";
	for (size_t i = 0; i < dg_config_stage_count(cfg); i++) {
		const dg_stage_conf_t *s = dg_config_stage_at(cfg, i);
		if (!s->autostart)
			continue;
		d[n].name = s->name;
		d[n++].role = s->role;
	}

	char endpoint[DG_ENDPOINT_MAX];
	dg_up_reach(dg_config_controller(cfg)->listen, endpoint, sizeof endpoint);
	s_catch_signals();
	printf("disagg up: %s topology%s%s, run folder %s\n",
	    file ? "the" : "the built-in one-host", file ? " of " : "",
	    file ? cfgpath : "", run);
	int64_t t0 = zclock_mono();
	rc = s_up_start(sup, disaggd, cfgpath, endpoint, timeout_ms, d, n);
	if (rc == DG_EXIT_OK)
		s_up_report(cfg, sup, d, n, endpoint, !file, dir != NULL, cwd,
		    zclock_mono() - t0);
	free(d);
out:
	dg_config_destroy(&cfg);
	free(text);
	dg_supervisor_destroy(&sup);
	return rc;
}

/* ---- down -------------------------------------------------------------- */

static void
s_down_usage(FILE *out)
{
	fprintf(out,
	    "usage: disagg down [-f file] [-d dir] [--timeout S]\n"
	    "\n"
	    "Stop what 'disagg up' started: SIGTERM to every stage, then to the "
	    "controller;\n"
	    "each drains its work and exits.  One that has not exited by the "
	    "deadline\n"
	    "gets SIGKILL.  The topology's daemons started by hand (registered "
	    "with its\n"
	    "controller, not in the run folder's pids) are asked to drain and "
	    "exit.\n"
	    "\n"
	    "  -f, --file FILE   the topology given to 'disagg up -f' (default: "
	    "the run\n"
	    "                    folder's up.ini)\n"
	    "  -d, --dir DIR     the run folder given to 'disagg up'\n"
	    "  --timeout S       how long each may take (default: its "
	    "drain_timeout_ms\n"
	    "                    plus 5 s)\n");
}

/* Whether RUN/config names `path` (or is absent: an up of an older
 * version); else said why. */
static bool
s_same_topology(const char *run, const char *path)
{
	char note[PATH_MAX + 16], was[PATH_MAX + 2] = "";

	snprintf(note, sizeof note, "%s/" DG_UP_CONFIG, run);
	FILE *f = fopen(note, "r");
	if (!f)
		return true;
	bool read = fgets(was, sizeof was, f) != NULL;
	fclose(f);
	was[strcspn(was, "\n")] = '\0';
	if (!read || strcmp(was, path) == 0)
		return true;
	fprintf(stderr, "disagg down: the pipeline of %s was started from %s, "
	    "not %s; nothing stopped (-d names another run folder)\n", run,
	    was, path);
	return false;
}

/* The longest drain_timeout_ms of a topology: how long a daemon of it
 * may take to stop. */
static int64_t
s_drain_ms(const dg_config_t *cfg)
{
	int64_t drain = dg_config_controller(cfg)->drain_timeout_ms;

	for (size_t i = 0; i < dg_config_stage_count(cfg); i++) {
		int64_t t = dg_config_stage_at(cfg, i)->drain_timeout_ms;
		if (t > drain)
			drain = t;
	}
	return drain;
}

int
dg_cmd_down(int argc, char *argv[])
{
	enum { O_TIMEOUT = 1000 };
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "dir", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *dir = NULL, *file = NULL;
	int64_t timeout_ms = 0;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "f:d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': file = optarg; break;
		case 'd': dir = optarg; break;
		case 'h': s_down_usage(stdout); return DG_EXIT_OK;
		case O_TIMEOUT:
			if (dg_up_parse_timeout(optarg, &timeout_ms) == 0)
				break;
			fprintf(stderr, "disagg down: --timeout wants seconds, "
			    "got '%s'\n", optarg);
			return DG_EXIT_USAGE;
		default:
			s_down_usage(stderr);
			return DG_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "disagg down: unexpected argument '%s'\n",
		    argv[optind]);
		s_down_usage(stderr);
		return DG_EXIT_USAGE;
	}
	/* The topology: the file given, checked as up checks it, else the
	 * run folder's copy of the last one up started. */
	char cfgpath[PATH_MAX] = "";
	dg_config_t *cfg = NULL;
	if (file) {
		cfg = realpath(file, cfgpath) ? dg_config_load(file) : NULL;
		if (!cfg || dg_config_error_count(cfg) > 0) {
			size_t ne = s_config_errors(cfg);
			fprintf(stderr, "disagg down: %s: %s; nothing stopped\n",
			    file, !*cfgpath ? strerror(errno) : ne ?
			    "not a valid topology" : "out of memory");
			dg_config_destroy(&cfg);
			return DG_EXIT_FAIL;
		}
	}
	if (dir)
		setenv("DISAGG_RUN", dir, 1);
	bool absent;
	dg_supervisor_t *sup = dg_up_open("down", false, &absent);
	if (!sup && !(absent && file)) {
		dg_config_destroy(&cfg);
		if (!absent)
			return DG_EXIT_FAIL;
		printf("disagg down: nothing to stop (no run folder %s)\n",
		    dg_run_dir());
		return DG_EXIT_OK;
	}
	const char *run = sup ? dg_supervisor_dir(sup) : dg_run_dir();
	if (file && sup && !s_same_topology(run, cfgpath)) {
		dg_config_destroy(&cfg);
		dg_supervisor_destroy(&sup);
		return DG_EXIT_FAIL;
	}
	char upini[PATH_MAX + 16];
	snprintf(upini, sizeof upini, "%s/up.ini", run);
	if (!cfg && access(upini, R_OK) == 0) {
		cfg = dg_config_load(upini);
		if (cfg && dg_config_error_count(cfg) > 0)
			dg_config_destroy(&cfg);
	}
	bool pids = sup && dg_supervisor_load_pids(sup, DG_UP_DAEMON) >= 0;
	if (!pids && !cfg) {
		printf("disagg down: nothing to stop (no %s/pids)\n", run);
		dg_supervisor_destroy(&sup);
		return DG_EXIT_OK;
	}
	/* Each daemon drains for up to its drain_timeout_ms; the default
	 * deadline gives it that and a little more. */
	char endpoint[DG_ENDPOINT_MAX] = "";
	if (cfg)
		dg_up_reach(dg_config_controller(cfg)->listen, endpoint,
		    sizeof endpoint);
	if (timeout_ms <= 0)
		timeout_ms = (cfg ? s_drain_ms(cfg) : 30000) + 5000;
	dg_config_destroy(&cfg);

	size_t alive = pids ? dg_supervisor_reap(sup) : 0;
	if (alive == 0 && !(*endpoint && dg_up_answers(endpoint))) {
		printf("disagg down: nothing to stop (nothing runs from %s, and "
		    "no controller answers%s%s)\n", run, *endpoint ? " at " : "",
		    endpoint);
		if (sup)
			dg_supervisor_remove_pids(sup);
		dg_supervisor_destroy(&sup);
		return DG_EXIT_OK;
	}
	printf("disagg down: stopping the pipeline %s %s (stages first, then "
	    "the controller)\n", file ? "of" : "started from", file ? cfgpath :
	    run);
	/* Started by hand: asked through the controller, which must still
	 * be there to be asked, so before it stops. */
	int bad = dg_up_stop_unlisted(sup, *endpoint ? endpoint : NULL, false,
	    timeout_ms);
	if (alive > 0)
		bad += dg_up_stop(sup, false, NULL, timeout_ms, true);
	bad += dg_up_stop_unlisted(sup, *endpoint ? endpoint : NULL, true,
	    timeout_ms);
	if (alive > 0)
		bad += dg_up_stop(sup, true, NULL, timeout_ms, true);
	if (sup)
		dg_supervisor_remove_pids(sup);
	if (bad > 0)
		fprintf(stderr, "disagg down: %d daemon%s did not stop cleanly; "
		    "the logs are in %s\n", bad, bad == 1 ? "" : "s", run);
	else if (sup)
		printf("disagg down: all stopped; the logs stay in %s\n", run);
	else
		printf("disagg down: all stopped\n");
	dg_supervisor_destroy(&sup);
	return bad > 0 ? DG_EXIT_FAIL : DG_EXIT_OK;
}
