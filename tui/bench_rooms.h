/*  bench_rooms.h: `disagg bench rooms`, rooms held by one stage daemon
 *  and their failover when it dies.  */
#ifndef DG_BENCH_ROOMS_H
#define DG_BENCH_ROOMS_H

int dg_bench_rooms(int argc, char *argv[]);

#endif
