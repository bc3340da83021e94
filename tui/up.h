/*  up.h: `disagg up` starts every daemon of a topology on this host (a
 *  built-in one-host pipeline when no file is given) and waits until the
 *  stages have registered; `disagg down` stops what it started, and the
 *  daemons of that topology started by hand; `disagg restart NAME`
 *  restarts one daemon up started.  They keep their state in the run
 *  folder (run.h): up.ini, config, pids, NAME.log.  */
#ifndef DG_UP_H
#define DG_UP_H

/* argv[0] is "up" or "down".  Exit codes as client.h says. */
int dg_cmd_up(int argc, char *argv[]);
int dg_cmd_down(int argc, char *argv[]);
int dg_cmd_restart(int argc, char *argv[]);

#endif
