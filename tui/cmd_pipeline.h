/*  cmd_pipeline.h: submit, status, cancel, instances, drain, undrain.  */
#ifndef DG_CMD_PIPELINE_H
#define DG_CMD_PIPELINE_H

int dg_cmd_submit(int argc, char *argv[]);
int dg_cmd_status(int argc, char *argv[]);
int dg_cmd_cancel(int argc, char *argv[]);
int dg_cmd_instances(int argc, char *argv[]);
int dg_cmd_drain(int argc, char *argv[]);
int dg_cmd_undrain(int argc, char *argv[]);

#endif
