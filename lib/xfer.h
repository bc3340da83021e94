/*  xfer.h: the transfer engine, one per daemon: moves tensors from this
 *  daemon's pool into a peer's pool with libfabric RMA writes.
 *
 *  FI_EP_RDM endpoints (one per rail), one domain, one AV, one CQ, and
 *  one progress thread that owns every fabric call after start-up: it
 *  posts queued writes and polls the CQ.  The control loop never blocks
 *  on it: it calls dg_xfer_expect() / dg_xfer_send(), which return at
 *  once, and learns how each ended by polling dg_xfer_fd() (an eventfd
 *  zloop or zpoller can wait on) and draining dg_xfer_next_event().
 *
 *  A transfer moves a manifest's tensors as chunks of at most the
 *  receiver's chunk size, a bounded number in flight, each an
 *  fi_writedata() whose remote CQ data names the receiving transfer and
 *  the chunk.  The receiver is told a transfer is complete only when its
 *  own CQ has reported every chunk: a remote CQ data completion is
 *  generated only once the write's data is placed in the target buffer,
 *  so the data is visible there by then.  A separate "done" message
 *  would need delivery-complete semantics at the sender, which rxm over
 *  tcp in libfabric 1.17 does not promise for RMA.
 *
 *  Every transfer ends in exactly one event: done, failed (with peer,
 *  rail, bytes left and libfabric's error text) or stale.  */
#ifndef DG_XFER_H
#define DG_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pool.h"
#include "proto.h"

#define DG_XFER_MAX_RAILS 16
#define DG_XFER_ADDR_MAX  128
#define DG_XFER_SHARE_MAX 64    /* a pool's share name, with its NUL */

typedef enum {
	DG_XFER_SEND = 1,       /* our data reached the peer */
	DG_XFER_RECV = 2        /* a peer's data reached our pool */
} dg_xfer_dir_t;

typedef enum {
	DG_XFER_DONE = 0,
	DG_XFER_FAILED,
	DG_XFER_STALE           /* names a recycled extent: never retried */
} dg_xfer_status_t;

typedef struct {
	dg_xfer_dir_t dir;
	dg_xfer_status_t status;
	uint64_t id;            /* from dg_xfer_send / dg_xfer_expect */
	uint64_t room;
	int phase;
	uint64_t bytes;         /* bytes moved */
	uint64_t bytes_left;
	int attempts;           /* send: whole-transfer attempts used */
	int64_t ms;             /* from start to this event */
	int64_t us;             /* the same in microseconds (sends) */
	bool kept;              /* failed receive: the engine keeps its
	                           extent until a local sender lets go */
	char reason[256];
} dg_xfer_event_t;

typedef struct {
	uint64_t sends_done, sends_failed;
	uint64_t recvs_done, recvs_failed, recvs_stale;
	uint64_t bytes_sent, bytes_received;
	uint64_t chunks_posted, chunks_retried, eagain;
	uint64_t attempts_retried;
	/* Sends to a receiver on this host (xfer_local.c): handed over in
	 * place (zero copy), or copied through its mapped pool because its
	 * manifest came after we had computed. */
	uint64_t handoffs, local_copies;
	uint32_t sends_active, recvs_active;
	uint32_t peers_mapped;          /* receivers' pools mapped here */
} dg_xfer_stats_t;

typedef struct {
	int rail;
	char peer[64];          /* peer's rail address, printable */
	bool quarantined;
	int64_t quarantine_left_ms;
	uint64_t errors;
} dg_xfer_rail_t;

typedef struct _dg_xfer_t dg_xfer_t;
typedef struct _dg_xfer_lease_t dg_xfer_lease_t;

/* Whether `provider` can register memory of CUDA `device` directly
 * (FI_HMEM_CUDA), found by trying: false without a CUDA build or device,
 * and on Debian's libfabric 1.17, which has no CUDA interface. */
bool dg_xfer_probe_hmem_cuda(const char *provider, int device, char *why,
    size_t whysize);

/* The pool of a stage section: `pool` bytes in slots of `slot`, in host
 * memory, or for `memory = cuda` in device memory when the provider can
 * register it, else pinned host memory for staging; with no device, host
 * memory and one log line saying so.  With `share` ([fabric] zero_copy)
 * host memory is a sealed memfd a local sender can map.  NULL with the
 * reason on failure. */
dg_pool_t *dg_xfer_pool_for(const dg_stage_conf_t *st, const char *provider,
    bool share, char *why, size_t whysize);

/* "auto" means shm when every peer is on this host, else tcp;ofi_rxm. */
const char *dg_xfer_provider_for(const char *configured, bool all_local);

/* Open the fabric with conf->provider (already resolved, not "auto"),
 * `node` the local address to listen on ("127.0.0.1"; NULL lets the
 * provider pick; ignored by shm), register the whole pool once, start
 * the progress thread.  NULL on failure, with the reason in `why`. */
dg_xfer_t *dg_xfer_new(const dg_fabric_conf_t *conf, dg_pool_t *pool,
    const char *node, char *why, size_t whysize);
void dg_xfer_destroy(dg_xfer_t **self_p);

/* Readable when events are waiting. */
int dg_xfer_fd(const dg_xfer_t *self);
/* 1 and an event, or 0 when none is left. */
int dg_xfer_next_event(dg_xfer_t *self, dg_xfer_event_t *ev);

const char *dg_xfer_provider(const dg_xfer_t *self);
int dg_xfer_rails(const dg_xfer_t *self);
/* This engine's fabric address on `rail` (to put in hello messages). */
const void *dg_xfer_address(const dg_xfer_t *self, int rail, size_t *len);

/* The same, printable (libfabric's fi_av_straddr form). */
const char *dg_xfer_address_name(const dg_xfer_t *self, int rail);

/* Receiver: expect the tensors of `m` (room, phase and tensors with
 * offsets relative to the pool start, filled by the caller) to be
 * written into extent `ext`, which must be RESERVED; it moves to
 * FILLING.  Fills the rest of the manifest (slot, gen, fabric, key, base,
 * token, chunk) so it can be sent to the peer; the fabric addresses
 * point into the engine and live as long as it does.  On the event the
 * extent is READY (done) or still FILLING (failed: the caller frees it).
 * 0, or -1 with the reason in `why` (tensors outside the extent, ...). */
int dg_xfer_expect(dg_xfer_t *self, const dg_extent_t *ext,
    dg_manifest_msg_t *m, int64_t timeout_ms, uint64_t *id,
    char *why, size_t whysize);

/* Sender: write local tensors into the peer's manifest `m`.  `src` are
 * the pool offsets of the local copies of m->tensors[i] (same sizes),
 * all inside extent `ext`.  Copies what it needs from `m`: the caller
 * may free it on return.  Returns 0 and an id, or -1 with `why`. */
int dg_xfer_send(dg_xfer_t *self, const dg_manifest_msg_t *m,
    const dg_extent_t *ext, const uint64_t *src, int64_t timeout_ms,
    uint64_t *id, char *why, size_t whysize);

/* How far an open receive has got: 0 and the bytes arrived so far out of
 * the total, or -1 when `id` names no open receive. */
int dg_xfer_recv_progress(dg_xfer_t *self, uint64_t id, uint64_t *bytes,
    uint64_t *total);

/* Abandon a transfer (room released): it ends with a failed event.
 * 1 when it was a receive whose extent a local sender holds: the engine
 * then keeps the extent and frees it when that sender lets go (or dies);
 * the caller must not free it.  0 otherwise, -1 out of memory. */
int dg_xfer_cancel(dg_xfer_t *self, uint64_t id);

/* ---- zero copy on one host (xfer_local.c) ------------------------------
 * A receiver whose [fabric] zero_copy is on keeps its pool in a sealed
 * memfd (or device memory, CUDA IPC) and names it in its manifests
 * (`share`).  A sender on the same host maps that pool once, over an
 * abstract unix socket that answers only this user, and can then:
 *   - write its output straight into the receiver's extent: a lease, then
 *     dg_xfer_send_placed(), which only hands the extent over;
 *   - or, its output already computed, copy it there (dg_xfer_send does
 *     so by itself, counted as local_copies).  */

/* Hold the receiver's extent of manifest `m` for a write in place: the
 * receiver agrees to keep it until we hand it over or drop it.  Fills
 * ptrs[i], where tensor i goes, and returns the lease; NULL when the
 * receiver is not on this host, zero_copy is off, or it refused.  One
 * thread calls it (the control loop). */
dg_xfer_lease_t *dg_xfer_lease(dg_xfer_t *self, const dg_manifest_msg_t *m,
    void **ptrs);
/* Give the extent back unwritten. */
void dg_xfer_lease_drop(dg_xfer_t *self, dg_xfer_lease_t **lease_p);
/* Hand over an extent written through `*lease_p` (taken, even on
 * failure): ends in one send event, like dg_xfer_send. */
int dg_xfer_send_placed(dg_xfer_t *self, const dg_manifest_msg_t *m,
    dg_xfer_lease_t **lease_p, int64_t timeout_ms, uint64_t *id, char *why,
    size_t whysize);

void dg_xfer_stats(dg_xfer_t *self, dg_xfer_stats_t *out);

/* True once a provider that can wedge (shm) has: its progress thread
 * stuck spinning inside it for a second, or a write to a stopped peer
 * held 3 s after its send ended, time this process was stopped left out
 * (xfer_wedge.c).  Transfers still end at their deadlines, but no new one
 * can progress: the daemon should restart. */
bool dg_xfer_wedged(const dg_xfer_t *self);
/* Health of every (peer, rail) this engine has talked to; returns the
 * number written (at most max). */
size_t dg_xfer_rail_health(dg_xfer_t *self, dg_xfer_rail_t *out, size_t max);

/* Test builds only (DG_FAULT_INJECTION): the next `count` chunks written
 * on `rail` fail as if the transport had reported an error. */
void dg_xfer_inject_rail_fault(dg_xfer_t *self, int rail, int count);
/* Test builds only: the next `count` writes are refused as they are
 * posted (fi_writedata() failing at once), on any rail. */
void dg_xfer_inject_post_fault(dg_xfer_t *self, int count);

#endif
