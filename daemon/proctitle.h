/*  proctitle.h: the command line ps shows for this process, rewritten in
 *  place ("disaggd: t0 transformer"), as BSD's setproctitle does.  */
#ifndef DG_PROCTITLE_H
#define DG_PROCTITLE_H

/* Remember main's argument area, the room a title has.  Call it from
 * main, before any title is set. */
void dg_proctitle_init(int argc, char *argv[]);

/* Write the title over the arguments (cut to their length).  The
 * arguments' text is gone afterwards: copy what is still needed first. */
void dg_proctitle_set(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

#endif
