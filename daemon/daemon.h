/*  daemon.h: what every disaggd role shares: logging set-up, signals
 *  through a signalfd in the control loop, reload and drain.  A role
 *  (controller.c, stage.c) plugs in through dg_role_ops_t.  */
#ifndef DG_DAEMON_H
#define DG_DAEMON_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"

typedef struct dg_daemon {
	dg_config_t *cfg;               /* current; a reload replaces it */
	char file[DG_PATH_MAX];
	char name[DG_NAME_MAX];
	char role[DG_NAME_MAX];         /* "controller", or the stage's role */
	bool controller;
	zloop_t *loop;
	bool draining;
	int64_t drain_deadline;
	int verbose;
	bool foreground;
	dg_auth_t *auth;                /* CurveZMQ; NULL when curve = off */
} dg_daemon_t;

typedef struct {
	/* Bind, connect and add readers and timers to d->loop: 0 or -1. */
	int (*start)(dg_daemon_t *d, void **state);
	/* SIGTERM, or a drain from the controller: take no new work. */
	void (*drain)(void *state);
	/* Nothing is in flight: the drain is over. */
	bool (*idle)(void *state);
	/* d->cfg was replaced by a valid file: apply reloadable keys. */
	void (*reload)(void *state);
	/* The drain's time is up: end what is left now, while the loop
	 * still runs to deliver what that says (optional). */
	void (*expire)(void *state);
	void (*stop)(void **state);
} dg_role_ops_t;

extern const dg_role_ops_t dg_controller_ops;
extern const dg_role_ops_t dg_stage_role_ops;

/* Run section `name` of *cfg_p until it is told to stop; takes the
 * configuration (a reload replaces it).  Returns the exit status. */
int dg_daemon_run(dg_config_t **cfg_p, const char *name, bool foreground,
    int verbose);

/* Begin draining, as SIGTERM does (also for a drain from the control
 * plane that asks the daemon to exit). */
void dg_daemon_drain(dg_daemon_t *d, const char *why);

/* Re-read and validate the whole file, as SIGHUP does, and apply the
 * reloadable keys.  0 and what changed in `report`, or -1 and why, the
 * old configuration kept. */
int dg_daemon_reload(dg_daemon_t *d, char *report, size_t size);

int64_t dg_now_ms(void);

/* A role's tick: one-shot, armed for when something is next due, so an
 * idle daemon sleeps until then; a turn that leaves work brings it
 * forward (stage.c, controller.c). */
typedef struct {
	zloop_t *loop;
	zloop_timer_fn *fn;
	void *arg;
	int id;                 /* the armed timer, -1 while it runs */
	int64_t at;             /* when it is due */
} dg_tick_t;

void dg_tick_init(dg_tick_t *t, zloop_t *loop, zloop_timer_fn *fn, void *arg);
/* (Re)arm it for `due`. */
void dg_tick_arm(dg_tick_t *t, int64_t now, int64_t due);
/* Bring an armed tick forward to `due` when that is sooner. */
void dg_tick_sooner(dg_tick_t *t, int64_t now, int64_t due);
/* Its timer fired: it is gone until armed again. */
void dg_tick_fired(dg_tick_t *t);

/* Sockets and CurveZMQ: a socket others connect to (before bind), one
 * this daemon connects with (before connect), and the steps after a
 * bind: owner-only ipc files, refused handshakes logged. */
void dg_daemon_server_sock(dg_daemon_t *d, zsock_t *sock);
void dg_daemon_client_sock(dg_daemon_t *d, zsock_t *sock);
void dg_daemon_bound(dg_daemon_t *d, zsock_t *sock, const char *endpoint,
    const char *what);
/* Whether a message's sender (dg_route_t.user) is one of the
 * deployment's daemons, or holds an admin key; true with curve off. */
bool dg_daemon_from_daemon(dg_daemon_t *d, const char *user);
bool dg_daemon_from_admin(dg_daemon_t *d, const char *user);

/* Replace this process with a fresh disaggd running the same section of
 * the same file (absolute path), in the same mode, keeping only
 * descriptors 0 to 2; DISAGG_REEXEC counts the restarts.  Returns only
 * on failure. */
void dg_daemon_reexec(dg_daemon_t *d);

/* Test only (tests/wedge): DISAGG_TEST_WEDGE=NAME:N asks stage NAME to
 * act as if its fabric were wedged whenever it holds a room, until it
 * has restarted in place N times, so that the restart itself can be
 * tested on a provider that never wedges. */
bool dg_daemon_test_wedge(const dg_daemon_t *d);

#endif
