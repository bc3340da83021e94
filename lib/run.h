/*  run.h: where `disagg up` keeps what it started: the topology file it
 *  used (up.ini), the daemons' pids and logs.  $DISAGG_RUN, else
 *  $XDG_RUNTIME_DIR/disagg, else /tmp/disagg-UID.  */
#ifndef DG_RUN_H
#define DG_RUN_H

#include <stdbool.h>
#include <stddef.h>

const char *dg_run_dir(void);
/* dg_run_dir()/name into buf. */
char *dg_run_path(char *buf, size_t size, const char *name);

/* The run folder `dir` as an absolute path (the caller frees it), made
 * 0700 with its missing parents when `create`.  It must be a folder of
 * this user's: in /tmp anyone could have made /tmp/disagg-UID first.
 * NULL with the reason in `why` and errno: ENOENT when it does not exist
 * (and not `create`), EEXIST when something else than a folder is there,
 * EPERM when it belongs to another user, ENAMETOOLONG when too little of
 * PATH_MAX is left for the files and ipc endpoints under it. */
char *dg_run_open(const char *dir, bool create, char *why, size_t whysize);

#endif
