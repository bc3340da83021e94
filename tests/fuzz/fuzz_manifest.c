/*  fuzz_manifest.c: libFuzzer target for the manifest checks.
 *
 *  Whatever the codec lets through as a manifest, dg_manifest_check
 *  either refuses it with a printable reason or accepts one whose
 *  tensors really are in order, inside the extent, without overflow.
 *  The expectations (room, phase, sizes, extent) come from the input's
 *  last bytes, so the fuzzer explores both sides.  `make check` replays
 *  the corpus through this same function (replay_manifest).  */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

#define CHECK(c) do {                                                   \
		if (!(c)) {                                             \
			fprintf(stderr, "fuzz_manifest: %s:%d: %s\n",   \
			        __FILE__, __LINE__, #c);                \
			abort();                                        \
		}                                                       \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dg_msg_t *m = NULL;
	dg_proto_err_t err;

	if (dg_proto_decode(data, size, &m, &err) < 0)
		return 0;
	if (m->op != DG_OP_MANIFEST) {
		dg_msg_destroy(&m);
		return 0;
	}
	const dg_manifest_msg_t *mf = &m->u.manifest;
	uint8_t tail = size ? data[size - 1] : 0;
	uint64_t bytes[DG_PROTO_MAX_TENSORS];
	dg_manifest_want_t want = { 0 };
	if (tail & 1)
		want.room = mf->room ^ (tail & 2);
	if (tail & 4)
		want.phase = (tail & 8) ? 2 : 1;
	if (tail & 16) {
		want.n_tensors = mf->n_tensors;
		for (size_t i = 0; i < mf->n_tensors; i++)
			bytes[i] = mf->tensors[i].bytes ^ (uint64_t)(tail & 32);
		want.bytes = bytes;
	}
	if (tail & 64)
		want.max_extent = (uint64_t)tail << 20;

	char why[256] = "";
	int rc = dg_manifest_check(mf, &want, why, sizeof why);
	if (rc < 0) {
		CHECK(why[0] != '\0');
		for (const char *p = why; *p; p++)
			CHECK((unsigned char)*p >= 0x20);
	} else {
		CHECK(rc == 0);
		CHECK(mf->phase == 1 || mf->phase == 2);
		CHECK(mf->gen != 0 && mf->chunk != 0 && mf->n_tensors > 0);
		uint64_t end = 0;
		for (size_t i = 0; i < mf->n_tensors; i++) {
			const dg_tensor_row_t *t = &mf->tensors[i];
			CHECK(t->offset >= end);
			CHECK(t->offset + t->bytes >= t->offset);
			end = t->offset + t->bytes;
			CHECK(!want.max_extent || end <= want.max_extent);
			CHECK(!want.bytes || t->bytes == want.bytes[i]);
		}
		CHECK(mf->base + end >= mf->base);
		CHECK(!want.room || mf->room == want.room);
	}
	dg_msg_destroy(&m);
	return 0;
}
