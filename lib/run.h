/*  run.h: where `disagg up` keeps what it started: the topology file it
 *  used (up.ini), the daemons' pids and logs.  $DISAGG_RUN, else
 *  $XDG_RUNTIME_DIR/disagg, else /tmp/disagg-UID.  */
#ifndef DG_RUN_H
#define DG_RUN_H

#include <stddef.h>

const char *dg_run_dir(void);
/* dg_run_dir()/name into buf. */
char *dg_run_path(char *buf, size_t size, const char *name);

#endif
