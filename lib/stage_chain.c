/*  stage_chain.c: a chain of stages run in this process, no daemons: the
 *  one-process oracle that a pipeline's output is compared with (`disagg
 *  ref`).  Each stage is initialised once, planned, and run on one item
 *  whose inputs are the previous stage's outputs, in plain host memory.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stage_host.h"

static double
s_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int
dg_stage_chain_run(const dg_stage_ops_t *const *ops,
    const dg_stage_env_t *envs, size_t n, const dg_request_t *reqs,
    dg_stage_chain_result_t *res, char *why, size_t whysize)
{
	void *state[DG_STAGE_CHAIN_MAX] = { NULL };
	dg_tensor_plan_t in[DG_STAGE_CHAIN_MAX], out[DG_STAGE_CHAIN_MAX];
	void *buf[DG_STAGE_CHAIN_MAX][DG_STAGE_MAX_TENSORS];
	char reason[512];
	int rc = -1;

	memset(res, 0, sizeof *res);
	memset(buf, 0, sizeof buf);
	if (n < 1 || n > DG_STAGE_CHAIN_MAX) {
		snprintf(why, whysize, "a chain has 1 to %d stages, got %zu",
		    DG_STAGE_CHAIN_MAX, n);
		return -1;
	}
	for (size_t s = 0; s < n; s++)
		if (ops[s]->init(&envs[s], &state[s], reason,
		    sizeof reason) < 0) {
			snprintf(why, whysize, "%s: %s", envs[s].name, reason);
			goto done;
		}
	/* A request no stage can serve: the reason alone, as a client
	 * reads it. */
	for (size_t s = 0; s < n; s++)
		if (ops[s]->plan(state[s], &reqs[s], &in[s], &out[s], why,
		    whysize) < 0)
			goto done;
	for (size_t s = 1; s < n; s++)
		if (dg_tensor_plan_match(&out[s - 1], &in[s], reason,
		    sizeof reason) < 0) {
			snprintf(why, whysize, "%s to %s: %s", envs[s - 1].name,
			    envs[s].name, reason);
			goto done;
		}
	for (size_t s = 0; s < n; s++)
		for (size_t k = 0; k < out[s].n; k++)
			/* calloc: a stage may read what it did not write, and
			 * the pool it stands for is zeroed too. */
			if (!(buf[s][k] = calloc(1, out[s].t[k].bytes ?
			    out[s].t[k].bytes : 1))) {
				snprintf(why, whysize, "out of memory for %s "
				    "(%" PRIu64 " bytes)", out[s].t[k].name,
				    out[s].t[k].bytes);
				goto done;
			}
	for (size_t s = 0; s < n; s++) {
		dg_stage_item_t item;
		memset(&item, 0, sizeof item);
		item.req = &reqs[s];
		item.in_plan = &in[s];
		item.out_plan = &out[s];
		for (size_t k = 0; s > 0 && k < in[s].n; k++)
			item.in[k] = buf[s - 1][k];
		for (size_t k = 0; k < out[s].n; k++)
			item.out[k] = buf[s][k];
		double t0 = s_now_ms();
		int r = ops[s]->run(state[s], &item, 1);
		res->ms[s] = s_now_ms() - t0;
		if (r < 0 || item.error[0]) {
			snprintf(why, whysize, "%s: %s", envs[s].name,
			    item.error[0] ? item.error : "batch failed");
			goto done;
		}
		if (s == n - 1) {
			snprintf(res->output, sizeof res->output, "%s",
			    item.output);
			res->bytes = item.output_bytes;
			snprintf(res->digest, sizeof res->digest, "%s",
			    item.digest);
		}
	}
	rc = 0;
done:
	for (size_t s = 0; s < n; s++) {
		for (size_t k = 0; k < DG_STAGE_MAX_TENSORS; k++)
			free(buf[s][k]);
		if (state[s])
			ops[s]->fini(state[s]);
	}
	return rc;
}
