/*  fuzz_proto.c: libFuzzer target for the wire protocol codec.
 *
 *  Any input must decode or fail cleanly, with a printable message and
 *  an error reply that is itself a valid frame.  A message that decodes
 *  must re-encode, and the second decode must give back the same bytes:
 *  one round through the codec reaches a fixed point.  `make check`
 *  replays the seed corpus through this same function (replay_proto).  */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define CHECK(c) do {                                                   \
		if (!(c)) {                                             \
			fprintf(stderr, "fuzz_proto: %s:%d: %s\n",      \
			        __FILE__, __LINE__, #c);                \
			abort();                                        \
		}                                                       \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
s_check_error(const dg_proto_err_t *err)
{
	dg_msg_t *reply = NULL;
	dg_proto_err_t err2;
	dg_buf_t buf;

	CHECK(err->code != DG_PROTO_OK && err->code < DG_PROTO_CODE_COUNT);
	CHECK(err->message[0] != '\0');
	for (const char *p = err->message; *p; p++)
		CHECK(*p >= 0x20 && *p < 0x7f);
	CHECK(dg_proto_encode_err(&buf, err) == 0);
	CHECK(dg_proto_decode(buf.data, buf.size, &reply, &err2) == 0);
	CHECK(reply->op == DG_OP_ERROR);
	CHECK(reply->seq == (err->has_seq ? err->seq : 0));
	CHECK(strcmp(reply->u.error.code, dg_proto_code_name(err->code)) == 0);
	CHECK(strcmp(reply->u.error.message, err->message) == 0);
	dg_msg_destroy(&reply);
	dg_buf_free(&buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dg_msg_t *msg = (dg_msg_t *)&size, *again = NULL;
	const dg_op_desc_t *desc;
	dg_proto_err_t err;
	dg_buf_t one, two;

	if (dg_proto_decode(data, size, &msg, &err) < 0) {
		CHECK(msg == NULL);
		s_check_error(&err);
		return 0;
	}
	desc = dg_proto_op_desc(msg->op);
	CHECK(desc != NULL);
	CHECK(desc->body.nfields == 64 ||
	      msg->present >> desc->body.nfields == 0);

	if (dg_proto_encode(msg, &one) < 0) {
		/* Only growth past the frame limit may refuse: integers
		 * sent for a float field come back as 9-byte float64. */
		CHECK(errno == EMSGSIZE);
		dg_msg_destroy(&msg);
		return 0;
	}
	if (dg_proto_decode(one.data, one.size, &again, &err) < 0) {
		fprintf(stderr, "fuzz_proto: re-decode failed: %s: %s\n",
		        dg_proto_code_name(err.code), err.message);
		abort();
	}
	CHECK(again->op == msg->op && again->seq == msg->seq);
	/* Optional fields equal to their default are not re-sent. */
	CHECK((again->present & ~msg->present) == 0);
	CHECK(dg_proto_encode(again, &two) == 0);
	CHECK(one.size == two.size && memcmp(one.data, two.data, one.size) == 0);

	dg_buf_free(&one);
	dg_buf_free(&two);
	dg_msg_destroy(&msg);
	dg_msg_destroy(&again);
	CHECK(msg == NULL && again == NULL);
	return 0;
}
