/*  console_panel.c: what every panel does alike (console_panel.h):
 *  rows from a description, filter, sort, selection by identity, the
 *  columns that fit the screen, and each row as the line of text that
 *  the screen shows, batch mode prints, and search and filter look
 *  in.  */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "console_panel.h"

dg_panel_t *
dg_panel_new(const dg_panel_class_t *cls)
{
	const dg_rows_t *desc = cls->rows();
	dg_panel_t *p = desc ? calloc(1, cls->size) : NULL;

	if (!p)
		return NULL;
	p->cls = cls;
	p->desc = desc;
	p->sort_col = -1;
	p->tail = cls->tails;
	p->cols = calloc(desc->ncols, sizeof *p->cols);
	p->shown = calloc(desc->ncols, sizeof *p->shown);
	for (size_t i = 0; p->cols && i < desc->ncols; i++)
		if (desc->cols[i].console.width)
			p->cols[p->ncols++] = &desc->cols[i];
	if (!p->cols || !p->shown)
		dg_panel_destroy(&p);
	return p;
}

static void
s_free_row(const dg_panel_t *p, dg_prow_t *r)
{
	for (int c = 0; r->cell && c < p->ncols; c++)
		free(r->cell[c]);
	free(r->cell);
	free(r->num);
	free(r->name);
	memset(r, 0, sizeof *r);
}

static void
s_clear(dg_panel_t *p)
{
	for (size_t i = 0; i < p->nrows; i++)
		s_free_row(p, &p->rows[i]);
	p->nrows = 0;
	p->note[0] = '\0';
}

void
dg_panel_destroy(dg_panel_t **p_p)
{
	dg_panel_t *p = *p_p;

	if (!p)
		return;
	if (p->cls->done)
		p->cls->done(p);
	s_clear(p);
	free(p->rows);
	free(p->cols);
	free(p->shown);
	dg_msg_destroy(&p->reply);
	free(p);
	*p_p = NULL;
}

void
dg_panel_set_reply(dg_panel_t *p, dg_msg_t **m_p, int64_t at,
    const char *about)
{
	dg_msg_destroy(&p->reply);
	p->reply = *m_p;
	*m_p = NULL;
	p->at = at;
	snprintf(p->about, sizeof p->about, "%s", about ? about : "");
}

static void s_line(const dg_panel_t *p, const dg_shown_t *shown, int n,
    const dg_prow_t *row, char *buf, size_t size);

/* ---- building ---------------------------------------------------------- */

bool
dg_panel_no_rows(dg_panel_t *p, const dg_msg_t *m, const char *what)
{
	if (!m) {
		snprintf(p->note, sizeof p->note, "waiting for %s ...", what);
		return true;
	}
	if (m->op == DG_OP_ERROR) {
		snprintf(p->note, sizeof p->note, "%s: %s: %s", what,
		    m->u.error.code ? m->u.error.code : "error",
		    m->u.error.message ? m->u.error.message : "");
		return true;
	}
	return false;
}

static dg_prow_t *
s_new_row(dg_panel_t *p)
{
	if (p->nrows == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 32;
		dg_prow_t *rows = realloc(p->rows, cap * sizeof *rows);
		if (!rows)
			return NULL;
		p->rows = rows;
		p->cap = cap;
	}
	dg_prow_t *r = &p->rows[p->nrows];
	memset(r, 0, sizeof *r);
	r->cell = calloc((size_t)p->ncols, sizeof *r->cell);
	r->num = calloc((size_t)p->ncols, sizeof *r->num);
	if (!r->cell || !r->num) {
		s_free_row(p, r);
		return NULL;
	}
	r->order = p->nrows++;
	return r;
}

/* Which column of `rows` goes under each panel column: map[c] is its
 * index, or -1.  NULL when memory is short. */
static int *
s_map(const dg_panel_t *p, const dg_rows_t *rows)
{
	int *map = calloc((size_t)p->ncols + 1, sizeof *map);

	for (int c = 0; map && c < p->ncols; c++) {
		const dg_surface_t con = DG_SURFACE_CONSOLE;
		const char *title = dg_col_title(p->cols[c], con);
		map[c] = -1;
		for (size_t k = 0; k < rows->ncols && map[c] < 0; k++)
			if (rows->cols[k].console.width && strcmp(title,
			    dg_col_title(&rows->cols[k], con)) == 0)
				map[c] = (int)k;
	}
	return map;
}

/* What the row is about, from the columns the description names. */
static void
s_about(dg_prow_t *r, const dg_rows_t *rows, const void *row)
{
	const dg_col_t *name = dg_rows_col(rows, rows->name_key);
	const dg_col_t *room = dg_rows_col(rows, rows->room_key);
	const dg_col_t *request = dg_rows_col(rows, rows->request_key);
	const char *s = name ? dg_col_str(name, row) : NULL;

	r->name = s ? strdup(s) : NULL;
	r->room = room ? dg_col_u64(room, row) : 0;
	r->request = request ? dg_col_u64(request, row) : 0;
}

void
dg_panel_add_rows(dg_panel_t *p, const dg_rows_t *rows, const void *first,
    size_t n)
{
	int *map = s_map(p, rows);
	char buf[DG_CELL_MAX];

	for (size_t i = 0; map && i < n; i++) {
		const void *row = (const char *)first + i * rows->size;
		dg_prow_t *r = s_new_row(p);
		if (!r)
			break;
		s_about(r, rows, row);
		for (int c = 0; c < p->ncols; c++)
			r->cell[c] = strdup(map[c] < 0 ? "-" :
			    dg_col_cell(&rows->cols[map[c]], DG_SURFACE_CONSOLE,
			    row, buf, sizeof buf, &r->num[c]));
	}
	free(map);
}

/* ---- filter and sort --------------------------------------------------- */

static void
s_filter(dg_panel_t *p)
{
	size_t keep = 0;
	char line[512];

	if (!p->filter[0])
		return;
	for (size_t i = 0; i < p->nrows; i++) {
		dg_panel_line(p, &p->rows[i], line, sizeof line);
		if (strcasestr(line, p->filter))
			p->rows[keep++] = p->rows[i];
		else
			s_free_row(p, &p->rows[i]);
	}
	if (keep == 0 && p->nrows > 0)
		snprintf(p->note, sizeof p->note, "no row matches the filter "
		    "'%s' (\\ to change it)", p->filter);
	p->nrows = keep;
}

static int
s_compare(const void *pa, const void *pb, void *arg)
{
	const dg_prow_t *a = pa, *b = pb;
	const dg_panel_t *p = arg;
	int col = p->sort_col;
	int c = 0;

	if (col >= 0) {
		/* By the value first (0 for text), then the text; the
		 * reply's order breaks ties so that rows do not jump. */
		if (a->num[col] != b->num[col])
			c = a->num[col] < b->num[col] ? -1 : 1;
		else if (a->cell[col] && b->cell[col])
			c = strcmp(a->cell[col], b->cell[col]);
	}
	if (c == 0)
		c = a->order < b->order ? -1 : a->order > b->order;
	return p->sort_rev ? -c : c;
}

/* The selected row's identity and its neighbours', so that the next
 * refresh finds it (or, gone, the row that was next to it) wherever
 * the rows moved: the selection stays on an item, not a position. */
static void
s_remember(dg_panel_t *p)
{
	const size_t n = sizeof p->sel_key;

	dg_panel_row_key(&p->rows[p->sel], p->sel_key, n);
	p->sel_next[0] = p->sel_prev[0] = '\0';
	if (p->sel + 1 < p->nrows)
		dg_panel_row_key(&p->rows[p->sel + 1], p->sel_next, n);
	if (p->sel > 0)
		dg_panel_row_key(&p->rows[p->sel - 1], p->sel_prev, n);
}

const dg_prow_t *
dg_panel_refresh(dg_panel_t *p, const dg_console_t *con)
{
	s_clear(p);
	p->cls->build(p, con);
	s_filter(p);
	if (p->sort_col >= p->ncols)
		p->sort_col = -1;
	if (p->nrows > 1)
		qsort_r(p->rows, p->nrows, sizeof *p->rows, s_compare, p);
	if (p->nrows == 0)
		return NULL;
	if (p->cls->tails && p->tail) {
		p->sel = p->nrows - 1;
	} else {
		long i = dg_panel_find(p, p->sel_key);
		if (i < 0)
			i = dg_panel_find(p, p->sel_next);
		if (i < 0)
			i = dg_panel_find(p, p->sel_prev);
		if (i >= 0)
			p->sel = (size_t)i;
		else if (p->sel >= p->nrows)
			p->sel = p->nrows - 1;
	}
	s_remember(p);
	return &p->rows[p->sel];
}

void
dg_panel_sort_step(dg_panel_t *p, int step)
{
	int n = p->ncols + 1;

	p->sort_col = (p->sort_col + 1 + step + n) % n - 1;
}

const char *
dg_panel_sort_name(const dg_panel_t *p)
{
	if (p->sort_col < 0 || p->sort_col >= p->ncols)
		return "natural";
	return dg_col_title(p->cols[p->sort_col], DG_SURFACE_CONSOLE);
}

/* ---- selection and lines ----------------------------------------------- */

void
dg_panel_select(dg_panel_t *p, dg_console_t *con, long i)
{
	if (p->nrows == 0)
		return;
	if (i < 0)
		i = 0;
	if ((size_t)i >= p->nrows)
		i = (long)p->nrows - 1;
	p->sel = (size_t)i;
	dg_panel_row_key(&p->rows[i], p->sel_key, sizeof p->sel_key);
	if (p->cls->tails)
		p->tail = (size_t)i == p->nrows - 1;
	if (p->cls->selected)
		p->cls->selected(p, con, &p->rows[i]);
}

void
dg_panel_line(const dg_panel_t *p, const dg_prow_t *row, char *buf,
    size_t size)
{
	dg_shown_t all[64];
	int n = 0;

	for (int c = 0; c < p->ncols && n < 64; c++)
		all[n++] = (dg_shown_t){ .col = c,
		    .width = p->cols[c]->console.width,
		    .title = dg_col_title(p->cols[c], DG_SURFACE_CONSOLE) };
	s_line(p, all, n, row, buf, size);
}

void
dg_panel_row_key(const dg_prow_t *row, char *buf, size_t size)
{
	if (row->name && row->name[0] && !row->room)
		snprintf(buf, size, "%s", row->name);
	else if (row->room)
		snprintf(buf, size, "room %llu", (unsigned long long)row->room);
	else
		snprintf(buf, size, "#%zu", row->order);
}

long
dg_panel_find(const dg_panel_t *p, const char *key)
{
	char k[64];

	if (!key || !*key)
		return -1;
	for (size_t i = 0; i < p->nrows; i++) {
		dg_panel_row_key(&p->rows[i], k, sizeof k);
		if (strcmp(k, key) == 0)
			return (long)i;
	}
	return -1;
}

long
dg_panel_search(const dg_panel_t *p, size_t from, const char *text,
    bool forward)
{
	char line[512];

	if (!*text || p->nrows == 0)
		return -1;
	for (size_t k = 1; k <= p->nrows; k++) {
		size_t i = forward ? (from + k) % p->nrows :
		    (from + p->nrows - k % p->nrows) % p->nrows;
		dg_panel_line(p, &p->rows[i], line, sizeof line);
		if (strcasestr(line, text))
			return (long)i;
	}
	return -1;
}

int
dg_panel_col(const dg_panel_t *p, const char *key)
{
	for (int c = 0; key && c < p->ncols; c++)
		if (p->cols[c]->key && strcmp(p->cols[c]->key, key) == 0)
			return c;
	return -1;
}

/* ---- the columns that fit ---------------------------------------------- */

int
dg_text_width(const char *s, int max, size_t *bytes)
{
	mbstate_t st;
	size_t at = 0, len = strlen(s);
	int cols = 0;

	memset(&st, 0, sizeof st);
	while (at < len) {
		wchar_t wc;
		size_t n = mbrtowc(&wc, s + at, len - at, &st);
		int w = 1;
		if (n == (size_t)-1 || n == (size_t)-2) {
			/* Not text in this locale: a byte a column. */
			memset(&st, 0, sizeof st);
			n = 1;
		} else {
			w = wcwidth(wc);
			if (w < 0)
				w = 1;
		}
		if (cols + w > max)
			break;
		cols += w;
		at += n ? n : 1;
	}
	if (bytes)
		*bytes = at;
	return cols;
}

static const dg_fit_t *
s_fit_of(const dg_panel_t *p, int c)
{
	const char *key = p->cols[c]->key;

	for (const dg_fit_t *f = p->cls->fit; f && f->key && key; f++)
		if (strcmp(f->key, key) == 0)
			return f;
	return NULL;
}

static int
s_prio(const dg_panel_t *p, int c)
{
	const dg_fit_t *f = s_fit_of(p, c);

	return f ? f->prio : DG_FIT_PRIO;
}

/* The width of the shown columns with their separators. */
static int
s_shown_width(const dg_panel_t *p)
{
	int w = p->nshown ? p->nshown - 1 : 0;

	for (int i = 0; i < p->nshown; i++)
		w += p->shown[i].width;
	return w;
}

/* The narrow forms, when the columns shown do not fit. */
static void
s_narrow(dg_panel_t *p, int width)
{
	if (s_shown_width(p) <= width)
		return;
	for (int i = 0; i < p->nshown; i++) {
		const dg_fit_t *f = s_fit_of(p, p->shown[i].col);
		if (f && f->narrow_width) {
			p->shown[i].width = f->narrow_width;
			p->shown[i].title = f->narrow_title;
		}
	}
}

/* Drop shown column i. */
static void
s_drop(dg_panel_t *p, int i)
{
	memmove(&p->shown[i], &p->shown[i + 1],
	    (size_t)(p->nshown - i - 1) * sizeof *p->shown);
	p->nshown--;
}

void
dg_panel_fit(dg_panel_t *p, int width)
{
	int unpinned = 0, skip;

	for (int c = 0; c < p->ncols; c++)
		unpinned += s_prio(p, c) > 0;
	if (p->hscroll > unpinned)
		p->hscroll = unpinned;
	if (p->hscroll < 0)
		p->hscroll = 0;
	/* Pinned ones, and the unpinned ones from the scroll on. */
	skip = p->hscroll ? p->hscroll - 1 : 0;
	p->nshown = 0;
	for (int c = 0; c < p->ncols; c++) {
		if (s_prio(p, c) > 0 && skip > 0) {
			skip--;
			continue;
		}
		p->shown[p->nshown++] = (dg_shown_t){ .col = c,
		    .width = p->cols[c]->console.width,
		    .title = dg_col_title(p->cols[c], DG_SURFACE_CONSOLE) };
	}
	s_narrow(p, width);
	while (s_shown_width(p) > width) {
		/* Scrolled: the columns in their order, as many as fit.
		 * Not: the least needed go, the rightmost of equals
		 * first. */
		int worst = -1, wp = 0;
		for (int i = 0; i < p->nshown; i++) {
			int pr = s_prio(p, p->shown[i].col);
			if (pr > 0 && (p->hscroll || pr >= wp)) {
				worst = i;
				wp = pr;
			}
		}
		if (worst < 0)
			break;
		s_drop(p, worst);
	}
	/* Scrolled past: those left of the first shown. */
	p->hidden = p->ncols - p->nshown -
	    (p->hscroll ? p->hscroll - 1 : 0);
}

/* `text` in `width` display columns, on the right or the left; a text
 * wider than its column keeps all of it (an endpoint or a name cut
 * would hide what it is). */
static size_t
s_pad(char *buf, size_t size, const char *text, int width, bool right)
{
	int w = dg_text_width(text, 1 << 20, NULL);
	int pad = w < width ? width - w : 0;
	int n = snprintf(buf, size, "%*s%s%*s", right ? pad : 0, "", text,
	    right ? 0 : pad, "");

	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* A row, or the titles, in the columns `shown`. */
static void
s_line(const dg_panel_t *p, const dg_shown_t *shown, int n,
    const dg_prow_t *row, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && len + 2 < size; i++) {
		const dg_shown_t *sh = &shown[i];
		const dg_col_t *col = p->cols[sh->col];
		const char *text = row ? row->cell[sh->col] : sh->title;
		/* The last column is not padded when it holds text. */
		int width = i == n - 1 && !col->right ? 0 : sh->width;
		if (i)
			buf[len++] = ' ';
		len += s_pad(buf + len, size - len, text ? text : "", width,
		    col->right);
	}
	buf[len] = '\0';
}

void
dg_panel_fit_line(const dg_panel_t *p, const dg_prow_t *row, char *buf,
    size_t size)
{
	s_line(p, p->shown, p->nshown, row, buf, size);
}
