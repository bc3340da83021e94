/*  client.h: the CLI's side of the control plane: one DEALER to the
 *  controller, requests with deadlines, replies matched by seq.
 *
 *  Exit codes of the commands built on it: 0 ok, 1 the system refused
 *  or failed, 2 usage, 3 controller not reachable.  */
#ifndef DG_CLIENT_H
#define DG_CLIENT_H

#include <czmq.h>
#include <stdbool.h>

#include "proto.h"

enum { DG_EXIT_OK = 0, DG_EXIT_FAIL = 1, DG_EXIT_USAGE = 2,
       DG_EXIT_UNREACHABLE = 3 };

typedef struct _dg_client_t dg_client_t;

/* Connect to `endpoint`; NULL on failure.  Nothing is sent yet, so an
 * absent controller shows up as a timeout on the first request. */
dg_client_t *dg_client_new(const char *endpoint);
void dg_client_destroy(dg_client_t **self_p);
zsock_t *dg_client_sock(dg_client_t *self);

/* Send `msg` (its seq is set here) and wait up to `timeout_ms` for the
 * reply with the same seq; other messages that arrive meanwhile (results
 * of earlier submits) are queued for dg_client_next().  Returns the
 * reply, or NULL on timeout (errno ETIMEDOUT). */
dg_msg_t *dg_client_call(dg_client_t *self, dg_msg_t *msg, int timeout_ms);
/* Send without waiting; returns the seq used, or 0 on failure. */
uint64_t dg_client_send(dg_client_t *self, dg_msg_t *msg);
/* The next message from the controller within timeout_ms, or NULL. */
dg_msg_t *dg_client_next(dg_client_t *self, int timeout_ms);

/* The controller endpoint: -c, else DISAGG_CONTROLLER, else the `listen`
 * of the file given with -f, else the running `disagg up`'s, else the
 * default tcp://127.0.0.1:7700. */
const char *dg_client_endpoint(const char *flag, const char *file);

/* Where to subscribe, from the `publish` the controller reports
 * (instances.ok): a wildcard host ("*", "0.0.0.0") becomes the host of
 * `via`, the endpoint the controller was reached on. */
void dg_client_pub_endpoint(char *buf, size_t size, const char *pub,
    const char *via);

#endif
