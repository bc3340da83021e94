/*  daemon.h: what every disaggd role shares: logging set-up, signals
 *  through a signalfd in the control loop, reload and drain.  */
#ifndef DG_DAEMON_H
#define DG_DAEMON_H

#include <stdbool.h>

#include "config.h"

/* Run section `name` of *cfg_p until it is told to stop; takes the
 * configuration (a reload replaces it).  Returns the exit status. */
int dg_daemon_run(dg_config_t **cfg_p, const char *name, bool foreground,
    int verbose);

#endif
