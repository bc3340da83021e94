/*  ref.h: `disagg ref`, the reference pipeline in one process: the three
 *  ref stages on plain memory, no daemons.  Its file is the one a
 *  pipeline of ref stages must write for the same request, byte for
 *  byte.  */
#ifndef DG_REF_H
#define DG_REF_H

/* `disagg ref ...`: argv[0] is "ref".  Exit status as disagg's. */
int dg_ref_main(int argc, char *argv[]);

#endif
