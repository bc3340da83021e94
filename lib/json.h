/*  json.h: the one JSON primitive the CLI's --json output needs: a
 *  quoted, escaped string.  Numbers and the structure are plain printf;
 *  a JSON library would be more than this.  */
#ifndef DG_JSON_H
#define DG_JSON_H

#include <stdio.h>

/* `s` as a JSON string; NULL prints "". */
void dg_json_str(FILE *out, const char *s);

#endif
