/*  scaler.h: the controller's autoscaler, the executor around the
 *  decisions of lib/autoscale.c (ARCHITECTURE.md, "Autoscaling").
 *
 *  Every S_EVERY_MS it measures each scaled role from the registry, asks
 *  for decisions, and carries them out on the spares (sections with
 *  autostart = no): a start through the role's scale_command, or else,
 *  under `disagg up`, through the run folder's supervisor; a stop as a
 *  drain with exit, so the instance finishes its rooms and leaves.
 *  Decisions and their outcomes are published as "scale" events.  */
#ifndef DG_SCALER_H
#define DG_SCALER_H

#include <stdint.h>

#include "config.h"
#include "registry.h"

typedef struct _dg_scaler_t dg_scaler_t;

/* How the scaler reaches the world: an event to publish (kind "scale",
 * `name` the section or NULL), a message to an instance. */
typedef struct {
	void *arg;
	void (*event)(void *arg, const char *name, const char *message);
	void (*to_instance)(void *arg, const dg_inst_t *in, const dg_msg_t *m);
} dg_scaler_io_t;

/* NULL when no role is scaled ([autoscale ROLE]) or out of memory
 * (*nomem says which).  `cfg` is read here only; `reg` is kept. */
dg_scaler_t *dg_scaler_new(const dg_config_t *cfg, dg_registry_t *reg,
    const dg_scaler_io_t *io, int64_t now, bool *nomem);
void dg_scaler_destroy(dg_scaler_t **self_p);

/* `pending`: the controller's requests waiting for instances. */
void dg_scaler_tick(dg_scaler_t *self, int64_t now, size_t pending);
/* The controller drains: no more decisions. */
void dg_scaler_stop(dg_scaler_t *self);

#endif
