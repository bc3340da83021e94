/*  cmd_keygen.h: `disagg keygen`.  */
#ifndef DG_CMD_KEYGEN_H
#define DG_CMD_KEYGEN_H

int dg_cmd_keygen(int argc, char *argv[]);

#endif
