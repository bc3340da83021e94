/*  config_keys.c: every configuration key, in one table.
 *
 *  Adding a key here is all it takes for the parser, validation,
 *  `disaggd -T` and the documentation check to know it; the man page
 *  disagg.ini(5) must then describe it (tests/man/check.sh insists).  */
#include <stddef.h>

#include "config_keys.h"

#define MS     1LL
#define SEC    (1000 * MS)
#define HOUR   (3600 * SEC)
#define KIB    1024LL
#define MIB    (1024 * KIB)
#define GIB    (1024 * MIB)
#define TIB    (1024 * GIB)

#define C(f)  offsetof(dg_controller_conf_t, f)
#define F(f)  offsetof(dg_fabric_conf_t, f)
#define S(f)  offsetof(dg_security_conf_t, f)
#define P(f)  offsetof(dg_pipeline_conf_t, f)
#define PS(f) sizeof(((dg_pipeline_conf_t *)0)->f)
#define R(f)  offsetof(dg_stage_conf_t, f)
#define CS(f) sizeof(((dg_controller_conf_t *)0)->f)
#define FS(f) sizeof(((dg_fabric_conf_t *)0)->f)
#define SS(f) sizeof(((dg_security_conf_t *)0)->f)
#define RS(f) sizeof(((dg_stage_conf_t *)0)->f)
#define A(f)  offsetof(dg_autoscale_conf_t, f)
#define AS(f) sizeof(((dg_autoscale_conf_t *)0)->f)

static const char *const s_policies[] =
	{ "round-robin", "least-loaded", "p2c", "earliest-finish", NULL };
static const char *const s_levels[] =
	{ "error", "warn", "info", "debug", NULL };
static const char *const s_memories[] = { "host", "cuda", NULL };
static const char *const s_experts[] = { "all", "high", "low", NULL };
static const char *const s_admissions[] = { "deadline", "open", NULL };
static const char *const s_orders[] = { "slack", "fifo", NULL };

const dg_key_t dg_config_keys[] = {
	/* [controller] */
	{ DG_SEC_CONTROLLER, "listen", DG_KT_ENDPOINT, "tcp://127.0.0.1:7700",
	  0, 0, 0, C(listen), CS(listen), NULL,
	  "ROUTER endpoint for clients, daemons and consoles" },
	{ DG_SEC_CONTROLLER, "publish", DG_KT_ENDPOINT, "tcp://127.0.0.1:7701",
	  0, 0, 0, C(publish), CS(publish), NULL,
	  "PUB endpoint for statistics and events" },
	{ DG_SEC_CONTROLLER, "policy", DG_KT_ENUM, "earliest-finish",
	  0, 0, DG_KF_RELOAD, C(policy), 0, s_policies,
	  "how stage instances are chosen for a request" },
	{ DG_SEC_CONTROLLER, "admission", DG_KT_ENUM, "deadline",
	  0, 0, DG_KF_RELOAD, C(admission), 0, s_admissions,
	  "deadline: refuse, and fail before it runs, a request the cost model predicts past its deadline; open: take what fits" },
	{ DG_SEC_CONTROLLER, "max_pending", DG_KT_INT, "1024",
	  1, 1000000, DG_KF_RELOAD, C(max_pending), 0, NULL,
	  "accepted, unfinished requests before submit answers busy" },
	{ DG_SEC_CONTROLLER, "max_pending_per_client", DG_KT_INT, "512",
	  1, 1000000, DG_KF_RELOAD, C(max_pending_per_client), 0, NULL,
	  "accepted, unfinished requests of one client before it gets busy" },
	{ DG_SEC_CONTROLLER, "keep_finished", DG_KT_INT, "10000",
	  0, 10000000, DG_KF_RELOAD, C(keep_finished), 0, NULL,
	  "finished requests remembered for status queries" },
	{ DG_SEC_CONTROLLER, "keep_finished_ms", DG_KT_DURATION, "60s",
	  0, 24 * HOUR, DG_KF_RELOAD, C(keep_finished_ms), 0, NULL,
	  "how long a finished request is remembered for status queries" },
	{ DG_SEC_CONTROLLER, "keep_events", DG_KT_INT, "200",
	  0, 100000, DG_KF_RELOAD, C(keep_events), 0, NULL,
	  "newest events kept for consoles that open later (the events request)" },
	{ DG_SEC_CONTROLLER, "max_retries", DG_KT_INT, "2",
	  0, 100, DG_KF_RELOAD, C(max_retries), 0, NULL,
	  "re-dispatches of a request whose instance died" },
	{ DG_SEC_CONTROLLER, "request_timeout_ms", DG_KT_DURATION, "600s",
	  1 * MS, 24 * HOUR, DG_KF_RELOAD, C(request_timeout_ms), 0, NULL,
	  "deadline of a request that gives no deadline_ms" },
	{ DG_SEC_CONTROLLER, "dead_after_ms", DG_KT_DURATION, "3s",
	  100 * MS, 1 * HOUR, DG_KF_RELOAD, C(dead_after_ms), 0, NULL,
	  "an instance silent this long is declared dead" },
	{ DG_SEC_CONTROLLER, "heartbeat_ms", DG_KT_DURATION, "500ms",
	  10 * MS, 60 * SEC, DG_KF_RELOAD, C(heartbeat_ms), 0, NULL,
	  "how often daemons report to the controller" },
	{ DG_SEC_CONTROLLER, "drain_timeout_ms", DG_KT_DURATION, "30s",
	  0, 1 * HOUR, DG_KF_RELOAD, C(drain_timeout_ms), 0, NULL,
	  "on SIGTERM, how long in-flight requests may take to finish" },
	{ DG_SEC_CONTROLLER, "metrics", DG_KT_STR, "",
	  0, 0, 0, C(metrics), CS(metrics), NULL,
	  "HOST:PORT where GET /metrics serves Prometheus's text format (empty: off)" },
	{ DG_SEC_CONTROLLER, "journal", DG_KT_PATH, "",
	  0, 0, 0, C(journal), CS(journal), NULL,
	  "file of accepted, unfinished requests replayed on start (empty: none)" },
	{ DG_SEC_CONTROLLER, "log_level", DG_KT_ENUM, "info",
	  0, 0, DG_KF_RELOAD, C(log_level), 0, s_levels,
	  "most verbose level logged" },
	{ DG_SEC_CONTROLLER, "log_size", DG_KT_SIZE, "64M",
	  0, 1 * TIB, DG_KF_RELOAD, C(log_size), 0, NULL,
	  "a log file on stderr is rotated at this size (0: never)" },

	/* [fabric] */
	{ DG_SEC_FABRIC, "provider", DG_KT_STR, "auto",
	  0, 0, 0, F(provider), FS(provider), NULL,
	  "libfabric provider: auto, shm, tcp;ofi_rxm, verbs;ofi_rxm, efa, ..." },
	{ DG_SEC_FABRIC, "rails", DG_KT_INT, "1",
	  1, 16, 0, F(rails), 0, NULL,
	  "endpoints per daemon; a failed rail is quarantined" },
	/* 4M, not 1M: on shm each write spins on the receiver's region lock
	 * while it drains, so the write count, not the bytes, set the cost;
	 * six runs in turn moved 16 and 256 MiB at 0.77-0.99 of the bare
	 * loop with 1M, 0.89-1.07 with 4M (ARCHITECTURE.md, "Threads"). */
	{ DG_SEC_FABRIC, "chunk", DG_KT_SIZE, "4M",
	  4 * KIB, 1 * GIB, 0, F(chunk), 0, NULL,
	  "largest single RMA write; bigger tensors go as chunks" },
	{ DG_SEC_FABRIC, "inflight", DG_KT_INT, "16",
	  1, 4096, 0, F(inflight), 0, NULL,
	  "chunks in flight per transfer" },
	{ DG_SEC_FABRIC, "quarantine_ms", DG_KT_DURATION, "30s",
	  0, 1 * HOUR, DG_KF_RELOAD, F(quarantine_ms), 0, NULL,
	  "how long a failed (peer, rail) is avoided" },
	{ DG_SEC_FABRIC, "transfer_timeout_ms", DG_KT_DURATION, "30s",
	  1 * MS, 1 * HOUR, DG_KF_RELOAD, F(transfer_timeout_ms), 0, NULL,
	  "deadline of one tensor send, from its start, unless the request's comes first" },
	{ DG_SEC_FABRIC, "chunk_retries", DG_KT_INT, "3",
	  0, 16, DG_KF_RELOAD, F(chunk_retries), 0, NULL,
	  "retries of one chunk, each on the next healthy rail" },
	{ DG_SEC_FABRIC, "transfer_attempts", DG_KT_INT, "2",
	  1, 16, DG_KF_RELOAD, F(transfer_attempts), 0, NULL,
	  "fresh attempts of a whole transfer before it fails" },
	{ DG_SEC_FABRIC, "verify", DG_KT_BOOL, "off",
	  0, 0, DG_KF_RELOAD, F(verify), 0, NULL,
	  "check every tensor's checksum at the receiver" },
	{ DG_SEC_FABRIC, "zero_copy", DG_KT_BOOL, "on",
	  0, 0, 0, F(zero_copy), 0, NULL,
	  "peers on one host share pools: a sender writes into the receiver's memory" },

	/* [security] */
	{ DG_SEC_SECURITY, "curve", DG_KT_BOOL, "off",
	  0, 0, 0, S(curve), 0, NULL,
	  "CurveZMQ on every control endpoint (TCP and ipc)" },
	{ DG_SEC_SECURITY, "key_dir", DG_KT_PATH, "",
	  0, 0, 0, S(key_dir), SS(key_dir), NULL,
	  "folder holding the deployment's server key pair, server and server_secret" },
	{ DG_SEC_SECURITY, "client_keys", DG_KT_PATH, "",
	  0, 0, 0, S(client_keys), SS(client_keys), NULL,
	  "folder of public keys allowed to connect" },
	{ DG_SEC_SECURITY, "admin_keys", DG_KT_PATH, "",
	  0, 0, 0, S(admin_keys), SS(admin_keys), NULL,
	  "folder of public keys allowed drain, release, reload and cancel of others' requests" },

	/* [pipeline] */
	{ DG_SEC_PIPELINE, "stages", DG_KT_STR, "encoder transformer decoder",
	  0, 0, 0, P(stages), PS(stages), NULL,
	  "the chain of roles, first to last: 2 to 8 names, each with at least one [ROLE NAME] section" },

	/* [ROLE NAME], for each role of [pipeline] stages */
	{ DG_SEC_STAGES, "peer", DG_KT_ENDPOINT, "",
	  0, 0, DG_KF_REQUIRED, R(peer), RS(peer), NULL,
	  "the one ROUTER endpoint other stages reach this daemon on" },
	{ DG_SEC_STAGES, "host", DG_KT_STR, "",
	  0, 0, 0, R(host), RS(host), NULL,
	  "host that runs this daemon (empty: this host)" },
	{ DG_SEC_STAGES, "stage", DG_KT_PATH, "ref-%s",
	  0, 0, DG_KF_ROLEDEF, R(stage), RS(stage), NULL,
	  "stage plugin: null, ref-ROLE, python:MODULE:CLASS, or the path of a shared object" },
	{ DG_SEC_STAGES, "python_path", DG_KT_STR, "",
	  0, 0, 0, R(python_path), RS(python_path), NULL,
	  "folders (':'-separated) put first on sys.path for a python: stage" },
	{ DG_SEC_STAGES, "pool", DG_KT_SIZE, "256M",
	  1 * MIB, 1 * TIB, 0, R(pool), 0, NULL,
	  "memory registered once at start for room buffers" },
	{ DG_SEC_STAGES, "slot", DG_KT_SIZE, "1M",
	  4 * KIB, 1 * GIB, 0, R(slot), 0, NULL,
	  "granularity of the pool: rooms take whole slots" },
	{ DG_SEC_STAGES, "memory", DG_KT_ENUM, "host",
	  0, 0, 0, R(memory), 0, s_memories,
	  "where the pool lives: host, or cuda (needs a CUDA build)" },
	{ DG_SEC_STAGES, "device", DG_KT_INT, "0",
	  0, 255, 0, R(device), 0, NULL,
	  "CUDA device of the pool when memory = cuda" },
	{ DG_SEC_STAGES, "workers", DG_KT_INT, "2",
	  1, 256, 0, R(workers), 0, NULL,
	  "compute threads" },
	{ DG_SEC_STAGES, "max_batch", DG_KT_INT, "1",
	  1, 1024, DG_KF_RELOAD, R(max_batch), 0, NULL,
	  "ready rooms run together in one batch" },
	{ DG_SEC_STAGES, "queue_depth", DG_KT_INT, "1024",
	  1, 1000000, DG_KF_RELOAD, R(queue_depth), 0, NULL,
	  "bound of each of the incoming, waiting, ready, running and sending queues" },
	{ DG_SEC_STAGES, "overtake", DG_KT_INT, "8",
	  0, 1000000, DG_KF_RELOAD, R(overtake), 0, NULL,
	  "rooms that may take pool space ahead of one waiting for more than is free; then none passes it (0: first come, first served)" },
	{ DG_SEC_STAGES, "order", DG_KT_ENUM, "slack",
	  0, 0, DG_KF_RELOAD, R(order), 0, s_orders,
	  "which ready room runs next: slack, by priority (raised by a step a second of waiting) then the earliest deadline; fifo, as they came" },
	{ DG_SEC_STAGES, "step_ms", DG_KT_DURATION, "0",
	  0, 1 * HOUR, DG_KF_RELOAD, R(step_ms), 0, NULL,
	  "added cost per step of the reference and null stages" },
	{ DG_SEC_STAGES, "metrics", DG_KT_STR, "",
	  0, 0, 0, R(metrics), RS(metrics), NULL,
	  "HOST:PORT where GET /metrics serves Prometheus's text format (empty: off)" },
	{ DG_SEC_STAGES, "output_dir", DG_KT_PATH, "out",
	  0, 0, 0, R(output_dir), RS(output_dir), NULL,
	  "folder the last stage of the chain writes REQUEST.y4m into" },
	{ DG_SEC_STAGES, "expert", DG_KT_ENUM, "all",
	  0, 0, 0, R(expert), 0, s_experts,
	  "denoising steps this stage runs: all, or those at or above (high) or below (low) the boundary" },
	{ DG_SEC_STAGES, "boundary", DG_KT_FRACTION, "0.875",
	  0, 1000000, 0, R(boundary), 0, NULL,
	  "noise level, 0 to 1, where a high expert hands the latents to a low one" },
	{ DG_SEC_STAGES, "drain_timeout_ms", DG_KT_DURATION, "30s",
	  0, 1 * HOUR, DG_KF_RELOAD, R(drain_timeout_ms), 0, NULL,
	  "on SIGTERM or drain, how long in-flight rooms may take" },
	{ DG_SEC_STAGES, "stall_ms", DG_KT_DURATION, "10s",
	  100 * MS, 1 * HOUR, DG_KF_RELOAD, R(stall_ms), 0, NULL,
	  "a worker without progress this long marks the instance unhealthy" },
	{ DG_SEC_STAGES, "log_level", DG_KT_ENUM, "info",
	  0, 0, DG_KF_RELOAD, R(log_level), 0, s_levels,
	  "most verbose level logged" },
	{ DG_SEC_STAGES, "log_size", DG_KT_SIZE, "64M",
	  0, 1 * TIB, DG_KF_RELOAD, R(log_size), 0, NULL,
	  "a log file on stderr is rotated at this size (0: never)" },
	{ DG_SEC_STAGES, "autostart", DG_KT_BOOL, "yes",
	  0, 0, 0, R(autostart), 0, NULL,
	  "whether disagg up starts this daemon; no: a spare the autoscaler may start" },

	/* [autoscale ROLE], for any role of [pipeline] stages; read at start */
	{ DG_SEC_AUTOSCALE, "min", DG_KT_INT, "1",
	  1, 1000, 0, A(min), 0, NULL,
	  "fewest instances of the role kept up" },
	{ DG_SEC_AUTOSCALE, "max", DG_KT_INT, "1",
	  1, 1000, 0, A(max), 0, NULL,
	  "most instances of the role, at most its [ROLE NAME] sections" },
	{ DG_SEC_AUTOSCALE, "target", DG_KT_FRACTION, "0.8",
	  10000, 1000000, 0, A(target), 0, NULL,
	  "utilisation (rooms in flight per worker) the role is scaled to; above it, instances start" },
	{ DG_SEC_AUTOSCALE, "cooldown", DG_KT_DURATION, "30s",
	  0, 24 * HOUR, 0, A(cooldown_ms), 0, NULL,
	  "least time between two changes of the role, and how long it must stay idle before one instance drains" },
	{ DG_SEC_AUTOSCALE, "scale_command", DG_KT_STR, "",
	  0, 0, 0, A(scale_command), AS(scale_command), NULL,
	  "shell command starting a spare section (%n its name, %r its role); empty: disagg up's supervisor on this host" },
	{ DG_SEC_AUTOSCALE, "stop_command", DG_KT_STR, "",
	  0, 0, 0, A(stop_command), AS(stop_command), NULL,
	  "shell command run once a drained instance has left (%n, %r as above); empty: none" },
};

const size_t dg_config_nkeys = sizeof dg_config_keys / sizeof dg_config_keys[0];
