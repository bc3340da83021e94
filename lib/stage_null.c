/*  stage_null.c: the "null" stage, the benchmark's: one 64-byte u8 tensor
 *  per hop ("context" from the first stage, "latents" from the others),
 *  filled with a pattern of the request id so that a transfer that lands
 *  the wrong room's bytes is still visible; the last stage writes no
 *  file.  Everything here is on the hot path of `disagg bench pipeline`,
 *  so plan copies prepared specs and run touches 64 bytes.
 *
 *  `step_ms` (0 by default) adds time as the reference stages do: once
 *  per batch for the first and the last stage, once per step of the
 *  batch's longest request for the others.  `disagg bench rooms` uses it
 *  to keep rooms in a transformer for as long as it needs.  */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "stage_host.h"
#include "stage_builtin.h"

#define NULL_BYTES 64

typedef enum { ROLE_ENCODER, ROLE_TRANSFORMER, ROLE_DECODER } s_role_t;

typedef struct {
	s_role_t role;
	dg_tensor_plan_t in, out;       /* the same for every request */
	int64_t step_ms;
	dg_stage_clock_t clock;         /* progress and steps */
} s_null_t;

static const dg_tensor_spec_t s_context = {
	.name = "context", .dtype = "u8", .shape = { NULL_BYTES }, .ndim = 1,
	.bytes = NULL_BYTES,
};
static const dg_tensor_spec_t s_latents = {
	.name = "latents", .dtype = "u8", .shape = { NULL_BYTES }, .ndim = 1,
	.bytes = NULL_BYTES,
};

static int
s_init(const dg_stage_env_t *env, void **state, char *why, size_t whysize)
{
	s_null_t *self = calloc(1, sizeof *self);
	if (!self) {
		snprintf(why, whysize, "out of memory");
		return -1;
	}
	const char *role = env->role ? env->role : "";
	/* A chain of any roles: the place says what each one does. */
	if (env->abi >= 3 && env->places >= 2)
		role = env->place == 0 ? "encoder" :
		    env->place + 1 == env->places ? "decoder" : "transformer";
	if (strcmp(role, "encoder") == 0) {
		self->role = ROLE_ENCODER;
		self->out.t[self->out.n++] = s_context;
	} else if (strcmp(role, "transformer") == 0) {
		self->role = ROLE_TRANSFORMER;
		self->in.t[self->in.n++] = s_context;
		self->out.t[self->out.n++] = s_latents;
	} else if (strcmp(role, "decoder") == 0) {
		/* Like ref-decoder, its result is a (here absent) file, not
		 * a tensor: nothing to reserve for it in the pool. */
		self->role = ROLE_DECODER;
		self->in.t[self->in.n++] = s_latents;
	} else {
		snprintf(why, whysize, "stage null: unknown role '%s'", role);
		free(self);
		return -1;
	}
	self->step_ms = env->step_ms;
	self->clock = (dg_stage_clock_t){ .progress = env->progress,
	    .step = env->abi >= 4 ? env->step : NULL,
	    .suspend = env->abi >= 5 ? env->suspend : NULL,
	    .denoise = self->role == ROLE_TRANSFORMER };
	*state = self;
	return 0;
}

static int
s_plan(void *state, const dg_request_t *req, dg_tensor_plan_t *in,
    dg_tensor_plan_t *out, char *why, size_t whysize)
{
	(void)req;
	(void)why;
	(void)whysize;
	const s_null_t *self = state;
	*in = self->in;
	*out = self->out;
	return 0;
}

/* step_ms once, or per step of the batch's longest request between the
 * first and the last place. */
static void
s_take_time(const s_null_t *self, dg_stage_item_t *items, size_t n)
{
	int64_t steps = 1;
	if (self->role == ROLE_TRANSFORMER)
		for (size_t i = 0; i < n; i++)
			if (items[i].req->steps > steps)
				steps = items[i].req->steps;
	dg_stage_take_time(items, n, steps, self->step_ms, &self->clock);
}

static int
s_run(void *state, dg_stage_item_t *items, size_t n)
{
	const s_null_t *self = state;
	for (size_t i = 0; i < n; i++) {
		dg_stage_item_t *it = &items[i];
		uint8_t seed = (uint8_t)it->req->request;
		for (size_t k = 0; k < it->out_plan->n; k++) {
			uint8_t *p = it->out[k];
			for (uint64_t j = 0; j < it->out_plan->t[k].bytes; j++)
				p[j] = (uint8_t)(seed + j);
		}
		it->output[0] = '\0';
		it->output_bytes = 0;
		it->digest[0] = '\0';
		it->error[0] = '\0';
	}
	if (self->step_ms > 0)
		s_take_time(self, items, n);
	return 0;
}

static void
s_fini(void *state)
{
	free(state);
}

const dg_stage_ops_t dg_stage_null_ops = {
	.abi = DG_STAGE_ABI,
	.name = "null",
	.init = s_init,
	.plan = s_plan,
	.run = s_run,
	.fini = s_fini,
};
