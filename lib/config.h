/*  config.h: the INI topology file (ARCHITECTURE.md, "Configuration").
 *
 *  One file describes the whole topology: [controller], [fabric],
 *  [security] and one [<role> <name>] section per stage daemon.  A single
 *  key table (config_keys.c) gives every key its type, default, bounds,
 *  reload flag and help; parsing, validation, `disaggd -T`, reload and the
 *  documentation check are all driven by it.  Errors name file, line,
 *  section and key; all of them are collected, not just the first.  */
#ifndef DG_CONFIG_H
#define DG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DG_ENDPOINT_MAX 256
#define DG_PATH_MAX     1024
#define DG_NAME_MAX     64

/* The pipeline's chain of roles ([pipeline] stages): 2 to this many. */
#define DG_CHAIN_MAX    8

/* Which steps of the denoising schedule a stage runs (`expert`): all of
 * them, or one side of `boundary` as Wan 2.2's two DiT experts do. */
typedef enum { DG_EXPERT_ALL = 0, DG_EXPERT_HIGH, DG_EXPERT_LOW } dg_expert_t;
/* "all", "high", "low": the key's words, from the key table. */
const char *dg_expert_name(int expert);

typedef enum {
	DG_POLICY_ROUND_ROBIN = 0,
	DG_POLICY_LEAST_LOADED,
	DG_POLICY_P2C,
	DG_POLICY_EARLIEST_FINISH
} dg_policy_t;

typedef enum { DG_MEMORY_HOST = 0, DG_MEMORY_CUDA } dg_memory_t;

/* [controller] admission: refuse at submit, and fail before it runs, a
 * request predicted to miss its deadline; or take what fits. */
typedef enum { DG_ADMIT_DEADLINE = 0, DG_ADMIT_OPEN } dg_admission_t;
/* A stage's order of ready rooms: by priority (aged) then deadline, or
 * as they came. */
typedef enum { DG_ORDER_SLACK = 0, DG_ORDER_FIFO } dg_order_t;

typedef struct {
	char listen[DG_ENDPOINT_MAX];
	char publish[DG_ENDPOINT_MAX];
	int policy;                     /* dg_policy_t */
	int admission;                  /* dg_admission_t */
	int64_t max_pending;
	int64_t max_pending_per_client;
	int64_t keep_finished;
	int64_t keep_finished_ms;
	int64_t keep_events;
	int64_t max_retries;
	int64_t request_timeout_ms;
	int64_t dead_after_ms;
	int64_t heartbeat_ms;
	int64_t drain_timeout_ms;
	char journal[DG_PATH_MAX];
	char metrics[DG_NAME_MAX];      /* HOST:PORT, "" off */
	int log_level;                  /* dg_log_level_t */
	int64_t log_size;               /* bytes; 0: never rotated */
} dg_controller_conf_t;

typedef struct {
	char provider[DG_NAME_MAX];
	int64_t rails;
	int64_t chunk;
	int64_t inflight;
	int64_t quarantine_ms;
	int64_t transfer_timeout_ms;
	int64_t chunk_retries;
	int64_t transfer_attempts;
	bool verify;
	bool zero_copy;                 /* offer and map pools on one host */
} dg_fabric_conf_t;

typedef struct {
	bool curve;
	char key_dir[DG_PATH_MAX];
	char client_keys[DG_PATH_MAX];
	char admin_keys[DG_PATH_MAX];
} dg_security_conf_t;

typedef struct {
	char stages[DG_PATH_MAX];       /* the chain, as written */
	char roles[DG_CHAIN_MAX][DG_NAME_MAX];
	size_t nroles;
} dg_pipeline_conf_t;

typedef struct {
	char role[DG_NAME_MAX];         /* one of [pipeline] stages */
	int index;                      /* its place in the chain, 0.. */
	char name[DG_NAME_MAX];
	int line;                       /* of its [role name] header */
	char peer[DG_ENDPOINT_MAX];
	char host[DG_NAME_MAX];
	char stage[DG_PATH_MAX];
	char python_path[DG_PATH_MAX];
	int64_t pool;
	int64_t slot;
	int memory;                     /* dg_memory_t */
	int64_t device;
	int64_t workers;
	int64_t max_batch;
	int64_t queue_depth;
	int64_t overtake;
	int order;                      /* dg_order_t */
	int64_t step_ms;
	char output_dir[DG_PATH_MAX];
	char metrics[DG_NAME_MAX];      /* HOST:PORT, "" off */
	int64_t drain_timeout_ms;
	int64_t stall_ms;
	int expert;                     /* dg_expert_t */
	int64_t boundary;               /* millionths of the noise scale */
	int log_level;
	int64_t log_size;               /* bytes; 0: never rotated */
	bool autostart;                 /* no: a spare, for the autoscaler */
} dg_stage_conf_t;

/* [autoscale ROLE]: how many instances of one role the controller keeps,
 * between min and max, by load (autoscale.h). */
typedef struct {
	char role[DG_NAME_MAX];
	int index;                      /* its place in the chain */
	int line;                       /* of its header */
	int64_t min, max;
	int64_t target;                 /* utilisation, millionths */
	int64_t cooldown_ms;
	char scale_command[DG_PATH_MAX]; /* %n section name, %r role; "" */
	char stop_command[DG_PATH_MAX];
} dg_autoscale_conf_t;

/* One entry of the key table, public for documentation checks and the
 * man page; the parser's own fields stay in config_keys.c. */
typedef struct {
	const char *section;    /* "controller", "fabric", "security",
	                           "pipeline", or "ROLE NAME" */
	const char *name;
	const char *type;       /* "integer", "size", "duration", ... */
	const char *def;        /* default as written in the file */
	const char *range;      /* "1..16", "4K..1G", "on|off", or "" */
	bool required;
	bool reloadable;
	const char *help;
} dg_config_keyinfo_t;

typedef struct _dg_config_t dg_config_t;

/* The largest file read: a topology of thousands of stages fits. */
#define DG_CONFIG_MAX_BYTES (4 << 20)

/* Read and validate a file (a regular file, at most
 * DG_CONFIG_MAX_BYTES).  Returns NULL only when out of memory; check
 * dg_config_error_count() for problems with the file itself. */
dg_config_t *dg_config_load(const char *path);
/* Same, from a string; `name` stands for the file name in messages. */
dg_config_t *dg_config_parse_string(const char *name, const char *text);
void dg_config_destroy(dg_config_t **self_p);

size_t dg_config_error_count(const dg_config_t *self);
const char *dg_config_error(const dg_config_t *self, size_t index);
const char *dg_config_file(const dg_config_t *self);

const dg_controller_conf_t *dg_config_controller(const dg_config_t *self);
const dg_fabric_conf_t *dg_config_fabric(const dg_config_t *self);
const dg_security_conf_t *dg_config_security(const dg_config_t *self);
/* The chain of roles, first to last ("encoder transformer decoder"
 * unless [pipeline] says otherwise). */
const dg_pipeline_conf_t *dg_config_pipeline(const dg_config_t *self);
/* The place of `role` in the chain, or -1. */
int dg_config_role_index(const dg_config_t *self, const char *role);
int dg_pipeline_index(const dg_pipeline_conf_t *chain, const char *role);
size_t dg_config_stage_count(const dg_config_t *self);
const dg_stage_conf_t *dg_config_stage_at(const dg_config_t *self, size_t i);
/* By "name" or "role name"; NULL when absent. */
const dg_stage_conf_t *dg_config_stage(const dg_config_t *self,
    const char *name);

/* The [autoscale ROLE] sections, in file order; by role, NULL when the
 * role is not scaled. */
size_t dg_config_autoscale_count(const dg_config_t *self);
const dg_autoscale_conf_t *dg_config_autoscale_at(const dg_config_t *self,
    size_t i);
const dg_autoscale_conf_t *dg_config_autoscale(const dg_config_t *self,
    const char *role);

/* The keys of a python: stage's section that the key table does not
 * know: the stage's class declares them, and the daemon checks them
 * against it at start.  In file order, as key, value, key, value, ...,
 * NULL, with their lines in `lines`; both stay valid as long as `self`.
 * Any other stage's unknown keys are errors of the file. */
const char *const *dg_config_stage_options(const dg_config_t *self,
    const dg_stage_conf_t *st, const int **lines);

/* Whether `stage` names a Python class ("python:MODULE:CLASS"). */
bool dg_config_stage_is_python(const char *stage);

/* The effective configuration, defaults filled in, as a valid INI file. */
void dg_config_dump(const dg_config_t *self, FILE *out);

/* Compare the section `name` ("controller" or a stage name, plus the
 * shared [fabric] and [security]) of two configurations and call `fn` for
 * every key whose value differs, saying whether it can be applied live.
 * Returns the number of differing keys that need a restart. */
typedef void (dg_config_change_fn)(const char *section, const char *key,
    bool reloadable, void *arg);
int dg_config_changes(const dg_config_t *old_cfg, const dg_config_t *new_cfg,
    const char *name, dg_config_change_fn *fn, void *arg);

size_t dg_config_key_count(void);
const dg_config_keyinfo_t *dg_config_key_at(size_t index);

const char *dg_policy_name(int policy);

/* Parsers shared with the CLI, each 0 or -1. */
int dg_parse_size(const char *text, int64_t *out);
int dg_parse_duration_ms(const char *text, int64_t *out);
int dg_parse_bool(const char *text, bool *out);
/* An endpoint's prefix that stands for the run folder (run.h):
 * ipc://%r/ctl is the socket ctl in it. */
#define DG_ENDPOINT_RUN "ipc://%r/"
/* 0 when `text` is tcp://host:port, ipc://path or inproc://name. */
int dg_endpoint_check(const char *text);

#endif
