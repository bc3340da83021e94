/*  rows_catalog.c: the description of every row the admin ops return
 *  (rows.h).  Columns are in the order of their JSON keys, which is the
 *  wire's; a surface shows the columns it has a width for, in that
 *  order.  Where the CLI and the console disagree (widths, formats, a
 *  title), both are written here, so that neither output moves.  */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "rows.h"

#define LOOK(w)                 { .width = (w) }
#define LOOK_F(w, fn)           { .width = (w), .cell = (fn) }
#define LOOK_T(w, fn, t)        { .width = (w), .cell = (fn), .title = (t) }
#define AT(ty, f)               .type = (ty), .offset = offsetof(T, f)
#define STR(f)                  AT(DG_COL_STR, f)
#define INT(f)                  AT(DG_COL_INT, f)
#define UINT(f)                 AT(DG_COL_UINT, f)
#define FLOAT(f)                AT(DG_COL_FLOAT, f)
#define BOOL(f)                 AT(DG_COL_BOOL, f)
#define RIGHT                   .right = true
#define N(a)                    (sizeof(a) / sizeof((a)[0]))

/* dg_cell_step reads steps right after step. */
_Static_assert(offsetof(dg_room_row_t, steps) ==
    offsetof(dg_room_row_t, step) + sizeof(int64_t), "room step, steps");
_Static_assert(offsetof(dg_queue_row_t, steps) ==
    offsetof(dg_queue_row_t, step) + sizeof(int64_t), "queue step, steps");

/* ---- instances ---------------------------------------------------------- */

#define T dg_instance_row_t
static const dg_col_t s_instance[] = {
	{ "ROLE", "role", STR(role), .text = LOOK(12), .console = LOOK(11) },
	{ "NAME", "name", STR(name), .text = LOOK(10), .console = LOOK(10) },
	{ "HOST", "host", STR(host), .console = LOOK_F(12, dg_cell_dash) },
	{ "STATE", "state", STR(state), .text = LOOK(10),
	  .console = LOOK(9) },
	{ "PEER", "peer", STR(peer) },
	{ "INCOMING", "incoming", INT(incoming), RIGHT, .text = LOOK(8),
	  .console = LOOK(8) },
	{ "WAITING", "waiting", INT(waiting), RIGHT, .text = LOOK(8),
	  .console = LOOK(7) },
	{ "READY", "ready", INT(ready), RIGHT, .text = LOOK(6),
	  .console = LOOK(5) },
	{ "RUNNING", "running", INT(running), RIGHT, .text = LOOK(8),
	  .console = LOOK(7) },
	{ "SENDING", "sending", INT(sending), RIGHT, .text = LOOK(8),
	  .console = LOOK(7) },
	{ "ROOMS", "rooms", INT(rooms), RIGHT, .text = LOOK(7),
	  .console = LOOK(5) },
	{ "FREE", "free_slots", UINT(free_slots), RIGHT, .text = LOOK(6),
	  .console = LOOK(6) },
	{ "REQ/S", "rps", FLOAT(rps), RIGHT,
	  .text = LOOK_F(7, dg_cell_tenth),
	  .console = LOOK_F(7, dg_cell_tenth) },
	/* Over the rooms that ended in the last 60 s (rooms.c). */
	{ "P50MS", "p50_us", INT(p50_us), RIGHT,
	  .text = LOOK_F(7, dg_cell_us_as_ms),
	  .console = LOOK_F(7, dg_cell_us_as_ms) },
	{ "P99MS", "p99_us", INT(p99_us), RIGHT,
	  .text = LOOK_F(7, dg_cell_us_as_ms),
	  .console = LOOK_F(7, dg_cell_us_as_ms) },
	{ "HB", "heartbeat_age_ms", INT(heartbeat_age_ms), RIGHT,
	  .text = LOOK_F(6, dg_cell_secs), .console = LOOK_F(6, dg_cell_age) },
	/* The cost model's (cost.h): what it learned, what it predicts. */
	{ "MS/MPX", "ms_per_mpx", FLOAT(ms_per_mpx), RIGHT,
	  .console = LOOK_F(7, dg_cell_tenth) },
	{ "BACKLOG", "backlog_ms", INT(backlog_ms), RIGHT,
	  .console = LOOK(8) },
};
#undef T

static const dg_rows_t s_instances = {
	.name = "instances", .size = sizeof(dg_instance_row_t),
	.cols = s_instance, .ncols = N(s_instance),
	.name_key = "name",
};

const dg_rows_t *
dg_rows_instances(void)
{
	return &s_instances;
}

/* ---- queues ------------------------------------------------------------- */

/* The console sorts queues in the order a room goes through them. */
static const char *
s_queue(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	static const char *const order[] = { "incoming", "waiting", "ready",
	    "running", "sending" };
	const char *q = dg_col_str(col, row);

	(void)buf;
	(void)size;
	*sort = (double)N(order);
	for (size_t k = 0; q && k < N(order); k++)
		if (strcmp(q, order[k]) == 0)
			*sort = (double)k;
	return q ? q : "-";
}

#define T dg_queue_row_t
static const dg_col_t s_queue_cols[] = {
	{ "QUEUE", "queue", STR(queue), .text = LOOK(10),
	  .console = LOOK_F(9, s_queue) },
	{ "ROOM", "room", UINT(room), RIGHT, .text = LOOK(20),
	  .console = LOOK_F(8, dg_cell_id) },
	{ "REQUEST", "request", UINT(request), RIGHT, .text = LOOK(20),
	  .console = LOOK_F(8, dg_cell_id) },
	{ "AGE", "age_ms", INT(age_ms), RIGHT,
	  .text = LOOK_F(10, dg_cell_age_cli),
	  .console = LOOK_F(8, dg_cell_age) },
	{ "STEP", "step", INT(step), RIGHT, .text = LOOK_F(9, dg_cell_step),
	  .console = LOOK_F(9, dg_cell_step) },
	{ "STEPS", "steps", INT(steps) },
};
#undef T

static const dg_rows_t s_queues = {
	.name = "queues", .size = sizeof(dg_queue_row_t),
	.cols = s_queue_cols, .ncols = N(s_queue_cols),
	.room_key = "room", .request_key = "request",
};

const dg_rows_t *
dg_rows_queues(void)
{
	return &s_queues;
}

/* ---- rooms -------------------------------------------------------------- */

/* The columns a room has whatever its stages are.  Each other required
 * string of the wire's room row is one of version 1's three places
 * (first, middle, last); those columns are made from the wire catalogue
 * (s_rooms_make), so that no role is written here, and are kept in the
 * JSON for version-1 readers while the text and the console show the
 * configuration's roles (AT, PLACES).  Other optional fields stay out
 * until a column here says how to show them. */
#define T dg_room_row_t
static const dg_col_t s_room_fixed[] = {
	{ "ROOM", "room", UINT(room), RIGHT, .text = LOOK(10),
	  .console = LOOK_F(8, dg_cell_id) },
	{ "REQUEST", "request", UINT(request), RIGHT, .text = LOOK(10),
	  .console = LOOK_F(8, dg_cell_id) },
	{ "STATE", "state", STR(state), .text = LOOK(10),
	  .console = LOOK(11) },
	{ "BYTES", "bytes", UINT(bytes), RIGHT, .text = LOOK(10),
	  .console = LOOK_F(8, dg_cell_bytes) },
	{ "AGE", "age_ms", INT(age_ms), RIGHT,
	  .text = LOOK_F(8, dg_cell_age_cli),
	  .console = LOOK_F(8, dg_cell_age) },
	/* Where it is, by the role's name in the configuration, and the
	 * chain it is placed on: what a chain of any length shows. */
	{ "AT", "stage", STR(stage), .text = LOOK_F(12, dg_cell_dash),
	  .console = LOOK_F(11, dg_cell_dash) },
	{ "PLACES", "stages", .type = DG_COL_PLACES,
	  .offset = offsetof(T, stages), .count_offset = offsetof(T, n_stages),
	  .text = LOOK_F(30, dg_cell_places),
	  .console = LOOK_F(24, dg_cell_places) },
	/* How far the stage at work is: step k of n. */
	{ "STEP", "step", INT(step), RIGHT, .text = LOOK_F(9, dg_cell_step),
	  .console = LOOK_F(9, dg_cell_step) },
	{ "STEPS", "steps", INT(steps) },
};
#undef T

static dg_rows_t s_rooms;
static pthread_once_t s_rooms_once = PTHREAD_ONCE_INIT;

/* One of version 1's places: in the JSON only.  `title` has room for
 * the key. */
static dg_col_t
s_stage_col(const dg_field_desc_t *f, char *title)
{
	size_t len = strlen(f->key);

	for (size_t i = 0; i <= len; i++)
		title[i] = (char)toupper((unsigned char)f->key[i]);
	return (dg_col_t){ .header = title, .key = f->key,
	    .type = DG_COL_STR, .offset = f->offset, .stage = true };
}

/* The row of rooms.ok as the wire catalogue has it. */
static const dg_struct_desc_t *
s_wire_room(void)
{
	const dg_op_desc_t *op = dg_proto_op_desc(DG_OP_ROOMS_OK);

	for (size_t i = 0; op && i < op->body.nfields; i++)
		if (op->body.fields[i].type == DG_FT_ROWS)
			return op->body.fields[i].row;
	return NULL;
}

/* The wire's room row, in its order: a field the fixed columns name
 * takes that column, a required string they do not is a stage.  One
 * block holds the columns and the stages' titles after them. */
static void
s_rooms_make(void)
{
	const dg_struct_desc_t *wire = s_wire_room();
	dg_rows_t fixed = { .cols = s_room_fixed, .ncols = N(s_room_fixed) };
	size_t size = 0, n = 0;

	for (size_t i = 0; wire && i < wire->nfields; i++)
		size += sizeof(dg_col_t) + strlen(wire->fields[i].key) + 1;
	dg_col_t *cols = size ? calloc(1, size) : NULL;
	char *titles = cols ? (char *)(cols + wire->nfields) : NULL;
	for (size_t i = 0; cols && i < wire->nfields; i++) {
		const dg_field_desc_t *f = &wire->fields[i];
		const dg_col_t *known = dg_rows_col(&fixed, f->key);
		if (known) {
			cols[n++] = *known;
		} else if (f->type == DG_FT_STR &&
		    (f->flags & DG_FIELD_REQUIRED)) {
			cols[n++] = s_stage_col(f, titles);
			titles += strlen(f->key) + 1;
		}
	}
	if (cols)
		s_rooms = (dg_rows_t){ .name = "rooms",
		    .size = sizeof(dg_room_row_t), .cols = cols, .ncols = n,
		    .room_key = "room", .request_key = "request" };
}

const dg_rows_t *
dg_rows_rooms(void)
{
	pthread_once(&s_rooms_once, s_rooms_make);
	return s_rooms.cols ? &s_rooms : NULL;
}

/* ---- threads ------------------------------------------------------------ */

#define T dg_thread_row_t
static const dg_col_t s_thread[] = {
	{ "TID", "tid", INT(tid), RIGHT, .text = LOOK(8) },
	{ "NAME", "name", STR(name), .text = LOOK(16),
	  .console = LOOK_T(16, NULL, "THREAD") },
	{ "STATE", "state", STR(state), .text = LOOK(9), .console = LOOK(8) },
	{ "KERNEL", "kernel", STR(kernel), .text = LOOK(10) },
	{ "ROOM", "room", UINT(room), RIGHT, .text = LOOK_F(10, dg_cell_id),
	  .console = LOOK_F(8, dg_cell_id) },
	{ "CPU", "cpu_us", UINT(cpu_us), RIGHT,
	  .text = LOOK_F(12, dg_cell_cpu_cli),
	  .console = LOOK_F(9, dg_cell_cpu) },
	{ "PROGRESS", "progress_age_ms", INT(progress_age_ms), RIGHT,
	  .text = LOOK_F(9, dg_cell_age_cli),
	  .console = LOOK_F(9, dg_cell_age) },
};
#undef T

static const dg_rows_t s_threads = {
	.name = "threads", .size = sizeof(dg_thread_row_t),
	.cols = s_thread, .ncols = N(s_thread),
	.room_key = "room",
};

const dg_rows_t *
dg_rows_threads(void)
{
	return &s_threads;
}

/* ---- sockets and rails --------------------------------------------------- */

/* The console's Sockets view lists ZeroMQ sockets and fabric rails
 * together: KIND tells them apart (and sorts sockets first), STATE is
 * the rails' alone. */
static const char *
s_zmq(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	(void)col, (void)row, (void)buf, (void)size;
	*sort = 0;
	return "zmq";
}

static const char *
s_fabric(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	(void)col, (void)row, (void)buf, (void)size;
	*sort = 1;
	return "fabric";
}

static const char *
s_no_state(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	(void)col, (void)row, (void)buf, (void)size;
	*sort = 0;
	return "";
}

#define T dg_socket_row_t
static const dg_col_t s_socket[] = {
	{ "KIND", NULL, .console = LOOK_F(6, s_zmq) },
	{ "TYPE", "type", STR(type), .text = LOOK(7), .console = LOOK(12) },
	/* MODE twice: the CLI prints it before ENDPOINT, the console and
	 * JSON after. */
	{ "MODE", NULL, BOOL(bind), .text = LOOK_F(7, dg_cell_mode) },
	{ "ENDPOINT", "endpoint", STR(endpoint), .text = LOOK(40),
	  .console = LOOK(40) },
	{ "MODE", "bind", BOOL(bind), .console = LOOK_F(7, dg_cell_mode) },
	{ "MSGS-IN", "msgs_in", UINT(msgs_in), RIGHT, .text = LOOK(9),
	  .console = LOOK(9) },
	{ "MSGS-OUT", "msgs_out", UINT(msgs_out), RIGHT, .text = LOOK(9),
	  .console = LOOK(9) },
	{ "BYTES-IN", "bytes_in", UINT(bytes_in), RIGHT, .text = LOOK(11),
	  .console = LOOK_F(9, dg_cell_bytes) },
	{ "BYTES-OUT", "bytes_out", UINT(bytes_out), RIGHT, .text = LOOK(11),
	  .console = LOOK_F(9, dg_cell_bytes) },
	{ "STATE", NULL, .console = LOOK_F(22, s_no_state) },
};
#undef T

static const dg_rows_t s_sockets = {
	.name = "sockets", .size = sizeof(dg_socket_row_t),
	.cols = s_socket, .ncols = N(s_socket),
};

const dg_rows_t *
dg_rows_sockets(void)
{
	return &s_sockets;
}

static const char *
s_rail(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	*sort = 0;
	snprintf(buf, size, "rail %lld", (long long)dg_col_i64(col, row));
	return buf;
}

/* The CLI rounds the time left up to whole seconds. */
static const char *
s_quarantine_cli(const dg_col_t *col, const void *row, char *buf,
    size_t size, double *sort)
{
	const dg_rail_row_t *r = row;

	(void)col;
	*sort = r->quarantined;
	if (!r->quarantined)
		return "-";
	snprintf(buf, size, "%llds left",
	    (long long)(r->quarantine_left_ms + 999) / 1000);
	return buf;
}

static const char *
s_quarantine(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	const dg_rail_row_t *r = row;
	char age[32];

	(void)col;
	*sort = r->quarantined;
	if (!r->quarantined)
		return "ok";
	dg_fmt_age(age, sizeof age, r->quarantine_left_ms);
	snprintf(buf, size, "quarantined %s left", age);
	return buf;
}

#define T dg_rail_row_t
static const dg_col_t s_rail_cols[] = {
	{ "KIND", NULL, .console = LOOK_F(6, s_fabric) },
	{ "PROVIDER", "provider", STR(provider), .text = LOOK(16),
	  .console = LOOK_T(12, NULL, "TYPE") },
	{ "RAIL", "rail", INT(rail), RIGHT, .text = LOOK(4),
	  .console = LOOK_T(7, s_rail, "MODE") },
	{ "PEER", "peer", STR(peer), .text = LOOK(44),
	  .console = LOOK_T(40, NULL, "ENDPOINT") },
	{ "QUARANTINE", "quarantined", BOOL(quarantined),
	  .text = LOOK_F(12, s_quarantine_cli),
	  .console = LOOK_T(22, s_quarantine, "STATE") },
	{ "LEFT", "quarantine_left_ms", INT(quarantine_left_ms) },
};
#undef T

static const dg_rows_t s_rails = {
	.name = "rails", .size = sizeof(dg_rail_row_t),
	.cols = s_rail_cols, .ncols = N(s_rail_cols),
};

const dg_rows_t *
dg_rows_rails(void)
{
	return &s_rails;
}
