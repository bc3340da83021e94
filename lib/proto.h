/*  proto.h: the control-plane wire protocol (ARCHITECTURE.md, "The wire protocol").
 *
 *  After ZeroMQ's routing frames, one frame holds one msgpack map:
 *
 *      {"v": 1, "op": "submit", "seq": 7, "prompt": "...", "frames": 81, ...}
 *
 *  "v" is DG_PROTO_VERSION, "op" names the message, "seq" is chosen by the
 *  sender and echoed in the reply; the op's fields sit at the same level.
 *  Unknown keys are ignored, so a newer peer may add fields freely.
 *
 *  Decoding is a pure function (buffer -> message or error) so that the
 *  fuzzer and the sockets call the same code.  One descriptor table
 *  (proto_catalog.c) drives both directions: there is no per-message code.
 *
 *  Every function here is thread-safe: no global mutable state.  */
#ifndef DG_PROTO_H
#define DG_PROTO_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Version 2 changed the ops between daemons (200..399): `assign` names
 * the whole chain of stages.  Client, admin and event ops are those of
 * version 1 and are still sent as version 1, so that version-1 clients
 * keep working; each op says in the catalogue since when it is as it
 * is, and a frame carries that number. */
#define DG_PROTO_VERSION     2

/* Limits.  A frame that breaks one is refused before msgpack-c sees it
 * (proto_scan.c), so a hostile peer costs at most a few MB of memory. */
#define DG_PROTO_MAX_FRAME   (4u << 20)  /* bytes in one frame */
#define DG_PROTO_MAX_STR     (64u << 10) /* bytes in one str, bin or ext */
#define DG_PROTO_MAX_TENSORS 256         /* tensors in one manifest */
#define DG_PROTO_MAX_ITEMS   65536       /* items in one array or map */
#define DG_PROTO_MAX_DEPTH   8           /* nesting; the envelope is 1 */
#define DG_PROTO_MAX_OBJECTS 131072      /* msgpack objects in one frame */
#define DG_PROTO_MAX_FIELDS  64          /* fields per op: bits of present */
#define DG_PROTO_ERR_MAX     256         /* dg_proto_err_t.message */

/* Op numbers are grouped in ranges, tmux-style, and never renumbered;
 * only the names travel on the wire. */
typedef enum {
	DG_OP_NONE            = 0,
	/* 1..: generic */
	DG_OP_ERROR           = 1,
	/* 100..: client <-> controller */
	DG_OP_SUBMIT          = 100,
	DG_OP_SUBMIT_OK       = 101,
	DG_OP_RESULT          = 102,
	DG_OP_STATUS          = 103,
	DG_OP_STATUS_OK       = 104,
	DG_OP_CANCEL          = 105,
	DG_OP_CANCEL_OK       = 106,
	DG_OP_PROGRESS        = 107,
	/* 200..: daemon <-> controller */
	DG_OP_HELLO           = 200,
	DG_OP_HELLO_OK        = 201,
	DG_OP_HEARTBEAT       = 202,
	DG_OP_STATS           = 203,
	DG_OP_BYE             = 204,
	DG_OP_ASSIGN          = 205,
	DG_OP_ASSIGN_OK       = 206,
	DG_OP_STAGE_DONE      = 207,
	DG_OP_STAGE_FAILED    = 208,
	DG_OP_RELEASE         = 209,
	DG_OP_RELEASE_OK      = 210,
	DG_OP_ROOM_PHASE      = 211,
	/* 300..: stage <-> stage, control of the data plane */
	DG_OP_MANIFEST        = 300,
	DG_OP_TRANSFER_DONE   = 301,
	DG_OP_TRANSFER_FAILED = 302,
	/* 400..: admin (console, CLI) */
	DG_OP_INSTANCES       = 400,
	DG_OP_INSTANCES_OK    = 401,
	DG_OP_QUEUES          = 402,
	DG_OP_QUEUES_OK       = 403,
	DG_OP_ROOMS           = 404,
	DG_OP_ROOMS_OK        = 405,
	DG_OP_THREADS         = 406,
	DG_OP_THREADS_OK      = 407,
	DG_OP_SOCKETS         = 408,
	DG_OP_SOCKETS_OK      = 409,
	DG_OP_DRAIN           = 410,
	DG_OP_DRAIN_OK        = 411,
	DG_OP_UNDRAIN         = 412,
	DG_OP_UNDRAIN_OK      = 413,
	DG_OP_RELOAD          = 414,
	DG_OP_RELOAD_OK       = 415,
	DG_OP_EVENTS          = 416,
	DG_OP_EVENTS_OK       = 417,
	/* 500..: events on the PUB socket */
	DG_OP_EVENT           = 500,
	DG_OP_SNAPSHOT        = 501
} dg_op_t;

/* Error codes.  The first group is what decoding reports; the second is
 * for replies from later layers.  Only the words (dg_proto_code_name)
 * travel, in the "code" of an error frame. */
typedef enum {
	DG_PROTO_OK = 0,
	DG_PROTO_E_TRUNCATED,           /* "truncated" */
	DG_PROTO_E_MALFORMED,           /* "malformed": bad msgpack, non-string
	                                   key, NUL or bad UTF-8 in a string */
	DG_PROTO_E_TRAILING,            /* "trailing": bytes after the map */
	DG_PROTO_E_NOT_A_MAP,           /* "not-a-map" */
	DG_PROTO_E_VERSION,             /* "version": "v" missing, newer than
	                                   ours, or older than the op */
	DG_PROTO_E_UNKNOWN_OP,          /* "unknown-op" */
	DG_PROTO_E_MISSING,             /* "missing": a required key */
	DG_PROTO_E_TYPE,                /* "type" */
	DG_PROTO_E_RANGE,               /* "range": negative unsigned, or an
	                                   integer that does not fit */
	DG_PROTO_E_DUPLICATE,           /* "duplicate": a key twice in a map */
	DG_PROTO_E_FRAME_TOO_LARGE,     /* "frame-too-large" */
	DG_PROTO_E_STRING_TOO_LONG,     /* "string-too-long" (str, bin, ext) */
	DG_PROTO_E_TOO_MANY_TENSORS,    /* "too-many-tensors" */
	DG_PROTO_E_TOO_MANY_ITEMS,      /* "too-many-items" (also objects) */
	DG_PROTO_E_TOO_DEEP,            /* "too-deep" */
	DG_PROTO_E_NOMEM,               /* "nomem" */
	DG_PROTO_E_INVALID,             /* "invalid": bad parameters */
	DG_PROTO_E_BUSY,                /* "busy": admission is full */
	DG_PROTO_E_NOT_FOUND,           /* "not-found" */
	DG_PROTO_E_DENIED,              /* "denied" */
	DG_PROTO_E_INTERNAL,            /* "internal" */
	DG_PROTO_E_TIMEOUT,             /* "timeout": a daemon the controller
	                                   asked on the client's behalf did
	                                   not answer in time */
	DG_PROTO_E_DEADLINE,            /* "deadline": predicted to finish
	                                   past its deadline (admission) */
	DG_PROTO_CODE_COUNT
} dg_proto_code_t;

/* Field value types.  Borrowed when building, arena-owned when decoded. */
typedef struct {
	const uint8_t *data;
	size_t size;
} dg_bin_t;

typedef struct {
	const char *key;
	int64_t value;
} dg_kv_t;

/* An encoded frame: data is malloc'd and belongs to the caller, who
 * releases it with dg_buf_free() (or free(data)). */
typedef struct {
	uint8_t *data;
	size_t size;
} dg_buf_t;

/* ------------------------------------------------------------------ */
/* Message bodies, one per op (or one shared by ops of the same shape).
 * Field names are the wire keys; "?" marks optional fields: absent
 * strings decode as NULL, absent numbers as 0.  A list is a pointer plus
 * its count n_<key>.  Names end in _msg_t and _row_t so that they cannot
 * collide with the runtime's own types (rooms, tensors, stats...). */

typedef struct {                        /* error */
	const char *code;               /* dg_proto_code_name() word */
	const char *message;
} dg_error_msg_t;

typedef struct {                        /* submit.ok, status, cancel,
	                                   cancel.ok */
	uint64_t request;
} dg_request_msg_t;

typedef struct {                        /* assign.ok, release.ok */
	uint64_t room;
} dg_room_msg_t;

typedef struct {                        /* queues, threads, sockets, drain,
	                                   drain.ok, undrain, undrain.ok;
	                                   rooms and reload: name? */
	const char *name;
	bool exit;                      /* drain: ? and then exit */
} dg_name_msg_t;

typedef struct {                        /* submit */
	const char *prompt;
	const char *negative_prompt;    /* ? */
	int64_t frames;
	int64_t height;
	int64_t width;
	int64_t steps;
	int64_t seed;
	int64_t deadline_ms;            /* ? */
	/* ? at most DG_SUBMIT_KEY_MAX bytes: a repeat of the key by the
	 * same submitter is the same request (a retry after a lost reply
	 * starts nothing new) */
	const char *key;
	/* ? the submitter's public key, as the controller journals it;
	 * what a client sends here is ignored */
	const char *owner;
	bool progress;                  /* ? send this client `progress` */
	int64_t priority;               /* ? 0 (default) to 9, most urgent */
} dg_submit_msg_t;

#define DG_PRIORITY_MAX 9

#define DG_SUBMIT_KEY_MAX 64

typedef struct {                        /* progress */
	uint64_t request;
	uint64_t room;                  /* ? from a stage */
	const char *role;
	int64_t step;                   /* 1 .. steps */
	int64_t steps;
} dg_progress_msg_t;

typedef struct {                        /* status */
	uint64_t request;               /* ? */
	const char *key;                /* ? instead of request: the
	                                   submit's key */
} dg_status_msg_t;

typedef struct {                        /* result */
	uint64_t request;
	const char *status;             /* "done", "failed", "cancelled" */
	const char *output;             /* path of the output file */
	uint64_t bytes;
	const char *digest;
	const char *error;              /* ? */
	const dg_kv_t *timings;         /* stage -> ms, a msgpack map */
	size_t n_timings;
	const char *key;                /* ? the submit's key */
	const char *owner;              /* ? journal only: its submitter */
} dg_result_msg_t;

/* One place of the chain: a role and the instance that serves it (and
 * in an assign, where that instance takes manifests). */
typedef struct {                        /* assign, status.ok, rooms.ok */
	const char *role;
	const char *name;
	const char *peer;               /* assign only */
} dg_stage_row_t;

typedef struct {                        /* status.ok */
	uint64_t request;
	const char *state;
	uint64_t room;                  /* ? */
	/* Version 1's three places: the first stage, the middle ones
	 * (joined with ','), the last. */
	const char *encoder;            /* ? */
	const char *transformer;        /* ? */
	const char *decoder;            /* ? */
	int64_t age_ms;                 /* ? */
	int64_t retries;                /* ? */
	const char *error;              /* ? */
	const char *stage;              /* ? the role it is at now */
	const dg_stage_row_t *stages;   /* ? the whole chain */
	size_t n_stages;
	int64_t step, steps;            /* ? the last progress of `stage` */
	const dg_kv_t *timings;         /* ? as in result, so far */
	size_t n_timings;
} dg_status_ok_msg_t;

typedef struct {                        /* hello */
	const char *role;
	const char *name;
	const char *host;
	int64_t pid;
	const char *peer;               /* its peer endpoint */
	const dg_bin_t *fabric;         /* ? one fabric address per rail */
	size_t n_fabric;
	const char *provider;           /* ? */
	uint64_t pool_bytes;
	uint64_t slots;
	int64_t workers;
	const char *version;            /* ? */
} dg_hello_msg_t;

typedef struct {                        /* hello.ok */
	int64_t heartbeat_ms;
	int64_t dead_after_ms;
	uint64_t instance;
} dg_hello_ok_msg_t;

typedef struct {                        /* heartbeat */
	const char *name;
	const char *state;              /* up, draining, drained, unhealthy */
	int64_t incoming;
	int64_t waiting;
	int64_t ready;
	int64_t running;
	int64_t sending;
	int64_t rooms;
	uint64_t free_slots;
	int64_t stalled_ms;             /* ? */
} dg_heartbeat_msg_t;

typedef struct {                        /* stats */
	const char *name;
	uint64_t done;
	uint64_t failed;
	double rps;
	int64_t p50_us;
	int64_t p99_us;
	uint64_t bytes_in;
	uint64_t bytes_out;
} dg_stats_msg_t;

typedef struct {                        /* bye */
	const char *name;
	const char *reason;             /* ? */
} dg_bye_msg_t;

typedef struct {                        /* assign */
	uint64_t request;
	uint64_t room;
	int64_t attempt;
	const char *prompt;
	const char *negative_prompt;    /* ? */
	int64_t frames;
	int64_t height;
	int64_t width;
	int64_t steps;
	int64_t seed;
	int64_t deadline_ms;
	const dg_stage_row_t *stages;   /* the chain, first to last */
	size_t n_stages;
	int64_t priority;               /* ? the submit's */
} dg_assign_msg_t;

typedef struct {                        /* stage.done */
	uint64_t room;
	uint64_t request;
	const char *role;
	int64_t ms;
	const char *output;             /* ? */
	uint64_t bytes;                 /* ? */
	const char *digest;             /* ? */
	/* ? where the room's time at this stage went (result.timings) */
	int64_t queue_us, in_us, compute_us, out_us, total_us;
} dg_stage_done_msg_t;

typedef struct {                        /* stage.failed */
	uint64_t room;
	uint64_t request;
	const char *role;
	const char *reason;
	bool retryable;
} dg_stage_failed_msg_t;

typedef struct {                        /* room.phase */
	uint64_t room;
	uint64_t request;
	const char *role;
	const char *state;              /* running, sending */
} dg_room_phase_msg_t;

typedef struct {                        /* release */
	uint64_t room;
	const char *reason;             /* ? */
} dg_release_msg_t;

typedef struct {                        /* manifest: tensors[] */
	const char *name;
	const char *dtype;
	const int64_t *shape;
	size_t n_shape;
	uint64_t bytes;
	uint64_t offset;
	uint64_t checksum;
} dg_tensor_row_t;

typedef struct {                        /* manifest */
	uint64_t room;
	int64_t phase;                  /* 1 or 2 */
	uint64_t slot;
	uint64_t gen;                   /* slot generation */
	const dg_bin_t *fabric;         /* receiver's address per rail */
	size_t n_fabric;
	uint64_t key;                   /* memory registration key */
	uint64_t base;                  /* remote base address */
	uint64_t token;                 /* names the transfer in CQ data */
	uint64_t chunk;                 /* largest write the receiver counts */
	const dg_tensor_row_t *tensors; /* at most DG_PROTO_MAX_TENSORS */
	size_t n_tensors;
	const char *share;              /* ? the receiver's pool, offered to
	                                   a sender on its host (zero copy) */
} dg_manifest_msg_t;

typedef struct {                        /* transfer.done */
	uint64_t room;
	int64_t phase;
	uint64_t gen;
	uint64_t bytes;
	/* ? what the sender wrote, with its checksums, for verify = on */
	const dg_tensor_row_t *tensors;
	size_t n_tensors;
	int64_t us;                     /* ? the write took, as timed by
	                                   the sender */
} dg_transfer_done_msg_t;

typedef struct {                        /* transfer.failed */
	uint64_t room;
	int64_t phase;
	uint64_t gen;
	const char *reason;
	bool stale;                     /* ? */
} dg_transfer_failed_msg_t;

typedef struct {                        /* instances.ok, snapshot */
	const char *role;
	const char *name;
	const char *host;
	const char *state;
	const char *peer;
	int64_t incoming;
	int64_t waiting;
	int64_t ready;
	int64_t running;
	int64_t sending;
	int64_t rooms;
	uint64_t free_slots;
	double rps;
	int64_t p50_us;
	int64_t p99_us;
	int64_t heartbeat_age_ms;
	int64_t stalled_ms;             /* ? */
	/* ? the cost model's: compute per megapixel-step (frames x height
	 * x width, times steps where it denoises), and the predicted
	 * compute of the rooms placed on it */
	double ms_per_mpx;
	int64_t backlog_ms;
} dg_instance_row_t;

typedef struct {                        /* instances.ok */
	const dg_instance_row_t *instances;
	size_t n_instances;
	const char *publish;            /* ? the controller's PUB endpoint */
} dg_instances_ok_msg_t;

typedef struct {                        /* queues.ok: rooms[] */
	uint64_t room;
	uint64_t request;
	const char *queue;
	int64_t age_ms;
	int64_t step, steps;            /* ? its last progress */
} dg_queue_row_t;

typedef struct {                        /* queues.ok */
	const char *name;
	const dg_queue_row_t *rooms;
	size_t n_rooms;
	uint64_t omitted;               /* ? rows past the protocol's limit */
} dg_queues_ok_msg_t;

typedef struct {                        /* rooms.ok: rooms[] */
	uint64_t room;
	uint64_t request;
	const char *state;
	const char *encoder;            /* as in status.ok */
	const char *transformer;
	const char *decoder;
	uint64_t bytes;
	int64_t age_ms;
	const char *stage;              /* ? the role it is at now */
	const dg_stage_row_t *stages;   /* ? the whole chain */
	size_t n_stages;
	int64_t step, steps;            /* ? the last progress of `stage` */
} dg_room_row_t;

typedef struct {                        /* rooms.ok */
	const dg_room_row_t *rooms;
	size_t n_rooms;
	uint64_t omitted;               /* ? rows past the protocol's limit */
} dg_rooms_ok_msg_t;

typedef struct {                        /* threads.ok: threads[] */
	const char *name;
	const char *state;
	uint64_t room;                  /* ? */
	uint64_t cpu_us;
	int64_t progress_age_ms;        /* -1: a thread that reports none */
	int64_t tid;                    /* ? kernel thread id */
	const char *kernel;             /* ? the kernel's state: running,
	                                   sleeping, disk-wait... */
} dg_thread_row_t;

typedef struct {                        /* threads.ok */
	const char *name;
	const dg_thread_row_t *threads;
	size_t n_threads;
} dg_threads_ok_msg_t;

typedef struct {                        /* sockets.ok: sockets[] */
	const char *type;
	const char *endpoint;
	bool bind;
	uint64_t msgs_in;
	uint64_t msgs_out;
	uint64_t bytes_in;
	uint64_t bytes_out;
} dg_socket_row_t;

typedef struct {                        /* sockets.ok: rails[] */
	const char *provider;
	int64_t rail;
	const char *peer;
	bool quarantined;
	int64_t quarantine_left_ms;     /* ? */
} dg_rail_row_t;

typedef struct {                        /* sockets.ok */
	const char *name;
	const dg_socket_row_t *sockets;
	size_t n_sockets;
	const dg_rail_row_t *rails;
	size_t n_rails;
} dg_sockets_ok_msg_t;

typedef struct {                        /* reload.ok */
	const char *message;            /* ? */
} dg_reload_ok_msg_t;

typedef struct {                        /* event */
	const char *kind;
	int64_t ts_ms;
	const char *name;               /* ? */
	uint64_t request;               /* ? */
	uint64_t room;                  /* ? */
	const char *message;            /* ? */
	uint64_t id;                    /* ? counts the run's events, from 1 */
} dg_event_msg_t;

typedef struct {                        /* events */
	uint64_t after;                 /* ? only the events past this id */
} dg_events_msg_t;

typedef struct {                        /* events.ok */
	const dg_event_msg_t *events;   /* the kept ones, oldest first */
	size_t n_events;
	uint64_t epoch;                 /* the controller's run: its ids
	                                   start again when this changes */
	uint64_t last;                  /* id of the run's newest event */
} dg_events_ok_msg_t;

typedef struct {                        /* snapshot */
	int64_t ts_ms;
	const dg_instance_row_t *instances;
	size_t n_instances;
	uint64_t pending;
	uint64_t active;
	uint64_t done;
	uint64_t failed;
	uint64_t cancelled;             /* ? */
} dg_snapshot_msg_t;

/* ------------------------------------------------------------------ */
/* A message.  Public on purpose: typed fields checked by the compiler
 * beat hundreds of getters and setters, and the descriptor table keeps
 * the codec generic anyway.
 *
 * Decoded messages own everything they point to (in an arena freed by
 * dg_msg_destroy).  Messages built for encoding borrow the caller's
 * memory; dg_msg_strdup/dg_msg_alloc put data in the arena instead. */
typedef struct dg_msg {
	dg_op_t op;
	uint64_t seq;
	uint64_t present;       /* decode: bit i set when field i of the op's
	                           descriptor was on the wire (dg_msg_has) */
	union {
		dg_error_msg_t error;
		dg_submit_msg_t submit;
		dg_request_msg_t submit_ok;
		dg_result_msg_t result;
		dg_status_msg_t status;
		dg_status_ok_msg_t status_ok;
		dg_request_msg_t cancel;
		dg_request_msg_t cancel_ok;
		dg_progress_msg_t progress;
		dg_hello_msg_t hello;
		dg_hello_ok_msg_t hello_ok;
		dg_heartbeat_msg_t heartbeat;
		dg_stats_msg_t stats;
		dg_bye_msg_t bye;
		dg_assign_msg_t assign;
		dg_room_msg_t assign_ok;
		dg_stage_done_msg_t stage_done;
		dg_stage_failed_msg_t stage_failed;
		dg_room_phase_msg_t room_phase;
		dg_release_msg_t release;
		dg_room_msg_t release_ok;
		dg_manifest_msg_t manifest;
		dg_transfer_done_msg_t transfer_done;
		dg_transfer_failed_msg_t transfer_failed;
		/* instances has no fields */
		dg_instances_ok_msg_t instances_ok;
		dg_name_msg_t queues;
		dg_queues_ok_msg_t queues_ok;
		dg_name_msg_t rooms;            /* name? */
		dg_rooms_ok_msg_t rooms_ok;
		dg_name_msg_t threads;
		dg_threads_ok_msg_t threads_ok;
		dg_name_msg_t sockets;
		dg_sockets_ok_msg_t sockets_ok;
		dg_name_msg_t drain;
		dg_name_msg_t drain_ok;
		dg_name_msg_t undrain;
		dg_name_msg_t undrain_ok;
		dg_name_msg_t reload;           /* name? */
		dg_reload_ok_msg_t reload_ok;
		dg_events_msg_t events;
		dg_events_ok_msg_t events_ok;
		dg_event_msg_t event;
		dg_snapshot_msg_t snapshot;
	} u;
	struct dg_arena_chunk *arena_;  /* private: only dg_msg_* touch it */
} dg_msg_t;

/* Why a decode failed.  has_seq/seq and op are filled whenever they could
 * be read before the failure, so the caller can reply with an error that
 * echoes seq.  message is printable ASCII (safe to put on the wire). */
typedef struct {
	dg_proto_code_t code;
	bool has_seq;
	uint64_t seq;
	dg_op_t op;                     /* DG_OP_NONE when not known */
	char message[DG_PROTO_ERR_MAX];
} dg_proto_err_t;

/* ------------------------------------------------------------------ */
/* Messages */

/* A zeroed message of a known op (optional fields at their defaults);
 * NULL when op is unknown or memory is short. */
dg_msg_t *dg_msg_new(dg_op_t op);

/* Frees the message and its arena; accepts NULL; nulls *msg_p. */
void dg_msg_destroy(dg_msg_t **msg_p);

/* Zeroed memory (aligned for any type) or a string copy living as long
 * as the message.  NULL on failure; dg_msg_strdup(msg, NULL) is NULL. */
void *dg_msg_alloc(dg_msg_t *msg, size_t size);
char *dg_msg_strdup(dg_msg_t *msg, const char *s);

/* Whether key was on the wire when msg was decoded. */
bool dg_msg_has(const dg_msg_t *msg, const char *key);

/* ------------------------------------------------------------------ */
/* Codec */

/* Decodes one frame.  0 and a new message in *msg_p (destroy it), or -1,
 * *msg_p NULL and the reason in *err (err may be NULL).  Never reads
 * outside buf[0..len), never allocates more than a few MB. */
int dg_proto_decode(const void *buf, size_t len, dg_msg_t **msg_p,
                    dg_proto_err_t *err);

/* Encodes msg into a new frame (see dg_buf_t for ownership).  Returns -1
 * with errno EINVAL (unknown op, a required string NULL, a NULL list with
 * items, a string that is not UTF-8), EMSGSIZE (a limit exceeded: the
 * peer would refuse it) or ENOMEM, and out zeroed.  Fields are written
 * in descriptor order, so equal messages give equal bytes. */
int dg_proto_encode(const dg_msg_t *msg, dg_buf_t *out);

/* An error frame {"op":"error","seq":seq,"code":...,"message":...}.
 * Bytes of the message that are not UTF-8 are replaced by '?'. */
int dg_proto_encode_error(dg_buf_t *out, uint64_t seq, dg_proto_code_t code,
                          const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The reply to a frame that failed to decode: echoes err->seq (0 when it
 * could not be recovered). */
int dg_proto_encode_err(dg_buf_t *out, const dg_proto_err_t *err);

/* Frees buf->data and zeroes *buf; accepts an empty buffer. */
void dg_buf_free(dg_buf_t *buf);

/* "truncated", "not-found"... ("internal" for an out-of-range code), and
 * back (-1 when unknown). */
const char *dg_proto_code_name(dg_proto_code_t code);
int dg_proto_code_lookup(const char *word);

/* "submit", "status.ok"... (NULL when unknown), and back (DG_OP_NONE). */
const char *dg_op_name(dg_op_t op);
dg_op_t dg_op_lookup(const char *name);

/* ------------------------------------------------------------------ */
/* The catalogue (proto_catalog.c), read-only.  Public so that tests, the
 * man page check and the console can walk every op and field. */

typedef enum {
	DG_FT_INT = 1,          /* int64_t */
	DG_FT_UINT,             /* uint64_t; negative is a range error */
	DG_FT_BOOL,             /* bool */
	DG_FT_FLOAT,            /* double; integers accepted on decode */
	DG_FT_STR,              /* const char *, UTF-8, no NUL */
	DG_FT_BIN,              /* dg_bin_t */
	DG_FT_INT_LIST,         /* const int64_t *, size_t count */
	DG_FT_BIN_LIST,         /* const dg_bin_t *, size_t count */
	DG_FT_KV_MAP,           /* const dg_kv_t *, size_t count; str -> int */
	DG_FT_ROWS              /* const <row> *, size_t count; maps */
} dg_ftype_t;

#define DG_FIELD_REQUIRED 1u

typedef struct dg_struct_desc dg_struct_desc_t;

typedef struct {
	const char *key;
	dg_ftype_t type;
	unsigned flags;                 /* DG_FIELD_REQUIRED or 0 */
	size_t offset;                  /* of the value or list pointer */
	size_t count_offset;            /* lists: of the size_t count */
	int64_t def;                    /* optional numbers: when absent */
	size_t max;                     /* lists: most items, 0: MAX_ITEMS */
	dg_proto_code_t max_code;       /* over max, 0: too-many-items */
	const dg_struct_desc_t *row;    /* DG_FT_ROWS: the element */
} dg_field_desc_t;

struct dg_struct_desc {
	const char *name;               /* op name, or row name ("tensor") */
	size_t size;                    /* sizeof the struct, 0 if none */
	const dg_field_desc_t *fields;
	size_t nfields;
};

typedef struct {
	dg_op_t op;
	dg_struct_desc_t body;          /* body.name is the wire name */
	int since;                      /* protocol version of this form */
} dg_op_desc_t;

/* Every op, sorted by number. */
const dg_op_desc_t *dg_proto_catalog(size_t *count);
/* One op's descriptor; NULL when unknown. */
const dg_op_desc_t *dg_proto_op_desc(dg_op_t op);
/* By wire name, which need not be NUL-terminated; NULL when unknown. */
const dg_op_desc_t *dg_proto_op_find(const char *name, size_t len);

#endif
