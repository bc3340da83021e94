/*  xfer_rails.c: peers and their rails, kept by the progress thread:
 *  the address vector's entries, which rail a chunk goes on, what a
 *  failed chunk costs, and the health snapshot other threads read.
 *
 *  Retries are layered and bounded: a chunk that fails quarantines its
 *  (peer, rail) for quarantine_ms and is re-posted on the next healthy
 *  rail up to chunk_retries times; when a chunk runs out, the transfer
 *  starts a fresh attempt (retry budgets reset) up to transfer_attempts;
 *  then it fails.  Above that the controller re-dispatches the request.
 *  When every rail of a peer is quarantined all are tried: never starve.  */
#define _GNU_SOURCE
#include <pthread.h>
#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xfer.h"
#include "xfer_impl.h"

s_peer_t *
dg_xfer_peer_get(dg_xfer_t *self, const dg_bin_t *addrs, size_t n, char *why,
    size_t whysize)
{
	for (s_peer_t *p = self->peers; p; p = p->next) {
		if (p->nrails != (int)n)
			continue;
		if (p->addrlen[0] == addrs[0].size &&
		    memcmp(p->addr[0], addrs[0].data, addrs[0].size) == 0) {
			/* Talking to it again before its entry went: use the
			 * entry; a second one for the same address would share
			 * (and lose) its connection when the first is removed. */
			p->failed = false;
			return p;
		}
	}
	s_peer_t *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	p->nrails = (int)n;
	p->q.tail = &p->q.head;
	for (size_t r = 0; r < n; r++) {
		memcpy(p->addr[r], addrs[r].data, addrs[r].size);
		p->addrlen[r] = addrs[r].size;
		int rc = fi_av_insert(self->av, p->addr[r], 1, &p->fa[r], 0,
		    NULL);
		if (rc != 1) {
			snprintf(why, whysize, "cannot add peer rail %zu to the "
			    "address vector: %s", r, fi_strerror(rc < 0 ? -rc :
			    FI_EINVAL));
			for (size_t k = 0; k < r; k++)
				fi_av_remove(self->av, &p->fa[k], 1, 0);
			free(p);
			return NULL;
		}
		size_t len = sizeof p->name[r];
		if (!fi_av_straddr(self->av, p->addr[r], p->name[r], &len))
			snprintf(p->name[r], sizeof p->name[r], "?");
	}
	p->next = self->peers;
	self->peers = p;
	return p;
}

/* A peer whose transfers failed is taken out of the AV once nothing uses
 * it, so that it is inserted afresh (a new connection) when it returns.
 * Not while the provider still holds ops to it: shm unmaps the peer's
 * region on removal, and a late completion would touch it. */
void
dg_xfer_peer_release(dg_xfer_t *self, s_peer_t *peer)
{
	if (peer->refs > 0 || peer->orphans > 0 || !peer->failed)
		return;
	/* shm (1.17) keeps state of its own about a peer's region beyond
	 * our ops, and its progress segfaulted on a region unmapped by
	 * fi_av_remove.  Its addresses carry the pid, so a peer that comes
	 * back has a new one anyway: keep the entry. */
	if (self->is_shm)
		return;
	for (s_peer_t **pp = &self->peers; *pp; pp = &(*pp)->next) {
		if (*pp != peer)
			continue;
		*pp = peer->next;
		fi_av_remove(self->av, peer->fa, (size_t)peer->nrails, 0);
		dg_log_info("xfer: peer %s removed from the address vector",
		    peer->name[0]);
		free(peer);
		return;
	}
}

void
dg_xfer_peer_unref(dg_xfer_t *self, s_peer_t *peer)
{
	peer->refs--;
	dg_xfer_peer_release(self, peer);
}

int
dg_xfer_pick_rail(dg_xfer_t *self, s_peer_t *p, int64_t now)
{
	for (int i = 0; i < p->nrails; i++) {
		int r = (p->next_rail + i) % p->nrails;
		if (p->quarantine_until[r] <= now) {
			p->next_rail = (r + 1) % p->nrails;
			return r;
		}
	}
	/* Every rail is quarantined: try them all in turn. */
	(void)self;
	int r = p->next_rail;
	p->next_rail = (r + 1) % p->nrails;
	return r;
}

/* A chunk failed on `rail`: quarantine the rail, then retry the chunk,
 * or start a fresh attempt, or give up.  Returns false when the send
 * is over (and freed). */
bool
dg_xfer_chunk_failed(dg_xfer_t *self, s_send_t *tx, uint32_t c, int rail,
    const char *what)
{
	s_peer_t *p = tx->peer;
	int64_t now = dg_xfer_now_ms();

	p->errors[rail]++;
	p->quarantine_until[rail] = now + self->conf.quarantine_ms;
	/* Shown at the end of this round, not up to 100 ms later: the
	 * engine may go idle first, and an idle thread publishes nothing. */
	self->next_health = 0;
	dg_log_warn("xfer: room=%llu peer %s rail %d: %s; rail quarantined "
	    "for %lld ms", (unsigned long long)tx->room, p->name[rail], rail,
	    what, (long long)self->conf.quarantine_ms);
	snprintf(tx->error, sizeof tx->error, "peer %s rail %d: %s",
	    p->name[rail], rail, what);
	if (tx->retries[c] < tx->chunk_retries) {
		tx->retries[c]++;
		tx->requeue[tx->nrequeue++] = c;
		dg_xfer_send_queue(self, tx);
		STAT_ADD(self, chunks_retried, 1);
		return true;
	}
	if (tx->attempts < tx->max_attempts) {
		tx->attempts++;
		memset(tx->retries, 0, tx->nchunks);
		tx->requeue[tx->nrequeue++] = c;
		dg_xfer_send_queue(self, tx);
		STAT_ADD(self, attempts_retried, 1);
		dg_log_info("xfer: room=%llu attempt %d of %d",
		    (unsigned long long)tx->room, tx->attempts,
		    tx->max_attempts);
		return true;
	}
	char left[64];
	snprintf(left, sizeof left, "; %llu of %llu bytes left after %d "
	    "attempts", (unsigned long long)(tx->bytes_total - tx->bytes_done),
	    (unsigned long long)tx->bytes_total, tx->attempts);
	size_t n = strlen(tx->error);
	snprintf(tx->error + n, sizeof tx->error - n, "%s", left);
	dg_log_warn("xfer: room=%llu send failed: %s",
	    (unsigned long long)tx->room, tx->error);
	dg_xfer_send_finish(self, tx, DG_XFER_FAILED);
	return false;
}

/* Copy the rails' health where other threads may read it. */
void
dg_xfer_publish_health(dg_xfer_t *self, int64_t now)
{
	size_t n = 0;

	for (s_peer_t *p = self->peers; p; p = p->next)
		n += (size_t)p->nrails;
	dg_xfer_rail_t *h = calloc(n + 1, sizeof *h);
	if (!h)
		return;
	size_t i = 0;
	for (s_peer_t *p = self->peers; p; p = p->next) {
		for (int r = 0; r < p->nrails; r++, i++) {
			h[i].rail = r;
			snprintf(h[i].peer, sizeof h[i].peer, "%s", p->name[r]);
			h[i].quarantined = p->quarantine_until[r] > now;
			h[i].quarantine_left_ms = h[i].quarantined ?
			    p->quarantine_until[r] - now : 0;
			h[i].errors = p->errors[r];
		}
	}
	pthread_mutex_lock(&self->st_lock);
	free(self->health);
	self->health = h;
	self->nhealth = n;
	pthread_mutex_unlock(&self->st_lock);
}
