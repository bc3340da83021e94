/*  up_impl.h: what `disagg up` and `down` (up.c) share with `restart`
 *  and with the daemons down finds through the controller (restart.c).
 *  Messages go to stdout and stderr as the commands print them.  */
#ifndef DG_UP_IMPL_H
#define DG_UP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "supervisor.h"

/* What a pid in RUN/pids must still run to count as ours. */
#define DG_UP_DAEMON "disaggd"
/* RUN/config: the absolute path of the file the daemons were started
 * with (RUN/up.ini for the built-in topology), for restart. */
#define DG_UP_CONFIG "config"

/* The run folder, locked while `cmd` works; NULL, said why, when
 * refused, or when it does not exist (*absent, only when not
 * `create`).  DISAGG_RUN is set to it. */
dg_supervisor_t *dg_up_open(const char *cmd, bool create, bool *absent);

/* disaggd next to this disagg, else on PATH: 0 and `out` (PATH_MAX
 * bytes), or -1. */
int dg_up_find_disaggd(char *out);

/* A --timeout: seconds, or a duration such as 500ms.  0, or -1. */
int dg_up_parse_timeout(const char *text, int64_t *ms);

/* The controller's listen endpoint as a client reaches it. */
void dg_up_reach(const char *listen, char *out, size_t size);

/* The last `lines` lines of a log, indented, on stderr. */
void dg_up_tail(const char *path, int lines);

/* SIGTERM the stages (or, with `controller`, the controller; or, with
 * `only`, the daemon of that name) and wait up to timeout_ms for them
 * to exit; SIGKILL the rest.  With `say`, one line per daemon.  Returns
 * how many did not stop cleanly. */
int dg_up_stop(dg_supervisor_t *sup, bool controller, const char *only,
    int64_t timeout_ms, bool say);

/* Whether a controller answers at `endpoint` (within a second). */
bool dg_up_answers(const char *endpoint);

/* Ask the controller at `endpoint` (NULL: none) to drain and exit every
 * live stage of its topology that `sup` (RUN/pids; NULL: none) does not
 * hold, or, with `controller`, itself unless `sup` holds it; wait up to
 * timeout_ms for them to go.  How many did not stop (said why); 0 also
 * when no controller answers. */
int dg_up_stop_unlisted(dg_supervisor_t *sup, const char *endpoint,
    bool controller, int64_t timeout_ms);

#endif
