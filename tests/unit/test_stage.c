/*  test_stage.c: the stage ABI and its stages.  Finding built-ins and
 *  plugins (and the errors when a plugin is missing or wrong), the
 *  reference stages' shapes, their refusals as a client reads them, their
 *  determinism, the Y4M file they write, and that dg_stage_ref_run is the
 *  three stages run by hand, which is what makes it the pipeline's
 *  oracle.  Small sizes throughout: the whole file runs in about a
 *  second.  */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "stage_host.h"
#include "stage_ref.h"

static char s_dir[256];

static int
s_setup(void **state)
{
	(void)state;
	const char *tmp = getenv("TMPDIR");
	snprintf(s_dir, sizeof s_dir, "%s/test_stage.XXXXXX", tmp ? tmp : "/tmp");
	return mkdtemp(s_dir) ? 0 : -1;
}

/* Empty the scratch directory (sub-directories one level deep). */
static void
s_clear(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char path[512];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (unlink(path) < 0) {
			s_clear(path);
			rmdir(path);
		}
	}
	closedir(d);
}

static int
s_teardown(void **state)
{
	(void)state;
	s_clear(s_dir);
	return rmdir(s_dir);
}

static uint8_t *
s_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	assert_true(n >= 0);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static dg_request_t
s_req(uint64_t id, int64_t frames, int64_t height, int64_t width,
    int64_t steps, int64_t seed)
{
	dg_request_t r = {
		.request = id, .room = id + 1000,
		.prompt = "a cat in a boxing ring", .negative_prompt = "",
		.frames = frames, .height = height, .width = width,
		.steps = steps, .seed = seed,
	};
	return r;
}

static void
s_plugin_path(char *buf, size_t size)
{
	const char *dir = getenv("DG_PLUGIN_DIR");
	snprintf(buf, size, "%s/example_stage.so",
	    dir ? dir : "build/tests/plugins");
}

/* ---- finding stages ---------------------------------------------------- */

static void
test_find(void **state)
{
	(void)state;
	char why[512], path[512];
	const char *names[] = {
		"null", "ref-encoder", "ref-transformer", "ref-decoder"
	};
	for (size_t i = 0; i < 4; i++) {
		const dg_stage_ops_t *ops = dg_stage_find(names[i], why,
		    sizeof why);
		assert_non_null(ops);
		assert_string_equal(ops->name, names[i]);
		assert_int_equal(ops->abi, DG_STAGE_ABI);
	}

	s_plugin_path(path, sizeof path);
	const dg_stage_ops_t *ops = dg_stage_find(path, why, sizeof why);
	if (!ops)
		fail_msg("%s", why);
	assert_string_equal(ops->name, "scale");
	/* Found twice: the same ops, the library is not loaded twice. */
	assert_ptr_equal(dg_stage_find(path, why, sizeof why), ops);

	assert_null(dg_stage_find("ref-nothing", why, sizeof why));
	assert_non_null(strstr(why, "unknown stage 'ref-nothing'"));
	assert_non_null(strstr(why, "null, ref-encoder, ref-transformer, "
	    "ref-decoder"));

	assert_null(dg_stage_find("", why, sizeof why));
	assert_non_null(strstr(why, "no stage named"));

	assert_null(dg_stage_find("build/no/such.so", why, sizeof why));
	assert_non_null(strstr(why, "cannot load stage plugin "
	    "build/no/such.so: "));
	assert_non_null(strstr(why, "No such file"));

	setenv("DG_EXAMPLE_BREAK", "abi", 1);
	assert_null(dg_stage_find(path, why, sizeof why));
	assert_non_null(strstr(why, path));
	char want[96];
	snprintf(want, sizeof want, "was built for stage ABI %d, this program "
	    "has ABI %d", DG_STAGE_ABI + 1, DG_STAGE_ABI);
	assert_non_null(strstr(why, want));
	setenv("DG_EXAMPLE_BREAK", "run", 1);
	assert_null(dg_stage_find(path, why, sizeof why));
	assert_non_null(strstr(why, "has no run"));
	setenv("DG_EXAMPLE_BREAK", "null", 1);
	assert_null(dg_stage_find(path, why, sizeof why));
	assert_non_null(strstr(why, "dg_stage_entry() returned NULL"));
	unsetenv("DG_EXAMPLE_BREAK");
	assert_non_null(dg_stage_find(path, why, sizeof why));
}

static void
test_no_entry(void **state)
{
	(void)state;
	char why[512];
	/* Any shared object without dg_stage_entry: the C library's. */
	const char *libs[] = {
		"/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6",
		"/usr/lib/libc.so.6", "/lib64/libc.so.6",
	};
	for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
		if (access(libs[i], R_OK) != 0)
			continue;
		assert_null(dg_stage_find(libs[i], why, sizeof why));
		assert_non_null(strstr(why, "exports no dg_stage_entry"));
		assert_non_null(strstr(why, libs[i]));
		return;
	}
	skip();
}

/* ---- specs and plans --------------------------------------------------- */

static void
test_spec(void **state)
{
	(void)state;
	assert_int_equal(dg_dtype_size("f32"), 4);
	assert_int_equal(dg_dtype_size("bf16"), 2);
	assert_int_equal(dg_dtype_size("f16"), 2);
	assert_int_equal(dg_dtype_size("u8"), 1);
	assert_int_equal(dg_dtype_size("i32"), 4);
	assert_int_equal(dg_dtype_size("i64"), 8);
	assert_int_equal(dg_dtype_size("f64x"), 0);
	assert_int_equal(dg_dtype_size(NULL), 0);

	dg_tensor_spec_t t;
	const int64_t s2[2] = { 512, 4096 };
	assert_int_equal(dg_tensor_spec(&t, "context", "bf16", 2, s2), 0);
	assert_string_equal(t.name, "context");
	assert_string_equal(t.dtype, "bf16");
	assert_int_equal(t.ndim, 2);
	assert_int_equal(t.bytes, 4194304);
	assert_int_equal(dg_tensor_spec(&t, "scalar", "i64", 0, NULL), 0);
	assert_int_equal(t.bytes, 8);

	const int64_t huge[3] = { INT64_C(1) << 31, INT64_C(1) << 31, 8 };
	assert_int_equal(dg_tensor_spec(&t, "x", "f32", 3, huge), -1);
	const int64_t neg[1] = { -1 };
	assert_int_equal(dg_tensor_spec(&t, "x", "f32", 1, neg), -1);
	assert_int_equal(dg_tensor_spec(&t, "x", "q4", 2, s2), -1);
	assert_int_equal(dg_tensor_spec(&t, "a-name-of-32-characters-or-longer",
	    "u8", 2, s2), -1);
	assert_int_equal(dg_tensor_spec(&t, "x", "u8", DG_STAGE_MAX_DIMS + 1,
	    s2), -1);

	dg_tensor_plan_t a = { .n = 0 }, b = { .n = 0 };
	for (int i = 0; i < DG_STAGE_MAX_TENSORS; i++)
		assert_int_equal(dg_tensor_plan_add(&a, "t", "u8", 2, s2), 0);
	assert_int_equal(dg_tensor_plan_add(&a, "t", "u8", 2, s2), -1);
	assert_int_equal(a.n, DG_STAGE_MAX_TENSORS);

	char why[256];
	a.n = 0;
	assert_int_equal(dg_tensor_plan_add(&a, "latents", "f32", 2, s2), 0);
	assert_int_equal(dg_tensor_plan_match(&a, &b, why, sizeof why), -1);
	assert_string_equal(why, "1 tensors made, 0 expected");
	const int64_t s2b[2] = { 512, 4095 };
	assert_int_equal(dg_tensor_plan_add(&b, "latents", "f32", 2, s2b), 0);
	assert_int_equal(dg_tensor_plan_match(&a, &b, why, sizeof why), -1);
	assert_string_equal(why, "tensor 0: made 'latents' f32 [512, 4096] "
	    "(8388608 bytes), expected 'latents' f32 [512, 4095] (8386560 "
	    "bytes)");
	b.n = 0;
	assert_int_equal(dg_tensor_plan_add(&b, "latents", "f32", 2, s2), 0);
	assert_int_equal(dg_tensor_plan_match(&a, &b, why, sizeof why), 0);
}

typedef struct {
	const dg_stage_ops_t *ops;
	void *state;
} s_stage_t;

static s_stage_t
s_open(const char *name, const char *role, const char *dir)
{
	char why[512];
	s_stage_t s = { NULL, NULL };
	s.ops = dg_stage_find(name, why, sizeof why);
	if (!s.ops)
		fail_msg("%s", why);
	dg_stage_env_t env = {
		.abi = DG_STAGE_ABI, .role = role, .name = "test",
		.step_ms = 0, .output_dir = dir, .device = -1,
	};
	if (s.ops->init(&env, &s.state, why, sizeof why) < 0)
		fail_msg("%s", why);
	return s;
}

static void
s_close(s_stage_t *s)
{
	s->ops->fini(s->state);
	s->state = NULL;
}

static void
test_plan_shapes(void **state)
{
	(void)state;
	s_stage_t e = s_open("ref-encoder", "encoder", NULL);
	s_stage_t t = s_open("ref-transformer", "transformer", NULL);
	s_stage_t d = s_open("ref-decoder", "decoder", s_dir);
	const struct {
		int64_t frames, height, width;
		int64_t shape[4];
		uint64_t bytes;
	} cases[] = {
		{ 81, 480, 832, { 16, 21, 60, 104 }, 8386560 },
		{ 5, 64, 64, { 16, 2, 8, 8 }, 8192 },
		{ 1, 16, 2048, { 16, 1, 2, 256 }, 32768 },
		{ 121, 720, 1280, { 16, 31, 90, 160 }, 28569600 },
	};
	char why[256];
	dg_tensor_plan_t in, out;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		dg_request_t r = s_req(1, cases[i].frames, cases[i].height,
		    cases[i].width, 50, 42);

		assert_int_equal(e.ops->plan(e.state, &r, &in, &out, why,
		    sizeof why), 0);
		assert_int_equal(in.n, 0);
		assert_int_equal(out.n, 1);
		assert_string_equal(out.t[0].name, "context");
		assert_string_equal(out.t[0].dtype, "bf16");
		assert_int_equal(out.t[0].ndim, 2);
		assert_int_equal(out.t[0].shape[0], 512);
		assert_int_equal(out.t[0].shape[1], 4096);
		assert_int_equal(out.t[0].bytes, 4 << 20);
		dg_tensor_plan_t ctx = out;

		assert_int_equal(t.ops->plan(t.state, &r, &in, &out, why,
		    sizeof why), 0);
		assert_int_equal(dg_tensor_plan_match(&ctx, &in, why,
		    sizeof why), 0);
		assert_int_equal(out.n, 1);
		assert_string_equal(out.t[0].name, "latents");
		assert_string_equal(out.t[0].dtype, "f32");
		assert_int_equal(out.t[0].ndim, 4);
		for (int k = 0; k < 4; k++)
			assert_int_equal(out.t[0].shape[k], cases[i].shape[k]);
		assert_int_equal(out.t[0].bytes, cases[i].bytes);
		dg_tensor_plan_t lat = out;

		assert_int_equal(d.ops->plan(d.state, &r, &in, &out, why,
		    sizeof why), 0);
		assert_int_equal(dg_tensor_plan_match(&lat, &in, why,
		    sizeof why), 0);
		assert_int_equal(out.n, 0);
	}
	s_close(&e);
	s_close(&t);
	s_close(&d);
}

static void
test_plan_rejects(void **state)
{
	(void)state;
	s_stage_t st[3] = {
		s_open("ref-encoder", "encoder", NULL),
		s_open("ref-transformer", "transformer", NULL),
		s_open("ref-decoder", "decoder", s_dir),
	};
	const struct {
		int64_t frames, height, width, steps;
		const char *prompt;
		const char *why;
	} cases[] = {
		{ 80, 480, 832, 50, "p", "frames must be 4k+1 (1, 5, ..., 81), "
		  "got 80" },
		{ 0, 480, 832, 50, "p", "frames must be between 1 and 1001, "
		  "got 0" },
		{ 1005, 480, 832, 50, "p", "frames must be between 1 and 1001, "
		  "got 1005" },
		{ 81, 100, 832, 50, "p", "height must be a multiple of 16 from "
		  "16 to 2048, got 100" },
		{ 81, 0, 832, 50, "p", "height must be a multiple of 16 from "
		  "16 to 2048, got 0" },
		{ 81, 480, 4096, 50, "p", "width must be a multiple of 16 from "
		  "16 to 2048, got 4096" },
		{ 81, 480, -16, 50, "p", "width must be a multiple of 16 from "
		  "16 to 2048, got -16" },
		{ 81, 480, 832, 0, "p", "steps must be between 1 and 1000, "
		  "got 0" },
		{ 81, 480, 832, 1001, "p", "steps must be between 1 and 1000, "
		  "got 1001" },
		{ 81, 480, 832, 50, "", "prompt must not be empty" },
		{ 81, 480, 832, 50, NULL, "prompt must not be empty" },
	};
	char why[256];
	dg_tensor_plan_t in, out;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		dg_request_t r = s_req(1, cases[i].frames, cases[i].height,
		    cases[i].width, cases[i].steps, 42);
		r.prompt = cases[i].prompt;
		assert_int_equal(dg_stage_ref_check(&r, why, sizeof why), -1);
		assert_string_equal(why, cases[i].why);
		for (int s = 0; s < 3; s++) {
			why[0] = '\0';
			assert_int_equal(st[s].ops->plan(st[s].state, &r, &in,
			    &out, why, sizeof why), -1);
			assert_string_equal(why, cases[i].why);
		}
	}
	/* The limits themselves are fine. */
	dg_request_t ok = s_req(1, 1001, 2048, 16, 1000, -5);
	assert_int_equal(dg_stage_ref_check(&ok, why, sizeof why), 0);
	for (int s = 0; s < 3; s++)
		s_close(&st[s]);

	/* A stage in the wrong daemon says so at start-up. */
	const dg_stage_ops_t *ops = dg_stage_find("ref-decoder", why,
	    sizeof why);
	dg_stage_env_t env = { .abi = DG_STAGE_ABI, .role = "encoder",
	    .device = -1 };
	void *s = NULL;
	assert_int_equal(ops->init(&env, &s, why, sizeof why), -1);
	assert_string_equal(why, "stage ref-decoder is for role decoder, this "
	    "daemon's role is encoder");
}

/* ---- what the reference stages make ------------------------------------ */

static void
s_ref(const dg_request_t *r, const char *sub, dg_stage_ref_result_t *res)
{
	char dir[512], why[512];
	snprintf(dir, sizeof dir, "%s/%s", s_dir, sub);
	if (dg_stage_ref_run(r, dir, res, why, sizeof why) < 0)
		fail_msg("%s", why);
}

static void
test_determinism(void **state)
{
	(void)state;
	dg_request_t r = s_req(7, 5, 64, 64, 4, 42);
	dg_stage_ref_result_t a, b, c;
	s_ref(&r, "a", &a);
	s_ref(&r, "b", &b);
	assert_string_equal(a.digest, b.digest);
	assert_int_equal(a.bytes, b.bytes);
	size_t la, lb;
	uint8_t *fa = s_slurp(a.output, &la), *fb = s_slurp(b.output, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(fa, fb, la);
	free(fa);
	free(fb);

	/* The same bytes on every machine: pinned, so that a change to the
	 * arithmetic is a deliberate one (update this with a reason). */
	assert_string_equal(a.digest, "d3947cc26d4de028ee6d0890dc109cd3");

	r.seed = 43;
	s_ref(&r, "c", &c);
	assert_string_not_equal(a.digest, c.digest);
	r.seed = 42;
	r.prompt = "a dog in a boxing ring";
	s_ref(&r, "c", &c);
	assert_string_not_equal(a.digest, c.digest);
	r.prompt = "a cat in a boxing ring";
	r.negative_prompt = "blurry";
	s_ref(&r, "c", &c);
	assert_string_not_equal(a.digest, c.digest);
	r.negative_prompt = "";
	r.steps = 5;
	s_ref(&r, "c", &c);
	assert_string_not_equal(a.digest, c.digest);
	/* The request id names the file, nothing else. */
	r.steps = 4;
	r.request = 8;
	s_ref(&r, "c", &c);
	assert_string_equal(a.digest, c.digest);
	assert_non_null(strstr(c.output, "/c/8.y4m"));
}

static void
test_y4m(void **state)
{
	(void)state;
	const int W = 96, H = 48, frames = 9;
	dg_request_t r = s_req(3, frames, H, W, 2, 1);
	dg_stage_ref_result_t res;
	s_ref(&r, "y", &res);

	/* An absolute path, for a client elsewhere. */
	char want_path[PATH_MAX + 16], *real = realpath(s_dir, NULL);
	assert_non_null(real);
	snprintf(want_path, sizeof want_path, "%s/y/3.y4m", real);
	free(real);
	assert_string_equal(res.output, want_path);
	size_t len;
	uint8_t *f = s_slurp(res.output, &len);
	const char head[] = "YUV4MPEG2 W96 H48 F16:1 Ip A1:1 C420jpeg\n";
	size_t hl = sizeof head - 1;
	size_t picture = (size_t)W * H * 3 / 2;
	assert_int_equal(len, hl + (size_t)frames * (6 + picture));
	assert_int_equal(res.bytes, len);
	assert_memory_equal(f, head, hl);
	for (int i = 0; i < frames; i++)
		assert_memory_equal(f + hl + (size_t)i * (6 + picture),
		    "FRAME\n", 6);

	/* Frames 1..4 come from one latent frame, 5..8 from the next. */
	const uint8_t *pic = f + hl + 6;
	size_t stride = 6 + picture;
	assert_memory_equal(pic + 1 * stride, pic + 4 * stride, picture);
	assert_memory_equal(pic + 5 * stride, pic + 8 * stride, picture);
	assert_memory_not_equal(pic + 0 * stride, pic + 1 * stride, picture);
	assert_memory_not_equal(pic + 4 * stride, pic + 5 * stride, picture);
	/* Nearest upsampling: 8x8 luma blocks. */
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			assert_int_equal(pic[y * W + x],
			    pic[(y / 8 * 8) * W + x / 8 * 8]);
	/* And not flat. */
	int distinct = 0;
	for (int x = 8; x < W; x += 8)
		distinct += pic[x] != pic[0];
	assert_true(distinct > 0);

	XXH128_hash_t h = XXH3_128bits(f, len);
	char hex[40];
	snprintf(hex, sizeof hex, "%016" PRIx64 "%016" PRIx64,
	    (uint64_t)h.high64, (uint64_t)h.low64);
	assert_string_equal(res.digest, hex);
	assert_int_equal(strlen(res.digest), 32);
	free(f);

	/* Only the file: the temporary name is gone. */
	char dir[512];
	snprintf(dir, sizeof dir, "%s/y", s_dir);
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' || strlen(e->d_name) > 2) {
			assert_string_equal(e->d_name, "3.y4m");
			n++;
		}
	closedir(d);
	assert_int_equal(n, 1);
}

/* ---- dg_stage_ref_run is the three stages ------------------------------ */

static void
test_by_hand(void **state)
{
	(void)state;
	char dir[512], why[256];
	snprintf(dir, sizeof dir, "%s/hand", s_dir);
	s_stage_t st[3] = {
		s_open("ref-encoder", "encoder", NULL),
		s_open("ref-transformer", "transformer", NULL),
		s_open("ref-decoder", "decoder", dir),
	};
	/* Two requests in one batch per stage, as a daemon with
	 * max_batch = 2 runs them. */
	dg_request_t r[2] = {
		s_req(11, 5, 64, 64, 4, 42), s_req(12, 9, 32, 48, 3, 9),
	};
	dg_tensor_plan_t in[3][2], out[3][2];
	void *buf[3][2] = { { NULL } };
	dg_stage_item_t items[2];
	for (int s = 0; s < 3; s++) {
		memset(items, 0, sizeof items);
		for (int i = 0; i < 2; i++) {
			assert_int_equal(st[s].ops->plan(st[s].state, &r[i],
			    &in[s][i], &out[s][i], why, sizeof why), 0);
			items[i].req = &r[i];
			items[i].in_plan = &in[s][i];
			items[i].out_plan = &out[s][i];
			if (s > 0)
				items[i].in[0] = buf[s - 1][i];
			if (out[s][i].n) {
				buf[s][i] = malloc(out[s][i].t[0].bytes);
				items[i].out[0] = buf[s][i];
			}
		}
		assert_int_equal(st[s].ops->run(st[s].state, items, 2), 0);
		for (int i = 0; i < 2; i++)
			assert_string_equal(items[i].error, "");
	}
	for (int i = 0; i < 2; i++) {
		dg_stage_ref_result_t res;
		s_ref(&r[i], "oracle", &res);
		assert_string_equal(items[i].digest, res.digest);
		assert_int_equal(items[i].output_bytes, res.bytes);
		size_t la, lb;
		uint8_t *a = s_slurp(items[i].output, &la);
		uint8_t *b = s_slurp(res.output, &lb);
		assert_int_equal(la, lb);
		assert_memory_equal(a, b, la);
		free(a);
		free(b);
	}

	/* Inputs that are not what plan said: an item error, no crash. */
	dg_tensor_plan_t bad = in[2][0];
	bad.t[0].shape[1]++;
	bad.t[0].bytes += 4096;
	memset(items, 0, sizeof items);
	items[0].req = &r[0];
	items[0].in_plan = &bad;
	items[0].in[0] = buf[1][0];
	items[0].out_plan = &out[2][0];
	assert_int_equal(st[2].ops->run(st[2].state, items, 1), 0);
	assert_non_null(strstr(items[0].error, "inputs: tensor 0: made "
	    "'latents' f32 [16, 3, 8, 8]"));
	assert_string_equal(items[0].output, "");

	for (int s = 0; s < 3; s++) {
		for (int i = 0; i < 2; i++)
			free(buf[s][i]);
		s_close(&st[s]);
	}
}

static void
test_ref_errors(void **state)
{
	(void)state;
	char why[512], dir[512];
	dg_stage_ref_result_t res;
	dg_request_t r = s_req(1, 80, 64, 64, 4, 42);
	assert_int_equal(dg_stage_ref_run(&r, s_dir, &res, why, sizeof why),
	    -1);
	assert_string_equal(why, "frames must be 4k+1 (1, 5, ..., 81), got 80");

	/* An output directory that cannot be made. */
	snprintf(dir, sizeof dir, "%s/file", s_dir);
	FILE *f = fopen(dir, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(dir, sizeof dir, "%s/file/sub", s_dir);
	r.frames = 5;
	assert_int_equal(dg_stage_ref_run(&r, dir, &res, why, sizeof why), -1);
	assert_non_null(strstr(why, "ref-decoder: output_dir "));
	assert_non_null(strstr(why, "Not a directory"));
}

/* ---- the null stage and an external plugin ----------------------------- */

static void
test_null(void **state)
{
	(void)state;
	const char *roles[] = { "encoder", "transformer", "decoder" };
	char why[256];
	dg_request_t r = s_req(5, 81, 480, 832, 50, 42);
	for (int i = 0; i < 3; i++) {
		s_stage_t s = s_open("null", roles[i], NULL);
		dg_tensor_plan_t in, out;
		assert_int_equal(s.ops->plan(s.state, &r, &in, &out, why,
		    sizeof why), 0);
		assert_int_equal(in.n, i == 0 ? 0 : 1);
		assert_int_equal(out.n, i == 2 ? 0 : 1);
		if (in.n) {
			assert_string_equal(in.t[0].name, i == 1 ? "context" :
			    "latents");
			assert_int_equal(in.t[0].bytes, 64);
		}
		uint8_t ibuf[64] = { 0 }, obuf[64] = { 0 };
		dg_stage_item_t item;
		memset(&item, 0, sizeof item);
		snprintf(item.output, sizeof item.output, "stale");
		item.req = &r;
		item.in_plan = &in;
		item.out_plan = &out;
		item.in[0] = ibuf;
		item.out[0] = obuf;
		assert_int_equal(s.ops->run(s.state, &item, 1), 0);
		assert_string_equal(item.error, "");
		assert_string_equal(item.output, "");
		assert_int_equal(item.output_bytes, 0);
		if (out.n) {
			assert_string_equal(out.t[0].dtype, "u8");
			assert_int_equal(out.t[0].bytes, 64);
			for (int k = 0; k < 64; k++)
				assert_int_equal(obuf[k], (uint8_t)(5 + k));
		}
		s_close(&s);
	}
	/* The null encoder's output is the null transformer's input. */
	s_stage_t e = s_open("null", "encoder", NULL);
	s_stage_t t = s_open("null", "transformer", NULL);
	dg_tensor_plan_t ei, eo, ti, to;
	assert_int_equal(e.ops->plan(e.state, &r, &ei, &eo, why, sizeof why), 0);
	assert_int_equal(t.ops->plan(t.state, &r, &ti, &to, why, sizeof why), 0);
	assert_int_equal(dg_tensor_plan_match(&eo, &ti, why, sizeof why), 0);
	s_close(&e);
	s_close(&t);

	const dg_stage_ops_t *ops = dg_stage_find("null", why, sizeof why);
	dg_stage_env_t env = { .abi = DG_STAGE_ABI, .role = "mixer" };
	void *st = NULL;
	assert_int_equal(ops->init(&env, &st, why, sizeof why), -1);
	assert_string_equal(why, "stage null: unknown role 'mixer'");
}

static void
test_example_plugin(void **state)
{
	(void)state;
	char path[512], why[256];
	s_plugin_path(path, sizeof path);
	s_stage_t s = s_open(path, "transformer", NULL);
	dg_request_t r = s_req(1, 5, 32, 32, 1, 0);
	dg_tensor_plan_t in, out;
	assert_int_equal(s.ops->plan(s.state, &r, &in, &out, why, sizeof why),
	    0);
	assert_int_equal(in.n, 1);
	assert_string_equal(in.t[0].name, "latents");
	assert_int_equal(in.t[0].bytes, 16 * 2 * 4 * 4 * 4);
	size_t n = in.t[0].bytes / 4;
	float *src = malloc(in.t[0].bytes), *dst = malloc(out.t[0].bytes);
	for (size_t i = 0; i < n; i++)
		src[i] = (float)i - 100.5f;
	dg_stage_item_t item;
	memset(&item, 0, sizeof item);
	item.req = &r;
	item.in_plan = &in;
	item.out_plan = &out;
	item.in[0] = src;
	item.out[0] = dst;
	assert_int_equal(s.ops->run(s.state, &item, 1), 0);
	assert_string_equal(item.error, "");
	for (size_t i = 0; i < n; i++)
		assert_true(dst[i] == 2 * src[i]);

	/* Its dtype check. */
	snprintf(in.t[0].dtype, sizeof in.t[0].dtype, "bf16");
	assert_int_equal(s.ops->run(s.state, &item, 1), 0);
	assert_string_equal(item.error, "scale: wants one f32 tensor in and "
	    "out of the same size, got bf16 and f32");

	r.frames = 6;
	assert_int_equal(s.ops->plan(s.state, &r, &in, &out, why, sizeof why),
	    -1);
	assert_string_equal(why, "scale: cannot serve 32x32 x 6 frames");
	free(src);
	free(dst);
	s_close(&s);
}

typedef struct {
	const dg_stage_ops_t *ops;
	void *state;
	dg_stage_item_t item;
} s_long_run_t;

static void *
s_long_run(void *arg)
{
	s_long_run_t *lr = arg;
	lr->ops->run(lr->state, &lr->item, 1);
	return NULL;
}

/* A release reaches a reference stage in the middle of a long step: its
 * batch ends within a slice (20 ms), not at the end of the step, so the
 * room's memory comes back at once. */
static void
test_release_stops_a_long_step(void **state)
{
	char why[256];
	const dg_request_t req = { .request = 1, .room = 1, .prompt = "p",
	    .negative_prompt = "", .frames = 1, .height = 16, .width = 16,
	    .steps = 1, .seed = 1 };
	(void)state;

	const dg_stage_ops_t *ops = dg_stage_find("ref-encoder", why,
	    sizeof why);
	assert_non_null(ops);
	dg_stage_env_t env = { .abi = DG_STAGE_ABI, .role = "encoder",
	    .name = "e0", .step_ms = 60000, .device = -1 };
	s_long_run_t lr = { .ops = ops };
	assert_int_equal(ops->init(&env, &lr.state, why, sizeof why), 0);
	dg_tensor_plan_t in, out;
	assert_int_equal(ops->plan(lr.state, &req, &in, &out, why,
	    sizeof why), 0);
	void *buf = calloc(1, out.t[0].bytes);
	_Atomic int stop = 0;
	lr.item = (dg_stage_item_t){ .req = &req, .in_plan = &in,
	    .out_plan = &out, .stop = &stop };
	lr.item.out[0] = buf;
	pthread_t t;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pthread_create(&t, NULL, s_long_run, &lr), 0);
	struct timespec a_while = { 0, 100 * 1000000L };
	nanosleep(&a_while, NULL);      /* the release comes mid-step */
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms < 5000);         /* the step was 60 s */
	assert_non_null(strstr(lr.item.error, "the room was released"));
	ops->fini(lr.state);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_no_entry),
		cmocka_unit_test(test_spec),
		cmocka_unit_test(test_plan_shapes),
		cmocka_unit_test(test_plan_rejects),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_y4m),
		cmocka_unit_test(test_by_hand),
		cmocka_unit_test(test_ref_errors),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_example_plugin),
		cmocka_unit_test(test_release_stops_a_long_step),
	};
	return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
