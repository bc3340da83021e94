/*  config.c: parse and validate the INI topology file with inih.
 *
 *  Debian's inih r55 passes no line numbers to the handler, and defining
 *  INI_HANDLER_LINENO against the shared library would break its ABI.  So
 *  we feed inih through ini_parse_stream() with our own reader, which
 *  hands it one physical line per call: the reader knows the line number
 *  when inih calls the handler for that line, sees section headers before
 *  inih does (so duplicate and unknown sections are caught even when they
 *  hold no keys), and flags syntax errors on every line rather than only
 *  the first one inih would return.  */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "config_keys.h"
#include "run.h"

/* Slots: 0..3 the fixed sections, then one per [autoscale ROLE] (at
 * most one per role of the chain), then the stages in file order. */
#define SLOT_CONTROLLER 0
#define SLOT_FABRIC     1
#define SLOT_SECURITY   2
#define SLOT_PIPELINE   3
#define SLOT_FIXED      4
#define SLOT_AUTOSCALE0 SLOT_FIXED
#define SLOT_STAGE0     (SLOT_AUTOSCALE0 + DG_CHAIN_MAX)
#define S_AUTOSCALE     "autoscale"

static const char *const s_fixed[SLOT_FIXED] =
	{ "controller", "fabric", "security", "pipeline" };

/* A python: stage's own keys, for its class to check (see config.h). */
typedef struct {
	char **kv;                      /* key, value, ..., NULL */
	int *lines;
	size_t n;
} s_opts_t;

struct _dg_config_t {
	char *file;
	dg_controller_conf_t controller;
	dg_fabric_conf_t fabric;
	dg_security_conf_t security;
	dg_pipeline_conf_t pipeline;
	dg_autoscale_conf_t autoscale[DG_CHAIN_MAX];
	size_t nautoscale;
	dg_stage_conf_t *stages;
	s_opts_t *opts;                 /* [stage] */
	size_t nstages, stages_cap;
	int *key_lines;                 /* [slot * nkeys + key]: 0 = unset */
	int *sect_lines;                /* [slot]: line of the header, 0 = absent */
	size_t nslots_cap;
	char **errors;
	size_t nerrors, errors_cap;
	bool nomem;
	bool bad_stage_header;          /* a stage section was refused */
};

struct s_ctx {
	dg_config_t *cfg;
	FILE *fp;
	const char *text;
	size_t pos;
	char *buf;
	size_t bufcap;
	int lineno;
	int slot;               /* current section; -1 before the first one */
	bool ignoring;          /* inside a section that was refused */
	int flagged_line;       /* last line the reader reported an error on */
};

static const char *const s_policy_names[] =
	{ "round-robin", "least-loaded", "p2c" };
/* Roles with a built-in reference stage, ref-ROLE: `stage` defaults to
 * it.  Any other role names its stage. */
static const char *const s_ref_roles[] =
	{ "encoder", "transformer", "decoder", NULL };

const char *
dg_policy_name(int policy)
{
	return policy >= 0 && policy <= DG_POLICY_P2C ?
	    s_policy_names[policy] : "?";
}

static void
s_error(dg_config_t *self, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
s_error(dg_config_t *self, int line, const char *fmt, ...)
{
	char msg[768];
	char *text = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (self->nerrors == self->errors_cap) {
		size_t cap = self->errors_cap ? self->errors_cap * 2 : 8;
		char **e = realloc(self->errors, cap * sizeof *e);
		if (!e) {
			self->nomem = true;
			return;
		}
		self->errors = e;
		self->errors_cap = cap;
	}
	if ((line > 0 ? asprintf(&text, "%s:%d: %s", self->file, line, msg) :
	    asprintf(&text, "%s: %s", self->file, msg)) < 0) {
		self->nomem = true;
		return;
	}
	self->errors[self->nerrors++] = text;
}

/* ---- values ------------------------------------------------------------ */

static int
s_parse_int(const char *text, int64_t *out)
{
	char *end;

	if (!*text || isspace((unsigned char)*text))
		return -1;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* A number followed by a unit from `units`; `mult` holds their factors. */
static int
s_parse_scaled(const char *text, const char *const *units,
    const int64_t *mult, int64_t bare, int64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)*text))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno)
		return -1;
	int64_t factor = bare;
	if (*end) {
		factor = 0;
		for (int i = 0; units[i]; i++)
			if (strcasecmp(end, units[i]) == 0)
				factor = mult[i];
		if (!factor)
			return -1;
	}
	if (v > (unsigned long long)(INT64_MAX / factor))
		return -1;
	*out = (int64_t)v * factor;
	return 0;
}

int
dg_parse_size(const char *text, int64_t *out)
{
	static const char *const units[] = { "B", "K", "KB", "KiB", "M", "MB",
	    "MiB", "G", "GB", "GiB", "T", "TB", "TiB", NULL };
	static const int64_t mult[] = { 1, 1LL << 10, 1LL << 10, 1LL << 10,
	    1LL << 20, 1LL << 20, 1LL << 20, 1LL << 30, 1LL << 30, 1LL << 30,
	    1LL << 40, 1LL << 40, 1LL << 40 };

	return s_parse_scaled(text, units, mult, 1, out);
}

int
dg_parse_duration_ms(const char *text, int64_t *out)
{
	static const char *const units[] = { "ms", "s", "m", "h", NULL };
	static const int64_t mult[] = { 1, 1000, 60000, 3600000 };

	return s_parse_scaled(text, units, mult, 1, out);
}

/* "0.875" as 875000 millionths: decimal, no exponent, so that the value
 * read is exactly the value written. */
static int
s_parse_fraction(const char *text, int64_t *out)
{
	int64_t whole = 0, frac = 0, scale = 1000000;
	const char *p = text;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		whole = whole * 10 + (*p - '0');
		if (whole > 1000000)
			return -1;
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		for (; isdigit((unsigned char)*p); p++) {
			if (scale == 1)
				return -1;
			scale /= 10;
			frac += (*p - '0') * scale;
		}
	}
	if (*p)
		return -1;
	*out = whole * 1000000 + frac;
	return 0;
}

int
dg_parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1", NULL };
	static const char *const no[] = { "off", "no", "false", "0", NULL };

	for (int i = 0; yes[i]; i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

int
dg_endpoint_check(const char *text)
{
	if (strncmp(text, "ipc://", 6) == 0)
		return text[6] ? 0 : -1;
	if (strncmp(text, "inproc://", 9) == 0)
		return text[9] ? 0 : -1;
	if (strncmp(text, "tcp://", 6) != 0)
		return -1;
	const char *host = text + 6;
	const char *colon = strrchr(host, ':');
	if (!colon || colon == host)
		return -1;
	for (const char *p = host; p < colon; p++)
		if (isspace((unsigned char)*p) || *p == '/')
			return -1;
	int64_t port;
	if (s_parse_int(colon + 1, &port) < 0 || port < 1 || port > 65535)
		return -1;
	return 0;
}

static void
s_format_value(const dg_key_t *k, const void *base, char *buf, size_t size)
{
	const char *field = (const char *)base + k->offset;
	int64_t v;

	switch (k->type) {
	case DG_KT_INT:
		memcpy(&v, field, sizeof v);
		snprintf(buf, size, "%lld", (long long)v);
		break;
	case DG_KT_SIZE: {
		static const char suffix[] = "KMGT";
		memcpy(&v, field, sizeof v);
		int u = -1;
		while (u < 3 && v != 0 && v % 1024 == 0) {
			v /= 1024;
			u++;
		}
		if (u >= 0)
			snprintf(buf, size, "%lld%c", (long long)v, suffix[u]);
		else
			snprintf(buf, size, "%lld", (long long)v);
		break;
	}
	case DG_KT_DURATION:
		memcpy(&v, field, sizeof v);
		if (v != 0 && v % 3600000 == 0)
			snprintf(buf, size, "%lldh", (long long)(v / 3600000));
		else if (v != 0 && v % 60000 == 0)
			snprintf(buf, size, "%lldm", (long long)(v / 60000));
		else if (v != 0 && v % 1000 == 0)
			snprintf(buf, size, "%llds", (long long)(v / 1000));
		else if (v != 0)
			snprintf(buf, size, "%lldms", (long long)v);
		else
			snprintf(buf, size, "0");
		break;
	case DG_KT_FRACTION: {
		memcpy(&v, field, sizeof v);
		int n = snprintf(buf, size, "%lld.%06lld", (long long)(v / 1000000),
		    (long long)(v % 1000000));
		/* 0.875000 reads better as 0.875. */
		while (n > 3 && n < (int)size && buf[n - 1] == '0' &&
		    buf[n - 2] != '.')
			buf[--n] = '\0';
		break;
	}
	case DG_KT_BOOL:
		snprintf(buf, size, "%s", *(const bool *)field ? "on" : "off");
		break;
	case DG_KT_ENUM:
		snprintf(buf, size, "%s", k->choices[*(const int *)field]);
		break;
	case DG_KT_STR:
	case DG_KT_PATH:
	case DG_KT_ENDPOINT:
		snprintf(buf, size, "%s", field);
		break;
	}
}

static void
s_format_range(const dg_key_t *k, int64_t v, char *buf, size_t size)
{
	dg_key_t copy = *k;
	char lo[32], hi[32], val[32];
	int64_t box[3] = { k->min, k->max, v };

	copy.offset = 0;
	s_format_value(&copy, &box[0], lo, sizeof lo);
	s_format_value(&copy, &box[1], hi, sizeof hi);
	s_format_value(&copy, &box[2], val, sizeof val);
	snprintf(buf, size, "%s is not within %s..%s", val, lo, hi);
}

/* Parse `value` for key `k` into `base`.  On error, writes a reason. */
static int
s_set_value(const dg_key_t *k, void *base, const char *value,
    char *why, size_t whysize)
{
	char *field = (char *)base + k->offset;
	char expanded[DG_ENDPOINT_MAX + 1];
	int64_t v = 0;
	int rc = 0;

	switch (k->type) {
	case DG_KT_INT:
		rc = s_parse_int(value, &v);
		if (rc < 0)
			snprintf(why, whysize, "expected an integer");
		break;
	case DG_KT_SIZE:
		rc = dg_parse_size(value, &v);
		if (rc < 0)
			snprintf(why, whysize,
			    "expected a size such as 4096, 64K or 256M");
		break;
	case DG_KT_DURATION:
		rc = dg_parse_duration_ms(value, &v);
		if (rc < 0)
			snprintf(why, whysize,
			    "expected a duration such as 500ms or 30s");
		break;
	case DG_KT_FRACTION:
		rc = s_parse_fraction(value, &v);
		if (rc < 0)
			snprintf(why, whysize, "expected a number such as 0.875, "
			    "with at most 6 decimals");
		break;
	case DG_KT_BOOL: {
		bool b;
		if (dg_parse_bool(value, &b) < 0) {
			snprintf(why, whysize, "expected on or off");
			return -1;
		}
		*(bool *)field = b;
		return 0;
	}
	case DG_KT_ENUM:
		for (int i = 0; k->choices[i]; i++) {
			if (strcmp(value, k->choices[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
		}
		{
			size_t n = (size_t)snprintf(why, whysize, "expected one of");
			for (int i = 0; k->choices[i] && n < whysize; i++)
				n += (size_t)snprintf(why + n, whysize - n, "%s %s",
				    i ? "," : "", k->choices[i]);
		}
		return -1;
	case DG_KT_ENDPOINT:
		if (dg_endpoint_check(value) < 0) {
			snprintf(why, whysize, "expected an endpoint such as "
			    "tcp://127.0.0.1:7700 or ipc:///run/disagg/x");
			return -1;
		}
		/* ipc://%r/NAME: a socket in the run folder, which only its
		 * owner may enter (run.h): what the shipped examples use. */
		if (strncmp(value, DG_ENDPOINT_RUN, strlen(DG_ENDPOINT_RUN)) ==
		    0) {
			if (snprintf(expanded, sizeof expanded, "ipc://%s/%s",
			    dg_run_dir(), value + strlen(DG_ENDPOINT_RUN)) >=
			    (int)sizeof expanded) {
				snprintf(why, whysize, "the run folder's path "
				    "is too long for an endpoint");
				return -1;
			}
			value = expanded;
		}
		/* fall through */
	case DG_KT_STR:
	case DG_KT_PATH: {
		/* Also bounded by inih's line length, so that `disaggd -T`
		 * prints every accepted value on a line inih will read. */
		size_t max = k->size - 1;
		size_t line = (size_t)INI_MAX_LINE - 3 - strlen(k->name) - 3;
		if (line < max)
			max = line;
		if (strlen(value) > max) {
			snprintf(why, whysize, "value longer than %zu characters",
			    max);
			return -1;
		}
	}
		strcpy(field, value);
		return 0;
	}
	if (rc < 0)
		return -1;
	if (v < k->min || v > k->max) {
		s_format_range(k, v, why, whysize);
		return -2;
	}
	memcpy(field, &v, sizeof v);
	return 0;
}

/* ---- sections ---------------------------------------------------------- */

static void *
s_slot_base(dg_config_t *self, int slot)
{
	if (slot == SLOT_CONTROLLER)
		return &self->controller;
	if (slot == SLOT_FABRIC)
		return &self->fabric;
	if (slot == SLOT_SECURITY)
		return &self->security;
	if (slot == SLOT_PIPELINE)
		return &self->pipeline;
	if (slot < SLOT_STAGE0)
		return &self->autoscale[slot - SLOT_AUTOSCALE0];
	return &self->stages[slot - SLOT_STAGE0];
}

static unsigned
s_slot_kind(const dg_config_t *self, int slot)
{
	static const unsigned fixed[] = { DG_SEC_CONTROLLER, DG_SEC_FABRIC,
	    DG_SEC_SECURITY, DG_SEC_PIPELINE };
	(void)self;
	return slot < SLOT_FIXED ? fixed[slot] : slot < SLOT_STAGE0 ?
	    DG_SEC_AUTOSCALE : DG_SEC_STAGES;
}

static void
s_slot_label(const dg_config_t *self, int slot, char *buf, size_t size)
{
	if (slot < SLOT_FIXED) {
		snprintf(buf, size, "[%s]", s_fixed[slot]);
	} else if (slot < SLOT_STAGE0) {
		snprintf(buf, size, "[" S_AUTOSCALE " %s]",
		    self->autoscale[slot - SLOT_AUTOSCALE0].role);
	} else {
		const dg_stage_conf_t *st = &self->stages[slot - SLOT_STAGE0];
		snprintf(buf, size, "[%s %s]", st->role, st->name);
	}
}

static void
s_fill_defaults(dg_config_t *self, int slot)
{
	unsigned kind = s_slot_kind(self, slot);
	void *base = s_slot_base(self, slot);

	for (size_t i = 0; i < dg_config_nkeys; i++) {
		const dg_key_t *k = &dg_config_keys[i];
		char def[DG_PATH_MAX], why[256];

		if (!(k->sections & kind))
			continue;
		if (k->flags & DG_KF_ROLEDEF)
			snprintf(def, sizeof def, k->def,
			    ((dg_stage_conf_t *)base)->role);
		else
			snprintf(def, sizeof def, "%s", k->def);
		/* Required keys have no default to parse. */
		if (!(k->flags & DG_KF_REQUIRED))
			(void)s_set_value(k, base, def, why, sizeof why);
	}
}

/* Room for one more stage slot in every per-slot array. */
static int
s_grow(dg_config_t *self)
{
	size_t nslots = SLOT_STAGE0 + self->nstages + 1;

	if (self->nstages == self->stages_cap) {
		size_t cap = self->stages_cap ? self->stages_cap * 2 : 4;
		dg_stage_conf_t *s = realloc(self->stages, cap * sizeof *s);
		if (!s)
			return -1;
		self->stages = s;
		s_opts_t *o = realloc(self->opts, cap * sizeof *o);
		if (!o)
			return -1;
		memset(o + self->stages_cap, 0,
		    (cap - self->stages_cap) * sizeof *o);
		self->opts = o;
		self->stages_cap = cap;
	}
	if (nslots > self->nslots_cap) {
		size_t cap = self->nslots_cap * 2;
		int *kl = realloc(self->key_lines,
		    cap * dg_config_nkeys * sizeof *kl);
		if (!kl)
			return -1;
		self->key_lines = kl;
		int *sl = realloc(self->sect_lines, cap * sizeof *sl);
		if (!sl)
			return -1;
		self->sect_lines = sl;
		memset(kl + self->nslots_cap * dg_config_nkeys, 0,
		    (cap - self->nslots_cap) * dg_config_nkeys * sizeof *kl);
		memset(sl + self->nslots_cap, 0,
		    (cap - self->nslots_cap) * sizeof *sl);
		self->nslots_cap = cap;
	}
	return 0;
}

static bool
s_valid_name(const char *name)
{
	if (!*name || strlen(name) >= DG_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
			return false;
	return true;
}

static bool
s_has_ref_stage(const char *role)
{
	for (int i = 0; s_ref_roles[i]; i++)
		if (strcmp(role, s_ref_roles[i]) == 0)
			return true;
	return false;
}

/* [autoscale ROLE]: whether the role is in the chain is checked at the
 * end, since [pipeline] may come later. */
static void
s_begin_autoscale(struct s_ctx *ctx, const char *role, const char *extra)
{
	dg_config_t *self = ctx->cfg;
	int line = ctx->lineno;

	if (!role || extra || !s_valid_name(role)) {
		s_error(self, line, "section [" S_AUTOSCALE "%s%s%s%s] needs one "
		    "role of [pipeline] stages: [" S_AUTOSCALE " ROLE]",
		    role ? " " : "", role ? role : "", extra ? " " : "",
		    extra ? extra : "");
		return;
	}
	for (size_t i = 0; i < self->nautoscale; i++)
		if (strcmp(self->autoscale[i].role, role) == 0) {
			s_error(self, line, "duplicate section [" S_AUTOSCALE
			    " %s] (first on line %d)", role,
			    self->autoscale[i].line);
			return;
		}
	if (self->nautoscale == DG_CHAIN_MAX) {
		s_error(self, line, "more than %d [" S_AUTOSCALE "] sections: "
		    "a chain has at most %d roles", DG_CHAIN_MAX, DG_CHAIN_MAX);
		return;
	}
	dg_autoscale_conf_t *a = &self->autoscale[self->nautoscale];
	memset(a, 0, sizeof *a);
	snprintf(a->role, sizeof a->role, "%s", role);
	a->index = -1;
	a->line = line;
	int slot = SLOT_AUTOSCALE0 + (int)self->nautoscale++;
	self->sect_lines[slot] = line;
	s_fill_defaults(self, slot);
	ctx->slot = slot;
	ctx->ignoring = false;
}

static void
s_begin_section(struct s_ctx *ctx, char *header)
{
	dg_config_t *self = ctx->cfg;
	char *save = NULL;
	char *word = strtok_r(header, " \t", &save);
	char *name = word ? strtok_r(NULL, " \t", &save) : NULL;
	char *extra = name ? strtok_r(NULL, " \t", &save) : NULL;
	int line = ctx->lineno;

	ctx->slot = -1;
	ctx->ignoring = true;
	if (!word) {
		s_error(self, line, "empty section name []");
		return;
	}
	if (strcmp(word, S_AUTOSCALE) == 0) {
		s_begin_autoscale(ctx, name, extra);
		return;
	}
	for (int i = 0; i < SLOT_FIXED; i++) {
		if (strcmp(word, s_fixed[i]) != 0)
			continue;
		if (name) {
			s_error(self, line, "section [%s] takes no name, got "
			    "'%s'", word, name);
			return;
		}
		if (self->sect_lines[i]) {
			s_error(self, line, "duplicate section [%s] (first on "
			    "line %d)", word, self->sect_lines[i]);
			return;
		}
		self->sect_lines[i] = line;
		ctx->slot = i;
		ctx->ignoring = false;
		return;
	}
	/* Any other word is a role: whether [pipeline] declares it is
	 * checked at the end, since [pipeline] may come later. */
	if (!s_valid_name(word) || (!name && !s_has_ref_stage(word))) {
		s_error(self, line, "unknown section [%s%s%s]", word,
		    name ? " " : "", name ? name : "");
		return;
	}
	/* Whatever is wrong with it, a section for this role was meant:
	 * "no instance of the role" would only repeat the error. */
	bool bad_before = self->bad_stage_header;
	self->bad_stage_header = true;
	if (!name) {
		s_error(self, line, "section [%s] needs a name: [%s NAME]",
		    word, word);
		return;
	}
	if (extra) {
		s_error(self, line, "section [%s %s %s]: a stage name is one "
		    "word", word, name, extra);
		return;
	}
	if (!s_valid_name(name)) {
		s_error(self, line, "bad stage name '%s' in [%s %s]: use up to "
		    "%d letters, digits, '-', '_' and '.'", name, word, name,
		    DG_NAME_MAX - 1);
		return;
	}
	if (strcmp(name, "controller") == 0) {
		s_error(self, line, "stage name 'controller' in [%s %s] is "
		    "reserved for the controller", word, name);
		return;
	}
	for (size_t i = 0; i < self->nstages; i++) {
		const dg_stage_conf_t *st = &self->stages[i];
		if (strcmp(st->name, name) != 0)
			continue;
		if (strcmp(st->role, word) == 0)
			s_error(self, line, "duplicate section [%s %s] (first "
			    "on line %d)", word, name, st->line);
		else
			s_error(self, line, "stage name '%s' in [%s %s] is "
			    "already used by [%s %s] on line %d", name, word,
			    name, st->role, name, st->line);
		return;
	}
	if (s_grow(self) < 0) {
		self->nomem = true;
		return;
	}
	self->bad_stage_header = bad_before;
	dg_stage_conf_t *st = &self->stages[self->nstages];
	memset(st, 0, sizeof *st);
	snprintf(st->role, sizeof st->role, "%s", word);
	st->index = -1;
	snprintf(st->name, sizeof st->name, "%s", name);
	st->line = line;
	int slot = SLOT_STAGE0 + (int)self->nstages++;
	self->sect_lines[slot] = line;
	s_fill_defaults(self, slot);
	ctx->slot = slot;
	ctx->ignoring = false;
}

/* ---- the inih reader and handler -------------------------------------- */

/* Check one physical line as inih will see it; handle section headers.
 * Returns false when the line is bad and inih should get a blank line. */
static bool
s_scan_line(struct s_ctx *ctx, char *line)
{
	char *p = line;

	if (ctx->lineno == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p || *p == '\n' || *p == '\r' || *p == ';' || *p == '#')
		return true;
	if (*p == '[') {
		char *close = strchr(p, ']');
		if (!close) {
			s_error(ctx->cfg, ctx->lineno, "syntax error: section "
			    "header without ']'");
			ctx->slot = -1;
			ctx->ignoring = true;
			return false;
		}
		for (char *q = close + 1; *q && *q != ';' && *q != '#'; q++) {
			if (!isspace((unsigned char)*q)) {
				s_error(ctx->cfg, ctx->lineno, "syntax error: "
				    "text after section header");
				ctx->slot = -1;
				ctx->ignoring = true;
				return false;
			}
		}
		size_t n = (size_t)(close - p - 1);
		char header[256];
		if (n >= sizeof header)
			n = sizeof header - 1;
		memcpy(header, p + 1, n);
		header[n] = '\0';
		s_begin_section(ctx, header);
		return true;
	}
	if (!strpbrk(p, "=:")) {
		s_error(ctx->cfg, ctx->lineno, "syntax error: expected "
		    "'key = value' or '[section]'");
		return false;
	}
	if (*p == '=' || *p == ':') {
		s_error(ctx->cfg, ctx->lineno, "syntax error: key name missing "
		    "before '%c'", *p);
		return false;
	}
	return true;
}

static ssize_t
s_next_line(struct s_ctx *ctx)
{
	if (ctx->fp)
		return getline(&ctx->buf, &ctx->bufcap, ctx->fp);
	if (!ctx->text[ctx->pos])
		return -1;
	const char *start = ctx->text + ctx->pos;
	const char *nl = strchr(start, '\n');
	size_t n = nl ? (size_t)(nl - start) + 1 : strlen(start);
	if (n + 1 > ctx->bufcap) {
		char *b = realloc(ctx->buf, n + 1);
		if (!b)
			return -1;
		ctx->buf = b;
		ctx->bufcap = n + 1;
	}
	memcpy(ctx->buf, start, n);
	ctx->buf[n] = '\0';
	ctx->pos += n;
	return (ssize_t)n;
}

static char *
s_reader(char *str, int num, void *stream)
{
	struct s_ctx *ctx = stream;
	ssize_t n = s_next_line(ctx);

	if (n < 0)
		return NULL;
	ctx->lineno++;
	/* A NUL inside the line would hide the rest of it from inih. */
	bool ok = strlen(ctx->buf) == (size_t)n;
	if (!ok)
		s_error(ctx->cfg, ctx->lineno, "syntax error: NUL byte in line");
	else if (n >= num) {
		s_error(ctx->cfg, ctx->lineno, "line too long (more than %d "
		    "characters)", num - 3);
		ok = false;
	} else {
		ok = s_scan_line(ctx, ctx->buf);
	}
	if (!ok) {
		ctx->flagged_line = ctx->lineno;
		strcpy(str, "\n");
		return str;
	}
	memcpy(str, ctx->buf, (size_t)n + 1);
	return str;
}

static const dg_key_t *
s_find_key(unsigned kind, const char *name, int *index)
{
	for (size_t i = 0; i < dg_config_nkeys; i++) {
		if ((dg_config_keys[i].sections & kind) &&
		    strcmp(dg_config_keys[i].name, name) == 0) {
			*index = (int)i;
			return &dg_config_keys[i];
		}
	}
	return NULL;
}

static void
s_unknown_key(dg_config_t *self, int line, const char *name,
    const char *label)
{
	int index;
	const dg_key_t *other = s_find_key(DG_SEC_CONTROLLER | DG_SEC_FABRIC |
	    DG_SEC_SECURITY | DG_SEC_STAGES, name, &index);
	if (other && other->sections == DG_SEC_FABRIC)
		s_error(self, line, "unknown key '%s' in %s (it belongs in "
		    "[fabric])", name, label);
	else
		s_error(self, line, "unknown key '%s' in %s", name, label);
}

static void
s_opt_add(dg_config_t *self, size_t stage, const char *name,
    const char *value, int line)
{
	s_opts_t *o = &self->opts[stage];
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->kv[2 * i], name) == 0) {
			char label[2 * DG_NAME_MAX + 8];
			s_slot_label(self, SLOT_STAGE0 + (int)stage, label,
			    sizeof label);
			s_error(self, line, "duplicate key '%s' in %s (first set "
			    "on line %d)", name, label, o->lines[i]);
			return;
		}
	char **kv = realloc(o->kv, (2 * o->n + 3) * sizeof *kv);
	if (kv)
		o->kv = kv;
	int *lines = kv ? realloc(o->lines, (o->n + 1) * sizeof *lines) : NULL;
	if (lines)
		o->lines = lines;
	char *k = strdup(name), *v = strdup(value);
	if (!kv || !lines || !k || !v) {
		free(k);
		free(v);
		self->nomem = true;
		return;
	}
	kv[2 * o->n] = k;
	kv[2 * o->n + 1] = v;
	kv[2 * o->n + 2] = NULL;
	lines[o->n++] = line;
}

bool
dg_config_stage_is_python(const char *stage)
{
	return strncmp(stage, "python:", 7) == 0;
}

const char *const *
dg_config_stage_options(const dg_config_t *self, const dg_stage_conf_t *st,
    const int **lines)
{
	static const char *const none[] = { NULL };
	static const int nolines[] = { 0 };
	const s_opts_t *o = &self->opts[st - self->stages];
	*lines = o->n ? o->lines : nolines;
	return o->n ? (const char *const *)o->kv : none;
}

static int
s_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct s_ctx *ctx = user;
	dg_config_t *self = ctx->cfg;
	int line = ctx->lineno;
	char label[2 * DG_NAME_MAX + 8];
	char why[256];
	int index;

	(void)section;
	if (ctx->ignoring)
		return 1;
	if (ctx->slot < 0) {
		s_error(self, line, "key '%s' outside any section", name);
		return 1;
	}
	s_slot_label(self, ctx->slot, label, sizeof label);
	const dg_key_t *k = s_find_key(s_slot_kind(self, ctx->slot), name,
	    &index);
	/* A stage's unknown key may be its Python class's own: whether it
	 * is can only be told once the section's `stage` is known. */
	if (!k && ctx->slot >= SLOT_STAGE0 && s_valid_name(name)) {
		s_opt_add(self, ctx->slot - SLOT_STAGE0, name, value, line);
		return 1;
	}
	if (!k) {
		s_unknown_key(self, line, name, label);
		return 1;
	}
	int *seen = &self->key_lines[(size_t)ctx->slot * dg_config_nkeys +
	    (size_t)index];
	if (*seen) {
		s_error(self, line, "duplicate key '%s' in %s (first set on "
		    "line %d)", name, label, *seen);
		return 1;
	}
	*seen = line;
	int rc = s_set_value(k, s_slot_base(self, ctx->slot), value, why,
	    sizeof why);
	if (rc == -2)
		s_error(self, line, "value of '%s' in %s is out of range: %s",
		    name, label, why);
	else if (rc < 0)
		s_error(self, line, "bad value for '%s' in %s: %s, got '%.64s%s'",
		    name, label, why, value, strlen(value) > 64 ? "..." : "");
	return 1;
}

/* ---- checks across keys ------------------------------------------------ */

struct s_endpoint {
	const char *value;
	char label[2 * DG_NAME_MAX + 24];
	int line;
};

/* Same endpoint, or two tcp binds on one port where one host is a
 * wildcard. */
static bool
s_endpoints_clash(const char *a, const char *b)
{
	if (strcmp(a, b) == 0)
		return true;
	if (strncmp(a, "tcp://", 6) != 0 || strncmp(b, "tcp://", 6) != 0)
		return false;
	const char *pa = strrchr(a, ':'), *pb = strrchr(b, ':');
	if (strcmp(pa, pb) != 0)
		return false;
	size_t la = (size_t)(pa - a - 6), lb = (size_t)(pb - b - 6);
	bool wa = (la == 1 && a[6] == '*') || (la == 7 && !strncmp(a + 6, "0.0.0.0", 7));
	bool wb = (lb == 1 && b[6] == '*') || (lb == 7 && !strncmp(b + 6, "0.0.0.0", 7));
	return wa || wb || (la == lb && strncmp(a + 6, b + 6, la) == 0);
}

static void
s_check_endpoints(dg_config_t *self)
{
	size_t n = 2 + self->nstages;
	struct s_endpoint *eps = calloc(n, sizeof *eps);
	int i_listen = 0, i_publish = 0, i_peer = 0;

	if (!eps) {
		self->nomem = true;
		return;
	}
	s_find_key(DG_SEC_CONTROLLER, "listen", &i_listen);
	s_find_key(DG_SEC_CONTROLLER, "publish", &i_publish);
	s_find_key(DG_SEC_STAGES, "peer", &i_peer);
	eps[0].value = self->controller.listen;
	eps[0].line = self->key_lines[i_listen];
	snprintf(eps[0].label, sizeof eps[0].label, "'listen' in [controller]");
	eps[1].value = self->controller.publish;
	eps[1].line = self->key_lines[i_publish];
	snprintf(eps[1].label, sizeof eps[1].label, "'publish' in [controller]");
	for (size_t i = 0; i < self->nstages; i++) {
		const dg_stage_conf_t *st = &self->stages[i];
		eps[2 + i].value = st->peer;
		eps[2 + i].line = self->key_lines[(SLOT_STAGE0 + i) *
		    dg_config_nkeys + (size_t)i_peer];
		snprintf(eps[2 + i].label, sizeof eps[2 + i].label,
		    "'peer' in [%s %s]", st->role, st->name);
	}
	for (size_t j = 1; j < n; j++) {
		for (size_t i = 0; i < j; i++) {
			const struct s_endpoint *a = &eps[i], *b = &eps[j];
			if (!*a->value || !*b->value ||
			    !s_endpoints_clash(a->value, b->value))
				continue;
			/* Report on the later line; a default has none. */
			if (a->line > b->line) {
				const struct s_endpoint *t = a;
				a = b;
				b = t;
			}
			char where[32];
			if (a->line)
				snprintf(where, sizeof where, "line %d", a->line);
			else
				snprintf(where, sizeof where, "default");
			s_error(self, b->line, "endpoint '%s' of %s is already "
			    "used by %s (%s)", b->value, b->label, a->label,
			    where);
			break;
		}
	}
	free(eps);
}

static bool
s_reserved(const char *word)
{
	for (int i = 0; i < SLOT_FIXED; i++)
		if (strcmp(word, s_fixed[i]) == 0)
			return true;
	return strcmp(word, S_AUTOSCALE) == 0;
}

/* [pipeline] stages: the chain, each role once, each with instances. */
static void
s_check_pipeline(dg_config_t *self)
{
	dg_pipeline_conf_t *p = &self->pipeline;
	int i_stages = 0;
	s_find_key(DG_SEC_PIPELINE, "stages", &i_stages);
	int line = self->key_lines[SLOT_PIPELINE * dg_config_nkeys +
	    (size_t)i_stages];
	char copy[sizeof p->stages], *save = NULL;

	snprintf(copy, sizeof copy, "%s", p->stages);
	p->nroles = 0;
	for (char *w = strtok_r(copy, " \t,", &save); w;
	    w = strtok_r(NULL, " \t,", &save)) {
		if (p->nroles == DG_CHAIN_MAX) {
			s_error(self, line, "[pipeline] stages names more than "
			    "%d roles", DG_CHAIN_MAX);
			return;
		}
		if (!s_valid_name(w) || s_reserved(w) ||
		    strcmp(w, "controller") == 0) {
			s_error(self, line, "bad role '%s' in [pipeline] stages: "
			    "use letters, digits, '-', '_' and '.', and none of "
			    "controller, fabric, security, pipeline, autoscale",
			    w);
			return;
		}
		for (size_t i = 0; i < p->nroles; i++)
			if (strcmp(p->roles[i], w) == 0) {
				s_error(self, line, "role '%s' appears twice in "
				    "[pipeline] stages: give each place in the "
				    "chain its own role name", w);
				return;
			}
		snprintf(p->roles[p->nroles++], DG_NAME_MAX, "%s", w);
	}
	if (p->nroles < 2) {
		s_error(self, line, "[pipeline] stages needs at least 2 roles, "
		    "got %zu", p->nroles);
		return;
	}
	/* A file of settings alone ([controller], [fabric]...) describes no
	 * pipeline; disaggd refuses to run one (disaggd.c).  Once it has a
	 * stage or [pipeline], the chain must be whole. */
	if (self->nstages == 0 && !self->sect_lines[SLOT_PIPELINE])
		return;
	for (size_t s = 0; s < self->nstages; s++) {
		dg_stage_conf_t *st = &self->stages[s];
		st->index = dg_config_role_index(self, st->role);
		if (st->index < 0)
			s_error(self, st->line, "section [%s %s]: role '%s' is "
			    "not in [pipeline] stages (%s)", st->role, st->name,
			    st->role, p->stages);
	}
	for (size_t i = 0; i < p->nroles && !self->bad_stage_header; i++) {
		size_t n = 0;
		for (size_t s = 0; s < self->nstages; s++)
			n += strcmp(self->stages[s].role, p->roles[i]) == 0;
		if (n == 0)
			s_error(self, line, "role '%s' of [pipeline] stages has "
			    "no instance: add a [%s NAME] section", p->roles[i],
			    p->roles[i]);
	}
}

/* A command's escapes: %n, %r and %% only. */
static bool
s_command_ok(const char *cmd, char *bad)
{
	for (const char *p = strchr(cmd, '%'); p; p = strchr(p + 2, '%')) {
		if (!p[1] || !strchr("nr%", p[1])) {
			*bad = p[1];
			return false;
		}
	}
	return true;
}

/* [autoscale ROLE]: a role of the chain, min <= max <= its sections. */
static void
s_check_autoscale(dg_config_t *self)
{
	int i_cmd = 0, i_stop = 0;
	s_find_key(DG_SEC_AUTOSCALE, "scale_command", &i_cmd);
	s_find_key(DG_SEC_AUTOSCALE, "stop_command", &i_stop);

	for (size_t i = 0; i < self->nautoscale; i++) {
		dg_autoscale_conf_t *a = &self->autoscale[i];
		int slot = SLOT_AUTOSCALE0 + (int)i;
		a->index = dg_config_role_index(self, a->role);
		if (a->index < 0) {
			s_error(self, a->line, "section [" S_AUTOSCALE " %s]: "
			    "role '%s' is not in [pipeline] stages (%s)",
			    a->role, a->role, self->pipeline.stages);
			continue;
		}
		int64_t n = 0;
		for (size_t s = 0; s < self->nstages; s++)
			n += strcmp(self->stages[s].role, a->role) == 0;
		if (a->min > a->max)
			s_error(self, a->line, "[" S_AUTOSCALE " %s]: min (%lld) "
			    "is larger than max (%lld)", a->role,
			    (long long)a->min, (long long)a->max);
		else if (a->max > n && n > 0)
			s_error(self, a->line, "[" S_AUTOSCALE " %s]: max = %lld "
			    "but there %s only %lld [%s NAME] section%s: the "
			    "autoscaler starts and stops configured sections",
			    a->role, (long long)a->max, n == 1 ? "is" : "are",
			    (long long)n, a->role, n == 1 ? "" : "s");
		const char *cmds[] = { a->scale_command, a->stop_command };
		const int idx[] = { i_cmd, i_stop };
		for (int c = 0; c < 2; c++) {
			char bad = 0;
			if (s_command_ok(cmds[c], &bad))
				continue;
			s_error(self, self->key_lines[(size_t)slot *
			    dg_config_nkeys + (size_t)idx[c]], "'%s' in ["
			    S_AUTOSCALE " %s]: unknown escape '%%%c' (use %%n "
			    "for the section's name, %%r for its role, %%%% for "
			    "%%)", dg_config_keys[idx[c]].name, a->role,
			    bad ? bad : ' ');
		}
	}
}

static void
s_check_after(dg_config_t *self)
{
	int i_stage = 0;
	s_find_key(DG_SEC_STAGES, "stage", &i_stage);
	s_check_pipeline(self);
	s_check_autoscale(self);
	for (size_t s = 0; s < self->nstages; s++) {
		int slot = SLOT_STAGE0 + (int)s;
		dg_stage_conf_t *st = &self->stages[s];
		unsigned kind = s_slot_kind(self, slot);
		for (size_t i = 0; i < dg_config_nkeys; i++) {
			const dg_key_t *k = &dg_config_keys[i];
			if ((k->sections & kind) && (k->flags & DG_KF_REQUIRED) &&
			    !self->key_lines[(size_t)slot * dg_config_nkeys + i])
				s_error(self, st->line, "missing required key "
				    "'%s' in [%s %s]", k->name, st->role,
				    st->name);
		}
		if (!s_has_ref_stage(st->role) &&
		    !self->key_lines[(size_t)slot * dg_config_nkeys +
		    (size_t)i_stage])
			s_error(self, st->line, "missing key 'stage' in [%s %s]: "
			    "only encoder, transformer and decoder have a "
			    "reference stage to default to", st->role, st->name);
		/* Keys of no stage but a Python class's. */
		const s_opts_t *o = &self->opts[s];
		for (size_t i = 0; i < o->n &&
		    !dg_config_stage_is_python(st->stage); i++) {
			char label[2 * DG_NAME_MAX + 8];
			s_slot_label(self, slot, label, sizeof label);
			s_unknown_key(self, o->lines[i], o->kv[2 * i], label);
		}
		int i_out = 0;
		s_find_key(DG_SEC_STAGES, "output_dir", &i_out);
		int out_line = self->key_lines[(size_t)slot * dg_config_nkeys +
		    (size_t)i_out];
		if (out_line && st->index >= 0 &&
		    (size_t)st->index + 1 != self->pipeline.nroles)
			s_error(self, out_line, "'output_dir' in [%s %s]: only the "
			    "last role of [pipeline] stages (%s) writes files",
			    st->role, st->name,
			    self->pipeline.roles[self->pipeline.nroles - 1]);
		if (st->slot > st->pool)
			s_error(self, st->line, "'slot' in [%s %s] is larger "
			    "than its 'pool'", st->role, st->name);
	}
	s_check_endpoints(self);
}

/* ---- the object --------------------------------------------------------- */

static dg_config_t *
s_new(const char *file)
{
	dg_config_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->file = strdup(file ? file : "-");
	self->nslots_cap = SLOT_STAGE0 + 4;
	self->key_lines = calloc(self->nslots_cap * dg_config_nkeys,
	    sizeof *self->key_lines);
	self->sect_lines = calloc(self->nslots_cap, sizeof *self->sect_lines);
	if (!self->file || !self->key_lines || !self->sect_lines) {
		dg_config_destroy(&self);
		return NULL;
	}
	for (int slot = 0; slot < SLOT_FIXED; slot++)
		s_fill_defaults(self, slot);
	return self;
}

static dg_config_t *
s_parse(dg_config_t *self, struct s_ctx *ctx)
{
	ctx->cfg = self;
	ctx->slot = -1;
	/* Debian's inih exposes its options as globals: an indented line is
	 * a mistake here, not a continuation of the previous value. */
	ini_allow_multiline = false;
	int rc = ini_parse_stream(s_reader, ctx, s_handler, ctx);
	if (rc > 0 && rc != ctx->flagged_line)
		s_error(self, rc, "syntax error");
	else if (rc == -2)
		self->nomem = true;
	free(ctx->buf);
	s_check_after(self);
	if (self->nomem) {
		dg_config_destroy(&self);
		return NULL;
	}
	return self;
}

dg_config_t *
dg_config_load(const char *path)
{
	dg_config_t *self = s_new(path);
	struct s_ctx ctx = { 0 };

	if (!self)
		return NULL;
	ctx.fp = fopen(path, "r");
	if (!ctx.fp) {
		s_error(self, 0, "cannot open: %s", strerror(errno));
		return self;
	}
	/* A folder, a device or a pipe is no configuration, and reading
	 * one (/dev/urandom) would never end. */
	struct stat st;
	if (fstat(fileno(ctx.fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		s_error(self, 0, "not a regular file");
		fclose(ctx.fp);
		return self;
	}
	if (st.st_size > DG_CONFIG_MAX_BYTES) {
		s_error(self, 0, "%lld bytes: a configuration has at most %d",
		    (long long)st.st_size, DG_CONFIG_MAX_BYTES);
		fclose(ctx.fp);
		return self;
	}
	self = s_parse(self, &ctx);
	fclose(ctx.fp);
	return self;
}

dg_config_t *
dg_config_parse_string(const char *name, const char *text)
{
	dg_config_t *self = s_new(name);
	struct s_ctx ctx = { .text = text };

	if (!self)
		return NULL;
	return s_parse(self, &ctx);
}

void
dg_config_destroy(dg_config_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_config_t *self = *self_p;
	for (size_t i = 0; i < self->nerrors; i++)
		free(self->errors[i]);
	free(self->errors);
	for (size_t i = 0; i < self->nstages; i++) {
		for (size_t k = 0; k < 2 * self->opts[i].n; k++)
			free(self->opts[i].kv[k]);
		free(self->opts[i].kv);
		free(self->opts[i].lines);
	}
	free(self->opts);
	free(self->stages);
	free(self->key_lines);
	free(self->sect_lines);
	free(self->file);
	free(self);
	*self_p = NULL;
}

size_t
dg_config_error_count(const dg_config_t *self)
{
	return self->nerrors;
}

const char *
dg_config_error(const dg_config_t *self, size_t index)
{
	return index < self->nerrors ? self->errors[index] : NULL;
}

const char *
dg_config_file(const dg_config_t *self)
{
	return self->file;
}

const dg_controller_conf_t *
dg_config_controller(const dg_config_t *self)
{
	return &self->controller;
}

const dg_fabric_conf_t *
dg_config_fabric(const dg_config_t *self)
{
	return &self->fabric;
}

const dg_security_conf_t *
dg_config_security(const dg_config_t *self)
{
	return &self->security;
}

const char *
dg_expert_name(int expert)
{
	int index;
	const dg_key_t *k = s_find_key(DG_SEC_STAGES, "expert", &index);
	return expert >= DG_EXPERT_ALL && expert <= DG_EXPERT_LOW ?
	    k->choices[expert] : "all";
}

const dg_pipeline_conf_t *
dg_config_pipeline(const dg_config_t *self)
{
	return &self->pipeline;
}

int
dg_pipeline_index(const dg_pipeline_conf_t *chain, const char *role)
{
	for (size_t i = 0; role && i < chain->nroles; i++)
		if (strcmp(chain->roles[i], role) == 0)
			return (int)i;
	return -1;
}

int
dg_config_role_index(const dg_config_t *self, const char *role)
{
	return dg_pipeline_index(&self->pipeline, role);
}

size_t
dg_config_autoscale_count(const dg_config_t *self)
{
	return self->nautoscale;
}

const dg_autoscale_conf_t *
dg_config_autoscale_at(const dg_config_t *self, size_t i)
{
	return i < self->nautoscale ? &self->autoscale[i] : NULL;
}

const dg_autoscale_conf_t *
dg_config_autoscale(const dg_config_t *self, const char *role)
{
	for (size_t i = 0; i < self->nautoscale; i++)
		if (strcmp(self->autoscale[i].role, role) == 0)
			return &self->autoscale[i];
	return NULL;
}

size_t
dg_config_stage_count(const dg_config_t *self)
{
	return self->nstages;
}

const dg_stage_conf_t *
dg_config_stage_at(const dg_config_t *self, size_t i)
{
	return i < self->nstages ? &self->stages[i] : NULL;
}

const dg_stage_conf_t *
dg_config_stage(const dg_config_t *self, const char *name)
{
	const char *space = strchr(name, ' ');

	for (size_t i = 0; i < self->nstages; i++) {
		const dg_stage_conf_t *st = &self->stages[i];
		if (!space && strcmp(st->name, name) == 0)
			return st;
		if (space && strncmp(st->role, name,
		    (size_t)(space - name)) == 0 &&
		    !st->role[space - name] &&
		    strcmp(st->name, space + 1) == 0)
			return st;
	}
	return NULL;
}

static void
s_dump_slot(const dg_config_t *self, int slot, FILE *out)
{
	char label[2 * DG_NAME_MAX + 8];
	char value[DG_PATH_MAX];
	unsigned kind = s_slot_kind(self, slot);
	const void *base = s_slot_base((dg_config_t *)self, slot);

	s_slot_label(self, slot, label, sizeof label);
	fprintf(out, "%s\n", label);
	const dg_stage_conf_t *st = slot >= SLOT_STAGE0 ?
	    &self->stages[slot - SLOT_STAGE0] : NULL;
	bool last = st && (size_t)st->index + 1 == self->pipeline.nroles;
	for (size_t i = 0; i < dg_config_nkeys; i++) {
		const dg_key_t *k = &dg_config_keys[i];
		if (!(k->sections & kind))
			continue;
		/* Only the last stage writes files (s_check_after). */
		if (st && !last && strcmp(k->name, "output_dir") == 0)
			continue;
		s_format_value(k, base, value, sizeof value);
		fprintf(out, "%s =%s%s\n", k->name, *value ? " " : "", value);
	}
	if (slot >= SLOT_STAGE0) {
		const s_opts_t *o = &self->opts[slot - SLOT_STAGE0];
		for (size_t i = 0; i < o->n; i++)
			fprintf(out, "%s =%s%s\n", o->kv[2 * i],
			    *o->kv[2 * i + 1] ? " " : "", o->kv[2 * i + 1]);
	}
}

void
dg_config_dump(const dg_config_t *self, FILE *out)
{
	fprintf(out, "; effective configuration of %s\n", self->file);
	for (int slot = 0; slot < SLOT_STAGE0 + (int)self->nstages; slot++) {
		if (slot >= SLOT_AUTOSCALE0 + (int)self->nautoscale &&
		    slot < SLOT_STAGE0)
			continue;
		/* A file of settings alone stays one (s_check_pipeline). */
		if (slot == SLOT_PIPELINE && self->nstages == 0 &&
		    !self->sect_lines[SLOT_PIPELINE])
			continue;
		fputc('\n', out);
		s_dump_slot(self, slot, out);
	}
}

static int
s_compare_slot(const dg_config_t *a, int sa, const dg_config_t *b, int sb,
    dg_config_change_fn *fn, void *arg)
{
	char label[2 * DG_NAME_MAX + 8];
	char va[DG_PATH_MAX], vb[DG_PATH_MAX];
	unsigned kind = s_slot_kind(a, sa);
	const void *ba = s_slot_base((dg_config_t *)a, sa);
	const void *bb = s_slot_base((dg_config_t *)b, sb);
	int restart = 0;

	s_slot_label(a, sa, label, sizeof label);
	for (size_t i = 0; i < dg_config_nkeys; i++) {
		const dg_key_t *k = &dg_config_keys[i];
		if (!(k->sections & kind))
			continue;
		s_format_value(k, ba, va, sizeof va);
		s_format_value(k, bb, vb, sizeof vb);
		if (strcmp(va, vb) == 0)
			continue;
		bool reload = (k->flags & DG_KF_RELOAD) != 0;
		if (!reload)
			restart++;
		if (fn)
			fn(label, k->name, reload, arg);
	}
	return restart;
}

/* A Python class's keys: read once at start, so any change needs a
 * restart. */
static int
s_find_opt(const s_opts_t *o, const char *key)
{
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->kv[2 * i], key) == 0)
			return (int)i;
	return -1;
}

static int
s_opt_changed(const s_opts_t *a, const s_opts_t *b, size_t i)
{
	int j = s_find_opt(b, a->kv[2 * i]);
	return j < 0 || strcmp(a->kv[2 * i + 1], b->kv[2 * j + 1]) != 0;
}

static int
s_compare_opts(const s_opts_t *a, const s_opts_t *b, const char *name,
    dg_config_change_fn *fn, void *arg)
{
	int restart = 0;
	for (size_t i = 0; i < a->n; i++)
		if (s_opt_changed(a, b, i)) {
			restart++;
			if (fn)
				fn(name, a->kv[2 * i], false, arg);
		}
	for (size_t i = 0; i < b->n; i++)
		if (s_find_opt(a, b->kv[2 * i]) < 0) {
			restart++;
			if (fn)
				fn(name, b->kv[2 * i], false, arg);
		}
	return restart;
}

/* The controller's [autoscale ROLE] sections, read at its start: a
 * section added or removed is one change. */
static int
s_compare_autoscale(const dg_config_t *a, const dg_config_t *b,
    dg_config_change_fn *fn, void *arg)
{
	int restart = 0;

	for (int pass = 0; pass < 2; pass++) {
		const dg_config_t *x = pass ? b : a, *y = pass ? a : b;
		for (size_t i = 0; i < x->nautoscale; i++) {
			const dg_autoscale_conf_t *ax = &x->autoscale[i];
			const dg_autoscale_conf_t *ay =
			    dg_config_autoscale(y, ax->role);
			if (ay && pass == 0)
				restart += s_compare_slot(x, SLOT_AUTOSCALE0 +
				    (int)i, y, SLOT_AUTOSCALE0 +
				    (int)(ay - y->autoscale), fn, arg);
			if (ay)
				continue;
			char label[DG_NAME_MAX + 16];
			snprintf(label, sizeof label, "[" S_AUTOSCALE " %s]",
			    ax->role);
			restart++;
			if (fn)
				fn(label, pass ? "section added" :
				    "section removed", false, arg);
		}
	}
	return restart;
}

int
dg_config_changes(const dg_config_t *old_cfg, const dg_config_t *new_cfg,
    const char *name, dg_config_change_fn *fn, void *arg)
{
	int restart = 0;
	int sa = SLOT_CONTROLLER, sb = SLOT_CONTROLLER;

	if (strcmp(name, "controller") != 0) {
		const dg_stage_conf_t *a = dg_config_stage(old_cfg, name);
		const dg_stage_conf_t *b = dg_config_stage(new_cfg, name);
		if (!a || !b || strcmp(a->role, b->role) != 0)
			return -1;
		sa = SLOT_STAGE0 + (int)(a - old_cfg->stages);
		sb = SLOT_STAGE0 + (int)(b - new_cfg->stages);
	}
	restart += s_compare_slot(old_cfg, sa, new_cfg, sb, fn, arg);
	if (sa == SLOT_CONTROLLER)
		restart += s_compare_autoscale(old_cfg, new_cfg, fn, arg);
	if (sa >= SLOT_STAGE0)
		restart += s_compare_opts(&old_cfg->opts[sa - SLOT_STAGE0],
		    &new_cfg->opts[sb - SLOT_STAGE0], name, fn, arg);
	restart += s_compare_slot(old_cfg, SLOT_FABRIC, new_cfg, SLOT_FABRIC,
	    fn, arg);
	restart += s_compare_slot(old_cfg, SLOT_SECURITY, new_cfg,
	    SLOT_SECURITY, fn, arg);
	restart += s_compare_slot(old_cfg, SLOT_PIPELINE, new_cfg,
	    SLOT_PIPELINE, fn, arg);
	return restart;
}

/* ---- key table for documentation -------------------------------------- */

static dg_config_keyinfo_t *s_info;
static char (*s_ranges)[96];
static pthread_once_t s_info_once = PTHREAD_ONCE_INIT;

static void
s_info_init(void)
{
	static const char *const types[] = { "integer", "size", "duration",
	    "fraction", "boolean", "enum", "string", "path", "endpoint" };
	s_info = calloc(dg_config_nkeys, sizeof *s_info);
	s_ranges = calloc(dg_config_nkeys, sizeof *s_ranges);
	if (!s_info || !s_ranges) {
		free(s_info);
		s_info = NULL;
		return;
	}
	for (size_t i = 0; i < dg_config_nkeys; i++) {
		const dg_key_t *k = &dg_config_keys[i];
		dg_config_keyinfo_t *info = &s_info[i];
		info->section =
		    k->sections == DG_SEC_CONTROLLER ? "controller" :
		    k->sections == DG_SEC_FABRIC ? "fabric" :
		    k->sections == DG_SEC_SECURITY ? "security" :
		    k->sections == DG_SEC_PIPELINE ? "pipeline" :
		    k->sections == DG_SEC_AUTOSCALE ? S_AUTOSCALE " ROLE" :
		    "ROLE NAME";
		info->name = k->name;
		info->type = types[k->type];
		info->def = k->def;
		info->range = s_ranges[i];
		if (k->type == DG_KT_ENUM) {
			size_t n = 0;
			for (int c = 0; k->choices[c]; c++)
				n += (size_t)snprintf(s_ranges[i] + n,
				    sizeof s_ranges[i] - n, "%s%s", c ? "|" : "",
				    k->choices[c]);
		} else if (k->type == DG_KT_BOOL) {
			snprintf(s_ranges[i], sizeof s_ranges[i], "on|off");
		} else if (k->type <= DG_KT_FRACTION) {
			char lo[32], hi[32];
			dg_key_t copy = *k;
			int64_t box[2] = { k->min, k->max };
			copy.offset = 0;
			s_format_value(&copy, &box[0], lo, sizeof lo);
			s_format_value(&copy, &box[1], hi, sizeof hi);
			snprintf(s_ranges[i], sizeof s_ranges[i], "%s..%s", lo, hi);
		}
		info->required = (k->flags & DG_KF_REQUIRED) != 0;
		info->reloadable = (k->flags & DG_KF_RELOAD) != 0;
		info->help = k->help;
	}
}

size_t
dg_config_key_count(void)
{
	return dg_config_nkeys;
}

const dg_config_keyinfo_t *
dg_config_key_at(size_t index)
{
	pthread_once(&s_info_once, s_info_init);
	return s_info && index < dg_config_nkeys ? &s_info[index] : NULL;
}
