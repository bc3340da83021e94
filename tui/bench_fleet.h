/*  bench_fleet.h: `disagg bench fleet`, open-loop load with deadlines
 *  against a fleet of step_ms stages, one run per placement policy.  */
#ifndef DG_BENCH_FLEET_H
#define DG_BENCH_FLEET_H

int dg_bench_fleet(int argc, char *argv[]);

#endif
