/*  proto.c: encode and decode control-plane frames (ARCHITECTURE.md, "The wire protocol").
 *
 *  Both directions are generic walkers over the descriptor table of
 *  proto_catalog.c; nothing here knows a particular op.  Decoding runs in
 *  three steps: proto_scan.c checks the raw bytes against every limit,
 *  msgpack-c builds its object tree, and the walker below fills the typed
 *  struct, copying strings and lists into the message's arena so that the
 *  caller's buffer (a ZeroMQ frame) can go at once.
 *
 *  The encoder refuses whatever the decoder would refuse (limits, bad
 *  UTF-8, duplicate keys), so a frame we send is one we would accept.  */
#include "proto.h"
#include "proto_scan.h"

#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_code_names[DG_PROTO_CODE_COUNT] = {
	[DG_PROTO_OK]                   = "ok",
	[DG_PROTO_E_TRUNCATED]          = "truncated",
	[DG_PROTO_E_MALFORMED]          = "malformed",
	[DG_PROTO_E_TRAILING]           = "trailing",
	[DG_PROTO_E_NOT_A_MAP]          = "not-a-map",
	[DG_PROTO_E_VERSION]            = "version",
	[DG_PROTO_E_UNKNOWN_OP]         = "unknown-op",
	[DG_PROTO_E_MISSING]            = "missing",
	[DG_PROTO_E_TYPE]               = "type",
	[DG_PROTO_E_RANGE]              = "range",
	[DG_PROTO_E_DUPLICATE]          = "duplicate",
	[DG_PROTO_E_FRAME_TOO_LARGE]    = "frame-too-large",
	[DG_PROTO_E_STRING_TOO_LONG]    = "string-too-long",
	[DG_PROTO_E_TOO_MANY_TENSORS]   = "too-many-tensors",
	[DG_PROTO_E_TOO_MANY_ITEMS]     = "too-many-items",
	[DG_PROTO_E_TOO_DEEP]           = "too-deep",
	[DG_PROTO_E_NOMEM]              = "nomem",
	[DG_PROTO_E_INVALID]            = "invalid",
	[DG_PROTO_E_BUSY]               = "busy",
	[DG_PROTO_E_NOT_FOUND]          = "not-found",
	[DG_PROTO_E_DENIED]             = "denied",
	[DG_PROTO_E_INTERNAL]           = "internal",
	[DG_PROTO_E_TIMEOUT]            = "timeout",
	[DG_PROTO_E_DEADLINE]           = "deadline",
};

const char *
dg_proto_code_name(dg_proto_code_t code)
{
	if ((unsigned)code >= DG_PROTO_CODE_COUNT)
		return "internal";
	return s_code_names[code];
}

int
dg_proto_code_lookup(const char *word)
{
	for (int i = 0; word && i < DG_PROTO_CODE_COUNT; i++)
		if (strcmp(s_code_names[i], word) == 0)
			return i;
	return -1;
}

/* ------------------------------------------------------------------ */
/* Messages and their arena: a list of chunks, bump-allocated, freed
 * together.  One decode makes one or two allocations, not one per
 * string. */

#define S_ALIGN     _Alignof(max_align_t)
#define S_CHUNK_MIN 1024
#define S_CHUNK_MAX (64u << 10)

struct dg_arena_chunk {
	struct dg_arena_chunk *next;
	size_t size;
	size_t used;
	_Alignas(max_align_t) unsigned char data[];
};

static void
s_set_defaults(const dg_struct_desc_t *desc, void *base, uint64_t got)
{
	for (size_t i = 0; i < desc->nfields; i++) {
		const dg_field_desc_t *f = &desc->fields[i];
		void *p = (char *)base + f->offset;

		if (got >> i & 1 || f->flags & DG_FIELD_REQUIRED)
			continue;
		if (f->type == DG_FT_INT)
			*(int64_t *)p = f->def;
		else if (f->type == DG_FT_UINT)
			*(uint64_t *)p = (uint64_t)f->def;
		else if (f->type == DG_FT_BOOL)
			*(bool *)p = f->def != 0;
		else if (f->type == DG_FT_FLOAT)
			*(double *)p = (double)f->def;
	}
}

dg_msg_t *
dg_msg_new(dg_op_t op)
{
	const dg_op_desc_t *desc = dg_proto_op_desc(op);
	dg_msg_t *msg;

	if (!desc) {
		errno = EINVAL;
		return NULL;
	}
	msg = calloc(1, sizeof *msg);
	if (!msg)
		return NULL;
	msg->op = op;
	s_set_defaults(&desc->body, &msg->u, 0);
	return msg;
}

void
dg_msg_destroy(dg_msg_t **msg_p)
{
	dg_msg_t *msg = msg_p ? *msg_p : NULL;

	if (!msg)
		return;
	while (msg->arena_) {
		struct dg_arena_chunk *next = msg->arena_->next;
		free(msg->arena_);
		msg->arena_ = next;
	}
	free(msg);
	*msg_p = NULL;
}

void *
dg_msg_alloc(dg_msg_t *msg, size_t size)
{
	struct dg_arena_chunk *head = msg->arena_, *c;
	size_t want;

	if (size > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	size = size ? (size + S_ALIGN - 1) / S_ALIGN * S_ALIGN : S_ALIGN;
	if (head && head->size - head->used >= size) {
		head->used += size;
		return head->data + head->used - size;
	}
	/* Chunks double up to 64 KiB.  A bigger request gets a chunk of its
	 * own, filed behind the head so that the head's room still serves. */
	want = head ? head->size * 2 : S_CHUNK_MIN;
	if (want > S_CHUNK_MAX)
		want = S_CHUNK_MAX;
	if (want < size)
		want = size;
	c = calloc(1, sizeof *c + want);
	if (!c)
		return NULL;
	c->size = want;
	c->used = size;
	if (head && want == size) {
		c->next = head->next;
		head->next = c;
	} else {
		c->next = head;
		msg->arena_ = c;
	}
	return c->data;
}

char *
dg_msg_strdup(dg_msg_t *msg, const char *s)
{
	size_t n;
	char *p;

	if (!s)
		return NULL;
	n = strlen(s);
	p = dg_msg_alloc(msg, n + 1);
	if (p)
		memcpy(p, s, n + 1);
	return p;
}

bool
dg_msg_has(const dg_msg_t *msg, const char *key)
{
	const dg_op_desc_t *desc = msg ? dg_proto_op_desc(msg->op) : NULL;

	for (size_t i = 0; desc && key && i < desc->body.nfields; i++)
		if (strcmp(desc->body.fields[i].key, key) == 0)
			return msg->present >> i & 1;
	return false;
}

void
dg_buf_free(dg_buf_t *buf)
{
	if (!buf)
		return;
	free(buf->data);
	buf->data = NULL;
	buf->size = 0;
}

/* ------------------------------------------------------------------ */
/* UTF-8.  msgpack's str is UTF-8 by definition and Python clients decode
 * it strictly, so a string we accept (or relay, or send) must be valid. */

/* Length of the valid UTF-8 sequence at s (n > 0 bytes), 0 if invalid. */
static size_t
s_utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp, min;
	size_t need;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		need = 1; cp = s[0] & 0x1f; min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		need = 2; cp = s[0] & 0x0f; min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		need = 3; cp = s[0] & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (n - 1 < need)
		return 0;
	for (size_t i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and beyond Unicode are invalid. */
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

static bool
s_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		if (p[i] < 0x80) {      /* the common case, without a call */
			i++;
			continue;
		}
		k = s_utf8_seq(p + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

/* Copies src into dst[size] for an error message: printable ASCII only,
 * since it may come from a hostile frame and goes back on the wire. */
static void
s_sanitize(char *dst, size_t size, const char *src, size_t n)
{
	size_t i, j = 0;

	for (i = 0; i < n && j + 4 < size; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (i < n) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	dst[j] = '\0';
}

/* ------------------------------------------------------------------ */
/* Decoding */

/* Where a value sits, for error messages; formatted only on failure. */
typedef struct s_ctx {
	const struct s_ctx *parent;     /* NULL for the message itself */
	const char *name;               /* op name, or the key of a row list */
	size_t index;                   /* the row's index in that list */
} s_ctx_t;

typedef struct {
	dg_msg_t *msg;
	dg_proto_err_t *err;
} s_dec_t;

static void
s_ctx_format(const s_ctx_t *ctx, char *buf, size_t size)
{
	const s_ctx_t *chain[DG_PROTO_MAX_DEPTH];
	size_t n = 0, len = 0;
	int k;

	for (; ctx && n < DG_PROTO_MAX_DEPTH; ctx = ctx->parent)
		chain[n++] = ctx;
	buf[0] = '\0';
	while (n-- > 0) {
		const s_ctx_t *c = chain[n];
		if (c->parent)
			k = snprintf(buf + len, size - len, ".%s[%zu]", c->name,
			             c->index);
		else
			k = snprintf(buf + len, size - len, "%s", c->name);
		if (k < 0 || (size_t)k >= size - len)
			break;          /* truncated: good enough for a message */
		len += (size_t)k;
	}
}

static int
s_fail(s_dec_t *d, dg_proto_code_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
s_fail(s_dec_t *d, dg_proto_code_t code, const char *fmt, ...)
{
	va_list ap;

	d->err->code = code;
	va_start(ap, fmt);
	vsnprintf(d->err->message, sizeof d->err->message, fmt, ap);
	va_end(ap);
	return -1;
}

/* "key 'K' in 'PATH'[ item N]: detail" */
static int
s_field_fail(s_dec_t *d, const s_ctx_t *ctx, const dg_field_desc_t *f,
             long item, dg_proto_code_t code, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static int
s_field_fail(s_dec_t *d, const s_ctx_t *ctx, const dg_field_desc_t *f,
             long item, dg_proto_code_t code, const char *fmt, ...)
{
	char path[DG_PROTO_ERR_MAX], detail[DG_PROTO_ERR_MAX], at[32] = "";
	va_list ap;

	s_ctx_format(ctx, path, sizeof path);
	if (item >= 0)
		snprintf(at, sizeof at, " item %ld", item);
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	return s_fail(d, code, "key '%s' in '%s'%s: %s", f->key, path, at,
	              detail);
}

static const char *
s_otype_name(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: return "nil";
	case MSGPACK_OBJECT_BOOLEAN: return "boolean";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "integer";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return "float";
	case MSGPACK_OBJECT_STR: return "string";
	case MSGPACK_OBJECT_BIN: return "binary";
	case MSGPACK_OBJECT_ARRAY: return "array";
	case MSGPACK_OBJECT_MAP: return "map";
	default: return "extension";
	}
}

static const char *
s_ftype_name(dg_ftype_t t)
{
	switch (t) {
	case DG_FT_INT: return "integer";
	case DG_FT_UINT: return "unsigned integer";
	case DG_FT_BOOL: return "boolean";
	case DG_FT_FLOAT: return "number";
	case DG_FT_STR: return "string";
	case DG_FT_BIN: return "binary";
	case DG_FT_KV_MAP: return "map";
	default: return "array";
	}
}

static bool
s_key_is(const msgpack_object *o, const char *key)
{
	size_t n = strlen(key);
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	       memcmp(o->via.str.ptr, key, n) == 0;
}

static int
s_get_str(s_dec_t *d, const s_ctx_t *ctx, const dg_field_desc_t *f,
          long item, const msgpack_object *o, const char **dst)
{
	const char *s = o->via.str.ptr;
	size_t n = o->via.str.size;
	char *copy;

	if (n > DG_PROTO_MAX_STR)       /* the scanner saw to it; cheap */
		return s_field_fail(d, ctx, f, item, DG_PROTO_E_STRING_TOO_LONG,
		                    "%zu bytes, at most %u", n,
		                    DG_PROTO_MAX_STR);
	if (n && memchr(s, '\0', n))
		return s_field_fail(d, ctx, f, item, DG_PROTO_E_MALFORMED,
		                    "string contains a NUL byte");
	if (!s_utf8_valid(s, n))
		return s_field_fail(d, ctx, f, item, DG_PROTO_E_MALFORMED,
		                    "string is not valid UTF-8");
	copy = dg_msg_alloc(d->msg, n + 1);
	if (!copy)
		return s_fail(d, DG_PROTO_E_NOMEM, "out of memory");
	if (n)
		memcpy(copy, s, n);
	copy[n] = '\0';
	*dst = copy;
	return 0;
}

/* One scalar (a field, or an item of a list) of type t into dst. */
static int
s_get_scalar(s_dec_t *d, const s_ctx_t *ctx, const dg_field_desc_t *f,
             long item, dg_ftype_t t, const msgpack_object *o, void *dst)
{
	bool pos = o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
	bool neg = o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;

	switch (t) {
	case DG_FT_INT:
		if (pos && o->via.u64 > INT64_MAX)
			return s_field_fail(d, ctx, f, item, DG_PROTO_E_RANGE,
			                    "%" PRIu64 " does not fit in int64",
			                    o->via.u64);
		if (pos || neg) {
			*(int64_t *)dst = o->via.i64;
			return 0;
		}
		break;
	case DG_FT_UINT:
		if (neg)
			return s_field_fail(d, ctx, f, item, DG_PROTO_E_RANGE,
			                    "%" PRId64 " is negative, expected "
			                    "unsigned integer", o->via.i64);
		if (pos) {
			*(uint64_t *)dst = o->via.u64;
			return 0;
		}
		break;
	case DG_FT_BOOL:
		if (o->type == MSGPACK_OBJECT_BOOLEAN) {
			*(bool *)dst = o->via.boolean;
			return 0;
		}
		break;
	case DG_FT_FLOAT:
		if (o->type == MSGPACK_OBJECT_FLOAT32 ||
		    o->type == MSGPACK_OBJECT_FLOAT64)
			*(double *)dst = o->via.f64;
		else if (pos)
			*(double *)dst = (double)o->via.u64;
		else if (neg)
			*(double *)dst = (double)o->via.i64;
		else
			break;
		return 0;
	case DG_FT_STR:
		if (o->type == MSGPACK_OBJECT_STR)
			return s_get_str(d, ctx, f, item, o, dst);
		break;
	case DG_FT_BIN:
		if (o->type == MSGPACK_OBJECT_BIN) {
			dg_bin_t *b = dst;
			uint8_t *copy = NULL;
			if (o->via.bin.size) {
				copy = dg_msg_alloc(d->msg, o->via.bin.size);
				if (!copy)
					return s_fail(d, DG_PROTO_E_NOMEM,
					              "out of memory");
				memcpy(copy, o->via.bin.ptr, o->via.bin.size);
			}
			b->data = copy;
			b->size = o->via.bin.size;
			return 0;
		}
		break;
	default:
		break;
	}
	return s_field_fail(d, ctx, f, item, DG_PROTO_E_TYPE,
	                    "expected %s, got %s", s_ftype_name(t),
	                    s_otype_name(o));
}

static int s_get_struct(s_dec_t *d, const s_ctx_t *ctx,
                        const dg_struct_desc_t *desc,
                        const msgpack_object *map, void *base,
                        uint64_t *present, bool envelope);

static int
s_key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Duplicate keys make a map ambiguous (which value wins?), so they are
 * refused; sorting copies of the keys keeps it O(n log n). */
static int
s_kv_dup(const dg_kv_t *kv, size_t n, const char **dup)
{
	const char **keys;

	*dup = NULL;
	if (n < 2)
		return 0;
	keys = malloc(n * sizeof *keys);
	if (!keys)
		return -1;
	for (size_t i = 0; i < n; i++)
		keys[i] = kv[i].key;
	qsort(keys, n, sizeof *keys, s_key_cmp);
	for (size_t i = 1; i < n && !*dup; i++)
		if (strcmp(keys[i - 1], keys[i]) == 0)
			*dup = keys[i];
	free(keys);
	return 0;
}

static int
s_get_list(s_dec_t *d, const s_ctx_t *ctx, const dg_field_desc_t *f,
           const msgpack_object *o, void *base)
{
	bool is_map = f->type == DG_FT_KV_MAP;
	size_t n, max = f->max ? f->max : DG_PROTO_MAX_ITEMS, esize;
	unsigned char *items = NULL;

	if (o->type != (is_map ? MSGPACK_OBJECT_MAP : MSGPACK_OBJECT_ARRAY))
		return s_field_fail(d, ctx, f, -1, DG_PROTO_E_TYPE,
		                    "expected %s, got %s", s_ftype_name(f->type),
		                    s_otype_name(o));
	n = is_map ? o->via.map.size : o->via.array.size;
	if (n > max)
		return s_field_fail(d, ctx, f, -1,
		                    f->max_code ? f->max_code :
		                    DG_PROTO_E_TOO_MANY_ITEMS,
		                    "%zu items, at most %zu", n, max);
	esize = f->type == DG_FT_INT_LIST ? sizeof(int64_t) :
	        f->type == DG_FT_BIN_LIST ? sizeof(dg_bin_t) :
	        is_map ? sizeof(dg_kv_t) : f->row->size;
	if (n) {
		items = dg_msg_alloc(d->msg, n * esize);
		if (!items)
			return s_fail(d, DG_PROTO_E_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		void *dst = items + i * esize;
		int rc;

		if (f->type == DG_FT_INT_LIST) {
			rc = s_get_scalar(d, ctx, f, (long)i, DG_FT_INT,
			                  &o->via.array.ptr[i], dst);
		} else if (f->type == DG_FT_BIN_LIST) {
			rc = s_get_scalar(d, ctx, f, (long)i, DG_FT_BIN,
			                  &o->via.array.ptr[i], dst);
		} else if (is_map) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			dg_kv_t *out = dst;
			if (kv->key.type != MSGPACK_OBJECT_STR)
				return s_field_fail(d, ctx, f, (long)i,
				                    DG_PROTO_E_MALFORMED,
				                    "key is a %s, not a string",
				                    s_otype_name(&kv->key));
			rc = s_get_str(d, ctx, f, (long)i, &kv->key, &out->key);
			if (rc == 0)
				rc = s_get_scalar(d, ctx, f, (long)i, DG_FT_INT,
				                  &kv->val, &out->value);
		} else {
			s_ctx_t row = { ctx, f->key, i };
			const msgpack_object *e = &o->via.array.ptr[i];
			if (e->type != MSGPACK_OBJECT_MAP)
				return s_field_fail(d, ctx, f, (long)i,
				                    DG_PROTO_E_TYPE,
				                    "expected map, got %s",
				                    s_otype_name(e));
			rc = s_get_struct(d, &row, f->row, e, dst, NULL, false);
		}
		if (rc < 0)
			return -1;
	}
	if (is_map) {
		const char *dup;
		if (s_kv_dup((const dg_kv_t *)items, n, &dup) < 0)
			return s_fail(d, DG_PROTO_E_NOMEM, "out of memory");
		if (dup) {
			char key[48];
			s_sanitize(key, sizeof key, dup, strlen(dup));
			return s_field_fail(d, ctx, f, -1, DG_PROTO_E_DUPLICATE,
			                    "key '%s' appears twice", key);
		}
	}
	*(void **)((char *)base + f->offset) = items;
	*(size_t *)((char *)base + f->count_offset) = n;
	return 0;
}

static bool
s_is_envelope_key(const msgpack_object *k)
{
	return s_key_is(k, "v") || s_key_is(k, "op") || s_key_is(k, "seq");
}

/* Fills base from a map following desc; present gets a bit per field
 * found.  Unknown keys are skipped; nil stands for an absent optional
 * field (what Python sends for None). */
static int
s_get_struct(s_dec_t *d, const s_ctx_t *ctx, const dg_struct_desc_t *desc,
             const msgpack_object *map, void *base, uint64_t *present,
             bool envelope)
{
	uint64_t seen = 0, got = 0;

	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		const msgpack_object *v = &map->via.map.ptr[i].val;
		const dg_field_desc_t *f = NULL;
		size_t fi;
		int rc;

		if (k->type != MSGPACK_OBJECT_STR) {
			char path[DG_PROTO_ERR_MAX];
			s_ctx_format(ctx, path, sizeof path);
			return s_fail(d, DG_PROTO_E_MALFORMED,
			              "a key in '%s' is a %s, not a string",
			              path, s_otype_name(k));
		}
		if (envelope && s_is_envelope_key(k))
			continue;
		for (fi = 0; fi < desc->nfields; fi++) {
			if (s_key_is(k, desc->fields[fi].key)) {
				f = &desc->fields[fi];
				break;
			}
		}
		if (!f)
			continue;
		if (seen >> fi & 1)
			return s_field_fail(d, ctx, f, -1, DG_PROTO_E_DUPLICATE,
			                    "appears twice");
		seen |= UINT64_C(1) << fi;
		if (v->type == MSGPACK_OBJECT_NIL &&
		    !(f->flags & DG_FIELD_REQUIRED))
			continue;
		if (f->type >= DG_FT_INT_LIST)
			rc = s_get_list(d, ctx, f, v, base);
		else
			rc = s_get_scalar(d, ctx, f, -1, f->type, v,
			                  (char *)base + f->offset);
		if (rc < 0)
			return -1;
		got |= UINT64_C(1) << fi;
	}
	for (size_t i = 0; i < desc->nfields; i++) {
		const dg_field_desc_t *f = &desc->fields[i];
		if (f->flags & DG_FIELD_REQUIRED && !(got >> i & 1)) {
			char path[DG_PROTO_ERR_MAX];
			s_ctx_format(ctx, path, sizeof path);
			return s_fail(d, DG_PROTO_E_MISSING,
			              "missing key '%s' in '%s'", f->key, path);
		}
	}
	s_set_defaults(desc, base, got);
	if (present)
		*present = got;
	return 0;
}

/* The envelope: v, op and seq, then the op's fields. */
static int
s_decode_root(s_dec_t *d, const msgpack_object *root, dg_msg_t **msg_p)
{
	const msgpack_object *v = NULL, *op = NULL, *seq = NULL;
	const dg_op_desc_t *desc;
	char name[48];

	for (uint32_t i = 0; i < root->via.map.size; i++) {
		const msgpack_object *k = &root->via.map.ptr[i].key;
		const msgpack_object **slot = s_key_is(k, "v") ? &v :
		                              s_key_is(k, "op") ? &op :
		                              s_key_is(k, "seq") ? &seq : NULL;
		if (k->type != MSGPACK_OBJECT_STR)
			return s_fail(d, DG_PROTO_E_MALFORMED,
			              "a key of the message is a %s, not a "
			              "string", s_otype_name(k));
		if (!slot)
			continue;
		if (*slot)
			return s_fail(d, DG_PROTO_E_DUPLICATE,
			              "key '%.*s' appears twice",
			              (int)k->via.str.size, k->via.str.ptr);
		*slot = &root->via.map.ptr[i].val;
	}
	if (!v)
		return s_fail(d, DG_PROTO_E_VERSION, "missing key 'v'");
	if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return s_fail(d, DG_PROTO_E_TYPE,
		              "key 'v': expected integer, got %s",
		              s_otype_name(v));
	if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return s_fail(d, DG_PROTO_E_VERSION,
		              "protocol version %" PRId64 " not supported "
		              "(this side speaks %d)", v->via.i64,
		              DG_PROTO_VERSION);
	if (v->via.u64 < 1 || v->via.u64 > DG_PROTO_VERSION)
		return s_fail(d, DG_PROTO_E_VERSION,
		              "protocol version %" PRIu64 " not supported "
		              "(this side speaks 1 to %d)", v->via.u64,
		              DG_PROTO_VERSION);
	if (!op)
		return s_fail(d, DG_PROTO_E_MISSING, "missing key 'op'");
	if (op->type != MSGPACK_OBJECT_STR)
		return s_fail(d, DG_PROTO_E_TYPE,
		              "key 'op': expected string, got %s",
		              s_otype_name(op));
	/* Like every string: NUL or bad UTF-8 is malformed, before the
	 * name is looked up. */
	if ((op->via.str.size &&
	    memchr(op->via.str.ptr, '\0', op->via.str.size)) ||
	    !s_utf8_valid(op->via.str.ptr, op->via.str.size)) {
		s_sanitize(name, sizeof name, op->via.str.ptr, op->via.str.size);
		return s_fail(d, DG_PROTO_E_MALFORMED, "key 'op': '%s' is not "
		              "a valid UTF-8 string without NUL", name);
	}
	desc = dg_proto_op_find(op->via.str.ptr, op->via.str.size);
	if (!desc) {
		s_sanitize(name, sizeof name, op->via.str.ptr, op->via.str.size);
		return s_fail(d, DG_PROTO_E_UNKNOWN_OP, "unknown op '%s'", name);
	}
	d->err->op = desc->op;
	/* An op whose form changed: an older peer's frame would be read
	 * wrongly, so refuse it by name. */
	if (v->via.u64 < (uint64_t)desc->since)
		return s_fail(d, DG_PROTO_E_VERSION,
		              "'%s' of protocol version %" PRIu64 " is not "
		              "supported: this side speaks version %d of it",
		              desc->body.name, v->via.u64, desc->since);
	if (!seq)
		return s_fail(d, DG_PROTO_E_MISSING, "missing key 'seq' in '%s'",
		              desc->body.name);
	if (seq->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return s_fail(d, DG_PROTO_E_RANGE,
		              "key 'seq' in '%s': %" PRId64 " is negative",
		              desc->body.name, seq->via.i64);
	if (seq->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return s_fail(d, DG_PROTO_E_TYPE,
		              "key 'seq' in '%s': expected unsigned integer, "
		              "got %s", desc->body.name, s_otype_name(seq));
	d->err->has_seq = true;
	d->err->seq = seq->via.u64;

	d->msg = dg_msg_new(desc->op);
	if (!d->msg)
		return s_fail(d, DG_PROTO_E_NOMEM, "out of memory");
	d->msg->seq = seq->via.u64;
	s_ctx_t ctx = { NULL, desc->body.name, 0 };
	if (s_get_struct(d, &ctx, &desc->body, root, &d->msg->u,
	                 &d->msg->present, true) < 0) {
		dg_msg_destroy(&d->msg);
		return -1;
	}
	*msg_p = d->msg;
	return 0;
}

int
dg_proto_decode(const void *buf, size_t len, dg_msg_t **msg_p,
                dg_proto_err_t *err)
{
	dg_proto_err_t local;
	s_dec_t d = { NULL, err ? err : &local };
	msgpack_unpacked up;
	dg_scan_t scan;
	size_t off = 0;
	int rc;

	*msg_p = NULL;
	memset(d.err, 0, sizeof *d.err);
	if (!buf && len)
		return s_fail(&d, DG_PROTO_E_INTERNAL, "no buffer");
	rc = dg_proto_scan(buf, len, &scan);
	d.err->has_seq = scan.has_seq;
	d.err->seq = scan.seq;
	if (scan.op) {
		const dg_op_desc_t *desc = dg_proto_op_find(scan.op, scan.op_len);
		d.err->op = desc ? desc->op : DG_OP_NONE;
	}
	if (rc < 0) {
		d.err->code = scan.code;
		memcpy(d.err->message, scan.message, sizeof d.err->message);
		return -1;
	}
	msgpack_unpacked_init(&up);
	switch (msgpack_unpack_next(&up, buf, len, &off)) {
	case MSGPACK_UNPACK_SUCCESS:
		/* The scanner has checked it is a map and nothing trails. */
		rc = off == len && up.data.type == MSGPACK_OBJECT_MAP ?
		     s_decode_root(&d, &up.data, msg_p) :
		     s_fail(&d, DG_PROTO_E_INTERNAL, "scanner and msgpack-c "
		            "disagree");
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		rc = s_fail(&d, DG_PROTO_E_NOMEM, "out of memory");
		break;
	default:
		rc = s_fail(&d, DG_PROTO_E_MALFORMED, "msgpack-c rejected the "
		            "frame");
		break;
	}
	msgpack_unpacked_destroy(&up);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Encoding */

typedef struct {
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	size_t objects;
	int error;              /* errno: the first failure */
} s_enc_t;

/* Refuses to grow past the frame limit instead of building a frame the
 * peer would refuse anyway. */
static int
s_write(void *data, const char *buf, size_t len)
{
	s_enc_t *e = data;

	if (len == 0 || e->error)
		return e->error ? -1 : 0;
	if (len > DG_PROTO_MAX_FRAME - e->sbuf.size) {
		e->error = EMSGSIZE;
		return -1;
	}
	if (msgpack_sbuffer_write(&e->sbuf, buf, len) < 0) {
		e->error = ENOMEM;
		return -1;
	}
	return 0;
}

static void
s_put_str(s_enc_t *e, const char *s, size_t n)
{
	if (n > DG_PROTO_MAX_STR && !e->error)
		e->error = EMSGSIZE;
	if (!s_utf8_valid(s, n) && !e->error)
		e->error = EINVAL;
	e->objects++;
	msgpack_pack_str(&e->pk, n);
	msgpack_pack_str_body(&e->pk, s, n);
}

static void
s_put_bin(s_enc_t *e, const dg_bin_t *b)
{
	if (b->size > DG_PROTO_MAX_STR && !e->error)
		e->error = EMSGSIZE;
	if (!b->data && b->size && !e->error)
		e->error = EINVAL;
	e->objects++;
	msgpack_pack_bin(&e->pk, b->size);
	msgpack_pack_bin_body(&e->pk, b->data, b->size);
}

static void
s_put_header(s_enc_t *e, bool map, size_t n)
{
	e->objects++;
	if (map)
		msgpack_pack_map(&e->pk, n);
	else
		msgpack_pack_array(&e->pk, n);
}

/* Optional fields equal to their default stay off the wire. */
static bool
s_is_default(const dg_field_desc_t *f, const void *base)
{
	const char *p = (const char *)base + f->offset;

	switch (f->type) {
	case DG_FT_INT: return *(const int64_t *)p == f->def;
	case DG_FT_UINT: return *(const uint64_t *)p == (uint64_t)f->def;
	case DG_FT_BOOL: return *(const bool *)p == (f->def != 0);
	case DG_FT_FLOAT: return *(const double *)p == (double)f->def;
	case DG_FT_STR: return !*(const char *const *)p ||
	                       !**(const char *const *)p;
	case DG_FT_BIN: return ((const dg_bin_t *)p)->size == 0;
	default: return *(const size_t *)((const char *)base +
	                                  f->count_offset) == 0;
	}
}

static void s_put_fields(s_enc_t *e, const dg_struct_desc_t *desc,
                         const void *base);

static size_t
s_count_fields(const dg_struct_desc_t *desc, const void *base)
{
	size_t n = 0;

	for (size_t i = 0; i < desc->nfields; i++)
		if (desc->fields[i].flags & DG_FIELD_REQUIRED ||
		    !s_is_default(&desc->fields[i], base))
			n++;
	return n;
}

static void
s_put_list(s_enc_t *e, const dg_field_desc_t *f, const void *base)
{
	const void *items = *(const void *const *)((const char *)base +
	                                           f->offset);
	size_t n = *(const size_t *)((const char *)base + f->count_offset);
	size_t max = f->max ? f->max : DG_PROTO_MAX_ITEMS;
	const char *dup;

	if (n > max || (n && !items)) {
		e->error = n > max ? EMSGSIZE : EINVAL;
		return;
	}
	s_put_header(e, f->type == DG_FT_KV_MAP, n);
	for (size_t i = 0; i < n && !e->error; i++) {
		if (f->type == DG_FT_INT_LIST) {
			e->objects++;
			msgpack_pack_int64(&e->pk, ((const int64_t *)items)[i]);
		} else if (f->type == DG_FT_BIN_LIST) {
			s_put_bin(e, &((const dg_bin_t *)items)[i]);
		} else if (f->type == DG_FT_KV_MAP) {
			const dg_kv_t *kv = &((const dg_kv_t *)items)[i];
			if (!kv->key) {
				e->error = EINVAL;
				return;
			}
			s_put_str(e, kv->key, strlen(kv->key));
			e->objects++;
			msgpack_pack_int64(&e->pk, kv->value);
		} else {
			const void *row = (const char *)items + i * f->row->size;
			s_put_header(e, true, s_count_fields(f->row, row));
			s_put_fields(e, f->row, row);
		}
	}
	if (f->type == DG_FT_KV_MAP && !e->error) {
		if (s_kv_dup(items, n, &dup) < 0)
			e->error = ENOMEM;
		else if (dup)
			e->error = EINVAL;
	}
}

static void
s_put_value(s_enc_t *e, const dg_field_desc_t *f, const void *base)
{
	const char *p = (const char *)base + f->offset;
	const char *s;

	switch (f->type) {
	case DG_FT_INT:
		e->objects++;
		msgpack_pack_int64(&e->pk, *(const int64_t *)p);
		break;
	case DG_FT_UINT:
		e->objects++;
		msgpack_pack_uint64(&e->pk, *(const uint64_t *)p);
		break;
	case DG_FT_BOOL:
		e->objects++;
		if (*(const bool *)p)
			msgpack_pack_true(&e->pk);
		else
			msgpack_pack_false(&e->pk);
		break;
	case DG_FT_FLOAT:
		e->objects++;
		msgpack_pack_double(&e->pk, *(const double *)p);
		break;
	case DG_FT_STR:
		s = *(const char *const *)p;
		if (s)
			s_put_str(e, s, strlen(s));
		else
			e->error = EINVAL;      /* a required string unset */
		break;
	case DG_FT_BIN:
		s_put_bin(e, (const dg_bin_t *)p);
		break;
	default:
		s_put_list(e, f, base);
		break;
	}
}

/* The fields of desc at base as map entries, in descriptor order; the
 * caller has written the map header. */
static void
s_put_fields(s_enc_t *e, const dg_struct_desc_t *desc, const void *base)
{
	for (size_t i = 0; i < desc->nfields && !e->error; i++) {
		const dg_field_desc_t *f = &desc->fields[i];

		if (!(f->flags & DG_FIELD_REQUIRED) && s_is_default(f, base))
			continue;
		s_put_str(e, f->key, strlen(f->key));
		s_put_value(e, f, base);
	}
}

static int
s_encode(const dg_op_desc_t *desc, uint64_t seq, const void *body,
         dg_buf_t *out)
{
	s_enc_t e;

	memset(&e, 0, sizeof e);
	out->data = NULL;
	out->size = 0;
	msgpack_sbuffer_init(&e.sbuf);
	msgpack_packer_init(&e.pk, &e, s_write);
	s_put_header(&e, true, 3 + s_count_fields(&desc->body, body));
	s_put_str(&e, "v", 1);
	e.objects++;
	/* The oldest version that reads this op as written. */
	msgpack_pack_int64(&e.pk, desc->since);
	s_put_str(&e, "op", 2);
	s_put_str(&e, desc->body.name, strlen(desc->body.name));
	s_put_str(&e, "seq", 3);
	e.objects++;
	msgpack_pack_uint64(&e.pk, seq);
	s_put_fields(&e, &desc->body, body);
	if (!e.error && e.objects > DG_PROTO_MAX_OBJECTS)
		e.error = EMSGSIZE;
	if (e.error) {
		msgpack_sbuffer_destroy(&e.sbuf);
		errno = e.error;
		return -1;
	}
	out->data = (uint8_t *)e.sbuf.data;
	out->size = e.sbuf.size;
	return 0;
}

int
dg_proto_encode(const dg_msg_t *msg, dg_buf_t *out)
{
	const dg_op_desc_t *desc = msg ? dg_proto_op_desc(msg->op) : NULL;

	if (!desc) {
		out->data = NULL;
		out->size = 0;
		errno = EINVAL;
		return -1;
	}
	return s_encode(desc, msg->seq, &msg->u, out);
}

int
dg_proto_encode_error(dg_buf_t *out, uint64_t seq, dg_proto_code_t code,
                      const char *fmt, ...)
{
	char text[1024];
	dg_error_msg_t body;
	va_list ap;
	size_t n, i, k;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	/* Callers may quote anything (a path, a peer's words); keep the
	 * frame valid UTF-8 rather than lose the error. */
	n = strlen(text);
	for (i = 0; i < n; i += k) {
		k = s_utf8_seq((const unsigned char *)text + i, n - i);
		if (k == 0) {
			text[i] = '?';
			k = 1;
		}
	}
	body.code = dg_proto_code_name(code);
	body.message = text;
	return s_encode(dg_proto_op_desc(DG_OP_ERROR), seq, &body, out);
}

int
dg_proto_encode_err(dg_buf_t *out, const dg_proto_err_t *err)
{
	return dg_proto_encode_error(out, err->has_seq ? err->seq : 0,
	                             err->code, "%s", err->message);
}
