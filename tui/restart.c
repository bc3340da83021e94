/*  restart.c: `disagg restart NAME`, one daemon of a running topology
 *  stopped and started again as `disagg up` started it; and the daemons
 *  of a topology that `disagg down` finds through its controller rather
 *  than in RUN/pids: those started by hand.
 *
 *  Why the controller, not the process table: a daemon started by hand
 *  may run on another host, and on this one its command line no longer
 *  names its file (proctitle.c).  The controller's registry is the
 *  topology's own list of its daemons, and `drain --exit` stops one as
 *  SIGTERM does, finishing its work, wherever it runs.  */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "registry.h"
#include "run.h"
#include "up.h"
#include "up_impl.h"

#define S_ASK_MS   1000         /* a controller that is there answers */
#define S_POLL_MS  100          /* between two looks at the registry */

/* Whether the controller at `ep` can be there: an ipc endpoint is a
 * socket file while it runs (cli.c says the same to the commands). */
static bool
s_may_answer(const char *ep)
{
	struct stat st;

	return strncmp(ep, "ipc://", 6) != 0 || stat(ep + 6, &st) == 0 ||
	    errno != ENOENT;
}

/* The controller's instance list, or NULL when it did not answer. */
static dg_msg_t *
s_instances(dg_client_t *cl, int timeout_ms)
{
	dg_msg_t *m = dg_msg_new(DG_OP_INSTANCES);
	dg_msg_t *r = m ? dg_client_call(cl, m, timeout_ms) : NULL;

	dg_msg_destroy(&m);
	if (r && r->op != DG_OP_INSTANCES_OK) {
		if (r->op == DG_OP_ERROR)
			fprintf(stderr, "disagg: the controller refused to list "
			    "its instances: %s: %s\n", r->u.error.code,
			    r->u.error.message);
		dg_msg_destroy(&r);
	}
	return r;
}

/* The state of instance `name` in a list: DG_INST_DEAD when absent. */
static dg_inst_state_t
s_state(const dg_msg_t *list, const char *name)
{
	const dg_instances_ok_msg_t *ok = &list->u.instances_ok;

	for (size_t i = 0; i < ok->n_instances; i++)
		if (ok->instances[i].name &&
		    strcmp(ok->instances[i].name, name) == 0)
			return dg_inst_state_lookup(ok->instances[i].state);
	return DG_INST_DEAD;
}

static bool
s_listed(const dg_supervisor_t *sup, const char *name)
{
	for (size_t i = 0; sup && i < dg_supervisor_size(sup); i++)
		if (strcmp(dg_supervisor_child(sup, i)->name, name) == 0)
			return true;
	return false;
}

/* drain --exit to `name`; 0, or -1 (said why). */
static int
s_drain_exit(dg_client_t *cl, const char *name)
{
	dg_msg_t *m = dg_msg_new(DG_OP_DRAIN);

	if (!m)
		return -1;
	m->u.drain.name = name;
	m->u.drain.exit = true;
	dg_msg_t *r = dg_client_call(cl, m, S_ASK_MS);
	dg_msg_destroy(&m);
	int rc = r && r->op == DG_OP_DRAIN_OK ? 0 : -1;
	if (rc < 0)
		fprintf(stderr, "disagg: cannot ask %s to drain and exit: %s%s%s\n",
		    name, r && r->op == DG_OP_ERROR ? r->u.error.code :
		    "no answer", r && r->op == DG_OP_ERROR ? ": " : "",
		    r && r->op == DG_OP_ERROR ? r->u.error.message : "");
	dg_msg_destroy(&r);
	return rc;
}

/* The stages not in `sup`: each asked, then waited for until dead (its
 * bye) in the registry.  How many did not go. */
static int
s_stop_stages(dg_supervisor_t *sup, dg_client_t *cl, dg_msg_t *list,
    int64_t timeout_ms)
{
	const dg_instances_ok_msg_t *ok = &list->u.instances_ok;
	char **asked = calloc(ok->n_instances + 1, sizeof *asked);
	size_t n = 0;
	int bad = 0;
	int64_t t0 = zclock_mono();

	for (size_t i = 0; asked && i < ok->n_instances; i++) {
		const dg_instance_row_t *r = &ok->instances[i];
		if (!r->name || s_listed(sup, r->name) ||
		    dg_inst_state_lookup(r->state) == DG_INST_DEAD)
			continue;
		if (s_drain_exit(cl, r->name) < 0) {
			bad++;
			continue;
		}
		printf("  %-11s started by hand (%s): asked to drain and exit\n",
		    r->name, r->host && *r->host ? r->host : "not by disagg up");
		asked[n++] = strdup(r->name);
	}
	while (n > 0) {
		dg_msg_t *now = s_instances(cl, S_ASK_MS);
		size_t left = 0;
		for (size_t i = 0; i < n; i++) {
			if (!asked[i])
				continue;
			if (now && s_state(now, asked[i]) != DG_INST_DEAD) {
				left++;
				continue;
			}
			printf("  %-11s stopped (%.1f s)\n", asked[i],
			    (double)(zclock_mono() - t0) / 1000.0);
			free(asked[i]);
			asked[i] = NULL;
		}
		dg_msg_destroy(&now);
		if (left == 0)
			break;
		if (zclock_mono() - t0 >= timeout_ms) {
			for (size_t i = 0; i < n; i++)
				if (asked[i])
					fprintf(stderr, "  %-11s did not stop within "
					    "%.0f s: stop it where it runs\n", asked[i],
					    (double)timeout_ms / 1000.0);
			bad += (int)left;
			break;
		}
		zclock_sleep(S_POLL_MS);        /* bounded by timeout_ms */
	}
	for (size_t i = 0; asked && i < n; i++)
		free(asked[i]);
	free(asked);
	return bad;
}

/* The controller, not started by up: asked, then waited for until it
 * no longer answers.  0, or 1 when it did not go. */
static int
s_stop_controller(dg_client_t *cl, const char *ep, int64_t timeout_ms)
{
	int64_t t0 = zclock_mono();

	if (s_drain_exit(cl, "controller") < 0)
		return 1;
	printf("  %-11s started by hand: asked to drain and exit\n",
	    "controller");
	while (zclock_mono() - t0 < timeout_ms) {
		dg_msg_t *r = s_may_answer(ep) ? s_instances(cl, 200) : NULL;
		if (!r) {
			printf("  %-11s stopped (%.1f s)\n", "controller",
			    (double)(zclock_mono() - t0) / 1000.0);
			return 0;
		}
		dg_msg_destroy(&r);
		zclock_sleep(S_POLL_MS);        /* bounded by timeout_ms */
	}
	fprintf(stderr, "  %-11s did not stop within %.0f s: stop it where "
	    "it runs\n", "controller", (double)timeout_ms / 1000.0);
	return 1;
}

bool
dg_up_answers(const char *endpoint)
{
	dg_client_t *cl = s_may_answer(endpoint) ? dg_client_new(endpoint) :
	    NULL;
	dg_msg_t *list = cl ? s_instances(cl, S_ASK_MS) : NULL;
	bool yes = list != NULL;

	dg_msg_destroy(&list);
	dg_client_destroy(&cl);
	return yes;
}

int
dg_up_stop_unlisted(dg_supervisor_t *sup, const char *endpoint,
    bool controller, int64_t timeout_ms)
{
	if (!endpoint || !s_may_answer(endpoint) ||
	    (controller && s_listed(sup, "controller")))
		return 0;
	dg_client_t *cl = dg_client_new(endpoint);
	if (!cl)
		return 0;
	int bad = 0;
	dg_msg_t *list = s_instances(cl, S_ASK_MS);
	if (list && controller)
		bad = s_stop_controller(cl, endpoint, timeout_ms);
	else if (list)
		bad = s_stop_stages(sup, cl, list, timeout_ms);
	dg_msg_destroy(&list);
	dg_client_destroy(&cl);
	return bad;
}

/* ---- restart ----------------------------------------------------------- */

static void
s_usage(FILE *out)
{
	fprintf(out,
	    "usage: disagg restart [-d dir] [--timeout S] NAME\n");
	if (out != stdout)
		return;
	fprintf(out,
	    "\n"
	    "Restart one daemon that 'disagg up' started: SIGTERM (it drains "
	    "its work),\n"
	    "SIGKILL if it has not exited by the deadline, then the same "
	    "section of the\n"
	    "same file again; wait until it answers (the controller) or has "
	    "registered\n"
	    "(a stage).\n"
	    "\n"
	    "  -d, --dir DIR     the run folder given to 'disagg up'\n"
	    "  --timeout S       how long each step may take (default: its "
	    "drain_timeout_ms\n"
	    "                    plus 5 s to stop, 20 s to start)\n"
	    "  -h, --help        this help\n");
}

/* The file the daemons were started with: RUN/config, else (an up of
 * an older version) RUN/up.ini. */
static void
s_config_path(const char *run, char *out, size_t size)
{
	char note[PATH_MAX + 16];

	snprintf(note, sizeof note, "%s/" DG_UP_CONFIG, run);
	FILE *f = fopen(note, "r");
	if (f && fgets(out, (int)size, f) && *out) {
		out[strcspn(out, "\n")] = '\0';
		fclose(f);
		return;
	}
	if (f)
		fclose(f);
	snprintf(out, size, "%s/up.ini", run);
}

/* Until `name` answers (the controller) or is up in the registry, it
 * exits, or the deadline: 0 ready, -1 not (said why). */
static int
s_wait_ready(dg_supervisor_t *sup, size_t i, const char *endpoint,
    int64_t timeout_ms)
{
	const dg_child_t *c = dg_supervisor_child(sup, i);
	bool controller = strcmp(c->name, "controller") == 0;
	dg_client_t *cl = dg_client_new(endpoint);
	int64_t t0 = zclock_mono();
	int rc = -1;

	while (cl && zclock_mono() - t0 < timeout_ms) {
		if (dg_supervisor_exited(sup, i)) {
			fprintf(stderr, "disagg restart: %s (pid %d) exited "
			    "during start-up\n", c->name, (int)c->pid);
			dg_up_tail(c->log, 15);
			break;
		}
		dg_msg_t *list = s_may_answer(endpoint) ? s_instances(cl, 500) :
		    NULL;
		bool ready = list && (controller ||
		    s_state(list, c->name) == DG_INST_UP);
		dg_msg_destroy(&list);
		if (ready) {
			rc = 0;
			break;
		}
		zclock_sleep(S_POLL_MS);        /* bounded by timeout_ms */
	}
	if (rc < 0 && cl && zclock_mono() - t0 >= timeout_ms) {
		fprintf(stderr, "disagg restart: %s did not %s within %.0f s\n",
		    c->name, controller ? "answer" : "register",
		    (double)timeout_ms / 1000.0);
		dg_up_tail(c->log, 8);
	}
	dg_client_destroy(&cl);
	return rc;
}

int
dg_cmd_restart(int argc, char *argv[])
{
	enum { O_TIMEOUT = 1000 };
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int64_t timeout_ms = 0;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': setenv("DISAGG_RUN", optarg, 1); break;
		case 'h': s_usage(stdout); return DG_EXIT_OK;
		case O_TIMEOUT:
			if (dg_up_parse_timeout(optarg, &timeout_ms) == 0)
				break;
			fprintf(stderr, "disagg restart: --timeout wants seconds, "
			    "got '%s'\n", optarg);
			return DG_EXIT_USAGE;
		default:
			s_usage(stderr);
			return DG_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "disagg restart: %s\n", optind == argc ?
		    "which daemon? name one" : "one daemon at a time");
		s_usage(stderr);
		return DG_EXIT_USAGE;
	}
	const char *name = argv[optind];
	bool absent;
	dg_supervisor_t *sup = dg_up_open("restart", false, &absent);
	if (!sup) {
		if (absent)
			fprintf(stderr, "disagg restart: no pipeline is up (no run "
			    "folder %s)\n", dg_run_dir());
		return DG_EXIT_FAIL;
	}
	const char *run = dg_supervisor_dir(sup);
	int rc = DG_EXIT_FAIL;
	size_t i, n;
	if (dg_supervisor_load_pids(sup, DG_UP_DAEMON) < 0) {
		fprintf(stderr, "disagg restart: no pipeline is up in %s (no "
		    "pids there): start one with 'disagg up'\n", run);
		goto out;
	}
	n = dg_supervisor_size(sup);
	for (i = 0; i < n; i++)
		if (strcmp(dg_supervisor_child(sup, i)->name, name) == 0)
			break;
	if (i == n) {
		fprintf(stderr, "disagg restart: 'disagg up' in %s started no "
		    "daemon '%s'; it started:", run, name);
		for (size_t k = 0; k < n; k++)
			fprintf(stderr, " %s", dg_supervisor_child(sup, k)->name);
		fprintf(stderr, "\n(a daemon started by hand is restarted the "
		    "way it was started)\n");
		goto out;
	}
	char cfgpath[PATH_MAX], disaggd[PATH_MAX], endpoint[DG_ENDPOINT_MAX];
	s_config_path(run, cfgpath, sizeof cfgpath);
	dg_config_t *cfg = dg_config_load(cfgpath);
	if (!cfg || dg_config_error_count(cfg) > 0) {
		fprintf(stderr, "disagg restart: %s: %s; nothing restarted\n",
		    cfgpath, cfg ? dg_config_error(cfg, 0) : "out of memory");
		dg_config_destroy(&cfg);
		goto out;
	}
	bool controller = strcmp(name, "controller") == 0;
	const dg_stage_conf_t *st = controller ? NULL :
	    dg_config_stage(cfg, name);
	if (!controller && !st) {
		fprintf(stderr, "disagg restart: %s has no section '%s' any more; "
		    "nothing restarted\n", cfgpath, name);
		dg_config_destroy(&cfg);
		goto out;
	}
	int64_t stop_ms = timeout_ms ? timeout_ms : 5000 + (controller ?
	    dg_config_controller(cfg)->drain_timeout_ms : st->drain_timeout_ms);
	dg_up_reach(dg_config_controller(cfg)->listen, endpoint,
	    sizeof endpoint);
	dg_config_destroy(&cfg);
	if (dg_up_find_disaggd(disaggd) < 0) {
		fprintf(stderr, "disagg restart: cannot find disaggd, neither "
		    "next to this disagg (../daemon/disaggd) nor on PATH\n");
		goto out;
	}
	pid_t old = dg_supervisor_child(sup, i)->pid;
	printf("disagg restart: %s (pid %d, %s)\n", name, (int)old, cfgpath);
	if (dg_up_stop(sup, false, name, stop_ms, true) > 0)
		fprintf(stderr, "disagg restart: %s did not stop cleanly; "
		    "starting it again all the same\n", name);
	/* The old entry goes (so do daemons that died meanwhile: RUN/pids
	 * lists what runs), the new one is added and saved at once. */
	dg_supervisor_prune(sup);
	char why[PATH_MAX + 128];
	if (dg_supervisor_spawn_section(sup, disaggd, cfgpath, name, why,
	    sizeof why) < 0) {
		fprintf(stderr, "disagg restart: %s\n", why);
		goto out;
	}
	if (dg_supervisor_save_pids(sup) < 0)
		fprintf(stderr, "disagg restart: %s/pids: %s (down will not "
		    "find %s)\n", run, strerror(errno), name);
	i = dg_supervisor_size(sup) - 1;
	const dg_child_t *c = dg_supervisor_child(sup, i);
	printf("  %-11s pid %-7d started, log %s\n", name, (int)c->pid, c->log);
	fflush(stdout);
	int64_t t0 = zclock_mono();
	if (s_wait_ready(sup, i, endpoint, timeout_ms ? timeout_ms : 20000) < 0)
		goto out;
	printf("disagg restart: %s %s in %.1f s\n", name, controller ?
	    "answers" : "registered", (double)(zclock_mono() - t0) / 1000.0);
	rc = DG_EXIT_OK;
out:
	dg_supervisor_destroy(&sup);
	return rc;
}
