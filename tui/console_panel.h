/*  console_panel.h: one view of the console as a panel, after htop's
 *  Panel: each view's panel holds its own rows, selection, scroll,
 *  sort and filter, and its class (a small vtable) says how the view
 *  makes its rows, how it draws and what its keys do where views
 *  differ.  Which key does what stays in the one action table
 *  (console_actions.c); an action works on the current view's panel.
 *
 *  A panel's columns are the console columns of a row description
 *  (rows.h), so the console shows a row from the same description as
 *  the CLI's text and JSON.  */
#ifndef DG_CONSOLE_PANEL_H
#define DG_CONSOLE_PANEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "rows.h"

typedef struct dg_console dg_console_t;
typedef struct dg_panel dg_panel_t;

/* One row: the texts of the panel's columns and what it is about. */
typedef struct {
	char **cell;            /* one per column */
	double *num;            /* what each cell sorts by */
	char *name;             /* the instance the row is about, or NULL */
	uint64_t room;          /* 0: none */
	uint64_t request;       /* 0: none */
	size_t order;           /* position in the reply, the natural sort */
} dg_prow_t;

/* How a column gives way on a narrow screen: by priority (0: pinned,
 * never dropped nor scrolled off; the higher, the sooner it is left
 * out), after first taking a narrower title and width when it has one.
 * A column a class does not list has DG_FIT_PRIO. */
typedef struct {
	const char *key;        /* the column's JSON key; NULL ends a list */
	int prio;
	const char *narrow_title;       /* NULL: none */
	int narrow_width;
} dg_fit_t;

#define DG_FIT_PRIO 5

/* A column on screen (dg_panel_fit). */
typedef struct {
	int col;                /* index in the panel's columns */
	int width;
	const char *title;
} dg_shown_t;

typedef struct {
	const char *name;       /* "rooms", for -v */
	const char *title;      /* "Rooms", on the view bar */
	size_t size;            /* of the panel: a class may extend it */
	const dg_rows_t *(*rows)(void); /* the description of its columns */
	dg_op_t op;             /* what it asks for; 0: nothing of its own */
	bool per_daemon;        /* about one daemon: the selected instance */
	bool live;              /* rows come as they happen, never stale */
	bool tails;             /* End keeps the newest row selected */
	const char *colour_key; /* the column whose word colours a row */
	const dg_fit_t *fit;    /* how its columns give way; NULL: alike */

	/* The rows, from the model: dg_panel_add_rows, or a note. */
	void (*build)(dg_panel_t *p, const dg_console_t *con);
	/* The body from screen row y, h rows; NULL: the table alone. */
	void (*draw)(dg_panel_t *p, dg_console_t *con, int y, int h,
	    int64_t now);
	/* Enter on `row` (NULL: none); false (or NULL) leaves it to the
	 * default, following the row's room (htop's IGNORED). */
	bool (*follow)(dg_panel_t *p, dg_console_t *con, const dg_prow_t *row);
	/* What choosing `row` also means here; NULL: nothing. */
	void (*selected)(dg_panel_t *p, dg_console_t *con,
	    const dg_prow_t *row);
	/* Requests beyond `op` when the view polls; NULL: none. */
	void (*poll)(dg_panel_t *p, dg_console_t *con);
	/* Frees what a class added; NULL: nothing. */
	void (*done)(dg_panel_t *p);
} dg_panel_class_t;

struct dg_panel {
	const dg_panel_class_t *cls;
	const dg_rows_t *desc;
	const dg_col_t **cols;  /* its console columns */
	int ncols;

	/* the model: the last reply of the view's op */
	dg_msg_t *reply;
	int64_t at;             /* monotonic ms it came (the overview's
	                           instances too) */
	char about[64];         /* the daemon it is about */

	dg_prow_t *rows;
	size_t nrows, cap;
	char note[256];         /* shown instead of rows: an error, or why
	                           the view is empty */

	size_t sel;             /* the selected row */
	char sel_key[64];       /* and its identity, which survives a sort
	                           and rows coming and going */
	char sel_next[64];      /* its neighbours' at the last refresh: */
	char sel_prev[64];      /* where it goes when it vanishes */
	size_t top;             /* first row shown */
	int sort_col;           /* -1: as the controller sent */
	bool sort_rev;
	bool tail;              /* keep the newest row selected (tails) */
	char filter[64];

	/* what the screen shows (dg_panel_fit) */
	dg_shown_t *shown;
	int nshown;
	int hidden;             /* columns left out for room */
	int hscroll;            /* 0: by priority; n: from the n-th
	                           unpinned column on */
};

/* NULL when memory is short. */
dg_panel_t *dg_panel_new(const dg_panel_class_t *cls);
void dg_panel_destroy(dg_panel_t **p_p);
/* The view's reply (taken), when it came and whom it is about. */
void dg_panel_set_reply(dg_panel_t *p, dg_msg_t **m_p, int64_t at,
    const char *about);

/* Rebuild the rows from the model, filter, sort, and find the
 * selection again by its identity (a vanished one: its nearest
 * neighbour that is left); the selected row or NULL.  Rows live until
 * the next refresh. */
const dg_prow_t *dg_panel_refresh(dg_panel_t *p, const dg_console_t *con);
/* For builds: a reply that is missing or an error becomes the note;
 * true then. */
bool dg_panel_no_rows(dg_panel_t *p, const dg_msg_t *m, const char *what);
/* Append n rows of `rows`, each column under the panel column of the
 * same console title ("-" under one it lacks). */
void dg_panel_add_rows(dg_panel_t *p, const dg_rows_t *rows,
    const void *first, size_t n);

/* Select row i (clamped), remembering its identity. */
void dg_panel_select(dg_panel_t *p, dg_console_t *con, long i);
/* One row, or the titles when row is NULL, as a line of text: every
 * column (batch mode, search and filter look at all of them). */
void dg_panel_line(const dg_panel_t *p, const dg_prow_t *row, char *buf,
    size_t size);
/* Choose the columns a screen `width` wide shows: every one when they
 * fit; else the narrow forms, then the fewest drops by priority.
 * Scrolled (`hscroll` n > 0), the pinned ones and the unpinned ones
 * from the n-th on, in their order, as many as fit, so that scrolling
 * reaches every column; `hidden` counts those right of the screen, or
 * left out. */
void dg_panel_fit(dg_panel_t *p, int width);
/* One row, or the titles, as the screen shows it (dg_panel_fit). */
void dg_panel_fit_line(const dg_panel_t *p, const dg_prow_t *row,
    char *buf, size_t size);
/* Display columns of `s` (UTF-8 when the locale is), at most `max`;
 * *bytes gets the bytes that many columns take. */
int dg_text_width(const char *s, int max, size_t *bytes);
/* "room 12", an instance name, or "#3": what a selection remembers. */
void dg_panel_row_key(const dg_prow_t *row, char *buf, size_t size);
/* The row whose identity is `key`; -1 when none. */
long dg_panel_find(const dg_panel_t *p, const char *key);
/* The next row from `from` (excluded) whose line contains `text`,
 * forward or backward with wrap; -1 when none. */
long dg_panel_search(const dg_panel_t *p, size_t from, const char *text,
    bool forward);
/* The column with JSON key `key`; -1 when none. */
int dg_panel_col(const dg_panel_t *p, const char *key);
/* Sort by the column `step` places on (the natural order is one). */
void dg_panel_sort_step(dg_panel_t *p, int step);
/* The sort column's title, or "natural". */
const char *dg_panel_sort_name(const dg_panel_t *p);

#endif
