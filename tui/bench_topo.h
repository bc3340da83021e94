/*  bench_topo.h: a benchmark's own topology in a run folder of its own:
 *  the folder, `disagg up` and `disagg down` on it, and its removal.
 *  Shared by `disagg bench rooms` and `disagg bench fleet`.  */
#ifndef DG_BENCH_TOPO_H
#define DG_BENCH_TOPO_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

/* sun_path is 108 bytes with its NUL. */
#define DG_BENCH_IPC_MAX 107

/* The run folder into `run`: `dir` (created if need be), or a new
 * disagg-TAG.XXXXXX in $TMPDIR (then *made is set: ours to remove).
 * `longest` is the longest name an ipc endpoint will have in it
 * ("/ctl.sock"): a folder too long for it is refused.  0, or -1 with
 * the reason on stderr, prefixed with `who`. */
int dg_bench_run_open(const char *who, const char *tag, const char *dir,
    const char *longest, char *run, size_t size, bool *made);

/* `disagg up -f INI` (up) or `disagg down` on `run`, their report in
 * RUN/up.out or RUN/down.out.  Their exit status. */
int dg_bench_up_down(const char *run, bool up, const char *ini);

/* Set by SIGINT, SIGTERM or SIGHUP once dg_bench_catch_stop() ran: up's
 * handlers only end its own wait; these end a benchmark's waits, and
 * the benchmark still brings its topology down. */
extern volatile sig_atomic_t dg_bench_stop;
void dg_bench_catch_stop(void);

/* The run folder and everything in it. */
void dg_bench_run_remove(const char *run);

#endif
