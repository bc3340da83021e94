/*  proto_scan.c: one bounded walk over a frame's raw bytes, before
 *  msgpack-c is allowed to see them.
 *
 *  msgpack-c's unpacker trusts declared sizes: it allocates
 *  n * sizeof(msgpack_object) for an array before checking that n items
 *  can exist, so a 5-byte array32 header claiming 2^32-1 items asks for
 *  96 GB; and it has no limit on depth, string length or object count.
 *  Debian has no C library that validates msgpack against limits
 *  (libmpack only tokenizes, leaving the limits to us anyway), so this is
 *  hand-written: about a hundred lines of header decoding and counting.
 *
 *  It is iterative, with a fixed stack of "items left" counters, so that
 *  hostile nesting cannot exhaust the C stack.  Checks per object, in
 *  order: a valid type byte; a complete header; the object count; for
 *  str/bin/ext the length against DG_PROTO_MAX_STR, then against the bytes
 *  left; for arrays and maps the count against DG_PROTO_MAX_ITEMS and the
 *  depth.  Limits come before "truncated" so that a hostile header gets
 *  the precise reason.  After the first object nothing may remain.
 *
 *  A container's count is checked against the bytes left as the items are
 *  walked, not up front: every item takes at least one byte, so a count
 *  the bytes cannot hold ends in "truncated" within len steps, long before
 *  msgpack-c runs; and walking on lets a seq that precedes the cut still
 *  be recovered for the error reply.  */
#include "proto_scan.h"

#include <stdio.h>
#include <string.h>

enum { K_SCALAR, K_STR, K_BLOB, K_ARRAY, K_MAP };

typedef struct {
	int kind;
	size_t hdr;             /* bytes of type byte and header */
	uint64_t n;             /* payload bytes, or items of a container */
	bool is_uint;           /* a non-negative integer, value in u */
	uint64_t u;
} s_item_t;

static int
s_fail(dg_scan_t *res, dg_proto_code_t code, size_t offset,
       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
s_fail(dg_scan_t *res, dg_proto_code_t code, size_t offset,
       const char *fmt, ...)
{
	va_list ap;

	res->code = code;
	res->offset = offset;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof res->message, fmt, ap);
	va_end(ap);
	return -1;
}

static uint64_t
s_be(const uint8_t *p, size_t width)
{
	uint64_t v = 0;
	for (size_t i = 0; i < width; i++)
		v = v << 8 | p[i];
	return v;
}

/* Decodes the header at p (avail bytes, at least 1).  -1 for 0xc1, 1 when
 * the header itself is cut short. */
static int
s_header(const uint8_t *p, size_t avail, s_item_t *it)
{
	uint8_t b = p[0];
	size_t w = 0;           /* width of a length or integer field */

	memset(it, 0, sizeof *it);
	it->kind = K_SCALAR;
	it->hdr = 1;
	if (b <= 0x7f) {
		it->is_uint = true;
		it->u = b;
		return 0;
	}
	if (b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
		return 0;
	if (b <= 0x8f || (b >= 0x90 && b <= 0x9f) || (b >= 0xa0 && b <= 0xbf)) {
		it->kind = b <= 0x8f ? K_MAP : b <= 0x9f ? K_ARRAY : K_STR;
		it->n = b & (b >= 0xa0 ? 0x1f : 0x0f);
		return 0;
	}
	switch (b) {
	case 0xc1:
		return -1;
	case 0xc4: case 0xc5: case 0xc6:        /* bin 8/16/32 */
		it->kind = K_BLOB;
		w = (size_t)1 << (b - 0xc4);
		break;
	case 0xc7: case 0xc8: case 0xc9:        /* ext 8/16/32 + type byte */
		it->kind = K_BLOB;
		w = (size_t)1 << (b - 0xc7);
		break;
	case 0xca: case 0xcb:                   /* float 32/64 */
		it->hdr = b == 0xca ? 5 : 9;
		return avail < it->hdr ? 1 : 0;
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
	case 0xd0: case 0xd1: case 0xd2: case 0xd3:
		w = (size_t)1 << ((b - 0xcc) & 3);
		it->hdr = 1 + w;
		if (avail < it->hdr)
			return 1;
		it->u = s_be(p + 1, w);
		/* A signed integer is non-negative when its top bit is clear. */
		it->is_uint = b <= 0xcf || !(it->u >> (8 * w - 1));
		return 0;
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		it->kind = K_BLOB;                /* fixext: type byte + data */
		it->hdr = 2;
		it->n = (uint64_t)1 << (b - 0xd4);
		return avail < it->hdr ? 1 : 0;
	case 0xd9: case 0xda: case 0xdb:        /* str 8/16/32 */
		it->kind = K_STR;
		w = (size_t)1 << (b - 0xd9);
		break;
	case 0xdc: case 0xdd:                   /* array 16/32 */
		it->kind = K_ARRAY;
		w = (size_t)2 << (b - 0xdc);
		break;
	default:                                /* 0xde, 0xdf: map 16/32 */
		it->kind = K_MAP;
		w = (size_t)2 << (b - 0xde);
		break;
	}
	it->hdr = 1 + w + (b >= 0xc7 && b <= 0xc9);
	if (avail < it->hdr)
		return 1;
	it->n = s_be(p + 1, w);
	return 0;
}

static const char *
s_kind_name(int kind)
{
	return kind == K_MAP ? "a map" : kind == K_ARRAY ? "an array" :
	       kind == K_STR ? "a string" : kind == K_BLOB ? "a bin or ext" :
	       "a scalar";
}

int
dg_proto_scan(const uint8_t *buf, size_t len, dg_scan_t *res)
{
	/* left[d]: items still expected in the open container at depth d;
	 * left[0] counts the single top-level object. */
	uint64_t left[DG_PROTO_MAX_DEPTH + 1];
	size_t depth = 0, pos = 0;
	int want = 0;           /* at depth 1: 1 after key "seq", 2 after "op" */
	s_item_t it;

	memset(res, 0, sizeof *res);
	if (len > DG_PROTO_MAX_FRAME)
		return s_fail(res, DG_PROTO_E_FRAME_TOO_LARGE, 0,
		              "frame of %zu bytes exceeds %u", len,
		              DG_PROTO_MAX_FRAME);
	if (len == 0)
		return s_fail(res, DG_PROTO_E_TRUNCATED, 0, "empty frame");
	left[0] = 1;
	while (left[0] > 0 || depth > 0) {
		size_t at = pos;
		int rc;

		if (pos == len)
			return s_fail(res, DG_PROTO_E_TRUNCATED, pos,
			              "frame truncated at byte %zu", pos);
		rc = s_header(buf + pos, len - pos, &it);
		if (rc < 0)
			return s_fail(res, DG_PROTO_E_MALFORMED, pos,
			              "invalid msgpack byte 0x%02x at byte %zu",
			              buf[pos], pos);
		if (depth == 0 && it.kind != K_MAP)
			return s_fail(res, DG_PROTO_E_NOT_A_MAP, 0,
			              "frame holds %s, not a map",
			              s_kind_name(it.kind));
		if (rc > 0)
			return s_fail(res, DG_PROTO_E_TRUNCATED, pos,
			              "frame truncated in a header at byte %zu",
			              pos);
		if (++res->objects > DG_PROTO_MAX_OBJECTS)
			return s_fail(res, DG_PROTO_E_TOO_MANY_ITEMS, pos,
			              "more than %u objects in the frame",
			              DG_PROTO_MAX_OBJECTS);
		pos += it.hdr;
		if (it.kind == K_STR || it.kind == K_BLOB) {
			if (it.n > DG_PROTO_MAX_STR)
				return s_fail(res, DG_PROTO_E_STRING_TOO_LONG, at,
				              "%s of %llu bytes at byte %zu exceeds %u",
				              s_kind_name(it.kind),
				              (unsigned long long)it.n, at,
				              DG_PROTO_MAX_STR);
			if (it.n > len - pos)
				return s_fail(res, DG_PROTO_E_TRUNCATED, at,
				              "%s at byte %zu truncated",
				              s_kind_name(it.kind), at);
			pos += it.n;
		}
		/* Peek at seq and op in the top-level map: keys are at an
		 * even count of items left, their values at an odd one. */
		if (depth == 1 && left[1] % 2 == 0) {
			const char *key = (const char *)buf + at + it.hdr;
			want = it.kind != K_STR ? 0 :
			       it.n == 3 && memcmp(key, "seq", 3) == 0 ? 1 :
			       it.n == 2 && memcmp(key, "op", 2) == 0 ? 2 : 0;
		} else if (depth == 1) {
			if (want == 1 && it.is_uint && !res->has_seq) {
				res->has_seq = true;
				res->seq = it.u;
			} else if (want == 2 && it.kind == K_STR && !res->op) {
				res->op = (const char *)buf + at + it.hdr;
				res->op_len = (size_t)it.n;
			}
			want = 0;
		}
		left[depth]--;
		if (it.kind == K_ARRAY || it.kind == K_MAP) {
			uint64_t items = it.kind == K_MAP ? 2 * it.n : it.n;
			if (it.n > DG_PROTO_MAX_ITEMS)
				return s_fail(res, DG_PROTO_E_TOO_MANY_ITEMS, at,
				              "%s of %llu items at byte %zu exceeds %u",
				              s_kind_name(it.kind),
				              (unsigned long long)it.n, at,
				              DG_PROTO_MAX_ITEMS);
			if (depth + 1 > DG_PROTO_MAX_DEPTH)
				return s_fail(res, DG_PROTO_E_TOO_DEEP, at,
				              "nesting deeper than %d at byte %zu",
				              DG_PROTO_MAX_DEPTH, at);
			left[++depth] = items;
		}
		while (depth > 0 && left[depth] == 0)
			depth--;
	}
	if (pos < len)
		return s_fail(res, DG_PROTO_E_TRAILING, pos,
		              "%zu trailing bytes after the map", len - pos);
	return 0;
}
