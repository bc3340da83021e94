/*  xfer_impl.h: the transfer engine's insides, shared by xfer.c and the
 *  xfer_*.c files and by nothing else: the engine, its per-transfer
 *  records, and the functions the files call in one another.  */
#ifndef DG_XFER_IMPL_H
#define DG_XFER_IMPL_H

#include <pthread.h>
#include <rdma/fabric.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "threads.h"
#include "xfer.h"

/* A token names a receive: index in the table (low 16 bits) and that
 * entry's generation (next 16), so a late chunk for a recycled entry is
 * told apart.  It travels in the high 32 bits of the CQ data; the chunk
 * index in the low 32. */
#define RECV_SLOTS    (1u << 16)

/* A FIFO of sends with chunks left to post (xfer_progress.c): each peer
 * has one, local sends share the engine's.  A send is on at most one. */
typedef struct {
	struct s_send *head, **tail;
} s_sendq_t;

typedef struct s_peer {
	uint8_t addr[DG_XFER_MAX_RAILS][DG_XFER_ADDR_MAX];
	size_t addrlen[DG_XFER_MAX_RAILS];
	int nrails;
	fi_addr_t fa[DG_XFER_MAX_RAILS];
	int64_t quarantine_until[DG_XFER_MAX_RAILS];
	uint64_t errors[DG_XFER_MAX_RAILS];
	char name[DG_XFER_MAX_RAILS][64];
	int next_rail;
	int refs;               /* open sends */
	int orphans;            /* ops of ended sends the provider holds */
	/* ops to it the provider holds, all sends, and their bytes: shm's
	 * window (xfer_progress.c, s_may_post()) */
	int posted;
	uint64_t posted_bytes;
	bool failed;            /* remove from the AV once unused */
	s_sendq_t q;            /* its sends with chunks left to post */
	struct s_peer *next;
} s_peer_t;

struct s_send;

/* A receiver's pool on this host, mapped here (xfer_local.c).  The list
 * is under map_lock; the share thread alone closes `conn`. */
typedef struct s_map {
	char name[DG_XFER_SHARE_MAX];   /* the receiver's socket */
	int conn;               /* SOCK_SEQPACKET to it; -1: refused */
	uint8_t *base;          /* its pool here (host or device) */
	size_t size;
	bool device;            /* CUDA IPC: copies go through cudaMemcpy */
	int refs;               /* leases and local sends */
	atomic_bool dead;       /* its process went: unmap at refs 0 (set
	                           under map_lock, read anywhere) */
	bool busy;              /* a hold waits for its answer */
	int64_t hold_after;     /* no holds before (it did not answer) */
	int64_t retry_at;       /* refused for now, not for good: try then */
	struct s_map *next;
} s_map_t;

/* A receiver's extent held for a lease (xfer.h). */
struct _dg_xfer_lease_t {
	s_map_t *map;
	uint64_t token;
	char share[DG_XFER_SHARE_MAX];
};

/* A receive that ended while a local sender held its extent: the
 * extent goes back to the pool when that sender lets go (under rx_lock). */
typedef struct s_kept {
	uint64_t token;
	uint32_t conn;
	dg_extent_t ext;
	struct s_kept *next;
} s_kept_t;

typedef struct s_op {
	struct fi_context2 ctx; /* first: libfabric hands its address back */
	struct s_send *tx;      /* NULL once orphaned */
	uint32_t chunk;
	int rail;
	bool idle;              /* on the send's free list */
	struct s_op *next;      /* free list or orphan list */
	struct s_peer *peer;    /* whom it writes to */
	uint64_t bytes;         /* its write's */
	int64_t orphaned_at;    /* ms of dg_xfer_run_clock(), once orphaned */
} s_op_t;

typedef struct s_send {
	uint64_t id, room;
	int phase;
	s_peer_t *peer;         /* set by the progress thread from `addr` */
	dg_bin_t *addr;         /* the receiver's rails, in the block */
	size_t naddr;
	uint64_t key, base, token, chunk_size;
	size_t ntensors;
	uint64_t *src, *dst, *len;
	uint32_t *first;        /* first chunk of tensor i; first[n] = total */
	uint32_t nchunks, next_chunk, ndone;
	uint8_t *done;          /* per chunk: 1 once completed */
	uint8_t *retries;
	uint32_t *requeue;      /* chunks to post again */
	uint32_t nrequeue;
	s_op_t **ops;           /* every op this send allocated */
	int nops, inflight, maxinflight;
	s_op_t *free_ops;
	int attempts, max_attempts, chunk_retries;
	s_map_t *map;           /* a local send: the receiver's pool here */
	bool placed;            /* the data is already there: hand it off */
	struct s_pend *pend;    /* the watchdog's view, until claimed */
	int64_t started, deadline;
	int64_t started_us;     /* for the event's `us` */
	uint64_t bytes_total, bytes_done;
	char error[200];
	bool cancelled;
	struct s_send *next, **pprev;   /* on self->sends */
	s_sendq_t *q;           /* the post queue it is on, or NULL */
	struct s_send *q_next, **q_pprev;
	struct s_cmd *cmd;      /* its start command, in the same block */
	uint8_t *chunks;        /* done, retries, requeue: one block */
} s_send_t;

typedef struct {
	bool active;
	uint16_t gen;
	uint64_t id, room;
	int phase;
	dg_extent_t ext;
	uint32_t nchunks, nrecv;
	uint8_t *map;           /* bit per chunk: `map_word`, or its own */
	uint64_t map_word;
	size_t ntensors;
	uint64_t *len;
	uint32_t *first;        /* in len's block */
	uint64_t bytes_total, bytes;
	int64_t started, deadline;
	uint32_t held_by;       /* the local sender's connection, or 0 */
} s_recv_t;


/* An open send, as the watchdog sees it.  Its send points at it, so the
 * claim at its end costs the same with thousands open. */
typedef struct s_pend {
	uint64_t id, room;
	int phase;
	int64_t started, deadline;
	bool late;              /* the watchdog ended it: off the list */
	struct s_pend *next, **pprev;
} s_pend_t;

typedef struct s_cmd {
	enum { CMD_SEND, CMD_CANCEL } type;
	s_send_t *tx;
	uint64_t id;
	struct s_cmd *next;
} s_cmd_t;

struct _dg_xfer_t {
	dg_fabric_conf_t conf;
	dg_pool_t *pool;
	char provider[64];
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_cq *cq;
	struct fid_av *av;
	struct fid_ep *ep[DG_XFER_MAX_RAILS];
	struct fid_mr *mr;
	void *desc;
	uint64_t key, base;
	int nrails;
	uint8_t addr[DG_XFER_MAX_RAILS][DG_XFER_ADDR_MAX];
	size_t addrlen[DG_XFER_MAX_RAILS];
	dg_bin_t addr_bins[DG_XFER_MAX_RAILS];
	char addr_name[DG_XFER_MAX_RAILS][64];  /* printable, for sockets */
	dg_thread_t *progress_thread;   /* its registry slot, for the
	                                   watchdog to mark it blocked */
	int cq_fd;              /* -1 without a wait object */
	bool is_shm;
	bool can_wedge;         /* dg_xfer_provider_can_wedge() */

	pthread_t thread, watchdog;
	bool started, watching;
	atomic_bool stop;
	int stop_fd;                    /* wakes the watchdog: to stop, or
	                                   from its rest */
	_Atomic int64_t last_loop;      /* progress thread's last round */
	_Atomic int64_t tick;           /* the watchdog's last tick */
	_Atomic int64_t paused;         /* ms this process was seen not
	                                   running, in all (xfer_wedge.c) */
	atomic_bool napping;            /* progress thread in its idle wait */
	atomic_bool idle_blocked;       /* ... with nothing open: no provider
	                                   call to watch */
	atomic_bool watch_resting;      /* the watchdog waits for stop_fd */
	bool ev_signalled;              /* ev_fd written, not yet drained */
	bool ev_kick_pending;           /* progress thread: write it at the
	                                   round's end */
	atomic_bool wedged;
	pthread_mutex_t pend_lock;
	s_pend_t *pend;
	atomic_uint_fast64_t next_id;

	pthread_mutex_t cmd_lock;
	s_cmd_t *cmds, **cmds_tail;
	int cmd_fd;

	pthread_mutex_t ev_lock;
	/* Events not yet taken, oldest at ev_head: a ring that doubles
	 * when full, so that an event costs no allocation (xfer.c). */
	dg_xfer_event_t *ev_ring;
	size_t ev_cap, ev_head, ev_count;
	int ev_fd;

	pthread_mutex_t rx_lock;
	s_recv_t *recvs;
	uint32_t *rx_free;
	uint32_t rx_nfree;
	uint32_t rx_hi;         /* every active receive has index < rx_hi */

	/* Owned by the progress thread. */
	s_send_t *sends;
	int64_t sends_due;      /* no open send's deadline is earlier */
	s_op_t *op_cache;       /* dg_xfer_op_free() */
	int op_ncached;
	bool post_pending;      /* a send may have chunks left to post */
	int64_t last_chunk_us;  /* the last chunk a receive got */
	s_sendq_t localq;       /* local sends: each gets a turn a round */
	int ops_posted;         /* writes the provider holds, every peer's:
	                           the sum of s_peer_t.posted */
	s_peer_t *peers;
	s_op_t *orphans;
	int64_t next_check;

	pthread_mutex_t st_lock;
	dg_xfer_stats_t stats;
	dg_xfer_rail_t *health;         /* snapshot for other threads */
	size_t nhealth;
	int64_t next_health;

	atomic_int fault[DG_XFER_MAX_RAILS];
	atomic_int post_fault;  /* dg_xfer_inject_post_fault() */

	/* Zero copy on one host (xfer_local.c). */
	bool sharing;                   /* our pool is offered */
	char share_name[DG_XFER_SHARE_MAX];
	int share_fd, share_wake;       /* listening socket; wakes the thread */
	pthread_t share_thread;
	bool share_started;
	pthread_mutex_t map_lock;
	s_map_t *maps;
	s_kept_t *kept;                 /* under rx_lock */
};

#define STAT_ADD(self, field, n)                        \
	do {                                            \
		pthread_mutex_lock(&(self)->st_lock);   \
		(self)->stats.field += (n);             \
		pthread_mutex_unlock(&(self)->st_lock); \
	} while (0)

/* xfer.c: the clock, and the queues between the threads. */
int64_t dg_xfer_now_ms(void);
int64_t dg_xfer_now_us(void);
void dg_xfer_kick(int fd);
void dg_xfer_drain_fd(int fd);
void dg_xfer_emit(dg_xfer_t *self, const dg_xfer_event_t *ev);

/* xfer_setup.c.  On failure what was opened stays open, for
 * dg_xfer_fabric_close(), which also takes a half-open fabric. */
int dg_xfer_fabric_open(dg_xfer_t *self, const char *node, char *why,
    size_t whysize);
void dg_xfer_fabric_close(dg_xfer_t *self);

/* xfer_progress.c.  Sends are the progress thread's (and
 * dg_xfer_destroy()'s once that thread has stopped); receives are
 * whichever thread holds rx_lock. */
void *dg_xfer_progress_loop(void *arg);
int dg_xfer_take_commands(dg_xfer_t *self);
void dg_xfer_send_free(s_send_t *tx);
void dg_xfer_send_finish(dg_xfer_t *self, s_send_t *tx,
    dg_xfer_status_t status);
/* Called with rx_lock held.  True when the receive failed while a
 * local sender held its extent: the engine keeps it (xfer_local.c). */
bool dg_xfer_recv_finish(dg_xfer_t *self, uint32_t index,
    dg_xfer_status_t status, const char *reason);
/* Tensor and byte range of chunk `c`. */
size_t dg_xfer_chunk_at(size_t n, const uint32_t *first, const uint64_t *len,
    uint64_t chunk, uint32_t c, uint64_t *off, uint64_t *clen);

/* xfer_rails.c: the progress thread's alone. */
s_peer_t *dg_xfer_peer_get(dg_xfer_t *self, const dg_bin_t *addrs, size_t n,
    char *why, size_t whysize);
void dg_xfer_peer_release(dg_xfer_t *self, s_peer_t *peer);
void dg_xfer_send_queue(dg_xfer_t *self, s_send_t *tx);
void dg_xfer_peer_unref(dg_xfer_t *self, s_peer_t *peer);
int dg_xfer_pick_rail(dg_xfer_t *self, s_peer_t *p, int64_t now);
bool dg_xfer_chunk_failed(dg_xfer_t *self, s_send_t *tx, uint32_t c,
    int rail, const char *what);
void dg_xfer_publish_health(dg_xfer_t *self, int64_t now);

/* xfer_wedge.c: the watchdog's own state, its thread's alone. */
/* The watchdog's tick while anything is open.  Its checks need no finer
 * grain (deadlines of seconds, a pause of 200 ms, a stall of 100 ms),
 * and each tick is a wake-up that preempts a thread moving data. */
#define DG_XFER_TICK_MS 20
typedef struct {
	int64_t last_tick;
	int64_t resumed;        /* end of the last pause */
	int64_t spin_from;      /* 0, or since when the CPU is watched */
	int64_t spin_cpu;       /* the progress thread's CPU ms then */
	bool warned;
	bool has_cpu;
	clockid_t cpu;          /* the progress thread's CPU clock */
} dg_xfer_watch_t;

/* Whether `provider` is one that can wedge (today only shm). */
bool dg_xfer_provider_can_wedge(const char *provider);
/* The engine's clock less the pauses of the whole process, for delays
 * the engine judges; dg_xfer_run_ms() is -1 while a pause may still be
 * uncounted (judge nothing then). */
int64_t dg_xfer_run_clock(dg_xfer_t *self, int64_t now);
int64_t dg_xfer_run_ms(dg_xfer_t *self, int64_t now);
void dg_xfer_watch_init(dg_xfer_t *self, dg_xfer_watch_t *w);
/* After a rest: the time since the last tick was no pause, and the
 * progress thread did not stall in it. */
void dg_xfer_watch_resume(dg_xfer_t *self, dg_xfer_watch_t *w, int64_t now);
/* The progress thread's blocked wait took `waited` ms for a timeout of
 * `planned`: far longer is a pause the resting watchdog could not see. */
void dg_xfer_rest_paused(dg_xfer_t *self, int64_t waited, int64_t planned);
/* Each tick, first: counts a gap in the ticks as a pause. */
void dg_xfer_watch_pause(dg_xfer_t *self, dg_xfer_watch_t *w, int64_t now);
/* How long the progress thread has not turned, pauses left out; marks
 * the engine wedged when it is stuck spinning in a provider that can
 * wedge. */
int64_t dg_xfer_watch_stuck(dg_xfer_t *self, dg_xfer_watch_t *w, int64_t now);

/* xfer_local.c */
int dg_xfer_local_open(dg_xfer_t *self, char *why, size_t whysize);
void dg_xfer_local_close(dg_xfer_t *self);
/* The receiver's pool named by `share`, mapped (connecting the first
 * time), with a reference; NULL when it is not on this host. */
s_map_t *dg_xfer_map_get(dg_xfer_t *self, const char *share);
void dg_xfer_map_unref(dg_xfer_t *self, s_map_t *map);
/* Whether every tensor of `m` lies inside the mapped pool. */
bool dg_xfer_map_covers(const s_map_t *map, const dg_manifest_msg_t *m);
/* A local send's turn on the progress thread: copies a few chunks, or
 * hands the extent over.  Returns chunks moved, or -1 once it ended. */
int dg_xfer_local_post(dg_xfer_t *self, s_send_t *tx);
/* A placed send handed over at once by the caller: 0 and its event is
 * out (tx freed), or -1 (EAGAIN: queue it as usual). */
int dg_xfer_local_handoff(dg_xfer_t *self, s_send_t *tx, uint64_t *id);
/* Tell the receiver we let go of `token` without writing it. */
void dg_xfer_local_drop(dg_xfer_t *self, s_map_t *map, uint64_t token);
/* Under rx_lock: a receive that ends failed while held is kept. */
bool dg_xfer_local_keep(dg_xfer_t *self, uint32_t index);

/* xfer_watchdog.c */
void *dg_xfer_watchdog_loop(void *arg);
bool dg_xfer_claim(dg_xfer_t *self, s_pend_t *pend);
/* Off the watchdog's list, under pend_lock. */
void dg_xfer_pend_unlink(s_pend_t *pend);
/* The progress thread's own checks, every few ms. */
void dg_xfer_check_deadlines(dg_xfer_t *self, int64_t now);
void dg_xfer_op_free(dg_xfer_t *self, s_op_t *op);
/* The engine whose progress round this thread is in, if any. */
extern _Thread_local dg_xfer_t *dg_xfer_round_of;
void dg_xfer_round_end(dg_xfer_t *self);
void dg_xfer_events_flush(dg_xfer_t *self);
void dg_xfer_check_orphans(dg_xfer_t *self, int64_t now);

#endif
