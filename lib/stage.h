/*  stage.h: the stage plugin ABI (ARCHITECTURE.md, "Stages").
 *
 *  A stage is the work one daemon does on a request: the encoder turns a
 *  prompt into a text context, the transformer denoises latents, the
 *  decoder turns latents into a video file.  The daemon moves tensors;
 *  the plugin computes.  Four calls:
 *
 *    init   once at start-up (models load once, not per request);
 *    plan   the tensors a request needs in and makes out, from its
 *           parameters alone, so the next stage can reserve memory before
 *           the data exists;
 *    run    a batch of up to max_batch requests whose inputs are ready;
 *    fini   at exit.
 *
 *  Built in: "null" (no work, tiny tensors, for benchmarks), and
 *  "ref-encoder", "ref-transformer", "ref-decoder": deterministic,
 *  bit-reproducible reference stages with Wan-like tensor shapes;
 *  "python:MODULE:CLASS", a Python class run on embedded CPython
 *  (stage_python.c, disagg-python(7)).  Any other name is the path of a
 *  shared object exporting `const dg_stage_ops_t *dg_stage_entry(void)`.
 *
 *  This header is the whole plugin ABI (installed; disagg-stage(3)).  The
 *  structs below cross a dlopen boundary: they only ever grow at the
 *  end, and `abi` says which version a plugin was built against.  A
 *  daemon loads plugins built for its ABI or an older one.  */
#ifndef DG_STAGE_H
#define DG_STAGE_H

#include <stddef.h>
#include <stdint.h>

/* 2: dg_stage_env_t gained stage, python_path, memory, config_file,
 * options, option_lines and the pool's address and size.
 * 3: dg_request_t gained step_begin and step_end, dg_stage_env_t
 * expert; env->role is the role's name in the configuration's chain,
 * whatever it is.
 * 4: dg_stage_env_t gained step, which says how far a request's
 * denoising has come (clients that asked see it).
 * 5: preemption at step boundaries: *item->stop may say DG_STAGE_YIELD,
 * dg_stage_env_t gained suspend and dg_request_t resume_step. */
#define DG_STAGE_ABI         5
#define DG_STAGE_MAX_TENSORS 8
#define DG_STAGE_MAX_DIMS    6

/* What a stage knows of a request. */
typedef struct {
	uint64_t request;
	uint64_t room;
	const char *prompt;
	const char *negative_prompt;    /* "" when none */
	int64_t frames, height, width, steps, seed;
	/* ABI 3 and later: the denoising steps this stage runs, [begin,
	 * end) of 0..steps: all of them, unless the section's `expert` says
	 * this stage is one of two experts split at a `boundary` (see
	 * dg_stage_env_t.expert for what each hands on).  */
	int64_t step_begin, step_end;
	/* ABI 5 and later: 0, or the steps a room suspended after (see
	 * DG_STAGE_YIELD), counted as for env->step: its outputs hold what
	 * the stage left there when it suspended, and the run goes on from
	 * there. */
	int64_t resume_step;
} dg_request_t;

/* *item->stop: 0 run on; DG_STAGE_STOP give up (the room was released
 * or cancelled); DG_STAGE_YIELD (only for plugins built for ABI 5 or
 * later) a more urgent room waits: a stage that can, at its next step
 * boundary, leaves in its outputs what it needs to go on, calls
 * env->suspend and returns that item without error; the room keeps its
 * memory and runs again later on this daemon with req->resume_step.  A
 * stage that cannot just runs on. */
#define DG_STAGE_STOP  1
#define DG_STAGE_YIELD 2

typedef struct {
	char name[32];
	char dtype[8];                  /* "f32", "bf16", "u8" */
	int64_t shape[DG_STAGE_MAX_DIMS];
	int ndim;
	uint64_t bytes;                 /* exact: product of shape * size */
} dg_tensor_spec_t;

typedef struct {
	dg_tensor_spec_t t[DG_STAGE_MAX_TENSORS];
	size_t n;
} dg_tensor_plan_t;

/* Where the plugin runs: filled by the daemon from its section. */
typedef struct {
	uint32_t abi;                   /* DG_STAGE_ABI of the daemon */
	const char *role;               /* its role in the chain: "encoder",
	                                   "transformer", "decoder", or any
	                                   name [pipeline] stages gives */
	const char *name;               /* the section's name, e.g. "t0" */
	int64_t step_ms;                /* added cost per step (ref, null) */
	const char *output_dir;         /* decoder: where files go */
	int device;                     /* CUDA device, or -1 for none */
	/* Call from run() whenever a step is done: a worker silent for
	 * stall_ms marks the daemon unhealthy and the controller sends it
	 * no new work.  NULL when the daemon does not watch. */
	void (*progress)(void);
	/* ABI 2 and later: */
	const char *stage;              /* the section's `stage` */
	const char *python_path;        /* `python_path`, folders with ':' */
	const char *memory;             /* "host" or "cuda" */
	const char *config_file;        /* the file, for messages */
	/* The section's keys that the key table does not know, which a
	 * python: stage's class may declare: key, value, key, value, ...,
	 * NULL; and the line of each key.  Never NULL. */
	const char *const *options;
	const int *option_lines;
	void *pool_base;                /* the registered pool */
	uint64_t pool_bytes;
	/* ABI 3 and later: "all", or "high" or "low" for one of two
	 * experts (the section's `expert`).  A high expert hands its
	 * latents on with what the low one needs, a low expert continues
	 * from them, whatever steps the request leaves each of them (a
	 * 1-step request leaves none to the low expert).  NULL: "all". */
	const char *expert;
	/* ABI 3: the stage's place in the chain, 0 .. places - 1: the
	 * first takes the request alone, the last writes the output. */
	int place, places;
	/* ABI 4 and later: call from run() when request item->req->room
	 * has done `step` of its `steps` (1 .. steps, counted over the
	 * whole request, so an expert that runs steps 25..49 of 50 says 26
	 * to 50).  It also counts as progress (above).  Thread-safe, cheap
	 * (the daemon keeps the latest and forwards it at most every 100
	 * ms), never blocks.  NULL when the daemon does not take it. */
	void (*step)(uint64_t room, int64_t step, int64_t steps);
	/* ABI 5 and later: call from run() for an item asked to yield
	 * (DG_STAGE_YIELD) once its state after `step` steps (counted as
	 * for `step`) is in its outputs, then return the item without
	 * error.  Thread-safe; NULL when the daemon does not preempt. */
	void (*suspend)(uint64_t room, int64_t step);
} dg_stage_env_t;

/* One request of a batch.  Inputs and outputs are host memory inside the
 * daemon's pool, laid out as `plan` said; the plugin writes outputs in
 * place.  A stage that writes a file (the decoder) reports it. */
typedef struct {
	const dg_request_t *req;
	const dg_tensor_plan_t *in_plan;
	const void *in[DG_STAGE_MAX_TENSORS];
	const dg_tensor_plan_t *out_plan;
	void *out[DG_STAGE_MAX_TENSORS];
	/* Filled by run(): */
	char output[1024];              /* file written, or "" */
	uint64_t output_bytes;
	char digest[40];                /* hex digest of the file */
	char error[256];                /* non-empty: this item failed */
	/* Set (non-zero) by the daemon when the room was released or
	 * cancelled while running: a long stage should look between steps
	 * and give up, so that the room's memory is freed soon.  NULL for
	 * daemons older than this field. */
	const _Atomic int *stop;
} dg_stage_item_t;

typedef struct dg_stage_ops {
	uint32_t abi;                   /* DG_STAGE_ABI the plugin was built for */
	const char *name;
	/* 0, or -1 with a reason.  *state is the plugin's own. */
	int (*init)(const dg_stage_env_t *env, void **state, char *why,
	    size_t whysize);
	/* Tensors in and out for `req`; 0, or -1 when the request's
	 * parameters cannot be served (the reason goes to the client). */
	int (*plan)(void *state, const dg_request_t *req, dg_tensor_plan_t *in,
	    dg_tensor_plan_t *out, char *why, size_t whysize);
	/* Run n items; an item that fails says so in its `error`.  Returns
	 * 0, or -1 when the whole batch failed. */
	int (*run)(void *state, dg_stage_item_t *items, size_t n);
	void (*fini)(void *state);
} dg_stage_ops_t;

/* Exported by an external plugin. */
typedef const dg_stage_ops_t *(dg_stage_entry_fn)(void);
#define DG_STAGE_ENTRY "dg_stage_entry"

#endif
