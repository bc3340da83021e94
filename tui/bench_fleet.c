/*  bench_fleet.c: `disagg bench fleet`: goodput under deadlines, one
 *  policy after another on the same fleet and the same arrivals.
 *
 *  For each policy it starts a fresh topology of reference stages with
 *  step_ms (bench_topo.c, the code of `disagg up`) in a run folder of its
 *  own, sends the seeded plan of arrivals (fleet_load.c) open loop, never
 *  waiting for a reply before the next submit, collects the replies and
 *  results as they come, then stops the topology.  The report
 *  (fleet_report.c) puts the policies side by side.
 *
 *  The policies are the controller's own, read from the key table's
 *  choices for [controller] policy, so that a new policy is measured
 *  without a change here, plus the baseline `lightx2v`: round-robin, no
 *  admission, first come first served.  The keys that select admission
 *  and ordering are written only when the key table has them; a baseline
 *  that cannot be set up exactly says so in the report.  */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_fleet.h"
#include "bench_topo.h"
#include "client.h"
#include "config.h"
#include "fleet_load.h"
#include "fleet_report.h"
#include "lifecycle.h"

#define S_WHO           "disagg bench fleet"
#define S_BASELINE      "lightx2v"
#define S_BASE_POLICY   "round-robin"
#define S_MAX_STEPS     100000
#define S_MAX_COUNT     64          /* instances of one role */
#define S_FRAMES        5
#define S_SIZE          64
#define S_POLL_MS       100
/* After the last submit, how long results may take beyond the longest
 * deadline: the controller fails a request at its deadline, so only a
 * lost result needs this. */
#define S_GRACE_MS      10000

/* The admission and ordering keys the lead's controller adds, and the
 * value each kind of run wants. */
static const struct {
	const char *section;            /* as dg_config_key_at says it */
	const char *key;
	const char *normal;             /* for the controller's policies */
	const char *baseline;           /* for lightx2v */
} s_modes[] = {
	{ "controller", "admission", "deadline", "open" },
	{ "ROLE NAME", "order", "slack", "fifo" },
};
#define S_NMODES (sizeof s_modes / sizeof s_modes[0])

/* Where one planned arrival is. */
enum { R_PLANNED, R_SENT, R_ACCEPTED, R_REFUSED, R_ENDED };

typedef struct {
	uint64_t seq, request;
	int64_t sent_ms;                /* zclock_mono */
	uint8_t state;
} s_req_t;

typedef struct {
	/* options */
	char **policies;
	size_t n_policies;
	double duration_s, load, factor;
	long encoders, transformers, decoders, workers, burst;
	int64_t step_ms, every_ms;
	uint64_t seed;
	bool json;
	const char *dir;
	dg_fleet_mix_t mix;
	/* derived */
	dg_fleet_setup_t setup;
	dg_fleet_plan_t plan;
	char approx[256];
	char base[PATH_MAX];            /* the folder of the run folders */
	bool made_base;
} s_fleet_t;

/* One policy's run. */
typedef struct {
	const s_fleet_t *f;
	dg_fleet_result_t *res;
	dg_client_t *cl;
	s_req_t *reqs;
	zhashx_t *by_seq, *by_request;  /* "%llu" -> index + 1 */
	long ended;
} s_run_t;

static void
s_usage(FILE *out)
{
	fprintf(out,
	    "usage: disagg bench fleet [--policies LIST] [--duration S] "
	    "[--load F]\n"
	    "                          [--mix STEPS:SHARE,...] [--burst N "
	    "[--every MS]]\n"
	    "                          [--deadline-factor F] [--seed N] "
	    "[--step-ms MS]\n"
	    "                          [--encoders N] [--transformers N] "
	    "[--decoders N]\n"
	    "                          [--workers N] [--json] [-d dir]\n"
	    "\n"
	    "For each policy, start a fleet of reference stages with step_ms, "
	    "send it\n"
	    "the same seeded open-loop load of jobs with deadlines, and report "
	    "the\n"
	    "policies side by side: offered, accepted, refused, done within "
	    "deadline,\n"
	    "late, failed, SLO attainment and latency percentiles.\n"
	    "\n"
	    "  --policies LIST   comma separated (default: every [controller] "
	    "policy,\n"
	    "                    then %s: round-robin, no admission, FIFO)\n"
	    "  --duration S      seconds of arrivals (default 60)\n"
	    "  --load F          offered load, a fraction of the transformers' "
	    "capacity\n"
	    "                    (default 0.86)\n"
	    "  --mix LIST        jobs as STEPS:SHARE (default 5:0.7,40:0.3)\n"
	    "  --burst N         N jobs at once every --every MS instead of "
	    "Poisson\n"
	    "                    arrivals (--every defaults to what --load "
	    "gives)\n"
	    "  --deadline-factor F  deadline = F x the ideal time (default 4)\n"
	    "  --seed N          seed of the arrivals and the mix (default 1)\n"
	    "  --step-ms MS      step_ms of every stage (default 20)\n"
	    "  --encoders N, --transformers N, --decoders N  instances (default "
	    "1, 3, 1)\n"
	    "  --workers N       workers of each instance (default 1)\n"
	    "  --json            one JSON object instead of the table\n"
	    "  -d, --dir DIR     folder of the run folders, one per policy "
	    "(default: a\n"
	    "                    new one in $TMPDIR, removed after a clean "
	    "run)\n", S_BASELINE);
}

/* ---- the key table ------------------------------------------------------ */

static const dg_config_keyinfo_t *
s_key(const char *section, const char *name)
{
	for (size_t i = 0; i < dg_config_key_count(); i++) {
		const dg_config_keyinfo_t *k = dg_config_key_at(i);
		if (k && strcmp(k->section, section) == 0 &&
		    strcmp(k->name, name) == 0)
			return k;
	}
	return NULL;
}

/* Whether `word` is one of the choices "a|b|c" of a key. */
static bool
s_choice(const dg_config_keyinfo_t *k, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = k ? k->range : ""; *p;) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);
		if (n == len && strncmp(p, word, n) == 0)
			return true;
		p += n + (bar != NULL);
	}
	return false;
}

/* The value of mode `m` for `policy`, or NULL when the key table cannot
 * take it. */
static const char *
s_mode(size_t m, const char *policy)
{
	const char *v = strcmp(policy, S_BASELINE) == 0 ? s_modes[m].baseline :
	    s_modes[m].normal;
	return s_choice(s_key(s_modes[m].section, s_modes[m].key), v) ? v :
	    NULL;
}

static int
s_add_policy(s_fleet_t *f, const char *name, size_t len)
{
	char **v = realloc(f->policies, (f->n_policies + 1) * sizeof *v);
	if (!v)
		return -1;
	f->policies = v;
	if (!(v[f->n_policies] = strndup(name, len)))
		return -1;
	f->n_policies++;
	return 0;
}

/* LIST, or every choice of [controller] policy and the baseline. */
static int
s_policies(s_fleet_t *f, const char *list)
{
	const dg_config_keyinfo_t *k = s_key("controller", "policy");
	const char *p = list;
	char all[512];

	if (!p) {
		snprintf(all, sizeof all, "%s|%s", k ? k->range : "", S_BASELINE);
		p = all;
	}
	while (*p) {
		size_t n = strcspn(p, list ? "," : "|");
		if (n) {
			char *word = strndup(p, n);
			bool ok = word && (strcmp(word, S_BASELINE) == 0 ||
			    s_choice(k, word));
			free(word);
			if (!ok) {
				fprintf(stderr, "%s: unknown policy '%.*s': the "
				    "choices are %s and %s\n", S_WHO, (int)n, p,
				    k ? k->range : "", S_BASELINE);
				return -1;
			}
			if (s_add_policy(f, p, n) < 0)
				return -1;
		}
		p += n + (p[n] != '\0');
	}
	if (!f->n_policies) {
		fprintf(stderr, "%s: --policies names no policy\n", S_WHO);
		return -1;
	}
	return 0;
}

/* ---- the topology ------------------------------------------------------- */

static void
s_stage_sections(FILE *out, const s_fleet_t *f, const char *run,
    const char *policy)
{
	static const struct {
		const char *role;
		char prefix;
	} roles[] = {
		{ "encoder", 'e' }, { "transformer", 't' }, { "decoder", 'd' },
	};
	const long counts[] = { f->encoders, f->transformers, f->decoders };

	for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++)
		for (long i = 0; i < counts[r]; i++) {
			fprintf(out,
			    "\n[%s %c%ld]\n"
			    "peer = ipc://%s/%c%ld.sock\n"
			    "workers = %ld\n"
			    "step_ms = %lldms\n"
			    "pool = 64M\n"
			    "slot = 64K\n"
			    "drain_timeout_ms = 2s\n", roles[r].role,
			    roles[r].prefix, i, run, roles[r].prefix, i,
			    f->workers, (long long)f->step_ms);
			for (size_t m = 0; m < S_NMODES; m++)
				if (strcmp(s_modes[m].section, "ROLE NAME") == 0 &&
				    s_mode(m, policy))
					fprintf(out, "%s = %s\n", s_modes[m].key,
					    s_mode(m, policy));
			if (r == 2)
				fprintf(out, "output_dir = %s/out\n", run);
		}
}

static int
s_write_ini(const s_fleet_t *f, const char *run, const char *policy,
    const char *path)
{
	FILE *out = fopen(path, "w");
	if (!out)
		return -1;
	fprintf(out,
	    "; fleet.ini: written by `disagg bench fleet` for its run of "
	    "policy %s.\n"
	    "; One client sends every request, so it may have as many in "
	    "flight as\n"
	    "; the controller.\n"
	    "\n"
	    "[controller]\n"
	    "listen  = ipc://%s/ctl.sock\n"
	    "publish = ipc://%s/pub.sock\n"
	    "policy  = %s\n"
	    "max_pending_per_client = 1024\n"
	    "drain_timeout_ms = 2s\n", policy, run, run,
	    strcmp(policy, S_BASELINE) == 0 ? S_BASE_POLICY : policy);
	for (size_t m = 0; m < S_NMODES; m++)
		if (strcmp(s_modes[m].section, "controller") == 0 &&
		    s_mode(m, policy))
			fprintf(out, "%s = %s\n", s_modes[m].key,
			    s_mode(m, policy));
	fprintf(out, "\n[fabric]\nprovider = shm\n");
	s_stage_sections(out, f, run, policy);
	return fclose(out) == 0 ? 0 : -1;
}

/* ---- the load ----------------------------------------------------------- */

static void
s_index(zhashx_t *h, uint64_t key, size_t i)
{
	char k[24];

	snprintf(k, sizeof k, "%llu", (unsigned long long)key);
	zhashx_update(h, k, (void *)(uintptr_t)(i + 1));
}

/* The index stored under `key`, or -1. */
static long
s_find(zhashx_t *h, uint64_t key)
{
	char k[24];

	snprintf(k, sizeof k, "%llu", (unsigned long long)key);
	uintptr_t v = (uintptr_t)zhashx_lookup(h, k);
	return v ? (long)v - 1 : -1;
}

/* The classes of failure the report names, by what the reason says:
 * the controller words a deadline in several ways ("deadline of 560 ms
 * passed ...", "cannot make its deadline: ..."), and a stage's reason
 * comes after its role. */
static const struct {
	const char *says;
	const char *class;
} s_classes[] = {
	{ "deadline", "deadline" },
	{ "died", "instance-died" },
	{ "released", "released" },
	{ "draining", "draining" },
};

/* The class of a failure: the first of s_classes its reason says, else
 * the first word of the reason, else the state. */
static void
s_class(const dg_result_msg_t *res, char *buf, size_t size)
{
	const char *why = res->error && *res->error ? res->error :
	    res->status ? res->status : "unknown";

	for (size_t i = 0; i < sizeof s_classes / sizeof s_classes[0]; i++)
		if (strstr(why, s_classes[i].says)) {
			snprintf(buf, size, "%s", s_classes[i].class);
			return;
		}
	size_t n = strcspn(why, " :;,");
	snprintf(buf, size, "%.*s", (int)(n ? n : strlen(why)), why);
}

static void
s_ended(s_run_t *r, long i, const dg_result_msg_t *res, int64_t now)
{
	s_req_t *q = &r->reqs[i];
	dg_fleet_result_t *x = r->res;
	char why[64];

	if (q->state != R_ACCEPTED)
		return;
	q->state = R_ENDED;
	r->ended++;
	if (dg_req_state_lookup(res->status) == DG_REQ_DONE) {
		int64_t ms = now - q->sent_ms;
		if (ms <= dg_fleet_deadline_ms(&r->f->setup,
		    r->f->plan.v[i].steps))
			x->done_in++;
		else
			x->done_late++;
		(void)dg_fleet_result_latency(x, ms);
	} else {
		x->failed++;
		s_class(res, why, sizeof why);
		(void)dg_fleet_tally_add(&x->failed_by, why);
	}
}

static void
s_take(s_run_t *r, const dg_msg_t *m, int64_t now)
{
	long i;

	switch (m->op) {
	case DG_OP_SUBMIT_OK:
		if ((i = s_find(r->by_seq, m->seq)) < 0 ||
		    r->reqs[i].state != R_SENT)
			return;
		r->reqs[i].state = R_ACCEPTED;
		r->reqs[i].request = m->u.submit_ok.request;
		r->res->accepted++;
		s_index(r->by_request, m->u.submit_ok.request, (size_t)i);
		break;
	case DG_OP_ERROR:
		if ((i = s_find(r->by_seq, m->seq)) < 0 ||
		    r->reqs[i].state != R_SENT)
			return;
		r->reqs[i].state = R_REFUSED;
		r->res->refused++;
		(void)dg_fleet_tally_add(&r->res->refused_by,
		    m->u.error.code ? m->u.error.code : "unknown");
		break;
	case DG_OP_RESULT:
		if ((i = s_find(r->by_request, m->u.result.request)) >= 0)
			s_ended(r, i, &m->u.result, now);
		break;
	default:
		break;
	}
}

/* Read what arrives until `until` (zclock_mono). */
static void
s_pump(s_run_t *r, int64_t until)
{
	while (!dg_bench_stop) {
		int64_t left = until - zclock_mono();
		dg_msg_t *m = dg_client_next(r->cl, left > 0 ? (int)left : 0);
		if (!m) {
			if (left <= 0)
				return;
			continue;
		}
		s_take(r, m, zclock_mono());
		dg_msg_destroy(&m);
	}
}

/* Send the plan open loop, then collect until every submit is answered
 * and every accepted request ended, or the grace is over.  NULL, or
 * what went wrong. */
static const char *
s_load(s_run_t *r)
{
	const dg_fleet_plan_t *plan = &r->f->plan;
	int64_t longest = 0, t0 = zclock_mono();

	for (size_t i = 0; i < plan->n && !dg_bench_stop; i++) {
		int64_t at = t0 + plan->v[i].at_ms;
		s_pump(r, at);
		int64_t now = zclock_mono();
		if (now - at > r->res->lag_max_ms)
			r->res->lag_max_ms = now - at;
		int64_t deadline = dg_fleet_deadline_ms(&r->f->setup,
		    plan->v[i].steps);
		if (deadline > longest)
			longest = deadline;
		dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
		if (!m)
			return "out of memory";
		m->u.submit = (dg_submit_msg_t){ .prompt = "fleet",
		    .frames = S_FRAMES, .height = S_SIZE, .width = S_SIZE,
		    .steps = plan->v[i].steps, .seed = (int64_t)i,
		    .deadline_ms = deadline };
		uint64_t seq = dg_client_send(r->cl, m);
		dg_msg_destroy(&m);
		if (!seq)
			return "cannot send a submit";
		r->reqs[i] = (s_req_t){ .seq = seq, .sent_ms = now,
		    .state = R_SENT };
		r->res->offered++;
		s_index(r->by_seq, seq, i);
	}
	int64_t until = zclock_mono() + longest + S_GRACE_MS;
	while (!dg_bench_stop && zclock_mono() < until &&
	    (r->res->accepted + r->res->refused < r->res->offered ||
	    r->ended < r->res->accepted))
		s_pump(r, zclock_mono() + S_POLL_MS);
	/* What never came: a submit unanswered is refused, a request that
	 * never ended failed, so that the counts add up. */
	for (size_t i = 0; i < plan->n; i++) {
		if (r->reqs[i].state == R_SENT) {
			r->res->refused++;
			(void)dg_fleet_tally_add(&r->res->refused_by, "no-reply");
		} else if (r->reqs[i].state == R_ACCEPTED) {
			r->res->failed++;
			(void)dg_fleet_tally_add(&r->res->failed_by, "no-result");
		}
	}
	return dg_bench_stop ? "interrupted" : NULL;
}

/* One policy: its folder, up, the load, down. */
static void
s_run_policy(const s_fleet_t *f, const char *policy, dg_fleet_result_t *res)
{
	/* A policy's name is a word of the key table's, far below 40. */
	char run[PATH_MAX + 48], ini[PATH_MAX + 64], endpoint[PATH_MAX + 64];
	s_run_t r = { .f = f, .res = res };

	res->policy = policy;
	snprintf(run, sizeof run, "%s/%.40s", f->base, policy);
	snprintf(ini, sizeof ini, "%s/fleet.ini", run);
	snprintf(endpoint, sizeof endpoint, "ipc://%s/ctl.sock", run);
	if (mkdir(run, 0700) < 0 && errno != EEXIST) {
		res->error = "cannot create its run folder";
		return;
	}
	if (s_write_ini(f, run, policy, ini) < 0) {
		res->error = "cannot write its configuration";
		return;
	}
	if (!f->json)
		fprintf(stderr, "%s: %s: starting the fleet\n", S_WHO, policy);
	if (dg_bench_up_down(run, true, ini) != DG_EXIT_OK) {
		res->error = "the fleet did not start (see up.out and the logs "
		    "in its run folder)";
		(void)dg_bench_up_down(run, false, NULL);
		return;
	}
	r.cl = dg_client_new(endpoint);
	r.reqs = calloc(f->plan.n ? f->plan.n : 1, sizeof *r.reqs);
	r.by_seq = zhashx_new();
	r.by_request = zhashx_new();
	if (!r.cl || !r.reqs || !r.by_seq || !r.by_request)
		res->error = "cannot reach the controller";
	else {
		if (!f->json)
			fprintf(stderr, "%s: %s: %zu arrivals over %g s\n", S_WHO,
			    policy, f->plan.n, f->duration_s);
		res->error = s_load(&r);
	}
	dg_client_destroy(&r.cl);
	zhashx_destroy(&r.by_seq);
	zhashx_destroy(&r.by_request);
	free(r.reqs);
	if (dg_bench_up_down(run, false, NULL) != DG_EXIT_OK && !res->error)
		res->error = "the fleet did not stop cleanly";
}

/* ---- options ------------------------------------------------------------ */

static int
s_bad(const char *opt, const char *want, const char *got)
{
	fprintf(stderr, "%s: %s wants %s, got '%s'\n", S_WHO, opt, want, got);
	return -1;
}

static int
s_long(const char *opt, const char *text, long lo, long hi, long *out)
{
	char *end, want[64];

	errno = 0;
	long v = strtol(text, &end, 10);
	snprintf(want, sizeof want, "an integer %ld..%ld", lo, hi);
	if (end == text || *end || errno || v < lo || v > hi)
		return s_bad(opt, want, text);
	*out = v;
	return 0;
}

static int
s_double(const char *opt, const char *text, double lo, double hi,
    double *out)
{
	char *end, want[64];

	errno = 0;
	double v = strtod(text, &end);
	snprintf(want, sizeof want, "a number above %g, at most %g", lo, hi);
	if (end == text || *end || errno || !(v > lo) || v > hi)
		return s_bad(opt, want, text);
	*out = v;
	return 0;
}

enum { O_POLICIES = 1000, O_DURATION, O_LOAD, O_MIX, O_BURST, O_EVERY,
       O_FACTOR, O_SEED, O_STEP_MS, O_ENCODERS, O_TRANSFORMERS,
       O_DECODERS, O_WORKERS, O_JSON };

/* 0, 1 for --help, -1 on a usage error (said on stderr). */
static int
s_options(s_fleet_t *f, int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "policies", required_argument, NULL, O_POLICIES },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "load", required_argument, NULL, O_LOAD },
		{ "mix", required_argument, NULL, O_MIX },
		{ "burst", required_argument, NULL, O_BURST },
		{ "every", required_argument, NULL, O_EVERY },
		{ "deadline-factor", required_argument, NULL, O_FACTOR },
		{ "seed", required_argument, NULL, O_SEED },
		{ "step-ms", required_argument, NULL, O_STEP_MS },
		{ "encoders", required_argument, NULL, O_ENCODERS },
		{ "transformers", required_argument, NULL, O_TRANSFORMERS },
		{ "decoders", required_argument, NULL, O_DECODERS },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "json", no_argument, NULL, O_JSON },
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *policies = NULL, *mix = "5:0.7,40:0.3";
	long v, every = 0;
	char why[128], *end;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		int rc = 0;
		switch (ch) {
		case O_POLICIES: policies = optarg; break;
		case O_DURATION:
			rc = s_double("--duration", optarg, 0, 86400,
			    &f->duration_s);
			break;
		case O_LOAD:
			rc = s_double("--load", optarg, 0, 100, &f->load);
			break;
		case O_MIX: mix = optarg; break;
		case O_BURST:
			rc = s_long("--burst", optarg, 1, 100000, &f->burst);
			break;
		case O_EVERY:
			rc = s_long("--every", optarg, 1, 3600000, &every);
			break;
		case O_FACTOR:
			rc = s_double("--deadline-factor", optarg, 0, 1000,
			    &f->factor);
			break;
		case O_SEED:
			errno = 0;
			f->seed = strtoull(optarg, &end, 10);
			if (end == optarg || *end || errno || *optarg == '-')
				rc = s_bad("--seed", "an unsigned integer", optarg);
			break;
		case O_STEP_MS:
			rc = s_long("--step-ms", optarg, 1, 60000, &v);
			f->step_ms = v;
			break;
		case O_ENCODERS:
			rc = s_long("--encoders", optarg, 1, S_MAX_COUNT,
			    &f->encoders);
			break;
		case O_TRANSFORMERS:
			rc = s_long("--transformers", optarg, 1, S_MAX_COUNT,
			    &f->transformers);
			break;
		case O_DECODERS:
			rc = s_long("--decoders", optarg, 1, S_MAX_COUNT,
			    &f->decoders);
			break;
		case O_WORKERS:
			rc = s_long("--workers", optarg, 1, 256, &f->workers);
			break;
		case O_JSON: f->json = true; break;
		case 'd': f->dir = optarg; break;
		case 'h': s_usage(stdout); return 1;
		default: s_usage(stderr); return -1;
		}
		if (rc < 0)
			return -1;
	}
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", S_WHO,
		    argv[optind]);
		return -1;
	}
	if (every && !f->burst) {
		fprintf(stderr, "%s: --every goes with --burst\n", S_WHO);
		return -1;
	}
	if (dg_fleet_mix_parse(mix, S_MAX_STEPS, &f->mix, why, sizeof why) < 0) {
		fprintf(stderr, "%s: --mix '%s': %s\n", S_WHO, mix, why);
		return -1;
	}
	f->every_ms = every;
	return s_policies(f, policies);
}

/* The setup the report states, the plan of arrivals, and the note on a
 * baseline that the key table cannot set up exactly. */
static int
s_prepare(s_fleet_t *f)
{
	dg_fleet_setup_t *s = &f->setup;
	double ideal = dg_fleet_mix_mean_steps(&f->mix) * (double)f->step_ms;

	*s = (dg_fleet_setup_t){ .encoders = f->encoders,
	    .transformers = f->transformers, .decoders = f->decoders,
	    .workers = f->workers, .step_ms = f->step_ms, .load = f->load,
	    .duration_s = f->duration_s, .burst = f->burst, .seed = f->seed,
	    .mix = &f->mix, .deadline_factor = f->factor,
	    .approximated = f->approx };
	s->capacity = (double)(f->transformers * f->workers) * 1000.0 / ideal;
	s->rate = f->load * s->capacity;
	if (f->burst && !f->every_ms)
		f->every_ms = (int64_t)ceil((double)f->burst * 1000.0 / s->rate);
	if (f->burst) {
		/* The load bursts really offer. */
		s->rate = (double)f->burst * 1000.0 / (double)f->every_ms;
		s->load = s->rate / s->capacity;
	}
	s->every_ms = f->every_ms;
	for (size_t m = 0, n = 0; m < S_NMODES; m++)
		if (!s_mode(m, S_BASELINE))
			n += (size_t)snprintf(f->approx + n, sizeof f->approx - n,
			    "%sno %s = %s (%s key missing)", n ? "; " : "",
			    s_modes[m].key, s_modes[m].baseline,
			    strcmp(s_modes[m].section, "controller") == 0 ?
			    "[controller]" : "stage");
	if (dg_fleet_plan_make(&f->plan, &f->mix, s->rate,
	    (int64_t)(f->duration_s * 1000.0), f->burst, f->every_ms,
	    f->seed) < 0)
		return -1;
	s->arrivals = f->plan.n;
	return 0;
}

static bool
s_has_baseline(const s_fleet_t *f)
{
	for (size_t i = 0; i < f->n_policies; i++)
		if (strcmp(f->policies[i], S_BASELINE) == 0)
			return true;
	return false;
}

static void
s_free(s_fleet_t *f)
{
	for (size_t i = 0; i < f->n_policies; i++)
		free(f->policies[i]);
	free(f->policies);
	dg_fleet_mix_free(&f->mix);
	dg_fleet_plan_free(&f->plan);
}

int
dg_bench_fleet(int argc, char *argv[])
{
	s_fleet_t f = { .duration_s = 60, .load = 0.86, .factor = 4,
	    .encoders = 1, .transformers = 3, .decoders = 1, .workers = 1,
	    .step_ms = 20, .seed = 1 };
	int rc = s_options(&f, argc, argv);

	if (rc != 0) {
		s_free(&f);
		return rc > 0 ? DG_EXIT_OK : DG_EXIT_USAGE;
	}
	/* The longest ipc endpoint: a policy's folder and a stage's socket. */
	char longest[96];
	size_t name = 0;
	for (size_t i = 0; i < f.n_policies; i++)
		if (strlen(f.policies[i]) > name)
			name = strlen(f.policies[i]);
	snprintf(longest, sizeof longest, "/%.*s/t%d.sock", (int)name,
	    "................................................................",
	    S_MAX_COUNT);
	if (s_prepare(&f) < 0) {
		fprintf(stderr, "%s: out of memory\n", S_WHO);
		s_free(&f);
		return DG_EXIT_FAIL;
	}
	if (dg_bench_run_open(S_WHO, "fleet", f.dir, longest, f.base,
	    sizeof f.base, &f.made_base) < 0) {
		s_free(&f);
		return DG_EXIT_FAIL;
	}
	if (!s_has_baseline(&f))
		f.approx[0] = '\0';
	if (!f.json) {
		dg_fleet_print_header(stdout, &f.setup);
		fflush(stdout);
	}
	dg_bench_catch_stop();

	dg_fleet_result_t *res = calloc(f.n_policies, sizeof *res);
	bool failed = !res;
	for (size_t i = 0; res && i < f.n_policies; i++) {
		if (dg_bench_stop) {
			res[i].policy = f.policies[i];
			res[i].error = "interrupted";
		} else
			s_run_policy(&f, f.policies[i], &res[i]);
		failed |= res[i].error != NULL;
	}
	if (res && f.json)
		dg_fleet_print_json(stdout, &f.setup, res, f.n_policies);
	else if (res)
		dg_fleet_print_table(stdout, res, f.n_policies);
	if (failed)
		fprintf(stderr, "%s: FAILED; the run folders are in %s\n", S_WHO,
		    f.base);
	else if (f.made_base)
		dg_bench_run_remove(f.base);
	for (size_t i = 0; res && i < f.n_policies; i++)
		dg_fleet_result_free(&res[i]);
	free(res);
	s_free(&f);
	return failed ? DG_EXIT_FAIL : DG_EXIT_OK;
}
