/*  proto_scan.h: bounded pre-validation of a msgpack frame (internal to
 *  the codec; see proto_scan.c for why it exists).  */
#ifndef DG_PROTO_SCAN_H
#define DG_PROTO_SCAN_H

#include "proto.h"

typedef struct {
	dg_proto_code_t code;           /* DG_PROTO_OK, or why it failed */
	size_t offset;                  /* of the offending byte */
	size_t objects;                 /* msgpack objects seen */
	/* Peeked from the top-level map on the way, so that even a frame
	 * that fails later can be answered with its seq. */
	bool has_seq;
	uint64_t seq;
	const char *op;                 /* into the frame, not NUL-terminated;
	                                   NULL when not seen */
	size_t op_len;
	char message[DG_PROTO_ERR_MAX];
} dg_scan_t;

/* 0 when buf[0..len) holds exactly one msgpack map within every limit of
 * proto.h, so that msgpack-c can unpack it without allocating more than
 * the bytes justify; -1 otherwise, with res->code and res->message. */
int dg_proto_scan(const uint8_t *buf, size_t len, dg_scan_t *res);

#endif
