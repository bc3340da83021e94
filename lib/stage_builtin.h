/*  stage_builtin.h: the stages compiled into libdisagg, for dg_stage_find
 *  (stage.c).  Private to lib/.  */
#ifndef DG_STAGE_BUILTIN_H
#define DG_STAGE_BUILTIN_H

#include "stage.h"

extern const dg_stage_ops_t dg_stage_null_ops;          /* stage_null.c */
extern const dg_stage_ops_t dg_stage_ref_encoder_ops;   /* stage_ref.c */
extern const dg_stage_ops_t dg_stage_ref_transformer_ops;
extern const dg_stage_ops_t dg_stage_ref_decoder_ops;
/* "python:MODULE:CLASS": the class on embedded CPython (stage_python.c). */
#define DG_STAGE_PYTHON_PREFIX "python:"
extern const dg_stage_ops_t dg_stage_python_ops;

#endif
