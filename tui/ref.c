/*  ref.c: `disagg ref`, see ref.h.  Prints where the file went, its size
 *  and digest (what a client's `result` says) and each stage's time.
 *  With -f, the stages a topology file names (C or Python), one section
 *  per role, in this process: any pipeline's one-process oracle.  */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ref.h"
#include "stage_host.h"
#include "stage_ref.h"

/* Wan 2.1's text-to-video demo: 81 frames of 832x480, 50 steps. */
#define DEFAULT_PROMPT "Two anthropomorphic cats in comfy boxing gear and " \
	"bright gloves fight intensely on a spotlighted stage."

static void
s_usage(FILE *out)
{
	fprintf(out,
	    "usage: disagg ref [-f file] [-o dir] [--prompt TEXT] "
	    "[--negative TEXT] [--frames N]\n"
	    "                  [--height H] [--width W] [--steps N] "
	    "[--seed N]\n"
	    "                  [--request ID] [--json]\n"
	    "\n"
	    "Run the reference encoder, transformer and decoder in this "
	    "process and\n"
	    "write DIR/ID.y4m, the file a pipeline of ref stages writes for "
	    "the same\n"
	    "request.  With -f, the stages of FILE instead (the first section "
	    "of each\n"
	    "role, C or Python, with its own keys): the file that topology's "
	    "pipeline\n"
	    "writes.\n"
	    "\n"
	    "  -f, --file FILE   a topology whose stages to run\n"
	    "  -o, --output DIR  where the file goes (default out; with -f the "
	    "decoder's\n"
	    "                    output_dir)\n"
	    "  --prompt TEXT     the prompt (default: Wan's boxing cats)\n"
	    "  --negative TEXT   the negative prompt (default none)\n"
	    "  --frames N        4k+1 frames (default 81)\n"
	    "  --height H        multiple of 16 (default 480)\n"
	    "  --width W         multiple of 16 (default 832)\n"
	    "  --steps N         denoising steps, 1 to %d (default 50)\n"
	    "  --seed N          (default 42)\n"
	    "  --request ID      request id, the file's name (default 1)\n"
	    "  --json            one JSON object instead of the table\n",
	    DG_REF_MAX_STEPS);
}

static int
s_parse_i64(const char *opt, const char *text, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno || end == text || *end) {
		fprintf(stderr, "disagg ref: %s wants an integer, got '%s'\n",
		    opt, text);
		return -1;
	}
	*out = (int64_t)v;
	return 0;
}

static void
s_json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static int
s_run_ref(const char *dir, const dg_request_t *req,
    dg_stage_chain_result_t *res, const char **names, size_t *n, char *why,
    size_t whysize)
{
	static const char *const stages[3] = {
		"encoder", "transformer", "decoder"
	};
	dg_stage_ref_result_t r;
	if (dg_stage_ref_run(req, dir, &r, why, whysize) < 0)
		return 1;
	memset(res, 0, sizeof *res);
	snprintf(res->output, sizeof res->output, "%s", r.output);
	res->bytes = r.bytes;
	snprintf(res->digest, sizeof res->digest, "%s", r.digest);
	for (int s = 0; s < 3; s++) {
		res->ms[s] = r.ms[s];
		names[s] = stages[s];
	}
	*n = 3;
	return 0;
}

/* The stages of `file`: the first section of each role, in pipeline
 * order, initialised as their daemons would be but with no added cost
 * (step_ms 0) and no pool.  2 for a bad file, 1 when a stage fails. */
static int
s_run_file(const char *file, const char *dir, const dg_request_t *req,
    dg_stage_chain_result_t *res, const char **names, size_t *n, char *why,
    size_t whysize)
{
	static dg_config_t *cfg;        /* kept: the names point into it */
	dg_request_t reqs[DG_STAGE_CHAIN_MAX];
	cfg = dg_config_load(file);
	if (!cfg) {
		snprintf(why, whysize, "out of memory");
		return 1;
	}
	if (dg_config_error_count(cfg) > 0) {
		for (size_t i = 0; i + 1 < dg_config_error_count(cfg); i++)
			fprintf(stderr, "%s\n", dg_config_error(cfg, i));
		snprintf(why, whysize, "%s", dg_config_error(cfg,
		    dg_config_error_count(cfg) - 1));
		return 2;
	}
	const dg_stage_ops_t *ops[DG_STAGE_CHAIN_MAX];
	dg_stage_env_t envs[DG_STAGE_CHAIN_MAX];
	const dg_pipeline_conf_t *chain = dg_config_pipeline(cfg);
	*n = 0;
	for (size_t r = 0; r < chain->nroles; r++) {
		const dg_stage_conf_t *st = NULL;
		for (size_t i = 0; !st && i < dg_config_stage_count(cfg); i++)
			if (dg_config_stage_at(cfg, i)->index == (int)r)
				st = dg_config_stage_at(cfg, i);
		if (!st) {      /* the file's check makes this unreachable */
			snprintf(why, whysize, "%s: no [%s NAME] section", file,
			    chain->roles[r]);
			return 2;
		}
		char reason[256];
		ops[*n] = dg_stage_find(st->stage, reason, sizeof reason);
		if (!ops[*n]) {
			snprintf(why, whysize, "[%s %s]: %s", st->role, st->name,
			    reason);
			return 1;
		}
		reqs[*n] = *req;
		dg_stage_steps(st->expert, st->boundary, req->steps,
		    &reqs[*n].step_begin, &reqs[*n].step_end);
		const int *lines;
		const char *const *opts = dg_config_stage_options(cfg, st,
		    &lines);
		envs[*n] = (dg_stage_env_t){
			.abi = DG_STAGE_ABI, .role = st->role,
			.name = st->name, .step_ms = 0,
			.output_dir = dir && r + 1 == chain->nroles ? dir :
			    st->output_dir,
			.device = -1, .stage = st->stage,
			.python_path = st->python_path, .memory = "host",
			.config_file = dg_config_file(cfg), .options = opts,
			.option_lines = lines,
			.expert = dg_expert_name(st->expert),
			.place = (int)r, .places = (int)chain->nroles,
		};
		names[*n] = st->role;
		(*n)++;
	}
	return dg_stage_chain_run(ops, envs, *n, reqs, res, why, whysize) < 0 ?
	    1 : 0;
}

int
dg_ref_main(int argc, char *argv[])
{
	enum { O_PROMPT = 256, O_NEGATIVE, O_FRAMES, O_HEIGHT, O_WIDTH,
	    O_STEPS, O_SEED, O_REQUEST, O_JSON };
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "file", required_argument, NULL, 'f' },
		{ "prompt", required_argument, NULL, O_PROMPT },
		{ "negative", required_argument, NULL, O_NEGATIVE },
		{ "frames", required_argument, NULL, O_FRAMES },
		{ "height", required_argument, NULL, O_HEIGHT },
		{ "width", required_argument, NULL, O_WIDTH },
		{ "steps", required_argument, NULL, O_STEPS },
		{ "seed", required_argument, NULL, O_SEED },
		{ "request", required_argument, NULL, O_REQUEST },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	dg_request_t req = {
		.request = 1, .prompt = DEFAULT_PROMPT, .negative_prompt = "",
		.frames = 81, .height = 480, .width = 832, .steps = 50,
		.seed = 42,
	};
	const char *dir = NULL, *file = NULL;
	bool json = false;
	int64_t v = 0;
	int c, idx;

	optind = 1;
	opterr = 0;
	while ((idx = -1, c = getopt_long(argc, argv, "+:o:f:h", longopts,
	    &idx)) != -1) {
		/* The option's name for a bad value: argv[optind - 1] is
		 * the value when it came as a separate word. */
		char opt[32];
		char shortopt[2] = { (char)c, 0 };
		snprintf(opt, sizeof opt, "%s%s", idx >= 0 ? "--" : "-",
		    idx >= 0 ? longopts[idx].name : shortopt);
		int64_t *field = NULL;
		switch (c) {
		case 'h':
			s_usage(stdout);
			return 0;
		case 'o':
			dir = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case O_PROMPT:
			req.prompt = optarg;
			break;
		case O_NEGATIVE:
			req.negative_prompt = optarg;
			break;
		case O_FRAMES: field = &req.frames; break;
		case O_HEIGHT: field = &req.height; break;
		case O_WIDTH: field = &req.width; break;
		case O_STEPS: field = &req.steps; break;
		case O_SEED: field = &req.seed; break;
		case O_REQUEST:
			field = &v;
			break;
		case O_JSON:
			json = true;
			break;
		case ':':
			fprintf(stderr, "disagg ref: %s needs a value\n",
			    argv[optind - 1]);
			s_usage(stderr);
			return 2;
		default:
			fprintf(stderr, "disagg ref: bad option '%s'\n",
			    argv[optind - 1]);
			s_usage(stderr);
			return 2;
		}
		if (field && s_parse_i64(opt, optarg, field) < 0)
			return 2;
		if (c == O_REQUEST) {
			if (v < 0) {
				fprintf(stderr, "disagg ref: --request must not "
				    "be negative, got %s\n", optarg);
				return 2;
			}
			req.request = (uint64_t)v;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "disagg ref: unexpected argument '%s'\n",
		    argv[optind]);
		s_usage(stderr);
		return 2;
	}

	dg_stage_chain_result_t res;
	const char *names[DG_STAGE_CHAIN_MAX];
	size_t n = 0;
	char why[512];
	int rc = file ? s_run_file(file, dir, &req, &res, names, &n, why,
	    sizeof why) : s_run_ref(dir ? dir : "out", &req, &res, names, &n,
	    why, sizeof why);
	if (rc != 0) {
		fprintf(stderr, "disagg ref: %s\n", why);
		return rc;
	}
	if (json) {
		printf("{\"request\":%" PRIu64 ",\"output\":", req.request);
		s_json_str(res.output);
		printf(",\"bytes\":%" PRIu64 ",\"digest\":\"%s\",\"timings\":{",
		    res.bytes, res.digest);
		for (size_t s = 0; s < n; s++) {
			printf("%s", s ? "," : "");
			s_json_str(names[s]);
			printf(":%.3f", res.ms[s]);
		}
		printf("}}\n");
	} else {
		printf("output       %s\n", res.output);
		printf("bytes        %" PRIu64 "\n", res.bytes);
		printf("digest       %s\n", res.digest);
		for (size_t s = 0; s < n; s++)
			printf("%-12s %.1f ms\n", names[s], res.ms[s]);
	}
	return 0;
}
