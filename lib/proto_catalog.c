/*  proto_catalog.c: every op of the wire protocol and its fields.
 *
 *  The one place that says what each message carries.  Encode and decode
 *  (proto.c) walk these tables; adding a field is one line here plus one
 *  member in proto.h.  The macros name each member once, so the wire key
 *  and the member cannot drift apart, and they make the compiler check the
 *  member's C type against the field type ("comparison of distinct pointer
 *  types" under -Werror).  Keys and order for the client ops are fixed by
 *  ARCHITECTURE.md, "The wire protocol"; the encoder writes fields in table order.  */
#include "proto.h"

#include <string.h>

#include "config.h"

/* The chain's places in one list: [pipeline] allows DG_CHAIN_MAX. */
#define DG_CHAIN_ROWS DG_CHAIN_MAX

/* offsetof(T, k) that fails to compile unless T.k has type ctype.  The
 * comparison sits inside sizeof, so it is never evaluated. */
#define S_AT(k, ctype) \
	(offsetof(T, k) + 0 * sizeof((ctype *)0 == &((T *)0)->k))

#define REQ DG_FIELD_REQUIRED
#define OPT 0u

#define INT(k, fl)   { #k, DG_FT_INT, fl, S_AT(k, int64_t), 0, 0, 0, 0, NULL }
#define UINT(k, fl)  { #k, DG_FT_UINT, fl, S_AT(k, uint64_t), 0, 0, 0, 0, NULL }
#define BOOL(k, fl)  { #k, DG_FT_BOOL, fl, S_AT(k, bool), 0, 0, 0, 0, NULL }
#define FLOAT(k, fl) { #k, DG_FT_FLOAT, fl, S_AT(k, double), 0, 0, 0, 0, NULL }
#define STR(k, fl)   { #k, DG_FT_STR, fl, S_AT(k, const char *), 0, 0, 0, 0, NULL }
#define INTS(k, fl) \
	{ #k, DG_FT_INT_LIST, fl, S_AT(k, const int64_t *), \
	  S_AT(n_##k, size_t), 0, 0, 0, NULL }
#define BINS(k, fl) \
	{ #k, DG_FT_BIN_LIST, fl, S_AT(k, const dg_bin_t *), \
	  S_AT(n_##k, size_t), 0, 0, 0, NULL }
#define KVMAP(k, fl) \
	{ #k, DG_FT_KV_MAP, fl, S_AT(k, const dg_kv_t *), \
	  S_AT(n_##k, size_t), 0, 0, 0, NULL }
#define ROWS(k, fl, R, desc, max, code) \
	{ #k, DG_FT_ROWS, fl, S_AT(k, const R *), \
	  S_AT(n_##k, size_t), 0, max, code, &desc }

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define ROW_DESC(nm, R, f) { nm, sizeof(R), f, N(f) }
#define OP(id, nm, B, f) { id, { nm, sizeof(B), f, N(f) }, 1 }
/* Ops whose form changed in version 2 (the daemons' ops, so that a
 * daemon of another version is refused at hello rather than
 * misunderstood).  release and release.ok keep version 1: operators
 * send them too. */
#define OP2(id, nm, B, f) { id, { nm, sizeof(B), f, N(f) }, 2 }

/* ---- shared shapes ---- */

#define T dg_request_msg_t
static const dg_field_desc_t s_request[] = { UINT(request, REQ) };
#undef T

#define T dg_room_msg_t
static const dg_field_desc_t s_room[] = { UINT(room, REQ) };
#undef T

#define T dg_name_msg_t
static const dg_field_desc_t s_name[] = { STR(name, REQ) };
static const dg_field_desc_t s_name_opt[] = { STR(name, OPT) };
static const dg_field_desc_t s_drain[] = { STR(name, REQ), BOOL(exit, OPT) };
#undef T

/* ---- generic ---- */

#define T dg_error_msg_t
static const dg_field_desc_t s_error[] = {
	STR(code, REQ),
	STR(message, REQ),
};
#undef T

/* ---- client ---- */

#define T dg_submit_msg_t
static const dg_field_desc_t s_submit[] = {
	STR(prompt, REQ),
	STR(negative_prompt, OPT),
	INT(frames, REQ),
	INT(height, REQ),
	INT(width, REQ),
	INT(steps, REQ),
	INT(seed, REQ),
	INT(deadline_ms, OPT),
	STR(key, OPT),
	STR(owner, OPT),
	BOOL(progress, OPT),
	INT(priority, OPT),
};
#undef T

#define T dg_progress_msg_t
static const dg_field_desc_t s_progress[] = {
	UINT(request, REQ),
	UINT(room, OPT),
	STR(role, REQ),
	INT(step, REQ),
	INT(steps, REQ),
};
#undef T

#define T dg_status_msg_t
static const dg_field_desc_t s_status[] = {
	UINT(request, OPT),
	STR(key, OPT),
};
#undef T

#define T dg_result_msg_t
static const dg_field_desc_t s_result[] = {
	UINT(request, REQ),
	STR(status, REQ),
	STR(output, REQ),
	UINT(bytes, REQ),
	STR(digest, REQ),
	STR(error, OPT),
	KVMAP(timings, REQ),
	STR(key, OPT),
	STR(owner, OPT),
};
#undef T

#define T dg_stage_row_t
static const dg_field_desc_t s_place_fields[] = {
	STR(role, REQ),
	STR(name, REQ),
	STR(peer, OPT),
};
static const dg_field_desc_t s_stage_fields[] = {
	STR(role, REQ),
	STR(name, REQ),
	STR(peer, REQ),
};
#undef T
static const dg_struct_desc_t s_place_row =
	ROW_DESC("place", dg_stage_row_t, s_place_fields);
static const dg_struct_desc_t s_stage_row =
	ROW_DESC("stage", dg_stage_row_t, s_stage_fields);

#define T dg_status_ok_msg_t
static const dg_field_desc_t s_status_ok[] = {
	UINT(request, REQ),
	STR(state, REQ),
	UINT(room, OPT),
	STR(encoder, OPT),
	STR(transformer, OPT),
	STR(decoder, OPT),
	INT(age_ms, OPT),
	INT(retries, OPT),
	STR(error, OPT),
	STR(stage, OPT),
	ROWS(stages, OPT, dg_stage_row_t, s_place_row, DG_CHAIN_ROWS, 0),
	INT(step, OPT),
	INT(steps, OPT),
	KVMAP(timings, OPT),
};
#undef T

/* ---- daemon <-> controller ---- */

#define T dg_hello_msg_t
static const dg_field_desc_t s_hello[] = {
	STR(role, REQ),
	STR(name, REQ),
	STR(host, REQ),
	INT(pid, REQ),
	STR(peer, REQ),
	BINS(fabric, OPT),
	STR(provider, OPT),
	UINT(pool_bytes, REQ),
	UINT(slots, REQ),
	INT(workers, REQ),
	STR(version, OPT),
};
#undef T

#define T dg_hello_ok_msg_t
static const dg_field_desc_t s_hello_ok[] = {
	INT(heartbeat_ms, REQ),
	INT(dead_after_ms, REQ),
	UINT(instance, REQ),
};
#undef T

#define T dg_heartbeat_msg_t
static const dg_field_desc_t s_heartbeat[] = {
	STR(name, REQ),
	STR(state, REQ),
	INT(incoming, REQ),
	INT(waiting, REQ),
	INT(ready, REQ),
	INT(running, REQ),
	INT(sending, REQ),
	INT(rooms, REQ),
	UINT(free_slots, REQ),
	INT(stalled_ms, OPT),
};
#undef T

#define T dg_stats_msg_t
static const dg_field_desc_t s_stats[] = {
	STR(name, REQ),
	UINT(done, REQ),
	UINT(failed, REQ),
	FLOAT(rps, REQ),
	INT(p50_us, REQ),
	INT(p99_us, REQ),
	UINT(bytes_in, REQ),
	UINT(bytes_out, REQ),
};
#undef T

#define T dg_bye_msg_t
static const dg_field_desc_t s_bye[] = {
	STR(name, REQ),
	STR(reason, OPT),
};
#undef T

#define T dg_assign_msg_t
static const dg_field_desc_t s_assign[] = {
	UINT(request, REQ),
	UINT(room, REQ),
	INT(attempt, REQ),
	STR(prompt, REQ),
	STR(negative_prompt, OPT),
	INT(frames, REQ),
	INT(height, REQ),
	INT(width, REQ),
	INT(steps, REQ),
	INT(seed, REQ),
	INT(deadline_ms, REQ),
	ROWS(stages, REQ, dg_stage_row_t, s_stage_row, DG_CHAIN_ROWS, 0),
	INT(priority, OPT),
};
#undef T

#define T dg_stage_done_msg_t
static const dg_field_desc_t s_stage_done[] = {
	UINT(room, REQ),
	UINT(request, REQ),
	STR(role, REQ),
	INT(ms, REQ),
	STR(output, OPT),
	UINT(bytes, OPT),
	STR(digest, OPT),
	INT(queue_us, OPT),
	INT(in_us, OPT),
	INT(compute_us, OPT),
	INT(out_us, OPT),
	INT(total_us, OPT),
};
#undef T

#define T dg_stage_failed_msg_t
static const dg_field_desc_t s_stage_failed[] = {
	UINT(room, REQ),
	UINT(request, REQ),
	STR(role, REQ),
	STR(reason, REQ),
	BOOL(retryable, REQ),
};
#undef T

#define T dg_room_phase_msg_t
static const dg_field_desc_t s_room_phase[] = {
	UINT(room, REQ),
	UINT(request, REQ),
	STR(role, REQ),
	STR(state, REQ),
};
#undef T

#define T dg_release_msg_t
static const dg_field_desc_t s_release[] = {
	UINT(room, REQ),
	STR(reason, OPT),
};
#undef T

/* ---- stage <-> stage ---- */

#define T dg_tensor_row_t
static const dg_field_desc_t s_tensor[] = {
	STR(name, REQ),
	STR(dtype, REQ),
	INTS(shape, REQ),
	UINT(bytes, REQ),
	UINT(offset, REQ),
	UINT(checksum, REQ),
};
#undef T
static const dg_struct_desc_t s_tensor_row =
	ROW_DESC("tensor", dg_tensor_row_t, s_tensor);

#define T dg_manifest_msg_t
static const dg_field_desc_t s_manifest[] = {
	UINT(room, REQ),
	INT(phase, REQ),
	UINT(slot, REQ),
	UINT(gen, REQ),
	BINS(fabric, REQ),
	UINT(key, REQ),
	UINT(base, REQ),
	UINT(token, REQ),
	UINT(chunk, REQ),
	ROWS(tensors, REQ, dg_tensor_row_t, s_tensor_row,
	     DG_PROTO_MAX_TENSORS, DG_PROTO_E_TOO_MANY_TENSORS),
	STR(share, OPT),
};
#undef T

#define T dg_transfer_done_msg_t
static const dg_field_desc_t s_transfer_done[] = {
	UINT(room, REQ),
	INT(phase, REQ),
	UINT(gen, REQ),
	UINT(bytes, REQ),
	ROWS(tensors, OPT, dg_tensor_row_t, s_tensor_row,
	     DG_PROTO_MAX_TENSORS, DG_PROTO_E_TOO_MANY_TENSORS),
	INT(us, OPT),
};
#undef T

#define T dg_transfer_failed_msg_t
static const dg_field_desc_t s_transfer_failed[] = {
	UINT(room, REQ),
	INT(phase, REQ),
	UINT(gen, REQ),
	STR(reason, REQ),
	BOOL(stale, OPT),
};
#undef T

/* ---- admin ---- */

#define T dg_instance_row_t
static const dg_field_desc_t s_instance[] = {
	STR(role, REQ),
	STR(name, REQ),
	STR(host, REQ),
	STR(state, REQ),
	STR(peer, REQ),
	INT(incoming, REQ),
	INT(waiting, REQ),
	INT(ready, REQ),
	INT(running, REQ),
	INT(sending, REQ),
	INT(rooms, REQ),
	UINT(free_slots, REQ),
	FLOAT(rps, REQ),
	INT(p50_us, REQ),
	INT(p99_us, REQ),
	INT(heartbeat_age_ms, REQ),
	INT(stalled_ms, OPT),
	FLOAT(ms_per_mpx, OPT),
	INT(backlog_ms, OPT),
};
#undef T
static const dg_struct_desc_t s_instance_row =
	ROW_DESC("instance", dg_instance_row_t, s_instance);

#define T dg_instances_ok_msg_t
static const dg_field_desc_t s_instances_ok[] = {
	ROWS(instances, REQ, dg_instance_row_t, s_instance_row, 0, 0),
	STR(publish, OPT),
};
#undef T

#define T dg_queue_row_t
static const dg_field_desc_t s_queue[] = {
	UINT(room, REQ),
	UINT(request, REQ),
	STR(queue, REQ),
	INT(age_ms, REQ),
	INT(step, OPT),
	INT(steps, OPT),
};
#undef T
static const dg_struct_desc_t s_queue_row =
	ROW_DESC("queue", dg_queue_row_t, s_queue);

#define T dg_queues_ok_msg_t
static const dg_field_desc_t s_queues_ok[] = {
	STR(name, REQ),
	ROWS(rooms, REQ, dg_queue_row_t, s_queue_row, 0, 0),
	UINT(omitted, OPT),
};
#undef T

#define T dg_room_row_t
static const dg_field_desc_t s_room_fields[] = {
	UINT(room, REQ),
	UINT(request, REQ),
	STR(state, REQ),
	STR(encoder, REQ),
	STR(transformer, REQ),
	STR(decoder, REQ),
	UINT(bytes, REQ),
	INT(age_ms, REQ),
	STR(stage, OPT),
	ROWS(stages, OPT, dg_stage_row_t, s_place_row, DG_CHAIN_ROWS, 0),
	INT(step, OPT),
	INT(steps, OPT),
};
#undef T
static const dg_struct_desc_t s_room_row =
	ROW_DESC("room", dg_room_row_t, s_room_fields);

#define T dg_rooms_ok_msg_t
static const dg_field_desc_t s_rooms_ok[] = {
	ROWS(rooms, REQ, dg_room_row_t, s_room_row, 0, 0),
	UINT(omitted, OPT),
};
#undef T

#define T dg_thread_row_t
static const dg_field_desc_t s_thread[] = {
	STR(name, REQ),
	STR(state, REQ),
	UINT(room, OPT),
	UINT(cpu_us, REQ),
	INT(progress_age_ms, REQ),
	INT(tid, OPT),
	STR(kernel, OPT),
};
#undef T
static const dg_struct_desc_t s_thread_row =
	ROW_DESC("thread", dg_thread_row_t, s_thread);

#define T dg_threads_ok_msg_t
static const dg_field_desc_t s_threads_ok[] = {
	STR(name, REQ),
	ROWS(threads, REQ, dg_thread_row_t, s_thread_row, 0, 0),
};
#undef T

#define T dg_socket_row_t
static const dg_field_desc_t s_socket[] = {
	STR(type, REQ),
	STR(endpoint, REQ),
	BOOL(bind, REQ),
	UINT(msgs_in, REQ),
	UINT(msgs_out, REQ),
	UINT(bytes_in, REQ),
	UINT(bytes_out, REQ),
};
#undef T
static const dg_struct_desc_t s_socket_row =
	ROW_DESC("socket", dg_socket_row_t, s_socket);

#define T dg_rail_row_t
static const dg_field_desc_t s_rail[] = {
	STR(provider, REQ),
	INT(rail, REQ),
	STR(peer, REQ),
	BOOL(quarantined, REQ),
	INT(quarantine_left_ms, OPT),
};
#undef T
static const dg_struct_desc_t s_rail_row =
	ROW_DESC("rail", dg_rail_row_t, s_rail);

#define T dg_sockets_ok_msg_t
static const dg_field_desc_t s_sockets_ok[] = {
	STR(name, REQ),
	ROWS(sockets, REQ, dg_socket_row_t, s_socket_row, 0, 0),
	ROWS(rails, REQ, dg_rail_row_t, s_rail_row, 0, 0),
};
#undef T

#define T dg_reload_ok_msg_t
static const dg_field_desc_t s_reload_ok[] = { STR(message, OPT) };
#undef T

/* ---- events ---- */

#define T dg_event_msg_t
static const dg_field_desc_t s_event[] = {
	STR(kind, REQ),
	INT(ts_ms, REQ),
	STR(name, OPT),
	UINT(request, OPT),
	UINT(room, OPT),
	STR(message, OPT),
	UINT(id, OPT),
};
#undef T
/* events.ok's rows are the events as they were published. */
static const dg_struct_desc_t s_event_row =
	ROW_DESC("event", dg_event_msg_t, s_event);

#define T dg_events_msg_t
static const dg_field_desc_t s_events[] = { UINT(after, OPT) };
#undef T

#define T dg_events_ok_msg_t
static const dg_field_desc_t s_events_ok[] = {
	ROWS(events, REQ, dg_event_msg_t, s_event_row, 0, 0),
	UINT(epoch, REQ),
	UINT(last, REQ),
};
#undef T

#define T dg_snapshot_msg_t
static const dg_field_desc_t s_snapshot[] = {
	INT(ts_ms, REQ),
	ROWS(instances, REQ, dg_instance_row_t, s_instance_row, 0, 0),
	UINT(pending, REQ),
	UINT(active, REQ),
	UINT(done, REQ),
	UINT(failed, REQ),
	UINT(cancelled, OPT),
};
#undef T

/* ---- the catalogue, sorted by op number ---- */

static const dg_op_desc_t s_ops[] = {
	OP(DG_OP_ERROR, "error", dg_error_msg_t, s_error),
	OP(DG_OP_SUBMIT, "submit", dg_submit_msg_t, s_submit),
	OP(DG_OP_SUBMIT_OK, "submit.ok", dg_request_msg_t, s_request),
	OP(DG_OP_RESULT, "result", dg_result_msg_t, s_result),
	OP(DG_OP_STATUS, "status", dg_status_msg_t, s_status),
	OP(DG_OP_STATUS_OK, "status.ok", dg_status_ok_msg_t, s_status_ok),
	OP(DG_OP_CANCEL, "cancel", dg_request_msg_t, s_request),
	OP(DG_OP_CANCEL_OK, "cancel.ok", dg_request_msg_t, s_request),
	OP(DG_OP_PROGRESS, "progress", dg_progress_msg_t, s_progress),
	OP2(DG_OP_HELLO, "hello", dg_hello_msg_t, s_hello),
	OP2(DG_OP_HELLO_OK, "hello.ok", dg_hello_ok_msg_t, s_hello_ok),
	OP2(DG_OP_HEARTBEAT, "heartbeat", dg_heartbeat_msg_t, s_heartbeat),
	OP2(DG_OP_STATS, "stats", dg_stats_msg_t, s_stats),
	OP2(DG_OP_BYE, "bye", dg_bye_msg_t, s_bye),
	OP2(DG_OP_ASSIGN, "assign", dg_assign_msg_t, s_assign),
	OP2(DG_OP_ASSIGN_OK, "assign.ok", dg_room_msg_t, s_room),
	OP2(DG_OP_STAGE_DONE, "stage.done", dg_stage_done_msg_t, s_stage_done),
	OP2(DG_OP_STAGE_FAILED, "stage.failed", dg_stage_failed_msg_t,
	   s_stage_failed),
	OP(DG_OP_RELEASE, "release", dg_release_msg_t, s_release),
	OP(DG_OP_RELEASE_OK, "release.ok", dg_room_msg_t, s_room),
	OP2(DG_OP_ROOM_PHASE, "room.phase", dg_room_phase_msg_t, s_room_phase),
	OP2(DG_OP_MANIFEST, "manifest", dg_manifest_msg_t, s_manifest),
	OP2(DG_OP_TRANSFER_DONE, "transfer.done", dg_transfer_done_msg_t,
	   s_transfer_done),
	OP2(DG_OP_TRANSFER_FAILED, "transfer.failed", dg_transfer_failed_msg_t,
	   s_transfer_failed),
	{ DG_OP_INSTANCES, { "instances", 0, NULL, 0 }, 1 },
	OP(DG_OP_INSTANCES_OK, "instances.ok", dg_instances_ok_msg_t,
	   s_instances_ok),
	OP(DG_OP_QUEUES, "queues", dg_name_msg_t, s_name),
	OP(DG_OP_QUEUES_OK, "queues.ok", dg_queues_ok_msg_t, s_queues_ok),
	OP(DG_OP_ROOMS, "rooms", dg_name_msg_t, s_name_opt),
	OP(DG_OP_ROOMS_OK, "rooms.ok", dg_rooms_ok_msg_t, s_rooms_ok),
	OP(DG_OP_THREADS, "threads", dg_name_msg_t, s_name),
	OP(DG_OP_THREADS_OK, "threads.ok", dg_threads_ok_msg_t, s_threads_ok),
	OP(DG_OP_SOCKETS, "sockets", dg_name_msg_t, s_name),
	OP(DG_OP_SOCKETS_OK, "sockets.ok", dg_sockets_ok_msg_t, s_sockets_ok),
	OP(DG_OP_DRAIN, "drain", dg_name_msg_t, s_drain),
	OP(DG_OP_DRAIN_OK, "drain.ok", dg_name_msg_t, s_name),
	OP(DG_OP_UNDRAIN, "undrain", dg_name_msg_t, s_name),
	OP(DG_OP_UNDRAIN_OK, "undrain.ok", dg_name_msg_t, s_name),
	OP(DG_OP_RELOAD, "reload", dg_name_msg_t, s_name_opt),
	OP(DG_OP_RELOAD_OK, "reload.ok", dg_reload_ok_msg_t, s_reload_ok),
	OP(DG_OP_EVENTS, "events", dg_events_msg_t, s_events),
	OP(DG_OP_EVENTS_OK, "events.ok", dg_events_ok_msg_t, s_events_ok),
	OP(DG_OP_EVENT, "event", dg_event_msg_t, s_event),
	OP(DG_OP_SNAPSHOT, "snapshot", dg_snapshot_msg_t, s_snapshot),
};

const dg_op_desc_t *
dg_proto_catalog(size_t *count)
{
	if (count)
		*count = N(s_ops);
	return s_ops;
}

/* Linear scans: 40 entries, cheaper than anything cleverer. */
const dg_op_desc_t *
dg_proto_op_desc(dg_op_t op)
{
	for (size_t i = 0; i < N(s_ops); i++)
		if (s_ops[i].op == op)
			return &s_ops[i];
	return NULL;
}

const dg_op_desc_t *
dg_proto_op_find(const char *name, size_t len)
{
	for (size_t i = 0; i < N(s_ops); i++) {
		const char *s = s_ops[i].body.name;
		if (strlen(s) == len && memcmp(s, name, len) == 0)
			return &s_ops[i];
	}
	return NULL;
}

const char *
dg_op_name(dg_op_t op)
{
	const dg_op_desc_t *d = dg_proto_op_desc(op);
	return d ? d->body.name : NULL;
}

dg_op_t
dg_op_lookup(const char *name)
{
	const dg_op_desc_t *d = name ? dg_proto_op_find(name, strlen(name)) : NULL;
	return d ? d->op : DG_OP_NONE;
}
