/*  test_config.c: the INI configuration: values, defaults, errors with
 *  file and line, the effective dump, and what a reload may change.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "stage_host.h"

/* A fragment that names some roles of the default chain gets one
 * instance of each role it leaves out, after its own lines: every
 * topology needs the whole chain, and the fragment's own errors keep
 * their line numbers. */
static dg_config_t *
s_parse(const char *text)
{
	static const char *const roles[] = { "encoder", "transformer",
	    "decoder" };
	char *full = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&full, &size);
	bool any = false;

	assert_non_null(f);
	fputs(text, f);
	for (int i = 0; i < 3; i++) {
		char head[32];
		snprintf(head, sizeof head, "[%s ", roles[i]);
		any |= strstr(text, head) != NULL;
	}
	for (int i = 0; any && i < 3; i++) {
		char head[32];
		snprintf(head, sizeof head, "[%s ", roles[i]);
		if (!strstr(text, head))
			fprintf(f, "\n[%s zz-%d]\npeer = ipc://@zz-%d\n", roles[i],
			    i, i);
	}
	fclose(f);
	dg_config_t *cfg = dg_config_parse_string("t.ini", full);
	free(full);
	assert_non_null(cfg);
	return cfg;
}

/* The parse must fail with exactly one error, equal to `want`. */
static void
s_expect_error(const char *text, const char *want)
{
	dg_config_t *cfg = s_parse(text);
	if (dg_config_error_count(cfg) != 1 ||
	    strcmp(dg_config_error(cfg, 0), want) != 0) {
		for (size_t i = 0; i < dg_config_error_count(cfg); i++)
			print_message("got: %s\n", dg_config_error(cfg, i));
		fail_msg("wanted: %s", want);
	}
	dg_config_destroy(&cfg);
	assert_null(cfg);
}

static void
test_defaults(void **state)
{
	(void)state;
	dg_config_t *cfg = s_parse("");
	assert_int_equal(dg_config_error_count(cfg), 0);
	const dg_controller_conf_t *c = dg_config_controller(cfg);
	assert_string_equal(c->listen, "tcp://127.0.0.1:7700");
	assert_int_equal(c->policy, DG_POLICY_EARLIEST_FINISH);
	assert_int_equal(c->admission, DG_ADMIT_DEADLINE);
	assert_int_equal(c->max_pending, 1024);
	assert_int_equal(c->dead_after_ms, 3000);
	assert_string_equal(dg_config_fabric(cfg)->provider, "auto");
	assert_false(dg_config_fabric(cfg)->verify);
	assert_false(dg_config_security(cfg)->curve);
	assert_int_equal(dg_config_stage_count(cfg), 0);
	dg_config_destroy(&cfg);
}

static void
test_stage_values(void **state)
{
	(void)state;
	dg_config_t *cfg = s_parse(
	    "[transformer t0]\r\n"
	    "peer = tcp://127.0.0.1:7720   ; inline comment\r\n"
	    "pool = 2G\r\n"
	    "slot = 64K\r\n"
	    "step_ms = 1.5s\r\n");
	/* 1.5s is not a whole number of anything we accept. */
	assert_int_equal(dg_config_error_count(cfg), 1);
	dg_config_destroy(&cfg);

	cfg = s_parse("\xEF\xBB\xBF[decoder d0]\n"
	    "peer=ipc:///tmp/d0\n"
	    "  output_dir = /var/lib/disagg/out\n"
	    "step_ms = 2s\n"
	    "workers = 3\n");
	assert_int_equal(dg_config_error_count(cfg), 0);
	const dg_stage_conf_t *st = dg_config_stage(cfg, "d0");
	assert_non_null(st);
	assert_ptr_equal(st, dg_config_stage(cfg, "decoder d0"));
	assert_null(dg_config_stage(cfg, "encoder d0"));
	assert_string_equal(st->role, "decoder");
	assert_int_equal(st->index, 2);
	assert_string_equal(st->peer, "ipc:///tmp/d0");
	assert_string_equal(st->output_dir, "/var/lib/disagg/out");
	assert_string_equal(st->stage, "ref-decoder");
	assert_int_equal(st->step_ms, 2000);
	assert_int_equal(st->workers, 3);
	assert_int_equal(st->pool, 256LL << 20);
	assert_int_equal(st->line, 1);
	dg_config_destroy(&cfg);
}

static void
test_parsers(void **state)
{
	(void)state;
	int64_t v;
	bool b;

	assert_int_equal(dg_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(dg_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(dg_parse_size("3MiB", &v), 0);
	assert_int_equal(v, 3LL << 20);
	assert_int_equal(dg_parse_size("1t", &v), 0);
	assert_int_equal(v, 1LL << 40);
	assert_int_equal(dg_parse_size("-1", &v), -1);
	assert_int_equal(dg_parse_size("", &v), -1);
	assert_int_equal(dg_parse_size("12 M", &v), -1);
	assert_int_equal(dg_parse_size("99999999999T", &v), -1);
	assert_int_equal(dg_parse_size("99999999999999999999", &v), -1);
	assert_int_equal(dg_parse_duration_ms("250", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(dg_parse_duration_ms("30s", &v), 0);
	assert_int_equal(v, 30000);
	assert_int_equal(dg_parse_duration_ms("2m", &v), 0);
	assert_int_equal(v, 120000);
	assert_int_equal(dg_parse_duration_ms("1h", &v), 0);
	assert_int_equal(v, 3600000);
	assert_int_equal(dg_parse_duration_ms("5 s", &v), -1);
	assert_int_equal(dg_parse_duration_ms("s", &v), -1);
	assert_int_equal(dg_parse_bool("on", &b), 0);
	assert_true(b);
	assert_int_equal(dg_parse_bool("No", &b), 0);
	assert_false(b);
	assert_int_equal(dg_parse_bool("2", &b), -1);
	assert_int_equal(dg_endpoint_check("tcp://127.0.0.1:1"), 0);
	assert_int_equal(dg_endpoint_check("tcp://[::1]:7700"), 0);
	assert_int_equal(dg_endpoint_check("ipc:///run/x"), 0);
	assert_int_equal(dg_endpoint_check("inproc://x"), 0);
	assert_int_equal(dg_endpoint_check("tcp://127.0.0.1:0"), -1);
	assert_int_equal(dg_endpoint_check("tcp://127.0.0.1:65536"), -1);
	assert_int_equal(dg_endpoint_check("tcp://:7700"), -1);
	assert_int_equal(dg_endpoint_check("ipc://"), -1);
	assert_int_equal(dg_endpoint_check("udp://h:1"), -1);
}

/* ipc://%r/NAME is the socket NAME in the run folder; one whose path
 * would not fit is an error of the file, not a cut endpoint. */
static void
test_run_folder_endpoints(void **state)
{
	char long_dir[300];
	(void)state;

	setenv("DISAGG_RUN", "/srv/run", 1);
	dg_config_t *cfg = s_parse("[controller]\nlisten = ipc://%r/ctl\n"
	    "[encoder e0]\npeer = ipc://%r/e0\n");
	assert_int_equal(dg_config_error_count(cfg), 0);
	assert_string_equal(dg_config_controller(cfg)->listen,
	    "ipc:///srv/run/ctl");
	assert_string_equal(dg_config_stage(cfg, "e0")->peer,
	    "ipc:///srv/run/e0");
	dg_config_destroy(&cfg);
	memset(long_dir, 'd', sizeof long_dir - 1);
	long_dir[0] = '/';
	long_dir[sizeof long_dir - 1] = '\0';
	setenv("DISAGG_RUN", long_dir, 1);
	s_expect_error("[controller]\nlisten = ipc://%r/ctl\n",
	    "t.ini:2: bad value for 'listen' in [controller]: the run "
	    "folder's path is too long for an endpoint, got 'ipc://%r/ctl'");
	unsetenv("DISAGG_RUN");
}

static void
test_errors(void **state)
{
	(void)state;
	s_expect_error("[controller]\npolcy = p2c\n",
	    "t.ini:2: unknown key 'polcy' in [controller]");
	s_expect_error("[nope]\n", "t.ini:1: unknown section [nope]");
	s_expect_error("[fabric]\nrails=2\n[fabric]\n",
	    "t.ini:3: duplicate section [fabric] (first on line 1)");
	s_expect_error("[fabric]\nrails=2\nrails=3\n",
	    "t.ini:3: duplicate key 'rails' in [fabric] (first set on line 2)");
	s_expect_error("[fabric]\nrails = 17\n",
	    "t.ini:2: value of 'rails' in [fabric] is out of range: 17 is "
	    "not within 1..16");
	s_expect_error("[fabric]\nchunk = 1K\n",
	    "t.ini:2: value of 'chunk' in [fabric] is out of range: 1K is "
	    "not within 4K..1G");
	s_expect_error("[controller]\ndead_after_ms = 10ms\n",
	    "t.ini:2: value of 'dead_after_ms' in [controller] is out of "
	    "range: 10ms is not within 100ms..1h");
	s_expect_error("[encoder e0]\n",
	    "t.ini:1: missing required key 'peer' in [encoder e0]");
	s_expect_error("[fabric]\nrails = 2\n   more words\n",
	    "t.ini:3: syntax error: expected 'key = value' or '[section]'");
	s_expect_error("[fabric]\n= 2\n",
	    "t.ini:2: syntax error: key name missing before '='");
	s_expect_error("[fabric] x\n",
	    "t.ini:1: syntax error: text after section header");
	s_expect_error("[controller x]\n",
	    "t.ini:1: section [controller] takes no name, got 'x'");
	s_expect_error("[encoder a b]\n",
	    "t.ini:1: section [encoder a b]: a stage name is one word");
	s_expect_error("[encoder controller]\npeer=ipc://x\n",
	    "t.ini:1: stage name 'controller' in [encoder controller] is "
	    "reserved for the controller");
	s_expect_error("[encoder a/b]\n",
	    "t.ini:1: bad stage name 'a/b' in [encoder a/b]: use up to 63 "
	    "letters, digits, '-', '_' and '.'");
	s_expect_error("[encoder e0]\npeer=ipc://x\nslot = 512M\npool = 256M\n",
	    "t.ini:1: 'slot' in [encoder e0] is larger than its 'pool'");
	s_expect_error("[controller]\nlisten = tcp://*:7701\n",
	    "t.ini:2: endpoint 'tcp://*:7701' of 'listen' in [controller] is "
	    "already used by 'publish' in [controller] (default)");
}

/* A string ends at its first NUL, so the reader's NUL check is tested
 * through a file. */
static void
test_nul_in_file(void **state)
{
	(void)state;
	char path[] = "/tmp/disagg-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fwrite("[fabric]\nrails = 2\0junk\n", 1, 24, f);
	fclose(f);
	dg_config_t *cfg = dg_config_load(path);
	assert_int_equal(dg_config_error_count(cfg), 1);
	assert_non_null(strstr(dg_config_error(cfg, 0),
	    ":2: syntax error: NUL byte in line"));
	dg_config_destroy(&cfg);
	unlink(path);
}

/* A folder, a device or an oversized file is no configuration: refused
 * at once, never read (reading /dev/urandom would never end). */
static void
test_not_a_file(void **state)
{
	(void)state;
	const char *paths[] = { "/tmp", "/dev/urandom", "/dev/null" };
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		dg_config_t *cfg = dg_config_load(paths[i]);
		assert_int_equal(dg_config_error_count(cfg), 1);
		assert_non_null(strstr(dg_config_error(cfg, 0),
		    "not a regular file"));
		dg_config_destroy(&cfg);
	}
	char path[] = "/tmp/disagg-big-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DG_CONFIG_MAX_BYTES + 1), 0);
	close(fd);
	dg_config_t *cfg = dg_config_load(path);
	assert_int_equal(dg_config_error_count(cfg), 1);
	assert_non_null(strstr(dg_config_error(cfg, 0), "at most"));
	dg_config_destroy(&cfg);
	unlink(path);
}

/* The effective configuration as dg_config_dump writes it (to free). */
static char *
s_dump(const dg_config_t *cfg)
{
	char *d = NULL;
	size_t n;
	FILE *f = open_memstream(&d, &n);

	assert_non_null(f);
	dg_config_dump(cfg, f);
	fclose(f);
	return d;
}

static void
test_dump_round_trip(void **state)
{
	(void)state;
	dg_config_t *cfg = s_parse("[controller]\npolicy = p2c\n"
	    "journal = /var/lib/disagg/journal\n"
	    "[fabric]\nchunk = 3M\nquarantine_ms = 1500\nverify = yes\n"
	    "[encoder e0]\npeer = ipc:///tmp/e0\n"
	    "[transformer t9]\npeer = tcp://10.0.0.2:7720\npool = 1536M\n"
	    "memory = cuda\ndevice = 3\n");
	assert_int_equal(dg_config_error_count(cfg), 0);
	char *d1 = s_dump(cfg);
	assert_non_null(strstr(d1, "chunk = 3M\n"));
	assert_non_null(strstr(d1, "quarantine_ms = 1500ms\n"));
	assert_non_null(strstr(d1, "pool = 1536M\n"));
	assert_non_null(strstr(d1, "memory = cuda\n"));
	assert_non_null(strstr(d1, "stage = ref-transformer\n"));
	assert_non_null(strstr(d1, "verify = on\n"));

	dg_config_t *again = s_parse(d1);
	assert_int_equal(dg_config_error_count(again), 0);
	char *d2 = s_dump(again);
	assert_string_equal(d1, d2);
	assert_int_equal(dg_config_changes(cfg, again, "t9", NULL, NULL), 0);
	free(d1);
	free(d2);
	dg_config_destroy(&cfg);
	dg_config_destroy(&again);
}

/* [autoscale ROLE] and autostart: read, found by role, dumped and read
 * back the same. */
static void
test_autoscale(void **state)
{
	(void)state;
	dg_config_t *cfg = s_parse("[autoscale transformer]\nmin = 1\n"
	    "max = 2\ntarget = 0.5\ncooldown = 3s\n"
	    "scale_command = systemctl start disaggd@%n\n"
	    "[encoder e0]\npeer = ipc:///tmp/e0\n"
	    "[transformer t0]\npeer = ipc:///tmp/t0\n"
	    "[transformer t1]\npeer = ipc:///tmp/t1\nautostart = no\n");
	assert_int_equal(dg_config_error_count(cfg), 0);
	assert_int_equal(dg_config_autoscale_count(cfg), 1);
	assert_null(dg_config_autoscale(cfg, "encoder"));
	const dg_autoscale_conf_t *a = dg_config_autoscale(cfg, "transformer");
	assert_ptr_equal(a, dg_config_autoscale_at(cfg, 0));
	assert_null(dg_config_autoscale_at(cfg, 1));
	assert_int_equal(a->index, 1);
	assert_int_equal(a->min, 1);
	assert_int_equal(a->max, 2);
	assert_int_equal(a->target, 500000);
	assert_int_equal(a->cooldown_ms, 3000);
	assert_string_equal(a->scale_command, "systemctl start disaggd@%n");
	assert_string_equal(a->stop_command, "");
	assert_true(dg_config_stage(cfg, "t0")->autostart);
	assert_false(dg_config_stage(cfg, "t1")->autostart);

	char *d1 = s_dump(cfg);
	assert_non_null(strstr(d1, "[autoscale transformer]\n"));
	assert_non_null(strstr(d1, "autostart = off\n"));
	dg_config_t *again = s_parse(d1);
	assert_int_equal(dg_config_error_count(again), 0);
	char *d2 = s_dump(again);
	assert_string_equal(d1, d2);
	assert_int_equal(dg_config_changes(cfg, again, "controller", NULL,
	    NULL), 0);
	free(d1);
	free(d2);
	/* Read at the controller's start: a change says restart (target,
	 * cooldown, scale_command, and [autoscale decoder] added). */
	dg_config_t *other = s_parse("[autoscale transformer]\nmax = 2\n"
	    "cooldown = 4s\n[autoscale decoder]\n"
	    "[encoder e0]\npeer = ipc:///tmp/e0\n"
	    "[transformer t0]\npeer = ipc:///tmp/t0\n"
	    "[transformer t1]\npeer = ipc:///tmp/t1\nautostart = no\n");
	assert_int_equal(dg_config_error_count(other), 0);
	assert_int_equal(dg_config_changes(cfg, other, "controller", NULL,
	    NULL), 4);
	dg_config_destroy(&other);
	dg_config_destroy(&cfg);
	dg_config_destroy(&again);
}

static void
s_count_change(const char *section, const char *key, bool reloadable,
    void *arg)
{
	int *counts = arg;
	(void)section;
	(void)key;
	counts[reloadable ? 0 : 1]++;
}

static void
test_changes(void **state)
{
	(void)state;
	dg_config_t *a = s_parse("[controller]\npolicy = p2c\n"
	    "[transformer t0]\npeer = ipc://t0\nworkers = 2\n");
	dg_config_t *b = s_parse("[controller]\npolicy = round-robin\n"
	    "[transformer t0]\npeer = ipc://t0\nworkers = 4\nmax_batch = 8\n"
	    "[fabric]\nverify = on\nrails = 2\n");
	int counts[2] = { 0, 0 };

	/* For t0: max_batch and verify reload; workers and rails do not. */
	assert_int_equal(dg_config_changes(a, b, "t0", s_count_change,
	    counts), 2);
	assert_int_equal(counts[0], 2);
	assert_int_equal(counts[1], 2);
	/* For the controller: policy and verify reload; rails does not. */
	counts[0] = counts[1] = 0;
	assert_int_equal(dg_config_changes(a, b, "controller",
	    s_count_change, counts), 1);
	assert_int_equal(counts[0], 2);
	assert_int_equal(dg_config_changes(a, b, "nosuch", NULL, NULL), -1);
	dg_config_destroy(&a);
	dg_config_destroy(&b);
}

static void
test_key_table(void **state)
{
	(void)state;
	size_t n = dg_config_key_count();
	assert_true(n > 30);
	for (size_t i = 0; i < n; i++) {
		const dg_config_keyinfo_t *k = dg_config_key_at(i);
		assert_non_null(k);
		assert_non_null(k->help);
		assert_true(strlen(k->help) > 5);
		/* Two keys of one section never share a name. */
		for (size_t j = 0; j < i; j++) {
			const dg_config_keyinfo_t *o = dg_config_key_at(j);
			if (strcmp(o->name, k->name) == 0)
				assert_string_not_equal(o->section, k->section);
		}
	}
	assert_null(dg_config_key_at(n));
}

/* The chain from [pipeline], roles by any name, and the two experts'
 * keys; the steps each expert runs. */
static void
test_pipeline(void **state)
{
	(void)state;
	/* Parsed as it is: s_parse would add a transformer. */
	dg_config_t *cfg = dg_config_parse_string("t.ini", "[pipeline]\n"
	    "stages = encoder high low decoder\n"
	    "[encoder e0]\npeer = ipc://@e0\n"
	    "[low l0]\npeer = ipc://@l0\nstage = ref-transformer\n"
	    "expert = low\nboundary = 0.9\n"
	    "[high h0]\npeer = ipc://@h0\nstage = ref-transformer\n"
	    "expert = high\nboundary = 0.9\n"
	    "[decoder d0]\npeer = ipc://@d0\n");
	for (size_t i = 0; i < dg_config_error_count(cfg); i++)
		print_message("%s\n", dg_config_error(cfg, i));
	assert_int_equal(dg_config_error_count(cfg), 0);
	const dg_pipeline_conf_t *p = dg_config_pipeline(cfg);
	assert_int_equal(p->nroles, 4);
	assert_string_equal(p->roles[2], "low");
	const dg_stage_conf_t *l0 = dg_config_stage(cfg, "low l0");
	assert_non_null(l0);
	assert_int_equal(l0->index, 2);
	assert_int_equal(l0->expert, DG_EXPERT_LOW);
	assert_int_equal(l0->boundary, 900000);
	assert_string_equal(dg_expert_name(l0->expert), "low");
	assert_int_equal(dg_config_role_index(cfg, "decoder"), 3);
	assert_int_equal(dg_config_role_index(cfg, "transformer"), -1);
	char *dump = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&dump, &size);
	dg_config_dump(cfg, f);
	fclose(f);
	assert_non_null(strstr(dump, "stages = encoder high low decoder\n"));
	assert_non_null(strstr(dump, "boundary = 0.9\n"));
	assert_non_null(strstr(dump, "expert = high\n"));
	free(dump);
	dg_config_destroy(&cfg);

	/* Wan 2.2's split, on the reference sampler's linear schedule: the
	 * high expert runs the steps whose noise level (n - s) / n is at
	 * or above the boundary, always the first one. */
	static const struct { int64_t boundary, steps, high; } cases[] = {
		{ 875000, 10, 2 }, { 875000, 1, 1 }, { 875000, 8, 2 },
		{ 0, 10, 10 }, { 1000000, 10, 1 }, { 500000, 4, 3 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t b, e;
		dg_stage_steps(DG_EXPERT_HIGH, cases[i].boundary,
		    cases[i].steps, &b, &e);
		assert_int_equal(b, 0);
		assert_int_equal(e, cases[i].high);
		dg_stage_steps(DG_EXPERT_LOW, cases[i].boundary,
		    cases[i].steps, &b, &e);
		assert_int_equal(b, cases[i].high);
		assert_int_equal(e, cases[i].steps);
		dg_stage_steps(DG_EXPERT_ALL, cases[i].boundary,
		    cases[i].steps, &b, &e);
		assert_int_equal(b, 0);
		assert_int_equal(e, cases[i].steps);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_stage_values),
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_run_folder_endpoints),
		cmocka_unit_test(test_nul_in_file),
		cmocka_unit_test(test_not_a_file),
		cmocka_unit_test(test_dump_round_trip),
		cmocka_unit_test(test_autoscale),
		cmocka_unit_test(test_changes),
		cmocka_unit_test(test_key_table),
		cmocka_unit_test(test_pipeline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
