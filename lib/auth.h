/*  auth.h: CurveZMQ on the control endpoints ([security] curve = on).
 *
 *  The model, kept small on purpose: one key pair for the deployment's
 *  servers (KEY_DIR/server and KEY_DIR/server_secret, made with `disagg
 *  keygen -d KEY_DIR server` and copied to every host), which the
 *  controller's and the stages' endpoints present and every client
 *  checks; one key pair per client.  A client connects only if its
 *  public key is in client_keys or admin_keys; drain, undrain, release,
 *  reload and cancelling another client's request need a key from
 *  admin_keys.  Daemons connect to each other with the server key pair,
 *  which is therefore an admin key too.  czmq's zauth does the ZAP side;
 *  a socket monitor logs every refused handshake.  */
#ifndef DG_AUTH_H
#define DG_AUTH_H

#include <czmq.h>
#include <stdbool.h>

#include "config.h"

typedef struct dg_auth dg_auth_t;

/* Start the ZAP handler for this process.  `scratch` is a private
 * folder for the merged list of allowed keys.  NULL with the reason in
 * `err` (a missing key pair names the file and how to make it). */
dg_auth_t *dg_auth_new(const dg_security_conf_t *sec, const char *scratch,
    char *err, size_t errlen);
void dg_auth_destroy(dg_auth_t **self_p);

/* Make `sock` a CURVE server with the deployment's key pair; call
 * before bind.  Its refused handshakes are logged once the loop runs
 * dg_auth_watch. */
void dg_auth_server(dg_auth_t *self, zsock_t *sock);
/* Log refused handshakes on `sock` from `loop` (a monitor actor). */
int dg_auth_watch(dg_auth_t *self, zsock_t *sock, const char *what,
    zloop_t *loop);
/* Make `sock` a CURVE client using the deployment's key pair (daemons
 * connecting to the controller and to each other); before connect. */
void dg_auth_daemon_client(dg_auth_t *self, zsock_t *sock);

/* Whether the sender of a message (`user`: its public key in Z85, as
 * dg_route_t.user has it) may use admin ops.  Always true with curve
 * off. */
bool dg_auth_is_admin(const dg_auth_t *self, const char *user);
/* Whether the sender is one of the deployment's daemons (it presents
 * the server key pair).  Always true with curve off. */
bool dg_auth_is_daemon(const dg_auth_t *self, const char *user);
/* The sender of a received frame: its public key, or "" when curve is
 * off (dg_route_t.user holds the same for a received message). */
const char *dg_auth_user(zframe_t *frame);

/* For clients (the CLI and the console): with DISAGG_KEY naming a
 * client's secret key file, make `sock` a CURVE client; the server's
 * public key comes from DISAGG_SERVER_KEY or, failing that, the file
 * `server` beside DISAGG_KEY.  0 (nothing to do without DISAGG_KEY), or
 * -1 with the reason in `err`. */
int dg_auth_client_from_env(zsock_t *sock, char *err, size_t errlen);

/* A SUB socket subscribed to everything at `endpoint`, a CURVE client
 * as above when DISAGG_KEY is set.  NULL with the reason in `err`. */
zsock_t *dg_auth_sub_new(const char *endpoint, char *err, size_t errlen);

/* Make a key pair NAME and NAME_secret in `dir` (secret mode 0600).
 * 0, or -1 with the reason in `err`. */
int dg_auth_keygen(const char *dir, const char *name, char *err,
    size_t errlen);

/* Restrict an ipc endpoint's socket file to its owner (mode 0600);
 * other transports are left alone.  0, or -1. */
int dg_auth_ipc_private(const char *endpoint);

#endif
