/*  rows_cell.c: the formats a column can give its cells (rows.h), the
 *  ones more than one column uses.  Short enough for a narrow column,
 *  and each keeps the value itself as the console's sort key, so that
 *  "1m05s" sorts after "59.0s".  */
#include <inttypes.h>
#include <stdio.h>

#include "proto.h"
#include "rows.h"

void
dg_fmt_age(char *buf, size_t size, int64_t ms)
{
	if (ms < 0)
		snprintf(buf, size, "-");
	else if (ms < 1000)
		snprintf(buf, size, "%" PRId64 "ms", ms);
	else if (ms < 60000)
		snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, size, "%" PRId64 "m%02" PRId64 "s", ms / 60000,
		    ms / 1000 % 60);
	else
		snprintf(buf, size, "%" PRId64 "h%02" PRId64 "m", ms / 3600000,
		    ms / 60000 % 60);
}

const char *
dg_cell_age(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	int64_t ms = dg_col_i64(col, row);

	*sort = (double)ms;
	dg_fmt_age(buf, size, ms);
	return buf;
}

/* The CLI's durations have always been coarser than the console's. */
const char *
dg_cell_age_cli(const dg_col_t *col, const void *row, char *buf,
    size_t size, double *sort)
{
	int64_t ms = dg_col_i64(col, row);

	*sort = (double)ms;
	if (ms < 0)
		snprintf(buf, size, "-");
	else if (ms < 10000)
		snprintf(buf, size, "%" PRId64 "ms", ms);
	else
		snprintf(buf, size, "%" PRId64 "s", ms / 1000);
	return buf;
}

const char *
dg_cell_secs(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	int64_t ms = dg_col_i64(col, row);

	*sort = (double)ms;
	snprintf(buf, size, "%" PRId64 "s", ms / 1000);
	return buf;
}

const char *
dg_cell_id(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	uint64_t id = dg_col_u64(col, row);

	*sort = (double)id;
	if (id)
		snprintf(buf, size, "%" PRIu64, id);
	else
		snprintf(buf, size, "-");
	return buf;
}

const char *
dg_cell_places(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	const dg_stage_row_t *p = *(const dg_stage_row_t *const *)
	    ((const char *)row + col->offset);
	size_t n = *(const size_t *)((const char *)row + col->count_offset);
	size_t len = 0;

	*sort = 0;
	buf[0] = '\0';
	for (size_t i = 0; p && i < n && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s",
		    i ? " > " : "", p[i].name);
	return n ? buf : "-";
}

const char *
dg_cell_dash(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	const char *s = dg_col_str(col, row);

	(void)buf;
	(void)size;
	*sort = 0;
	return s && *s ? s : "-";
}

const char *
dg_cell_step(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	int64_t step = dg_col_i64(col, row);
	int64_t steps = *(const int64_t *)((const char *)row + col->offset +
	    sizeof(int64_t));

	*sort = (double)step;
	if (steps <= 0)
		return "-";
	snprintf(buf, size, "%lld/%lld", (long long)step, (long long)steps);
	return buf;
}

const char *
dg_cell_bytes(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	static const char units[] = "KMGTP";
	uint64_t n = dg_col_u64(col, row);
	double v = (double)n;
	int u = -1;

	*sort = (double)n;
	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	if (u < 0)
		snprintf(buf, size, "%" PRIu64, n);
	else
		snprintf(buf, size, "%.1f%c", v, units[u]);
	return buf;
}

/* The value in `unit`s, printf'd by `fmt`; it sorts by the value. */
static const char *
s_scaled(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort, const char *fmt, double unit)
{
	*sort = dg_col_num(col, row);
	snprintf(buf, size, fmt, *sort / unit);
	return buf;
}

const char *
dg_cell_us_as_ms(const dg_col_t *col, const void *row, char *buf,
    size_t size, double *sort)
{
	return s_scaled(col, row, buf, size, sort, "%.1f", 1000.0);
}

const char *
dg_cell_cpu(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	return s_scaled(col, row, buf, size, sort, "%.2fs", 1e6);
}

const char *
dg_cell_cpu_cli(const dg_col_t *col, const void *row, char *buf,
    size_t size, double *sort)
{
	return s_scaled(col, row, buf, size, sort, "%.3fs", 1e6);
}

const char *
dg_cell_tenth(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	return s_scaled(col, row, buf, size, sort, "%.1f", 1.0);
}

/* A mode is text to the console's sort, as it always was. */
const char *
dg_cell_mode(const dg_col_t *col, const void *row, char *buf, size_t size,
    double *sort)
{
	(void)buf;
	(void)size;
	*sort = 0;
	return dg_col_bool(col, row) ? "bind" : "connect";
}
