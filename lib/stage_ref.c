/*  stage_ref.c: the reference stages, ref-encoder, ref-transformer and
 *  ref-decoder, and dg_stage_ref_run, which chains them in one process.
 *
 *  They stand in for Wan's umT5 encoder, DiT and VAE decoder: the tensor
 *  shapes are Wan's (context [512, 4096] bf16, latents [16, F', H/8, W/8]
 *  f32 with F' = (frames - 1)/4 + 1), the work is real and linear in the
 *  tensor sizes, and `step_ms` adds simulated GPU time.  The output must
 *  be the same bytes on every run and every machine, because `disagg ref`
 *  is the oracle the pipeline is checked against.  So:
 *
 *    - randomness is splitmix64 of (key, index), keys are XXH3 of the
 *      request's parameters: no global PRNG state, no threads;
 *    - the transformer computes in Q16 fixed point (int32) and converts to
 *      f32 only at the end, exactly (|x| < 2^24 / 2^16); the decoder reads
 *      f32 back to fixed point.  No float arithmetic can round
 *      differently, whatever the compiler contracts into FMAs;
 *    - signed right shifts are arithmetic (as gcc and clang define them).
 *
 *  Added cost (`step_ms`) is paid once by the encoder and the decoder and
 *  once per step by the transformer, per batch rather than per request: a
 *  GPU runs a batch in about the time of one request, which is what
 *  batching buys.  */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>

#include "log.h"
#include "stage_host.h"
#include "stage_ref.h"
#include "stage_builtin.h"
#include "y4m.h"

#define GOLDEN   0x9e3779b97f4a7c15ULL
#define Q16      65536
#define SUMMARY  64                     /* context summary per channel */
#define LAT_W_MAX (DG_REF_MAX_SIDE / 8)

typedef enum { ROLE_ENCODER, ROLE_TRANSFORMER, ROLE_DECODER } s_role_t;

static const char *const s_role_names[] = {
	"encoder", "transformer", "decoder"
};

typedef struct {
	s_role_t role;
	dg_expert_t expert;
	int64_t step_ms;
	dg_stage_clock_t clock;         /* progress and steps */
	char *output_dir;               /* decoder */
	uint16_t bf16[256];             /* encoder: int8 / 64 as bf16 */
} s_ref_t;

/* splitmix64's finalizer: a counter-based generator, any index in O(1). */
static inline uint64_t
s_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int
dg_stage_ref_check(const dg_request_t *req, char *why, size_t whysize)
{
	if (!req->prompt || !*req->prompt) {
		snprintf(why, whysize, "prompt must not be empty");
		return -1;
	}
	if (req->frames < 1 || req->frames > DG_REF_MAX_FRAMES) {
		snprintf(why, whysize, "frames must be between 1 and %d, got %"
		    PRId64, DG_REF_MAX_FRAMES, req->frames);
		return -1;
	}
	if ((req->frames - 1) % 4 != 0) {
		snprintf(why, whysize, "frames must be 4k+1 (1, 5, ..., 81), "
		    "got %" PRId64, req->frames);
		return -1;
	}
	const struct {
		const char *name;
		int64_t v;
	} sides[] = { { "height", req->height }, { "width", req->width } };
	for (int i = 0; i < 2; i++)
		if (sides[i].v < 16 || sides[i].v > DG_REF_MAX_SIDE ||
		    sides[i].v % 16 != 0) {
			snprintf(why, whysize, "%s must be a multiple of 16 from "
			    "16 to %d, got %" PRId64, sides[i].name,
			    DG_REF_MAX_SIDE, sides[i].v);
			return -1;
		}
	if (req->steps < 1 || req->steps > DG_REF_MAX_STEPS) {
		snprintf(why, whysize, "steps must be between 1 and %d, got %"
		    PRId64, DG_REF_MAX_STEPS, req->steps);
		return -1;
	}
	return 0;
}

/* The steps a transformer runs (ABI 3; all of them for a request built
 * by an older host, which leaves both 0). */
static void
s_step_range(const dg_request_t *req, int64_t *begin, int64_t *end)
{
	*begin = req->step_begin;
	*end = req->step_end;
	if (*end <= 0 && *begin <= 0)
		*end = req->steps;
	if (*begin < 0)
		*begin = 0;
	if (*end > req->steps)
		*end = req->steps;
	if (*begin > *end)
		*begin = *end;
}


/* Wan's VAE: time 4x (the first frame alone), space 8x. */
static void
s_latent_shape(const dg_request_t *req, int64_t shape[4])
{
	shape[0] = DG_REF_CHANNELS;
	shape[1] = (req->frames - 1) / 4 + 1;
	shape[2] = req->height / 8;
	shape[3] = req->width / 8;
}

static int
s_plan_role(s_role_t role, dg_expert_t expert, const dg_request_t *req,
    dg_tensor_plan_t *in, dg_tensor_plan_t *out, char *why, size_t whysize)
{
	in->n = 0;
	out->n = 0;
	if (dg_stage_ref_check(req, why, whysize) < 0)
		return -1;
	const int64_t context[2] = { DG_REF_TEXT_LEN, DG_REF_TEXT_DIM };
	int64_t latents[4];
	s_latent_shape(req, latents);
	int rc = 0;
	if (role == ROLE_ENCODER || role == ROLE_TRANSFORMER)
		rc |= dg_tensor_plan_add(role == ROLE_ENCODER ? out : in,
		    "context", "bf16", 2, context);
	/* One of two experts: the first hands the context on with its
	 * latents, the second continues from them. */
	if (role == ROLE_TRANSFORMER && expert == DG_EXPERT_LOW)
		rc |= dg_tensor_plan_add(in, "latents", "f32", 4, latents);
	if (role == ROLE_TRANSFORMER && expert == DG_EXPERT_HIGH)
		rc |= dg_tensor_plan_add(out, "context", "bf16", 2, context);
	if (role == ROLE_TRANSFORMER || role == ROLE_DECODER)
		rc |= dg_tensor_plan_add(role == ROLE_TRANSFORMER ? out : in,
		    "latents", "f32", 4, latents);
	if (rc < 0) {
		/* Unreachable within the checked limits. */
		snprintf(why, whysize, "tensor too large");
		return -1;
	}
	return 0;
}

int
dg_stage_ref_plan(const char *stage, int expert, const dg_request_t *req,
    dg_tensor_plan_t *in, dg_tensor_plan_t *out, char *why, size_t whysize)
{
	static const char *const names[] = {
		"ref-encoder", "ref-transformer", "ref-decoder",
	};

	for (int role = 0; role < 3; role++)
		if (stage && strcmp(stage, names[role]) == 0)
			return s_plan_role((s_role_t)role, (dg_expert_t)expert,
			    req, in, out, why, whysize) < 0 ? -1 : 1;
	return 0;
}

static int
s_init_role(s_role_t role, const dg_stage_env_t *env, void **state, char *why,
    size_t whysize)
{
	const char *name = role == ROLE_ENCODER ? "ref-encoder" :
	    role == ROLE_TRANSFORMER ? "ref-transformer" : "ref-decoder";
	/* A role of the default chain must be this stage's own; a role the
	 * configuration names (two experts "high" and "low") may run any. */
	bool known = false;
	for (int i = 0; env->role && i < 3; i++)
		known |= strcmp(env->role, s_role_names[i]) == 0;
	if (known && strcmp(env->role, s_role_names[role]) != 0) {
		snprintf(why, whysize, "stage %s is for role %s, this daemon's "
		    "role is %s", name, s_role_names[role], env->role);
		return -1;
	}
	s_ref_t *self = calloc(1, sizeof *self);
	if (!self) {
		snprintf(why, whysize, "out of memory");
		return -1;
	}
	self->role = role;
	self->expert = DG_EXPERT_ALL;
	if (env->abi >= 3 && env->expert && role == ROLE_TRANSFORMER)
		self->expert = !strcmp(env->expert, "high") ? DG_EXPERT_HIGH :
		    !strcmp(env->expert, "low") ? DG_EXPERT_LOW : DG_EXPERT_ALL;
	self->step_ms = env->step_ms;
	self->clock = (dg_stage_clock_t){ .progress = env->progress,
	    .step = env->abi >= 4 ? env->step : NULL,
	    .suspend = env->abi >= 5 ? env->suspend : NULL,
	    .denoise = role == ROLE_TRANSFORMER };
	for (int b = 0; b < 256; b++) {
		/* Exact: an int8 over 64 needs 8 significant bits, bf16 has 8. */
		float f = (float)(int8_t)b / 64.0f;
		uint32_t bits;
		memcpy(&bits, &f, sizeof bits);
		self->bf16[b] = (uint16_t)(bits >> 16);
	}
	if (role == ROLE_DECODER &&
	    !(self->output_dir = dg_stage_output_dir(env->output_dir, why,
	    whysize))) {
		free(self);
		return -1;
	}
	*state = self;
	return 0;
}

static int
s_plan(void *state, const dg_request_t *req, dg_tensor_plan_t *in,
    dg_tensor_plan_t *out, char *why, size_t whysize)
{
	const s_ref_t *self = state;
	return s_plan_role(self->role, self->expert, req, in, out, why,
	    whysize);
}

/* What the daemon hands over is what plan said.  Clears the item's
 * results first: every run starts from an item with none. */
static int
s_check_item(const s_ref_t *self, dg_stage_item_t *it)
{
	it->error[0] = it->output[0] = it->digest[0] = '\0';
	it->output_bytes = 0;
	dg_tensor_plan_t in, out;
	char why[200];
	if (s_plan_role(self->role, self->expert, it->req, &in, &out, it->error,
	    sizeof it->error) < 0)
		return -1;
	if (dg_tensor_plan_match(it->in_plan, &in, why, sizeof why) < 0) {
		snprintf(it->error, sizeof it->error, "inputs: %s", why);
		return -1;
	}
	if (dg_tensor_plan_match(it->out_plan, &out, why, sizeof why) < 0) {
		snprintf(it->error, sizeof it->error, "outputs: %s", why);
		return -1;
	}
	return 0;
}

static void
s_fini(void *state)
{
	s_ref_t *self = state;
	if (!self)
		return;
	free(self->output_dir);
	free(self);
}

/* ---- encoder ----------------------------------------------------------- */

/* A token per four bytes of prompt (about umT5's rate), rows past the
 * last token zero, as Wan pads its context. */
static void
s_encode(const s_ref_t *self, const dg_request_t *req, uint16_t *ctx)
{
	const char *neg = req->negative_prompt ? req->negative_prompt : "";
	size_t len = strlen(req->prompt);
	uint64_t key = XXH3_64bits_withSeed(req->prompt, len,
	    (uint64_t)req->seed);
	key = XXH3_64bits_withSeed(neg, strlen(neg), key);
	size_t ntok = len / 4 + 1;
	if (ntok > DG_REF_TEXT_LEN)
		ntok = DG_REF_TEXT_LEN;
	uint64_t n = 0;
	for (size_t t = 0; t < ntok; t++) {
		uint16_t *row = ctx + t * DG_REF_TEXT_DIM;
		for (size_t d = 0; d < DG_REF_TEXT_DIM; d += 8) {
			uint64_t r = s_mix(key + ++n * GOLDEN);
			for (int b = 0; b < 8; b++)
				row[d + (size_t)b] =
				    self->bf16[(r >> (8 * b)) & 0xff];
		}
	}
	memset(ctx + ntok * DG_REF_TEXT_DIM, 0,
	    (DG_REF_TEXT_LEN - ntok) * DG_REF_TEXT_DIM * sizeof *ctx);
}

static int
s_encoder_init(const dg_stage_env_t *env, void **state, char *why,
    size_t whysize)
{
	return s_init_role(ROLE_ENCODER, env, state, why, whysize);
}

static int
s_encoder_run(void *state, dg_stage_item_t *items, size_t n)
{
	const s_ref_t *self = state;
	for (size_t i = 0; i < n; i++) {
		dg_stage_item_t *it = &items[i];
		if (s_check_item(self, it) == 0)
			s_encode(self, it->req, it->out[0]);
	}
	dg_stage_take_time(items, n, 1, self->step_ms, &self->clock);
	return 0;
}

/* ---- transformer ------------------------------------------------------- */

/* A bf16 as Q8, clamped: whatever another encoder sends, no overflow. */
static inline int32_t
s_bf16_q8(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, sizeof f);
	if (f != f)
		return 0;
	f = f > 64.0f ? 64.0f : f < -64.0f ? -64.0f : f;
	return (int32_t)(f * 256.0f);
}

/* The context, projected to SUMMARY values per latent channel, in Q16
 * within +-1.5: what "conditioning" means here.  Channel c reads
 * dimensions c*256 .. c*256+255 of every token, with weights that change
 * from token to token. */
static void
s_summarize(const uint16_t *ctx, int32_t sum[DG_REF_CHANNELS][SUMMARY])
{
	static const int32_t w[8] = { 3, -2, 1, -1, 2, -3, 1, 1 };
	int64_t acc[DG_REF_CHANNELS][SUMMARY];
	memset(acc, 0, sizeof acc);
	for (size_t t = 0; t < DG_REF_TEXT_LEN; t++) {
		const uint16_t *row = ctx + t * DG_REF_TEXT_DIM;
		/* Padding rows add nothing: skipping them only saves time. */
		uint16_t any = 0;
		for (size_t d = 0; d < DG_REF_TEXT_DIM; d++)
			any |= row[d];
		if (!any)
			continue;
		for (size_t c = 0; c < DG_REF_CHANNELS; c++)
			for (size_t k = 0; k < SUMMARY; k++) {
				const uint16_t *p = row + c * 256 + k * 4;
				int32_t s = 0;
				for (size_t j = 0; j < 4; j++)
					s += s_bf16_q8(p[j]) * w[(t + j) & 7];
				acc[c][k] += s;
			}
	}
	int64_t max = 0;
	for (size_t c = 0; c < DG_REF_CHANNELS; c++)
		for (size_t k = 0; k < SUMMARY; k++) {
			int64_t a = acc[c][k] < 0 ? -acc[c][k] : acc[c][k];
			if (a > max)
				max = a;
		}
	for (size_t c = 0; c < DG_REF_CHANNELS; c++)
		for (size_t k = 0; k < SUMMARY; k++)
			sum[c][k] = max ? (int32_t)(acc[c][k] * (3 * Q16 / 2) /
			    max) : 0;
}

/* Gaussian-ish (four bytes summed) in Q16, within +-3.5. */
static inline int32_t
s_noise(uint32_t r)
{
	int32_t s = (int32_t)(r & 0xff) + (int32_t)((r >> 8) & 0xff) +
	    (int32_t)((r >> 16) & 0xff) + (int32_t)(r >> 24);
	return (s - 510) * 443;         /* sd of the sum is 147.8 */
}

/* Denoise: from seeded noise, each step pulls every latent toward the
 * context's target by a growing fraction and blends it with its
 * horizontal neighbours.  Both weights sum to at most one, so values stay
 * within +-2^18 and the products within int32.  A row depends only on
 * itself, so all steps run on one row while it is in L1; the result is
 * the same as step by step over the whole tensor.
 *
 * Only the steps [begin, end) run here; a second expert starts from the
 * first's latents (`from`, f32).  Q16 to f32 and back is exact within
 * +-2^18, so two experts give the bytes one transformer gives. */
static void
s_transform(const dg_request_t *req, const uint16_t *ctx, const float *from,
    int32_t *lat)
{
	int32_t sum[DG_REF_CHANNELS][SUMMARY];
	int32_t a[DG_REF_MAX_STEPS];
	int32_t cur[LAT_W_MAX + 2], next[LAT_W_MAX + 2], tgt[LAT_W_MAX];
	int64_t shape[4];
	s_latent_shape(req, shape);
	const int64_t F = shape[1], h = shape[2], w = shape[3];
	const int64_t steps = req->steps;
	int64_t begin, end;

	s_step_range(req, &begin, &end);
	s_summarize(ctx, sum);
	for (int64_t s = 0; s < steps; s++)
		a[s] = (int32_t)(64 + 832 * (s + 1) / steps);   /* <= 7/8 */

	uint64_t key = s_mix((uint64_t)req->seed ^ 0x6a09e667f3bcc908ULL);
	uint64_t total = (uint64_t)(DG_REF_CHANNELS * F * h * w);
	if (from) {
		for (uint64_t i = 0; i < total; i++)
			lat[i] = (int32_t)(from[i] * (float)Q16);
	} else {
		for (uint64_t i = 0; i < total; i += 2) {
			uint64_t r = s_mix(key + (i / 2 + 1) * GOLDEN);
			lat[i] = s_noise((uint32_t)r);
			lat[i + 1] = s_noise((uint32_t)(r >> 32));
		}
	}

	for (int64_t c = 0; c < DG_REF_CHANNELS; c++)
		for (int64_t f = 0; f < F; f++)
			for (int64_t y = 0; y < h; y++) {
				/* The target moves with time: a plaid of the
				 * channel's summary, shifted by frame. */
				int32_t sy = sum[c][((y + 2 * f) & 63) ^ 32];
				for (int64_t x = 0; x < w; x++)
					tgt[x] = (sum[c][(x + f) & 63] + sy) >> 1;
				int32_t *v = lat + ((c * F + f) * h + y) * w;
				memcpy(cur + 1, v, (size_t)w * sizeof *v);
				for (int64_t s = begin; s < end; s++) {
					cur[0] = cur[1];
					cur[w + 1] = cur[w];
					for (int64_t x = 1; x <= w; x++) {
						int32_t o = cur[x];
						next[x] = o + (((tgt[x - 1] - o) *
						    a[s]) >> 10) + ((cur[x - 1] +
						    cur[x + 1] - 2 * o) >> 4);
					}
					memcpy(cur + 1, next + 1,
					    (size_t)w * sizeof *v);
				}
				memcpy(v, cur + 1, (size_t)w * sizeof *v);
			}

	/* Q16 to f32 in place, exactly.  The buffer is the daemon's memory
	 * (no declared type), so storing floats over the ints is allowed. */
	float *fl = (float *)lat;
	for (uint64_t i = 0; i < total; i++)
		fl[i] = (float)lat[i] * (1.0f / Q16);
}

static int
s_transformer_init(const dg_stage_env_t *env, void **state, char *why,
    size_t whysize)
{
	return s_init_role(ROLE_TRANSFORMER, env, state, why, whysize);
}

static int
s_transformer_run(void *state, dg_stage_item_t *items, size_t n)
{
	const s_ref_t *self = state;
	int64_t steps = 0;
	for (size_t i = 0; i < n; i++) {
		dg_stage_item_t *it = &items[i];
		if (s_check_item(self, it) < 0)
			continue;
		int64_t begin, end;
		s_step_range(it->req, &begin, &end);
		bool hand_on = self->expert == DG_EXPERT_HIGH;
		s_transform(it->req, it->in[0], self->expert == DG_EXPERT_LOW ?
		    it->in[1] : NULL, it->out[hand_on ? 1 : 0]);
		if (hand_on)
			memcpy(it->out[0], it->in[0], it->out_plan->t[0].bytes);
		if (end - begin > steps)
			steps = end - begin;
	}
	/* The batch runs as long as its longest request. */
	dg_stage_take_time(items, n, steps, self->step_ms, &self->clock);
	return 0;
}

/* ---- decoder ----------------------------------------------------------- */

/* A latent value as Q8, clamped to +-8 (NaN as 0). */
static inline int32_t
s_f32_q8(float v)
{
	if (v != v)
		return 0;
	v = v > 8.0f ? 8.0f : v < -8.0f ? -8.0f : v;
	return (int32_t)(v * 256.0f);
}

static inline uint8_t
s_u8(int32_t v)
{
	return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int
s_decode(const s_ref_t *self, const dg_request_t *req, const float *lat,
    char *output, size_t outsize, uint64_t *bytes, char *digest,
    size_t digestsize, char *why, size_t whysize)
{
	/* The VAE's 16 channels to Y, U, V: fixed small integer weights. */
	static const int32_t wy[16] = {
		5, -3, 4, 2, -2, 3, -4, 1, 2, -1, 3, -2, 1, 2, -3, 1 };
	static const int32_t wu[16] = {
		2, 4, -1, -3, 3, 1, 2, -4, -2, 3, 1, 2, -1, -3, 4, 1 };
	static const int32_t wv[16] = {
		-3, 1, 3, 2, -4, 2, 1, 3, 4, -2, -1, -3, 2, 1, 2, -2 };
	int64_t shape[4];
	s_latent_shape(req, shape);
	const int64_t F = shape[1], h = shape[2], w = shape[3];
	const int W = (int)req->width, H = (int)req->height;
	const size_t plane = (size_t)h * (size_t)w;     /* per channel, frame */

	if (snprintf(output, outsize, "%s/%" PRIu64 ".y4m", self->output_dir,
	    req->request) >= (int)outsize) {
		snprintf(why, whysize, "output path too long");
		return -1;
	}
	dg_y4m_t *y4m = dg_y4m_new(output, W, H, req->frames, why, whysize);
	if (!y4m)
		return -1;
	uint8_t *Y = dg_y4m_frame(y4m);
	uint8_t *U = Y + (size_t)W * (size_t)H;
	uint8_t *V = U + (size_t)(W / 2) * (size_t)(H / 2);
	for (int64_t f = 0; f < F; f++) {
		for (int64_t y = 0; y < h; y++) {
			uint8_t *yrow = Y + (size_t)(8 * y) * (size_t)W;
			uint8_t *urow = U + (size_t)(4 * y) * (size_t)(W / 2);
			uint8_t *vrow = V + (size_t)(4 * y) * (size_t)(W / 2);
			for (int64_t x = 0; x < w; x++) {
				const float *p = lat + (size_t)f * plane +
				    (size_t)(y * w + x);
				int32_t sy = 0, su = 0, sv = 0;
				for (int c = 0; c < DG_REF_CHANNELS; c++) {
					int32_t q = s_f32_q8(p[(size_t)c *
					    (size_t)F * plane]);
					sy += wy[c] * q;
					su += wu[c] * q;
					sv += wv[c] * q;
				}
				memset(yrow + 8 * x, s_u8(128 + (sy >> 4)), 8);
				memset(urow + 4 * x, s_u8(128 + (su >> 5)), 4);
				memset(vrow + 4 * x, s_u8(128 + (sv >> 5)), 4);
			}
			/* Nearest upsampling: repeat the rows. */
			for (int r = 1; r < 8; r++)
				memcpy(yrow + (size_t)r * (size_t)W, yrow,
				    (size_t)W);
			for (int r = 1; r < 4; r++) {
				memcpy(urow + (size_t)r * (size_t)(W / 2), urow,
				    (size_t)(W / 2));
				memcpy(vrow + (size_t)r * (size_t)(W / 2), vrow,
				    (size_t)(W / 2));
			}
		}
		/* The first latent frame is one video frame, each other
		 * four: 1 + 4 (F' - 1) = frames. */
		if (dg_y4m_write(y4m, f == 0 ? 1 : 4, why, whysize) < 0) {
			dg_y4m_destroy(&y4m);
			return -1;
		}
	}
	int rc = dg_y4m_commit(y4m, bytes, digest, digestsize, why, whysize);
	dg_y4m_destroy(&y4m);
	return rc;
}

static int
s_decoder_init(const dg_stage_env_t *env, void **state, char *why,
    size_t whysize)
{
	return s_init_role(ROLE_DECODER, env, state, why, whysize);
}

static int
s_decoder_run(void *state, dg_stage_item_t *items, size_t n)
{
	const s_ref_t *self = state;
	for (size_t i = 0; i < n; i++) {
		dg_stage_item_t *it = &items[i];
		if (s_check_item(self, it) < 0)
			continue;
		if (s_decode(self, it->req, it->in[0], it->output,
		    sizeof it->output, &it->output_bytes, it->digest,
		    sizeof it->digest, it->error, sizeof it->error) < 0) {
			it->output[0] = '\0';
			it->output_bytes = 0;
		}
	}
	dg_stage_take_time(items, n, 1, self->step_ms, &self->clock);
	return 0;
}

const dg_stage_ops_t dg_stage_ref_encoder_ops = {
	.abi = DG_STAGE_ABI, .name = "ref-encoder",
	.init = s_encoder_init, .plan = s_plan, .run = s_encoder_run,
	.fini = s_fini,
};

const dg_stage_ops_t dg_stage_ref_transformer_ops = {
	.abi = DG_STAGE_ABI, .name = "ref-transformer",
	.init = s_transformer_init, .plan = s_plan, .run = s_transformer_run,
	.fini = s_fini,
};

const dg_stage_ops_t dg_stage_ref_decoder_ops = {
	.abi = DG_STAGE_ABI, .name = "ref-decoder",
	.init = s_decoder_init, .plan = s_plan, .run = s_decoder_run,
	.fini = s_fini,
};

/* ---- all three in one process ------------------------------------------ */

int
dg_stage_ref_run(const dg_request_t *req, const char *output_dir,
    dg_stage_ref_result_t *res, char *why, size_t whysize)
{
	const dg_stage_ops_t *const ops[3] = {
		&dg_stage_ref_encoder_ops, &dg_stage_ref_transformer_ops,
		&dg_stage_ref_decoder_ops,
	};
	dg_stage_env_t envs[3];
	for (int s = 0; s < 3; s++)
		envs[s] = (dg_stage_env_t){
			.abi = DG_STAGE_ABI, .role = s_role_names[s],
			.name = ops[s]->name, .step_ms = 0,
			.output_dir = output_dir, .device = -1,
			.place = s, .places = 3,
		};
	dg_stage_chain_result_t chain;
	dg_request_t reqs[3] = { *req, *req, *req };
	memset(res, 0, sizeof *res);
	if (dg_stage_chain_run(ops, envs, 3, reqs, &chain, why, whysize) < 0)
		return -1;
	snprintf(res->output, sizeof res->output, "%s", chain.output);
	res->bytes = chain.bytes;
	snprintf(res->digest, sizeof res->digest, "%s", chain.digest);
	for (int s = 0; s < 3; s++)
		res->ms[s] = chain.ms[s];
	return 0;
}
