/*  rows.h: each kind of row the admin ops return (instances, queues,
 *  rooms, threads, sockets and fabric rails) described once, as a table
 *  of columns, and printed from that description as the CLI's text
 *  tables, as its --json objects and as the console's cells.  A column
 *  says where its value is in the decoded row, its JSON key, and how
 *  each surface shows it; a surface that leaves it out has width 0.
 *
 *  The surfaces do not show a row alike (the CLI prints raw counts and
 *  whole seconds where the console prints "4.8M" and "1m05s"): those
 *  differences are written in the columns, side by side, rather than in
 *  printf formats spread over the commands.
 *
 *  rows.c prints, rows_cell.c formats one cell, rows_catalog.c holds
 *  the descriptions.  */
#ifndef DG_ROWS_H
#define DG_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
	DG_COL_NONE,            /* no field: the cell function makes it */
	DG_COL_STR,             /* const char * */
	DG_COL_INT,             /* int64_t */
	DG_COL_UINT,            /* uint64_t */
	DG_COL_FLOAT,           /* double */
	DG_COL_BOOL,            /* bool */
	DG_COL_PLACES           /* const dg_stage_row_t *, its count at
	                           count_offset: the chain of a request */
} dg_col_type_t;

typedef enum { DG_SURFACE_TEXT, DG_SURFACE_CONSOLE } dg_surface_t;

typedef struct dg_col dg_col_t;

/* Room for any cell a format makes: a double in %f runs to 309 digits. */
#define DG_CELL_MAX 400

/* A cell's text: the field itself (a pointer into the row) or `buf`.
 * *sort gets what the console sorts the column by: the value of a
 * number, 0 for text (the text then decides).  `size` is DG_CELL_MAX. */
typedef const char *(dg_cell_fn)(const dg_col_t *col, const void *row,
    char *buf, size_t size, double *sort);

/* How one surface shows a column. */
typedef struct {
	int width;              /* 0: not on this surface */
	dg_cell_fn *cell;       /* NULL: the value as it is */
	const char *title;      /* NULL: the column's header */
} dg_look_t;

struct dg_col {
	const char *header;
	const char *key;        /* its JSON key; NULL: not in JSON */
	dg_col_type_t type;
	size_t offset;          /* of the field in the row */
	bool right;             /* numbers align right */
	bool stage;             /* the instance a stage of the room ran on */
	size_t count_offset;    /* DG_COL_PLACES: of the size_t count */
	dg_look_t text, console;
};

typedef struct {
	const char *name;       /* "rooms" */
	size_t size;            /* of one row, to walk an array of them */
	const dg_col_t *cols;
	size_t ncols;
	/* What a row is about, as JSON keys of its columns (NULL: not
	 * that): the console selects, follows and acts on these. */
	const char *name_key, *room_key, *request_key;
} dg_rows_t;

/* ---- the descriptions (rows_catalog.c) --------------------------------- */

const dg_rows_t *dg_rows_instances(void);
const dg_rows_t *dg_rows_queues(void);
/* NULL when memory is short: its stage columns are made from the wire
 * catalogue at the first call. */
const dg_rows_t *dg_rows_rooms(void);
const dg_rows_t *dg_rows_threads(void);
const dg_rows_t *dg_rows_sockets(void);
/* Rails have their own table in the CLI; the console shows them among
 * the sockets, each rail column under the socket column its console
 * title names. */
const dg_rows_t *dg_rows_rails(void);

/* ---- one column (rows.c) ------------------------------------------------ */

const dg_look_t *dg_col_look(const dg_col_t *col, dg_surface_t surface);
const char *dg_col_title(const dg_col_t *col, dg_surface_t surface);
/* The cell of `row` under `col` on `surface` (see dg_cell_fn). */
const char *dg_col_cell(const dg_col_t *col, dg_surface_t surface,
    const void *row, char *buf, size_t size, double *sort);
/* The field as a string (STR; else NULL) or a number (0 when it is not
 * one). */
const char *dg_col_str(const dg_col_t *col, const void *row);
double dg_col_num(const dg_col_t *col, const void *row);
/* The field of an INT, UINT or BOOL column; 0 or false for others. */
int64_t dg_col_i64(const dg_col_t *col, const void *row);
uint64_t dg_col_u64(const dg_col_t *col, const void *row);
bool dg_col_bool(const dg_col_t *col, const void *row);
/* The column whose JSON key is `key`; NULL when none or key is NULL. */
const dg_col_t *dg_rows_col(const dg_rows_t *rows, const char *key);
/* The printf width of a cell: negative pads on the right. */
int dg_col_pad(const dg_col_t *col, dg_surface_t surface);

/* ---- printing (rows.c) -------------------------------------------------- */

/* The CLI's table: the header line, then one line per row. */
void dg_rows_text(FILE *out, const dg_rows_t *rows, const void *first,
    size_t n);
/* A JSON array of one object per row. */
void dg_rows_json(FILE *out, const dg_rows_t *rows, const void *first,
    size_t n);

/* ---- cell formats (rows_cell.c), for the descriptions ------------------- */

/* ms as "850ms", "12.4s", "3m05s", "2h10m" (dg_cell_age's text). */
void dg_fmt_age(char *buf, size_t size, int64_t ms);

dg_cell_fn dg_cell_id;          /* 0: "-" */
dg_cell_fn dg_cell_places;      /* a chain as "e0 > h0 > l0 > d0" */
dg_cell_fn dg_cell_dash;        /* NULL or "": "-" */
/* "12/50" from the int64 step at the column's offset and the steps right
 * after it (every row with a step has them side by side); "-" for 0 of
 * 0.  Sorts by the step, as every number sorts by its value. */
dg_cell_fn dg_cell_step;
dg_cell_fn dg_cell_age;         /* ms as "850ms", "12.4s", "3m05s" */
dg_cell_fn dg_cell_age_cli;     /* ms as "850ms" below 10 s, "12s" */
dg_cell_fn dg_cell_secs;        /* ms as whole seconds, "12s" */
dg_cell_fn dg_cell_bytes;       /* "1023", "4.8M" */
dg_cell_fn dg_cell_us_as_ms;    /* microseconds as "1.2" ms */
dg_cell_fn dg_cell_cpu;         /* microseconds as "1.23s" */
dg_cell_fn dg_cell_cpu_cli;     /* microseconds as "1.234s" */
dg_cell_fn dg_cell_tenth;       /* "12.3" */
dg_cell_fn dg_cell_mode;        /* bind or connect */

#endif
