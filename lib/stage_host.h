/*  stage_host.h: what the daemons and tools use to find and drive stages
 *  (stage.c): the lookup of a stage by name and the tensor spec helpers.
 *  Not part of the plugin ABI, which is stage.h alone.  */
#ifndef DG_STAGE_HOST_H
#define DG_STAGE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "stage.h"

/* A built-in by name, or a shared object by path (dlopen, kept open for
 * the life of the process).  NULL with a reason when it cannot be had or
 * was built for another ABI. */
const dg_stage_ops_t *dg_stage_find(const char *name, char *why,
    size_t whysize);

/* Byte size of one element of `dtype`; 0 when unknown. */
size_t dg_dtype_size(const char *dtype);

/* Fill a spec: bytes from shape and dtype.  0, or -1 on overflow or an
 * unknown dtype. */
int dg_tensor_spec(dg_tensor_spec_t *t, const char *name, const char *dtype,
    int ndim, const int64_t *shape);

/* Append a spec to `plan`; -1 when it is full or dg_tensor_spec fails. */
int dg_tensor_plan_add(dg_tensor_plan_t *plan, const char *name,
    const char *dtype, int ndim, const int64_t *shape);

/* Whether what one stage makes (`out`) is what the next expects (`in`):
 * same tensors, in order, with the same name, dtype, shape and bytes.
 * 0, or -1 with the first difference in `why`. */
int dg_tensor_plan_match(const dg_tensor_plan_t *out,
    const dg_tensor_plan_t *in, char *why, size_t whysize);

/* A chain of stages in this process, no daemons, no pool: each stage's
 * outputs are the next one's inputs (the one-process oracle, `disagg
 * ref`).  envs[i] is what stage i is initialised with and reqs[i] the
 * request as it sees it (they differ only in the steps it runs); the
 * last stage's file and each stage's time come back in `res`.  0, or -1
 * with a reason naming the stage (envs[i].name). */
#define DG_STAGE_CHAIN_MAX DG_CHAIN_MAX
typedef struct {
	char output[1024];              /* the file the last stage wrote */
	uint64_t bytes;
	char digest[40];                /* hex XXH3-128 of the file */
	double ms[DG_STAGE_CHAIN_MAX];  /* run() of each stage */
} dg_stage_chain_result_t;

int dg_stage_chain_run(const dg_stage_ops_t *const *ops,
    const dg_stage_env_t *envs, size_t n, const dg_request_t *reqs,
    dg_stage_chain_result_t *res, char *why, size_t whysize);

/* A decoder's output folder: made when missing (mkdir -p), returned
 * absolute (malloc'd), with the temporary files of dead decoders in it
 * removed.  NULL with a reason. */
char *dg_stage_output_dir(const char *dir, char *why, size_t whysize);

/* The steps [*begin, *end) of 0..steps that a stage with `expert`
 * (dg_expert_t) runs, split at `boundary` (millionths): the noise level
 * of step s is (steps - s) / steps, as the reference sampler's linear
 * schedule has it, and a high expert runs the steps at or above the
 * boundary, as Wan 2.2's high-noise expert does. */
void dg_stage_steps(int expert, int64_t boundary, int64_t steps,
    int64_t *begin, int64_t *end);

/* Simulated GPU time for the reference and null stages: a sleep, not a
 * spin, so that it costs no CPU. */
void dg_stage_cost(int64_t ms);
/* `steps` of step_ms each, a step at a time so that progress is
 * reported (a silent worker marks the daemon unhealthy; env->step tells
 * each item's request how far it is, counting from its step_begin) and
 * a batch whose rooms were all released stops early, each item then
 * failing with how far it got. */
typedef struct {
	void (*progress)(void);         /* env->progress */
	void (*step)(uint64_t room, int64_t step, int64_t steps);
	void (*suspend)(uint64_t room, int64_t step);   /* env->suspend */
	/* Steps of the request's denoising (each item then counts from its
	 * req->step_begin, of req->steps), or of this stage's own work (1
	 * of 1 for an encoder). */
	bool denoise;
} dg_stage_clock_t;

void dg_stage_take_time(dg_stage_item_t *items, size_t n, int64_t steps,
    int64_t step_ms, const dg_stage_clock_t *clock);

#endif
