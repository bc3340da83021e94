/*  admin.h: the replies to the admin ops that every daemon answers the
 *  same way, controller or stage: threads, sockets and reload.  Each
 *  returns a message that owns all it points to (rows and strings in its
 *  arena), ready to send or post, or NULL when memory is short.  */
#ifndef DG_ADMIN_H
#define DG_ADMIN_H

#include "daemon.h"
#include "proto.h"
#include "xfer.h"

/* threads.ok: every task of this process (threads.h). */
dg_msg_t *dg_admin_threads(const char *name, uint64_t seq);
/* sockets.ok: the registered ZeroMQ sockets (wire.h) and, with an
 * engine, its own rails then the health of every (peer, rail). */
dg_msg_t *dg_admin_sockets(const char *name, uint64_t seq, dg_xfer_t *xfer);
/* reload.ok with what changed, or an error (invalid) with why; the
 * daemon keeps its old configuration on error. */
dg_msg_t *dg_admin_reload(dg_daemon_t *d, uint64_t seq);
/* An error message (to post where dg_wire_send_error cannot be used). */
dg_msg_t *dg_admin_error(uint64_t seq, dg_proto_code_t code,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
