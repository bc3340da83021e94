/*  example_stage.c: an external stage plugin, the smallest useful one and
 *  the template for real ones.  "scale" is a transformer that doubles the
 *  f32 tensor `latents` of Wan's latent shape [16, F', H/8, W/8].
 *
 *  A plugin links against nothing of libdisagg: it uses only the types
 *  and macros of stage.h, and exports dg_stage_entry.
 *
 *  For the tests, DG_EXAMPLE_BREAK makes dg_stage_entry hand back a
 *  broken stage: "abi" (built for another ABI), "run" (no run call),
 *  "null" (no stage at all).  */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "stage.h"

typedef struct {
	double factor;
} s_scale_t;

static int
s_init(const dg_stage_env_t *env, void **state, char *why, size_t whysize)
{
	if (env->abi != DG_STAGE_ABI) {
		snprintf(why, whysize, "scale: built for stage ABI %d, the daemon "
		    "has %u", DG_STAGE_ABI, (unsigned)env->abi);
		return -1;
	}
	if (env->role && strcmp(env->role, "transformer") != 0) {
		snprintf(why, whysize, "scale is a transformer stage, not for a "
		    "%s", env->role);
		return -1;
	}
	s_scale_t *self = calloc(1, sizeof *self);
	if (!self) {
		snprintf(why, whysize, "out of memory");
		return -1;
	}
	self->factor = 2.0;
	*state = self;
	return 0;
}

static int
s_plan(void *state, const dg_request_t *req, dg_tensor_plan_t *in,
    dg_tensor_plan_t *out, char *why, size_t whysize)
{
	(void)state;
	if (req->frames < 1 || (req->frames - 1) % 4 != 0 ||
	    req->height < 8 || req->height % 8 || req->height > 4096 ||
	    req->width < 8 || req->width % 8 || req->width > 4096 ||
	    req->frames > 4001) {
		snprintf(why, whysize, "scale: cannot serve %lldx%lld x %lld "
		    "frames", (long long)req->height, (long long)req->width,
		    (long long)req->frames);
		return -1;
	}
	dg_tensor_spec_t *t = &in->t[0];
	memset(t, 0, sizeof *t);
	snprintf(t->name, sizeof t->name, "latents");
	snprintf(t->dtype, sizeof t->dtype, "f32");
	t->ndim = 4;
	t->shape[0] = 16;
	t->shape[1] = (req->frames - 1) / 4 + 1;
	t->shape[2] = req->height / 8;
	t->shape[3] = req->width / 8;
	/* Within the bounds above: no overflow. */
	t->bytes = 4;
	for (int i = 0; i < t->ndim; i++)
		t->bytes *= (uint64_t)t->shape[i];
	in->n = 1;
	*out = *in;
	return 0;
}

static int
s_run(void *state, dg_stage_item_t *items, size_t n)
{
	const s_scale_t *self = state;
	for (size_t i = 0; i < n; i++) {
		dg_stage_item_t *it = &items[i];
		it->error[0] = it->output[0] = it->digest[0] = '\0';
		it->output_bytes = 0;
		const dg_tensor_spec_t *a = &it->in_plan->t[0];
		const dg_tensor_spec_t *b = &it->out_plan->t[0];
		if (it->in_plan->n != 1 || it->out_plan->n != 1 ||
		    strcmp(a->dtype, "f32") != 0 || strcmp(b->dtype, "f32") != 0 ||
		    a->bytes != b->bytes) {
			snprintf(it->error, sizeof it->error, "scale: wants one "
			    "f32 tensor in and out of the same size, got %s and "
			    "%s", it->in_plan->n ? a->dtype : "none",
			    it->out_plan->n ? b->dtype : "none");
			continue;
		}
		const float *src = it->in[0];
		float *dst = it->out[0];
		for (uint64_t k = 0; k < a->bytes / 4; k++)
			dst[k] = (float)(src[k] * self->factor);
	}
	return 0;
}

static void
s_fini(void *state)
{
	free(state);
}

static const dg_stage_ops_t s_ops = {
	.abi = DG_STAGE_ABI,
	.name = "scale",
	.init = s_init,
	.plan = s_plan,
	.run = s_run,
	.fini = s_fini,
};

static const dg_stage_ops_t s_wrong_abi = {
	.abi = DG_STAGE_ABI + 1,
	.name = "scale",
	.init = s_init,
	.plan = s_plan,
	.run = s_run,
	.fini = s_fini,
};

static const dg_stage_ops_t s_no_run = {
	.abi = DG_STAGE_ABI,
	.name = "scale",
	.init = s_init,
	.plan = s_plan,
	.fini = s_fini,
};

/* Not static: the daemon finds it with dlsym.  Declared through the
 * ABI's own type, so a wrong signature does not compile. */
dg_stage_entry_fn dg_stage_entry;

const dg_stage_ops_t *
dg_stage_entry(void)
{
	const char *brk = getenv("DG_EXAMPLE_BREAK");
	if (!brk)
		return &s_ops;
	if (strcmp(brk, "abi") == 0)
		return &s_wrong_abi;
	if (strcmp(brk, "run") == 0)
		return &s_no_run;
	if (strcmp(brk, "null") == 0)
		return NULL;
	return &s_ops;
}
