/*  bench_pipeline.c: `disagg bench pipeline`: requests per second through
 *  a running pipeline, and p50/p99 latency per hop.
 *
 *  It keeps a window of requests in flight (never more than the
 *  controller's max_pending allows: a `busy` reply just waits for the
 *  next result), reads every result, and reports the throughput over the
 *  whole run and, per hop, the stage times the results carry: each
 *  stage's time from its room's creation to its part being delivered,
 *  and the total from submit to result.  Run it against `disagg up -f
 *  etc/bench.ini` (null stages, small tensors) and against the default
 *  topology (reference stages at Wan-like 480p sizes).
 *
 *  With --against-shm it starts a one-host pipeline of reference stages
 *  twice, [fabric] zero_copy on and off, sends the same requests (Wan
 *  2.1's 480p: 81 frames of 832x480) one at a time to each, and reports
 *  what zero copy saves per request.  */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_pipeline.h"
#include "bench_topo.h"
#include "client.h"
#include "lifecycle.h"

#define NHOPS 4
static const char *const s_hops[NHOPS] =
	{ "encoder", "transformer", "decoder", "total" };

/* What one run through a pipeline saw. */
typedef struct {
	long done, failed, busy, errors;
	double secs;
	int64_t *lat[NHOPS];
	size_t nlat[NHOPS];
	int64_t *moved;         /* per request: every stage's out_us, summed */
	size_t nmoved;
	char first_error[256];
} s_outcome_t;

static int
s_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int64_t
s_pct(int64_t *v, size_t n, int p)
{
	if (!n)
		return 0;
	size_t i = n * (size_t)p / 100;
	return v[i < n ? i : n - 1];
}

static void
s_outcome_free(s_outcome_t *o)
{
	for (int h = 0; h < NHOPS; h++)
		free(o->lat[h]);
	free(o->moved);
	memset(o, 0, sizeof *o);
}

/* Keep `window` requests in flight until `requests` have ended or the
 * time is up.  -1 when the controller is not there. */
static int
s_drive(const char *ep, const dg_submit_msg_t *sub, long requests,
    long window, long timeout_s, s_outcome_t *o)
{
	memset(o, 0, sizeof *o);
	dg_client_t *cl = dg_client_new(ep);
	if (!cl) {
		fprintf(stderr, "disagg: cannot connect to %s\n", ep);
		return -1;
	}
	/* Is anybody there? */
	dg_msg_t *probe = dg_msg_new(DG_OP_INSTANCES);
	dg_msg_t *reply = dg_client_call(cl, probe, 3000);
	dg_msg_destroy(&probe);
	if (!reply) {
		fprintf(stderr, "disagg: controller at %s did not answer\n", ep);
		dg_client_destroy(&cl);
		return -1;
	}
	dg_msg_destroy(&reply);

	for (int h = 0; h < NHOPS; h++)
		o->lat[h] = calloc((size_t)requests, sizeof *o->lat[h]);
	o->moved = calloc((size_t)requests, sizeof *o->moved);
	long sent = 0, inflight = 0;
	zsock_t *sock = dg_client_sock(cl);
	int64_t t0 = zclock_mono(), deadline = t0 + timeout_s * 1000;

	while ((o->done + o->failed < requests) && zclock_mono() < deadline) {
		while (sent < requests && inflight < window) {
			dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
			m->u.submit = *sub;
			m->u.submit.seed = sent;
			if (!dg_client_send(cl, m)) {
				dg_msg_destroy(&m);
				break;
			}
			dg_msg_destroy(&m);
			sent++;
			inflight++;
		}
		dg_msg_t *m = dg_client_next(cl, 1000);
		for (; m; m = (zsock_events(sock) & ZMQ_POLLIN) ?
		    dg_client_next(cl, 0) : NULL) {
			if (m->op == DG_OP_ERROR) {
				/* busy: that submit was not accepted. */
				sent--;
				inflight--;
				if (m->u.error.code &&
				    dg_proto_code_lookup(m->u.error.code) == DG_PROTO_E_BUSY)
					o->busy++;
				else if (o->errors++ == 0)
					snprintf(o->first_error,
					    sizeof o->first_error, "%s: %s",
					    m->u.error.code, m->u.error.message);
			} else if (m->op == DG_OP_RESULT) {
				inflight--;
				if (dg_req_state_lookup(m->u.result.status) == DG_REQ_DONE)
					o->done++;
				else {
					o->failed++;
					if (!*o->first_error && m->u.result.error)
						snprintf(o->first_error,
						    sizeof o->first_error, "%s",
						    m->u.result.error);
				}
				int64_t moved = 0;
				for (size_t i = 0; i < m->u.result.n_timings; i++) {
					const char *key = m->u.result.timings[i].key;
					size_t kl = strlen(key);
					if (kl > 7 && strcmp(key + kl - 7,
					    ".out_us") == 0)
						moved += m->u.result.timings[i].value;
					for (int h = 0; h < NHOPS; h++)
						if (strcmp(key, s_hops[h]) == 0 &&
						    o->nlat[h] < (size_t)requests)
							o->lat[h][o->nlat[h]++] =
							    m->u.result.timings[i].value;
				}
				if (o->nmoved < (size_t)requests)
					o->moved[o->nmoved++] = moved;
			}
			dg_msg_destroy(&m);
		}
		/* A pipeline that refuses everything will not get better. */
		if (o->errors > 10)
			break;
	}
	o->secs = (double)(zclock_mono() - t0) / 1000.0;
	for (int h = 0; h < NHOPS; h++)
		qsort(o->lat[h], o->nlat[h], sizeof *o->lat[h], s_cmp);
	qsort(o->moved, o->nmoved, sizeof *o->moved, s_cmp);
	dg_client_destroy(&cl);
	return 0;
}

/* ---- --against-shm: zero copy on one host, and without it ------------ */

#define S_WHO "disagg bench pipeline"

static int
s_write_local_ini(const char *run, bool zero_copy, const char *path)
{
	FILE *out = fopen(path, "w");

	if (!out)
		return -1;
	fprintf(out,
	    "; local.ini: written by `disagg bench pipeline --against-shm`: a\n"
	    "; one-host pipeline of reference stages, [fabric] zero_copy %s.\n"
	    "[controller]\n"
	    "listen  = ipc://%s/ctl.sock\n"
	    "publish = ipc://%s/pub.sock\n"
	    "max_pending_per_client = 1024\n"
	    "\n[fabric]\nprovider = shm\nzero_copy = %s\n", zero_copy ? "on" :
	    "off", run, run, zero_copy ? "on" : "off");
	static const char *const roles[] = { "encoder", "transformer",
	    "decoder" };
	for (int r = 0; r < 3; r++) {
		fprintf(out, "\n[%s %c0]\npeer = ipc://%s/%c0.sock\n"
		    "pool = 512M\nslot = 1M\n", roles[r], roles[r][0], run,
		    roles[r][0]);
		if (r == 2)
			fprintf(out, "output_dir = %s/out\n", run);
	}
	return fclose(out) == 0 ? 0 : -1;
}

static int
s_against_shm(const dg_submit_msg_t *sub, long requests, long window,
    long timeout_s, bool json)
{
	static const char *const names[] = { "zero-copy", "shm" };
	char base[PATH_MAX];
	bool made = false;
	s_outcome_t o[2];
	bool ok = true;

	memset(o, 0, sizeof o);
	if (dg_bench_run_open(S_WHO, "local", NULL, "/zero-copy/ctl.sock",
	    base, sizeof base, &made) < 0)
		return DG_EXIT_FAIL;
	dg_bench_catch_stop();
	for (int i = 0; i < 2 && ok && !dg_bench_stop; i++) {
		char run[PATH_MAX + 16], ini[PATH_MAX + 32],
		    ep[PATH_MAX + 32];
		snprintf(run, sizeof run, "%s/%s", base, names[i]);
		snprintf(ini, sizeof ini, "%s/local.ini", run);
		snprintf(ep, sizeof ep, "ipc://%s/ctl.sock", run);
		if ((mkdir(run, 0700) < 0 && errno != EEXIST) ||
		    s_write_local_ini(run, i == 0, ini) < 0) {
			fprintf(stderr, "%s: cannot write %s\n", S_WHO, ini);
			ok = false;
			break;
		}
		if (!json)
			fprintf(stderr, "%s: %s: starting the pipeline\n",
			    S_WHO, names[i]);
		if (dg_bench_up_down(run, true, ini) != DG_EXIT_OK) {
			fprintf(stderr, "%s: %s: the pipeline did not start "
			    "(see %s/up.out)\n", S_WHO, names[i], run);
			(void)dg_bench_up_down(run, false, NULL);
			ok = false;
			break;
		}
		ok = s_drive(ep, sub, requests, window, timeout_s, &o[i]) == 0 &&
		    o[i].done == requests;
		if (dg_bench_up_down(run, false, NULL) != DG_EXIT_OK)
			ok = false;
		if (!ok)
			fprintf(stderr, "%s: %s: %ld of %ld done%s%s\n", S_WHO,
			    names[i], o[i].done, requests,
			    *o[i].first_error ? ": " : "", o[i].first_error);
	}
	if (ok && !dg_bench_stop) {
		int64_t tot[2], mv[2];
		for (int i = 0; i < 2; i++) {
			tot[i] = s_pct(o[i].lat[3], o[i].nlat[3], 50);
			mv[i] = s_pct(o[i].moved, o[i].nmoved, 50);
		}
		if (json) {
			printf("{\"requests\":%ld,\"frames\":%lld,\"height\":%lld,"
			    "\"width\":%lld,\"steps\":%lld", requests,
			    (long long)sub->frames, (long long)sub->height,
			    (long long)sub->width, (long long)sub->steps);
			for (int i = 0; i < 2; i++)
				printf(",\"%s\":{\"rps\":%.2f,\"total_p50_ms\":"
				    "%lld,\"moved_p50_us\":%lld}", i ? "shm" :
				    "zero_copy", o[i].secs > 0 ?
				    (double)o[i].done / o[i].secs : 0,
				    (long long)tot[i], (long long)mv[i]);
			printf(",\"saved_per_request_us\":%lld}\n",
			    (long long)(mv[1] - mv[0]));
		} else {
			printf("zero copy against shm: %ld requests (%lld frames "
			    "%lldx%lld, %lld steps), window %ld, reference "
			    "stages\n", requests, (long long)sub->frames,
			    (long long)sub->width, (long long)sub->height,
			    (long long)sub->steps, window);
			printf("  %-10s %8s %12s %18s\n", "path", "req/s",
			    "total p50 ms", "moving p50 ms");
			for (int i = 0; i < 2; i++)
				printf("  %-10s %8.2f %12lld %18.2f\n", names[i],
				    o[i].secs > 0 ? (double)o[i].done /
				    o[i].secs : 0, (long long)tot[i],
				    (double)mv[i] / 1000);
			printf("  saved per request: %.2f ms of moving tensors "
			    "(every stage's out, summed), %lld ms end to end\n",
			    (double)(mv[1] - mv[0]) / 1000,
			    (long long)(tot[1] - tot[0]));
		}
	}
	for (int i = 0; i < 2; i++)
		s_outcome_free(&o[i]);
	if (ok && made)
		dg_bench_run_remove(base);
	else if (!ok)
		fprintf(stderr, "%s: FAILED; the run folders are in %s\n", S_WHO,
		    base);
	return ok ? DG_EXIT_OK : DG_EXIT_FAIL;
}

int
dg_bench_pipeline(int argc, char *argv[])
{
	enum { OPT_JSON = 1000, OPT_REQ, OPT_WINDOW, OPT_FRAMES, OPT_HEIGHT,
	       OPT_WIDTH, OPT_STEPS, OPT_TIMEOUT, OPT_SHM };
	static const struct option opts[] = {
		{ "controller", required_argument, NULL, 'c' },
		{ "file", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "requests", required_argument, NULL, OPT_REQ },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "frames", required_argument, NULL, OPT_FRAMES },
		{ "height", required_argument, NULL, OPT_HEIGHT },
		{ "width", required_argument, NULL, OPT_WIDTH },
		{ "steps", required_argument, NULL, OPT_STEPS },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "against-shm", no_argument, NULL, OPT_SHM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *usage = "usage: disagg bench pipeline [--requests N] "
	    "[--window N] [--frames N]\n"
	    "         [--height H] [--width W] [--steps N] [--timeout S] "
	    "[--json]\n"
	    "         [-c endpoint | -f file | --against-shm]\n";
	const char *endpoint = NULL, *file = NULL;
	bool json = false, against = false;
	long requests = 20000, window = 256, timeout_s = 120;
	dg_submit_msg_t sub = { .prompt = "bench", .frames = 1, .height = 16,
	    .width = 16, .steps = 1 };
	bool sized = false;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:f:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': endpoint = optarg; break;
		case 'f': file = optarg; break;
		case OPT_JSON: json = true; break;
		case OPT_REQ: requests = atol(optarg); break;
		case OPT_WINDOW: window = atol(optarg); break;
		case OPT_FRAMES: sub.frames = atoll(optarg); sized = true; break;
		case OPT_HEIGHT: sub.height = atoll(optarg); sized = true; break;
		case OPT_WIDTH: sub.width = atoll(optarg); sized = true; break;
		case OPT_STEPS: sub.steps = atoll(optarg); break;
		case OPT_TIMEOUT: timeout_s = atol(optarg); break;
		case OPT_SHM: against = true; break;
		case 'h':
			fputs(usage, stdout);
			return DG_EXIT_OK;
		default:
			fputs(usage, stderr);
			return DG_EXIT_USAGE;
		}
	}
	if (requests < 1 || window < 1) {
		fprintf(stderr, "disagg bench pipeline: --requests and --window "
		    "must be positive\n");
		return DG_EXIT_USAGE;
	}
	if (against) {
		if (endpoint || file) {
			fprintf(stderr, "disagg bench pipeline: --against-shm "
			    "starts its own pipelines; no -c or -f\n");
			return DG_EXIT_USAGE;
		}
		/* Wan 2.1's 480p unless told otherwise; a few requests,
		 * one at a time, so each is timed alone. */
		if (!sized) {
			sub.frames = 81;
			sub.height = 480;
			sub.width = 832;
		}
		return s_against_shm(&sub, requests == 20000 ? 20 : requests,
		    window == 256 ? 1 : window, timeout_s, json);
	}
	const char *ep = dg_client_endpoint(endpoint, file);
	s_outcome_t o;
	if (s_drive(ep, &sub, requests, window, timeout_s, &o) < 0)
		return DG_EXIT_UNREACHABLE;
	double rps = o.secs > 0 ? (double)o.done / o.secs : 0;
	if (json) {
		printf("{\"requests\":%ld,\"done\":%ld,\"failed\":%ld,"
		    "\"busy\":%ld,\"seconds\":%.3f,\"rps\":%.1f,\"window\":%ld,"
		    "\"frames\":%lld,\"height\":%lld,\"width\":%lld,"
		    "\"steps\":%lld,\"moved_p50_us\":%lld,\"hops\":{", requests,
		    o.done, o.failed, o.busy, o.secs, rps, window,
		    (long long)sub.frames, (long long)sub.height,
		    (long long)sub.width, (long long)sub.steps,
		    (long long)s_pct(o.moved, o.nmoved, 50));
		for (int h = 0; h < NHOPS; h++)
			printf("%s\"%s\":{\"p50_ms\":%lld,\"p99_ms\":%lld}",
			    h ? "," : "", s_hops[h],
			    (long long)s_pct(o.lat[h], o.nlat[h], 50),
			    (long long)s_pct(o.lat[h], o.nlat[h], 99));
		printf("}}\n");
	} else {
		printf("pipeline bench: %ld requests (%lld frames %lldx%lld, %lld "
		    "steps), window %ld\n", requests, (long long)sub.frames,
		    (long long)sub.width, (long long)sub.height,
		    (long long)sub.steps, window);
		printf("  %ld done, %ld failed, %ld busy replies in %.2f s: "
		    "%.0f requests/s\n", o.done, o.failed, o.busy, o.secs, rps);
		printf("  %-12s %8s %8s\n", "hop", "p50 ms", "p99 ms");
		for (int h = 0; h < NHOPS; h++)
			printf("  %-12s %8lld %8lld\n", s_hops[h],
			    (long long)s_pct(o.lat[h], o.nlat[h], 50),
			    (long long)s_pct(o.lat[h], o.nlat[h], 99));
		printf("  moving tensors (every stage's out, summed): p50 "
		    "%.2f ms\n", (double)s_pct(o.moved, o.nmoved, 50) / 1000);
		if (*o.first_error)
			printf("  first error: %s\n", o.first_error);
	}
	long done = o.done;
	s_outcome_free(&o);
	return done == requests ? DG_EXIT_OK : DG_EXIT_FAIL;
}
