/*  soak_client.c: the client side of `make soak`.
 *
 *  Submits at a steady rate for a while, cancels a random share of what
 *  it submitted after a random delay, then waits for every outstanding
 *  result.  It counts, per accepted request, how many terminal results
 *  arrived: the soak passes only when every accepted request ended
 *  exactly once (done, failed or cancelled) and none is missing.  When
 *  the controller goes quiet (a restart), requests it accepted are asked
 *  for with `status` before being called missing.
 *
 *  usage: soak_client ENDPOINT SECONDS RATE CANCEL_PERCENT [FRAMES]
 *  Prints one summary line `key=value ...` and exits 0 when clean.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

typedef struct {
	uint64_t id;
	int results;
	int64_t cancel_at;      /* 0: not to be cancelled */
	bool cancel_sent;
	char status[16];
} s_req_t;

static void
s_req_destroy(void **item)
{
	free(*item);
	*item = NULL;
}

static char *
s_key(char *buf, uint64_t id)
{
	snprintf(buf, 24, "%llu", (unsigned long long)id);
	return buf;
}

int
main(int argc, char *argv[])
{
	if (argc < 5) {
		fprintf(stderr, "usage: soak_client ENDPOINT SECONDS RATE "
		    "CANCEL_PERCENT [FRAMES]\n");
		return 2;
	}
	const char *ep = argv[1];
	int64_t seconds = atoll(argv[2]), rate = atoll(argv[3]);
	int cancel_pct = atoi(argv[4]);
	int64_t frames = argc > 5 ? atoll(argv[5]) : 1;
	dg_client_t *cl = dg_client_new(ep);
	zhashx_t *reqs = zhashx_new();
	zhashx_t *seqs = zhashx_new();          /* submit seq -> 1 */
	if (!cl || !reqs || !seqs || rate < 1)
		return 2;
	zhashx_set_destructor(reqs, s_req_destroy);

	unsigned rng = 12345;
	long submitted = 0, accepted = 0, busy = 0, refused = 0;
	long done = 0, failed = 0, cancelled = 0, duplicates = 0, unknown = 0;
	int64_t t0 = zclock_mono(), end = t0 + seconds * 1000;
	int64_t settle = end + 120000;  /* time left for the last results */
	int64_t next_submit = t0;
	zsock_t *sock = dg_client_sock(cl);

	for (;;) {
		int64_t now = zclock_mono();
		if (now >= end && accepted == done + failed + cancelled &&
		    zhashx_size(seqs) == 0)
			break;
		if (now >= settle)
			break;
		while (now < end && now >= next_submit) {
			dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
			m->u.submit.prompt = "soak";
			m->u.submit.frames = frames;
			m->u.submit.height = 16;
			m->u.submit.width = 16;
			m->u.submit.steps = 1;
			m->u.submit.seed = submitted;
			uint64_t seq = dg_client_send(cl, m);
			dg_msg_destroy(&m);
			if (seq) {
				char key[24];
				zhashx_insert(seqs, s_key(key, seq), (void *)1);
				submitted++;
			}
			next_submit += 1000 / rate ? 1000 / rate : 1;
		}
		/* Cancels that are due. */
		for (s_req_t *r = zhashx_first(reqs); r;
		    r = zhashx_next(reqs)) {
			if (!r->cancel_at || r->cancel_sent || r->results ||
			    now < r->cancel_at)
				continue;
			dg_msg_t *c = dg_msg_new(DG_OP_CANCEL);
			c->u.cancel.request = r->id;
			dg_client_send(cl, c);
			dg_msg_destroy(&c);
			r->cancel_sent = true;
		}
		dg_msg_t *m = dg_client_next(cl, 20);
		for (; m; m = (zsock_events(sock) & ZMQ_POLLIN) ?
		    dg_client_next(cl, 0) : NULL) {
			char key[24];
			bool ours = zhashx_lookup(seqs, s_key(key, m->seq));
			if (m->op == DG_OP_SUBMIT_OK && ours) {
				zhashx_delete(seqs, key);
				s_req_t *r = calloc(1, sizeof *r);
				r->id = m->u.submit_ok.request;
				rng = rng * 1103515245 + 12345;
				if ((int)(rng >> 16) % 100 < cancel_pct)
					r->cancel_at = zclock_mono() +
					    (rng >> 8) % 40;
				zhashx_insert(reqs, s_key(key, r->id), r);
				accepted++;
			} else if (m->op == DG_OP_ERROR && ours) {
				zhashx_delete(seqs, key);
				if (m->u.error.code &&
				    strcmp(m->u.error.code, "busy") == 0)
					busy++;
				else
					refused++;
			} else if (m->op == DG_OP_RESULT) {
				s_req_t *r = zhashx_lookup(reqs,
				    s_key(key, m->u.result.request));
				if (!r) {
					unknown++;
				} else if (r->results++) {
					duplicates++;
				} else {
					snprintf(r->status, sizeof r->status,
					    "%s", m->u.result.status);
					if (!strcmp(r->status, "done"))
						done++;
					else if (!strcmp(r->status, "cancelled"))
						cancelled++;
					else
						failed++;
				}
			}
			dg_msg_destroy(&m);
		}
	}
	/* Whatever has no result yet: ask once, so that a request the
	 * controller knows to be finished is not counted missing. */
	long missing = 0;
	for (s_req_t *r = zhashx_first(reqs); r; r = zhashx_next(reqs)) {
		if (r->results)
			continue;
		dg_msg_t *q = dg_msg_new(DG_OP_STATUS);
		q->u.status.request = r->id;
		dg_msg_t *a = dg_client_call(cl, q, 2000);
		dg_msg_destroy(&q);
		fprintf(stderr, "soak_client: request %llu has no result "
		    "(status: %s)\n", (unsigned long long)r->id,
		    a && a->op == DG_OP_STATUS_OK ? a->u.status_ok.state :
		    "no answer");
		dg_msg_destroy(&a);
		missing++;
	}
	double secs = (double)(zclock_mono() - t0) / 1000.0;
	printf("seconds=%.0f submitted=%ld accepted=%ld busy=%ld refused=%ld "
	    "done=%ld failed=%ld cancelled=%ld duplicates=%ld missing=%ld "
	    "unknown=%ld\n", secs, submitted, accepted, busy, refused, done,
	    failed, cancelled, duplicates, missing, unknown);
	zhashx_destroy(&seqs);
	zhashx_destroy(&reqs);
	dg_client_destroy(&cl);
	return duplicates == 0 && missing == 0 && unknown == 0 &&
	    accepted > 0 ? 0 : 1;
}
