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
 *  topology (reference stages at Wan-like 480p sizes).  */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_pipeline.h"
#include "client.h"
#include "lifecycle.h"

#define NHOPS 4
static const char *const s_hops[NHOPS] =
	{ "encoder", "transformer", "decoder", "total" };

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

int
dg_bench_pipeline(int argc, char *argv[])
{
	enum { OPT_JSON = 1000, OPT_REQ, OPT_WINDOW, OPT_FRAMES, OPT_HEIGHT,
	       OPT_WIDTH, OPT_STEPS, OPT_TIMEOUT };
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *usage = "usage: disagg bench pipeline [--requests N] "
	    "[--window N] [--frames N]\n"
	    "         [--height H] [--width W] [--steps N] [--timeout S] "
	    "[--json]\n"
	    "         [-c endpoint | -f file]\n";
	const char *endpoint = NULL, *file = NULL;
	bool json = false;
	long requests = 20000, window = 256, timeout_s = 120;
	dg_submit_msg_t sub = { .prompt = "bench", .frames = 1, .height = 16,
	    .width = 16, .steps = 1 };
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:f:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': endpoint = optarg; break;
		case 'f': file = optarg; break;
		case OPT_JSON: json = true; break;
		case OPT_REQ: requests = atol(optarg); break;
		case OPT_WINDOW: window = atol(optarg); break;
		case OPT_FRAMES: sub.frames = atoll(optarg); break;
		case OPT_HEIGHT: sub.height = atoll(optarg); break;
		case OPT_WIDTH: sub.width = atoll(optarg); break;
		case OPT_STEPS: sub.steps = atoll(optarg); break;
		case OPT_TIMEOUT: timeout_s = atol(optarg); break;
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
	const char *ep = dg_client_endpoint(endpoint, file);
	dg_client_t *cl = dg_client_new(ep);
	if (!cl) {
		fprintf(stderr, "disagg: cannot connect to %s\n", ep);
		return DG_EXIT_UNREACHABLE;
	}
	/* Is anybody there? */
	dg_msg_t *probe = dg_msg_new(DG_OP_INSTANCES);
	dg_msg_t *reply = dg_client_call(cl, probe, 3000);
	dg_msg_destroy(&probe);
	if (!reply) {
		fprintf(stderr, "disagg: controller at %s did not answer\n", ep);
		dg_client_destroy(&cl);
		return DG_EXIT_UNREACHABLE;
	}
	dg_msg_destroy(&reply);

	int64_t *lat[NHOPS];
	for (int h = 0; h < NHOPS; h++)
		lat[h] = calloc((size_t)requests, sizeof *lat[h]);
	size_t nlat[NHOPS] = { 0 };
	long sent = 0, done = 0, failed = 0, busy = 0, inflight = 0, errors = 0;
	zsock_t *sock = dg_client_sock(cl);
	int64_t t0 = zclock_mono(), deadline = t0 + timeout_s * 1000;
	char first_error[256] = "";

	while ((done + failed < requests) && zclock_mono() < deadline) {
		while (sent < requests && inflight < window) {
			dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
			m->u.submit = sub;
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
					busy++;
				else if (errors++ == 0)
					snprintf(first_error, sizeof first_error,
					    "%s: %s", m->u.error.code,
					    m->u.error.message);
			} else if (m->op == DG_OP_RESULT) {
				inflight--;
				if (dg_req_state_lookup(m->u.result.status) == DG_REQ_DONE)
					done++;
				else {
					failed++;
					if (!*first_error && m->u.result.error)
						snprintf(first_error,
						    sizeof first_error, "%s",
						    m->u.result.error);
				}
				for (size_t i = 0; i < m->u.result.n_timings; i++)
					for (int h = 0; h < NHOPS; h++)
						if (strcmp(m->u.result.timings[i].key,
						    s_hops[h]) == 0 &&
						    nlat[h] < (size_t)requests)
							lat[h][nlat[h]++] =
							    m->u.result.timings[i].value;
			}
			dg_msg_destroy(&m);
		}
		/* A pipeline that refuses everything will not get better. */
		if (errors > 10)
			break;
	}
	double secs = (double)(zclock_mono() - t0) / 1000.0;
	double rps = secs > 0 ? (double)done / secs : 0;
	for (int h = 0; h < NHOPS; h++)
		qsort(lat[h], nlat[h], sizeof *lat[h], s_cmp);
	if (json) {
		printf("{\"requests\":%ld,\"done\":%ld,\"failed\":%ld,"
		    "\"busy\":%ld,\"seconds\":%.3f,\"rps\":%.1f,\"window\":%ld,"
		    "\"frames\":%lld,\"height\":%lld,\"width\":%lld,"
		    "\"steps\":%lld,\"hops\":{", requests, done, failed, busy,
		    secs, rps, window, (long long)sub.frames,
		    (long long)sub.height, (long long)sub.width,
		    (long long)sub.steps);
		for (int h = 0; h < NHOPS; h++)
			printf("%s\"%s\":{\"p50_ms\":%lld,\"p99_ms\":%lld}",
			    h ? "," : "", s_hops[h],
			    (long long)s_pct(lat[h], nlat[h], 50),
			    (long long)s_pct(lat[h], nlat[h], 99));
		printf("}}\n");
	} else {
		printf("pipeline bench: %ld requests (%lld frames %lldx%lld, %lld "
		    "steps), window %ld\n", requests, (long long)sub.frames,
		    (long long)sub.width, (long long)sub.height,
		    (long long)sub.steps, window);
		printf("  %ld done, %ld failed, %ld busy replies in %.2f s: "
		    "%.0f requests/s\n", done, failed, busy, secs, rps);
		printf("  %-12s %8s %8s\n", "hop", "p50 ms", "p99 ms");
		for (int h = 0; h < NHOPS; h++)
			printf("  %-12s %8lld %8lld\n", s_hops[h],
			    (long long)s_pct(lat[h], nlat[h], 50),
			    (long long)s_pct(lat[h], nlat[h], 99));
		if (*first_error)
			printf("  first error: %s\n", first_error);
	}
	for (int h = 0; h < NHOPS; h++)
		free(lat[h]);
	dg_client_destroy(&cl);
	return done == requests ? DG_EXIT_OK : DG_EXIT_FAIL;
}
