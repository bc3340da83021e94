/*  admin.c: threads, sockets and reload replies; see admin.h.  */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "admin.h"
#include "threads.h"
#include "wire.h"

#define ROWS_MAX 1024

dg_msg_t *
dg_admin_threads(const char *name, uint64_t seq)
{
	dg_thread_info_t *info = calloc(ROWS_MAX, sizeof *info);
	dg_msg_t *m = dg_msg_new(DG_OP_THREADS_OK);
	dg_thread_row_t *rows = NULL;
	size_t n = 0;

	if (info && m) {
		n = dg_threads_snapshot(info, ROWS_MAX);
		rows = dg_msg_alloc(m, (n + 1) * sizeof *rows);
	}
	if (!rows) {
		free(info);
		dg_msg_destroy(&m);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		rows[i] = (dg_thread_row_t){
			.name = dg_msg_strdup(m, info[i].name),
			.state = dg_msg_strdup(m, info[i].state),
			.room = info[i].room,
			.cpu_us = info[i].cpu_us,
			.progress_age_ms = info[i].progress_age_ms,
			.tid = info[i].tid,
			.kernel = dg_msg_strdup(m, info[i].kernel),
		};
	}
	free(info);
	m->seq = seq;
	m->u.threads_ok.name = dg_msg_strdup(m, name);
	m->u.threads_ok.threads = rows;
	m->u.threads_ok.n_threads = n;
	return m;
}

dg_msg_t *
dg_admin_sockets(const char *name, uint64_t seq, dg_xfer_t *xfer)
{
	dg_wire_sock_info_t socks[64];
	dg_xfer_rail_t health[256];
	size_t ns = dg_wire_sockets(socks, 64), nh = 0;
	int local = 0;
	dg_msg_t *m = dg_msg_new(DG_OP_SOCKETS_OK);

	if (!m)
		return NULL;
	if (xfer) {
		local = dg_xfer_rails(xfer);
		nh = dg_xfer_rail_health(xfer, health, 256);
	}
	dg_socket_row_t *srows = dg_msg_alloc(m, (ns + 1) * sizeof *srows);
	dg_rail_row_t *rrows = dg_msg_alloc(m,
	    ((size_t)local + nh + 1) * sizeof *rrows);
	if (!srows || !rrows) {
		dg_msg_destroy(&m);
		return NULL;
	}
	for (size_t i = 0; i < ns; i++) {
		srows[i] = (dg_socket_row_t){
			.type = socks[i].type,  /* czmq's static strings */
			.endpoint = dg_msg_strdup(m, socks[i].endpoint),
			.bind = socks[i].bind,
			.msgs_in = socks[i].msgs_in,
			.msgs_out = socks[i].msgs_out,
			.bytes_in = socks[i].bytes_in,
			.bytes_out = socks[i].bytes_out,
		};
	}
	/* Our own endpoints first, named "local:ADDRESS" in the peer
	 * column, then every (peer, rail) we have written to. */
	size_t nr = 0;
	for (int r = 0; r < local; r++) {
		char text[96];
		snprintf(text, sizeof text, "local:%s",
		    dg_xfer_address_name(xfer, r));
		rrows[nr++] = (dg_rail_row_t){
			.provider = dg_xfer_provider(xfer), .rail = r,
			.peer = dg_msg_strdup(m, text),
		};
	}
	for (size_t i = 0; i < nh; i++) {
		rrows[nr++] = (dg_rail_row_t){
			.provider = dg_xfer_provider(xfer),
			.rail = health[i].rail,
			.peer = dg_msg_strdup(m, health[i].peer),
			.quarantined = health[i].quarantined,
			.quarantine_left_ms = health[i].quarantine_left_ms,
		};
	}
	m->seq = seq;
	m->u.sockets_ok.name = dg_msg_strdup(m, name);
	m->u.sockets_ok.sockets = srows;
	m->u.sockets_ok.n_sockets = ns;
	m->u.sockets_ok.rails = rrows;
	m->u.sockets_ok.n_rails = nr;
	return m;
}

dg_msg_t *
dg_admin_error(uint64_t seq, dg_proto_code_t code, const char *fmt, ...)
{
	char text[DG_PROTO_ERR_MAX];
	va_list ap;
	dg_msg_t *m = dg_msg_new(DG_OP_ERROR);

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (!m)
		return NULL;
	m->seq = seq;
	m->u.error.code = dg_proto_code_name(code);
	m->u.error.message = dg_msg_strdup(m, text);
	return m;
}

dg_msg_t *
dg_admin_reload(dg_daemon_t *d, uint64_t seq)
{
	char report[DG_PROTO_ERR_MAX];

	if (dg_daemon_reload(d, report, sizeof report) < 0)
		return dg_admin_error(seq, DG_PROTO_E_INVALID, "%s: %s",
		    d->name, report);
	dg_msg_t *m = dg_msg_new(DG_OP_RELOAD_OK);
	if (m) {
		m->seq = seq;
		m->u.reload_ok.message = dg_msg_strdup(m, report);
	}
	return m;
}
