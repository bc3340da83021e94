/*  stage.c: finding a stage (built-in or dlopen'd plugin) and the tensor
 *  spec helpers every stage and daemon uses.  The stages themselves are
 *  in stage_null.c and stage_ref.c.  */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "stage_host.h"
#include "log.h"
#include "stage_builtin.h"
#include "y4m.h"
#include "trust.h"

static const dg_stage_ops_t *const s_builtins[] = {
	&dg_stage_null_ops,
	&dg_stage_ref_encoder_ops,
	&dg_stage_ref_transformer_ops,
	&dg_stage_ref_decoder_ops,
};
#define NBUILTINS (sizeof s_builtins / sizeof s_builtins[0])
#define BUILTIN_LIST "null, ref-encoder, ref-transformer, ref-decoder, " \
	"python:MODULE:CLASS"

/* Checks what a plugin handed back; the reason names `path`. */
static int
s_check_ops(const char *path, const dg_stage_ops_t *ops, char *why,
    size_t whysize)
{
	if (!ops) {
		snprintf(why, whysize, "stage plugin %s: %s() returned NULL",
		    path, DG_STAGE_ENTRY);
		return -1;
	}
	/* The structs only grow at the end: an older plugin reads a prefix
	 * of what this daemon fills in, a newer one would read past it. */
	if (ops->abi < 1 || ops->abi > DG_STAGE_ABI) {
		snprintf(why, whysize, "stage plugin %s was built for stage ABI "
		    "%" PRIu32 ", this program has ABI %d: rebuild it against "
		    "this stage.h", path, ops->abi, DG_STAGE_ABI);
		return -1;
	}
	const char *missing = !ops->init ? "init" : !ops->plan ? "plan" :
	    !ops->run ? "run" : !ops->fini ? "fini" : !ops->name ? "name" :
	    NULL;
	if (missing) {
		snprintf(why, whysize, "stage plugin %s has no %s (init, plan, "
		    "run, fini and name are all required)", path, missing);
		return -1;
	}
	return 0;
}

const dg_stage_ops_t *
dg_stage_find(const char *name, char *why, size_t whysize)
{
	if (!name || !*name) {
		snprintf(why, whysize, "no stage named: use one of "
		    BUILTIN_LIST ", or a plugin's path");
		return NULL;
	}
	for (size_t i = 0; i < NBUILTINS; i++)
		if (strcmp(name, s_builtins[i]->name) == 0)
			return s_builtins[i];
	if (strncmp(name, DG_STAGE_PYTHON_PREFIX,
	    strlen(DG_STAGE_PYTHON_PREFIX)) == 0)
		return &dg_stage_python_ops;

	/* Without a slash dlopen would search the library path, not the
	 * directory the name is relative to; a path is what was meant. */
	char path[4096];
	int builtin_like = strchr(name, '/') == NULL;
	if (snprintf(path, sizeof path, "%s%s", builtin_like ? "./" : "",
	    name) >= (int)sizeof path) {
		snprintf(why, whysize, "stage plugin path too long");
		return NULL;
	}
	dlerror();
	void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *err = dlerror();
		if (builtin_like)
			snprintf(why, whysize, "unknown stage '%s': not a "
			    "built-in (" BUILTIN_LIST ") and no plugin at %s "
			    "(%s)", name, path, err ? err : "dlopen failed");
		else
			snprintf(why, whysize, "cannot load stage plugin %s: %s",
			    path, err ? err : "dlopen failed");
		return NULL;
	}
	/* POSIX allows the object-to-function pointer conversion dlsym
	 * needs; ISO C does not, hence the memcpy. */
	void *sym = dlsym(lib, DG_STAGE_ENTRY);
	if (!sym) {
		const char *err = dlerror();
		snprintf(why, whysize, "stage plugin %s exports no %s: %s", path,
		    DG_STAGE_ENTRY, err ? err : "not found");
		dlclose(lib);
		return NULL;
	}
	dg_stage_entry_fn *entry;
	memcpy(&entry, &sym, sizeof entry);
	const dg_stage_ops_t *ops = entry();
	if (s_check_ops(path, ops, why, whysize) < 0) {
		dlclose(lib);
		return NULL;
	}
	/* The handle stays open for the life of the process: the ops and
	 * any state the plugin made point into it. */
	return ops;
}

size_t
dg_dtype_size(const char *dtype)
{
	static const struct {
		const char *name;
		size_t size;
	} types[] = {
		{ "f32", 4 }, { "bf16", 2 }, { "f16", 2 }, { "u8", 1 },
		{ "i32", 4 }, { "i64", 8 },
	};
	if (!dtype)
		return 0;
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (strcmp(dtype, types[i].name) == 0)
			return types[i].size;
	return 0;
}

int
dg_tensor_spec(dg_tensor_spec_t *t, const char *name, const char *dtype,
    int ndim, const int64_t *shape)
{
	size_t size = dg_dtype_size(dtype);
	if (!size || !name || strlen(name) >= sizeof t->name ||
	    ndim < 0 || ndim > DG_STAGE_MAX_DIMS || (ndim > 0 && !shape))
		return -1;
	uint64_t bytes = size;
	for (int i = 0; i < ndim; i++)
		if (shape[i] < 0 ||
		    __builtin_mul_overflow(bytes, (uint64_t)shape[i], &bytes))
			return -1;
	memset(t, 0, sizeof *t);
	snprintf(t->name, sizeof t->name, "%s", name);
	snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
	for (int i = 0; i < ndim; i++)
		t->shape[i] = shape[i];
	t->ndim = ndim;
	t->bytes = bytes;
	return 0;
}

int
dg_tensor_plan_add(dg_tensor_plan_t *plan, const char *name,
    const char *dtype, int ndim, const int64_t *shape)
{
	if (plan->n >= DG_STAGE_MAX_TENSORS)
		return -1;
	if (dg_tensor_spec(&plan->t[plan->n], name, dtype, ndim, shape) < 0)
		return -1;
	plan->n++;
	return 0;
}

static void
s_shape_str(const dg_tensor_spec_t *t, char *buf, size_t size)
{
	size_t len = (size_t)snprintf(buf, size, "[");
	for (int i = 0; i < t->ndim && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%" PRId64,
		    i ? ", " : "", t->shape[i]);
	if (len < size)
		snprintf(buf + len, size - len, "]");
}

int
dg_tensor_plan_match(const dg_tensor_plan_t *out, const dg_tensor_plan_t *in,
    char *why, size_t whysize)
{
	if (out->n != in->n) {
		snprintf(why, whysize, "%zu tensors made, %zu expected", out->n,
		    in->n);
		return -1;
	}
	for (size_t i = 0; i < in->n; i++) {
		const dg_tensor_spec_t *a = &out->t[i], *b = &in->t[i];
		int same_shape = a->ndim == b->ndim;
		for (int d = 0; same_shape && d < a->ndim; d++)
			same_shape = a->shape[d] == b->shape[d];
		if (strcmp(a->name, b->name) == 0 &&
		    strcmp(a->dtype, b->dtype) == 0 && same_shape &&
		    a->bytes == b->bytes)
			continue;
		char sa[128], sb[128];
		s_shape_str(a, sa, sizeof sa);
		s_shape_str(b, sb, sizeof sb);
		snprintf(why, whysize, "tensor %zu: made '%s' %s %s (%" PRIu64
		    " bytes), expected '%s' %s %s (%" PRIu64 " bytes)", i,
		    a->name, a->dtype, sa, a->bytes, b->name, b->dtype, sb,
		    b->bytes);
		return -1;
	}
	return 0;
}

/* mkdir -p: the decoder's directory may not exist yet. */
static int
s_mkdirs(const char *dir, char *why, size_t whysize)
{
	char path[1024];
	if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
		snprintf(why, whysize, "output_dir too long");
		return -1;
	}
	for (char *p = path + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			snprintf(why, whysize, "output_dir %s: cannot create %s: "
			    "%s", dir, path, strerror(errno));
			return -1;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(why, whysize, "output_dir %s is not a directory", dir);
		return -1;
	}
	return 0;
}

char *
dg_stage_output_dir(const char *dir, char *why, size_t whysize)
{
	if (!dir || !*dir)
		dir = "out";
	if (s_mkdirs(dir, why, whysize) < 0)
		return NULL;
	/* Absolute: the path goes to a client with another working
	 * directory, and a daemon may change its own later. */
	char *abs = realpath(dir, NULL);
	if (!abs) {
		snprintf(why, whysize, "output_dir %s: %s", dir, strerror(errno));
		return NULL;
	}
	/* Files are written there under names anyone could guess. */
	if (dg_trust_check(abs, "output folder", why, whysize) < 0) {
		free(abs);
		return NULL;
	}
	/* What a decoder killed mid-write left behind. */
	int stale = dg_y4m_collect(abs);
	if (stale > 0)
		dg_log_info("%s: removed %d unfinished files of decoders that "
		    "are gone", abs, stale);
	return abs;
}

void
dg_stage_steps(int expert, int64_t boundary, int64_t steps, int64_t *begin,
    int64_t *end)
{
	/* The high steps: s with (steps - s) * 1e6 >= boundary * steps,
	 * counted exactly in integers. */
	int64_t high = 0;
	while (high < steps && (steps - high) * 1000000 >= boundary * steps)
		high++;
	*begin = expert == DG_EXPERT_LOW ? high : 0;
	*end = expert == DG_EXPERT_HIGH ? high : steps;
}

void
dg_stage_cost(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Whether every item's stop says `what` (DG_STAGE_STOP, DG_STAGE_YIELD). */
static bool
s_all_say(const dg_stage_item_t *items, size_t n, int what)
{
	for (size_t i = 0; i < n; i++)
		if (!items[i].stop || atomic_load(items[i].stop) != what)
			return false;
	return true;
}

/* A released room's memory comes back when its batch does: the sleep
 * goes in slices, so that a batch whose rooms were all released ends
 * within one slice, however long a step is. */
#define STOP_SLICE_MS 20

/* Where item i's denoising starts this run, and how many steps it has
 * left: its range, less what it did before it was suspended. */
static int64_t
s_first(const dg_request_t *req)
{
	return req->resume_step > req->step_begin ? req->resume_step :
	    req->step_begin;
}

static int64_t
s_mine(const dg_request_t *req)
{
	int64_t left = req->step_end - s_first(req);
	return left > 0 ? left : 0;
}

/* Tell each item's request how far it is after step k (0-based) of a
 * batch that runs `steps`: an item whose range is shorter is done
 * sooner and says so once. */
static void
s_report_step(dg_stage_item_t *items, size_t n, int64_t k, int64_t steps,
    const dg_stage_clock_t *clock)
{
	for (size_t i = 0; i < n; i++) {
		const dg_request_t *req = items[i].req;
		if (!clock->denoise)
			clock->step(req->room, k + 1, steps);
		else if (k < s_mine(req))
			clock->step(req->room, s_first(req) + k + 1,
			    req->steps);
	}
}

/* Every room of the batch was asked to yield: each is suspended after
 * the steps it has done, and the worker is free for the urgent one. */
static void
s_suspend(dg_stage_item_t *items, size_t n, int64_t done,
    const dg_stage_clock_t *clock)
{
	for (size_t i = 0; i < n; i++) {
		const dg_request_t *req = items[i].req;
		int64_t mine = s_mine(req);
		clock->suspend(req->room, s_first(req) + (done < mine ? done :
		    mine));
	}
}

void
dg_stage_take_time(dg_stage_item_t *items, size_t n, int64_t steps,
    int64_t step_ms, const dg_stage_clock_t *clock)
{
	if (clock->denoise) {
		/* The longest of what the items have left. */
		steps = 0;
		for (size_t i = 0; i < n; i++)
			if (s_mine(items[i].req) > steps)
				steps = s_mine(items[i].req);
	}
	for (int64_t k = 0; step_ms > 0 && k < steps; k++) {
		/* A step boundary: yield here when asked to, with k done. */
		if (k > 0 && clock->denoise && clock->suspend &&
		    s_all_say(items, n, DG_STAGE_YIELD)) {
			s_suspend(items, n, k, clock);
			return;
		}
		for (int64_t slept = 0; slept < step_ms;
		    slept += STOP_SLICE_MS) {
			if (s_all_say(items, n, DG_STAGE_STOP)) {
				for (size_t i = 0; i < n; i++)
					snprintf(items[i].error,
					    sizeof items[i].error, "stopped "
					    "after %lld of %lld steps: the room "
					    "was released", (long long)k,
					    (long long)steps);
				return;
			}
			dg_stage_cost(step_ms - slept < STOP_SLICE_MS ?
			    step_ms - slept : STOP_SLICE_MS);
		}
		if (clock->step)
			s_report_step(items, n, k, steps, clock);
		else if (clock->progress)
			clock->progress();
	}
}
