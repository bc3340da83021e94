/*  bench_pipeline.h: `disagg bench pipeline`.  */
#ifndef DG_BENCH_PIPELINE_H
#define DG_BENCH_PIPELINE_H

int dg_bench_pipeline(int argc, char *argv[]);

#endif
