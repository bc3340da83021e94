/*  rows.c: printing rows from their descriptions (rows.h): the CLI's
 *  text tables and JSON, and the cells the console lays out.  */
#include <inttypes.h>
#include <string.h>

#include "json.h"
#include "proto.h"
#include "rows.h"

#define S_FIELD(row, col, type) \
	(*(const type *)(const void *)((const char *)(row) + (col)->offset))

const dg_look_t *
dg_col_look(const dg_col_t *col, dg_surface_t surface)
{
	return surface == DG_SURFACE_TEXT ? &col->text : &col->console;
}

const char *
dg_col_title(const dg_col_t *col, dg_surface_t surface)
{
	const dg_look_t *look = dg_col_look(col, surface);

	return look->title ? look->title : col->header;
}

int
dg_col_pad(const dg_col_t *col, dg_surface_t surface)
{
	int width = dg_col_look(col, surface)->width;

	return col->right ? width : -width;
}

const char *
dg_col_str(const dg_col_t *col, const void *row)
{
	return col->type == DG_COL_STR ? S_FIELD(row, col, char *) : NULL;
}

double
dg_col_num(const dg_col_t *col, const void *row)
{
	switch (col->type) {
	case DG_COL_INT: return (double)S_FIELD(row, col, int64_t);
	case DG_COL_UINT: return (double)S_FIELD(row, col, uint64_t);
	case DG_COL_FLOAT: return S_FIELD(row, col, double);
	default: return 0;
	}
}

int64_t
dg_col_i64(const dg_col_t *col, const void *row)
{
	return col->type == DG_COL_INT ? S_FIELD(row, col, int64_t) : 0;
}

uint64_t
dg_col_u64(const dg_col_t *col, const void *row)
{
	return col->type == DG_COL_UINT ? S_FIELD(row, col, uint64_t) : 0;
}

bool
dg_col_bool(const dg_col_t *col, const void *row)
{
	return col->type == DG_COL_BOOL && S_FIELD(row, col, bool);
}

/* The value as it is: what a surface shows when the column names no
 * cell function. */
static const char *
s_plain(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	const char *s = dg_col_str(col, row);

	*sort = dg_col_num(col, row);
	switch (col->type) {
	case DG_COL_STR:
		/* Only an optional field is ever absent. */
		return s ? s : "-";
	case DG_COL_INT:
		snprintf(buf, size, "%" PRId64, S_FIELD(row, col, int64_t));
		return buf;
	case DG_COL_UINT:
		snprintf(buf, size, "%" PRIu64, S_FIELD(row, col, uint64_t));
		return buf;
	case DG_COL_FLOAT:
		snprintf(buf, size, "%.2f", S_FIELD(row, col, double));
		return buf;
	case DG_COL_BOOL:
		return S_FIELD(row, col, bool) ? "true" : "false";
	default:
		return "";
	}
}

const char *
dg_col_cell(const dg_col_t *col, dg_surface_t surface, const void *row,
    char *buf, size_t size, double *sort)
{
	dg_cell_fn *cell = dg_col_look(col, surface)->cell;
	double ignored;

	if (!sort)
		sort = &ignored;
	*sort = 0;
	return (cell ? cell : s_plain)(col, row, buf, size, sort);
}

const dg_col_t *
dg_rows_col(const dg_rows_t *rows, const char *key)
{
	for (size_t i = 0; key && i < rows->ncols; i++)
		if (rows->cols[i].key && strcmp(rows->cols[i].key, key) == 0)
			return &rows->cols[i];
	return NULL;
}

/* ---- the CLI's text ---------------------------------------------------- */

/* One line: `row` NULL is the header.  Every cell is padded, the last
 * one too, as the CLI always printed them. */
static void
s_text_line(FILE *out, const dg_rows_t *rows, const void *row)
{
	char buf[DG_CELL_MAX];
	bool first = true;

	for (size_t i = 0; i < rows->ncols; i++) {
		const dg_col_t *col = &rows->cols[i];
		if (!col->text.width)
			continue;
		const char *text = row ? dg_col_cell(col, DG_SURFACE_TEXT, row,
		    buf, sizeof buf, NULL) : dg_col_title(col, DG_SURFACE_TEXT);
		fprintf(out, "%s%*s", first ? "" : " ",
		    dg_col_pad(col, DG_SURFACE_TEXT), text);
		first = false;
	}
	fputc('\n', out);
}

void
dg_rows_text(FILE *out, const dg_rows_t *rows, const void *first, size_t n)
{
	s_text_line(out, rows, NULL);
	for (size_t i = 0; i < n; i++)
		s_text_line(out, rows, (const char *)first + i * rows->size);
}

/* ---- JSON --------------------------------------------------------------- */

static void
s_json_value(FILE *out, const dg_col_t *col, const void *row)
{
	switch (col->type) {
	case DG_COL_STR:
		dg_json_str(out, dg_col_str(col, row));
		break;
	case DG_COL_INT:
		fprintf(out, "%" PRId64, S_FIELD(row, col, int64_t));
		break;
	case DG_COL_UINT:
		fprintf(out, "%" PRIu64, S_FIELD(row, col, uint64_t));
		break;
	case DG_COL_FLOAT:
		fprintf(out, "%.2f", S_FIELD(row, col, double));
		break;
	case DG_COL_BOOL:
		fputs(S_FIELD(row, col, bool) ? "true" : "false", out);
		break;
	case DG_COL_PLACES: {
		const dg_stage_row_t *p = S_FIELD(row, col,
		    const dg_stage_row_t *);
		size_t n = *(const size_t *)((const char *)row +
		    col->count_offset);
		fputc('[', out);
		for (size_t i = 0; p && i < n; i++) {
			fputs(i ? ",{\"role\":" : "{\"role\":", out);
			dg_json_str(out, p[i].role);
			fputs(",\"name\":", out);
			dg_json_str(out, p[i].name);
			fputc('}', out);
		}
		fputc(']', out);
		break;
	}
	default:
		fputs("null", out);
		break;
	}
}

void
dg_rows_json(FILE *out, const dg_rows_t *rows, const void *first, size_t n)
{
	fputc('[', out);
	for (size_t i = 0; i < n; i++) {
		const void *row = (const char *)first + i * rows->size;
		bool lead = true;
		fputs(i ? ",{" : "{", out);
		for (size_t c = 0; c < rows->ncols; c++) {
			const dg_col_t *col = &rows->cols[c];
			if (!col->key)
				continue;
			fputs(lead ? "" : ",", out);
			dg_json_str(out, col->key);
			fputc(':', out);
			s_json_value(out, col, row);
			lead = false;
		}
		fputc('}', out);
	}
	fputc(']', out);
}
