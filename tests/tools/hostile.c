/*  hostile.c: a misbehaving peer for the hostile-input tests.
 *
 *  usage: hostile ENDPOINT KIND COUNT
 *
 *  Connects a DEALER to ENDPOINT (the controller's listen or a stage's
 *  peer endpoint), sends COUNT messages of one bad KIND, and counts the
 *  answers that come back within a few seconds:
 *
 *    garbage     random bytes
 *    truncated   a valid submit cut short
 *    unknown     a well-formed message with an op nobody serves
 *    frames      several junk frames in one ZeroMQ message
 *    oversized   a frame past the 4 MiB limit (the socket drops it)
 *    flood       valid submits as fast as the socket takes them
 *    manifest    manifests that overlap, wrap around, or carry a zero
 *                (stale) generation, in phase HOSTILE_PHASE (default 1)
 *    early1      well-formed phase 1 manifests (what an encoder serves)
 *                for rooms that never exist
 *    early2      the same in phase 2 (for a transformer)
 *
 *  Prints `sent=N errors=N busy=N accepted=N other=N` and exits 0; the
 *  test decides what the counts must be.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "proto.h"

static unsigned s_rng = 2024;

static unsigned
s_rand(void)
{
	s_rng = s_rng * 1103515245 + 12345;
	return s_rng >> 8;
}

static void
s_send_msg(zsock_t *sock, const dg_msg_t *m, size_t cut)
{
	dg_buf_t buf = { 0 };

	if (dg_proto_encode(m, &buf) < 0)
		return;
	size_t len = cut && cut < buf.size ? cut : buf.size;
	zframe_t *f = zframe_new(buf.data, len);
	zframe_send(&f, sock, 0);
	dg_buf_free(&buf);
}

static void
s_submit(zsock_t *sock, uint64_t seq, size_t cut)
{
	dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);

	m->seq = seq;
	m->u.submit.prompt = "hostile";
	m->u.submit.frames = 1;
	m->u.submit.height = 16;
	m->u.submit.width = 16;
	m->u.submit.steps = 1;
	s_send_msg(sock, m, cut);
	dg_msg_destroy(&m);
}

static void
s_manifest(zsock_t *sock, uint64_t seq, int variant)
{
	static const dg_bin_t addr = { (const uint8_t *)"nowhere", 7 };
	dg_tensor_row_t rows[2] = {
		{ .name = "context", .dtype = "f32", .bytes = 4096,
		  .offset = 0 },
		{ .name = "latents", .dtype = "f32", .bytes = 4096,
		  .offset = 4096 },
	};
	dg_msg_t *m = dg_msg_new(DG_OP_MANIFEST);

	m->seq = seq;
	m->u.manifest.room = 1000000 + seq;
	/* The phase the target serves (HOSTILE_PHASE for `manifest`), so
	 * that each bad manifest is refused for its own defect. */
	const char *ph = getenv("HOSTILE_PHASE");
	m->u.manifest.phase = variant == 5 || (variant < 4 && ph &&
	    atoi(ph) == 2) ? 2 : 1;
	m->u.manifest.slot = 1;
	m->u.manifest.gen = 7;
	m->u.manifest.fabric = &addr;
	m->u.manifest.n_fabric = 1;
	m->u.manifest.base = 0x1000;
	m->u.manifest.token = seq & 0xffff;
	m->u.manifest.chunk = 65536;
	m->u.manifest.tensors = rows;
	m->u.manifest.n_tensors = 2;
	switch (variant) {
	case 0: m->u.manifest.gen = 0; break;
	case 1: rows[1].offset = 100; break;                   /* overlap */
	case 2: rows[1].offset = UINT64_MAX - 8; break;        /* wraps */
	case 3: m->u.manifest.base = UINT64_MAX - 10; break;
	default: break;                                 /* early1, early2 */
	}
	s_send_msg(sock, m, 0);
	dg_msg_destroy(&m);
}

int
main(int argc, char *argv[])
{
	if (argc != 4) {
		fprintf(stderr, "usage: hostile ENDPOINT KIND COUNT\n");
		return 2;
	}
	const char *kind = argv[2];
	long count = atol(argv[3]);
	zsys_init();
	zsys_set_linger(0);
	zsock_t *sock = zsock_new(ZMQ_DEALER);
	char why[256];
	/* DISAGG_KEY: a client key, for the tests with curve on. */
	if (sock && dg_auth_client_from_env(sock, why, sizeof why) < 0) {
		fprintf(stderr, "hostile: %s\n", why);
		return 2;
	}
	if (!sock || zsock_connect(sock, "%s", argv[1]) < 0) {
		fprintf(stderr, "hostile: cannot connect to %s\n", argv[1]);
		return 2;
	}
	zsock_set_sndhwm(sock, 0);
	zsock_set_rcvtimeo(sock, 0);

	long sent = 0, errors = 0, busy = 0, accepted = 0, other = 0;
	for (long i = 0; i < count; i++) {
		uint64_t seq = (uint64_t)i + 1;
		if (!strcmp(kind, "garbage")) {
			uint8_t junk[64];
			size_t n = 1 + s_rand() % sizeof junk;
			for (size_t k = 0; k < n; k++)
				junk[k] = (uint8_t)s_rand();
			zframe_t *f = zframe_new(junk, n);
			zframe_send(&f, sock, 0);
		} else if (!strcmp(kind, "truncated")) {
			s_submit(sock, seq, 1 + s_rand() % 40);
		} else if (!strcmp(kind, "unknown")) {
			zmsg_t *z = zmsg_new();
			/* {"v":1,"op":"frobnicate","seq":N} by hand: the
			 * codec refuses to encode an op it does not know. */
			char body[64];
			int len = snprintf(body, sizeof body,
			    "\x83\xa1v\x01\xa2op\xaa" "frobnicate\xa3seq\xcc%c",
			    (char)(seq & 0x7f));
			zmsg_addmem(z, body, (size_t)len);
			zmsg_send(&z, sock);
		} else if (!strcmp(kind, "frames")) {
			zmsg_t *z = zmsg_new();
			for (int k = 0; k < 3; k++)
				zmsg_addstr(z, "junk");
			zmsg_send(&z, sock);
		} else if (!strcmp(kind, "oversized")) {
			size_t n = (5u << 20);
			uint8_t *big = calloc(1, n);
			zframe_t *f = zframe_new(big, n);
			free(big);
			zframe_send(&f, sock, 0);
		} else if (!strcmp(kind, "flood")) {
			s_submit(sock, seq, 0);
		} else if (!strcmp(kind, "manifest")) {
			s_manifest(sock, seq, (int)(i % 4));
		} else if (!strcmp(kind, "early1")) {
			s_manifest(sock, seq, 4);
		} else if (!strcmp(kind, "early2")) {
			s_manifest(sock, seq, 5);
		} else {
			fprintf(stderr, "hostile: unknown kind '%s'\n", kind);
			return 2;
		}
		sent++;
	}
	/* Answers, until none has come for a second. */
	zpoller_t *poller = zpoller_new(sock, NULL);
	while (zpoller_wait(poller, 1000)) {
		zmsg_t *z = zmsg_recv(sock);
		if (!z)
			break;
		zframe_t *body = zmsg_last(z);
		dg_msg_t *m = NULL;
		dg_proto_err_t err;
		if (body && dg_proto_decode(zframe_data(body),
		    zframe_size(body), &m, &err) == 0) {
			if (m->op == DG_OP_ERROR && m->u.error.code &&
			    !strcmp(m->u.error.code, "busy"))
				busy++;
			else if (m->op == DG_OP_ERROR)
				errors++;
			else if (m->op == DG_OP_SUBMIT_OK)
				accepted++;
			else
				other++;
		} else {
			other++;
		}
		dg_msg_destroy(&m);
		zmsg_destroy(&z);
	}
	zpoller_destroy(&poller);
	/* What the flood got accepted must not outlive us in the pipeline:
	 * the test waits for it to drain by deadline. */
	printf("sent=%ld errors=%ld busy=%ld accepted=%ld other=%ld\n", sent,
	    errors, busy, accepted, other);
	zsock_destroy(&sock);
	return 0;
}
