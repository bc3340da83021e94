/*  stage_ref.h: the reference stages' shapes and limits, and the oracle
 *  that runs the three of them in one process (stage_ref.c).  */
#ifndef DG_STAGE_REF_H
#define DG_STAGE_REF_H

#include <stddef.h>
#include <stdint.h>

#include "stage.h"

/* The reference stages' shapes and limits. */
#define DG_REF_TEXT_LEN   512           /* umT5 context: tokens */
#define DG_REF_TEXT_DIM   4096          /* and width */
#define DG_REF_CHANNELS   16            /* latent channels */
#define DG_REF_MAX_SIDE   2048          /* height, width */
#define DG_REF_MAX_FRAMES 1001
#define DG_REF_MAX_STEPS  1000

/* Whether the reference stages can serve `req`: 0, or -1 with a reason
 * meant for the client ("frames must be 4k+1 (1, 5, ..., 81), got 80").
 * Every ref stage's plan starts with this; a controller may call it to
 * refuse a request at submission. */
int dg_stage_ref_check(const dg_request_t *req, char *why, size_t whysize);

/* The plan of the reference stage named `stage` ("ref-transformer")
 * with `expert` (dg_expert_t), without loading it: 1, 0 when `stage` is
 * not a reference stage, -1 with a reason when it cannot serve `req`.
 * A controller uses it to refuse at submission what no pool can hold. */
int dg_stage_ref_plan(const char *stage, int expert, const dg_request_t *req,
    dg_tensor_plan_t *in, dg_tensor_plan_t *out, char *why, size_t whysize);

typedef struct {
	char output[1024];              /* the file written */
	uint64_t bytes;
	char digest[40];                /* hex XXH3-128 of the file */
	double ms[3];                   /* encoder, transformer, decoder */
} dg_stage_ref_result_t;

/* The three reference stages in this process, no daemons, no added cost
 * (step_ms 0): plan, run, each stage's outputs handed to the next as
 * inputs.  Writes <output_dir>/<request>.y4m, the very file a pipeline of
 * ref stages writes for the same request.  0, or -1 with a reason. */
int dg_stage_ref_run(const dg_request_t *req, const char *output_dir,
    dg_stage_ref_result_t *res, char *why, size_t whysize);

#endif
