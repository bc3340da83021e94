/*  console.h: the operator console (`disagg console`), shared between
 *  its files: console.c (options, connection, the one loop),
 *  console_table.c (each view as a table of text: sort, filter,
 *  search), console_draw.c (ncurses drawing), console_actions.c (the
 *  action table: keys, function bar, help and handlers) and
 *  console_batch.c (text snapshots without a terminal).
 *
 *  One thread.  Replies and PUB messages only ever replace the model
 *  (the last reply of each kind); drawing rebuilds the table of the
 *  current view from it, so a slow or absent controller never holds a
 *  key press up.  */
#ifndef DG_CONSOLE_H
#define DG_CONSOLE_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "proto.h"

typedef enum {
	DG_VIEW_OVERVIEW = 0,
	DG_VIEW_QUEUES,
	DG_VIEW_ROOMS,
	DG_VIEW_THREADS,
	DG_VIEW_SOCKETS,
	DG_VIEW_EVENTS,
	DG_VIEW_COUNT
} dg_view_t;

/* ---- tables (console_table.c) ------------------------------------------ */

#define DG_CT_MAXCOLS 15

typedef struct {
	const char *title;
	int width;
	bool right;             /* numbers align right */
	bool numeric;           /* sorts by num[], not by text */
} dg_ct_col_t;

typedef struct {
	char *cell[DG_CT_MAXCOLS];
	double num[DG_CT_MAXCOLS];
	char name[64];          /* the instance a row is about, or "" */
	uint64_t room;          /* 0: none */
	uint64_t request;       /* 0: none */
	size_t order;           /* position in the reply, the natural sort */
	bool sub;               /* a detail line, drawn dimmer */
} dg_ct_row_t;

typedef struct {
	const dg_ct_col_t *cols;
	int ncols;
	dg_ct_row_t *rows;
	size_t nrows, cap;
	char note[256];         /* shown instead of rows: an error, or why
	                           the view is empty */
} dg_ctable_t;

/* ---- events ------------------------------------------------------------- */

#define DG_EVENTS_MAX 500

typedef struct {
	uint64_t seq;           /* counts every event received */
	int64_t ts_ms;
	char kind[24];
	char name[64];
	uint64_t request, room;
	char message[200];
} dg_event_row_t;

/* ---- the console -------------------------------------------------------- */

/* An outstanding request on the DEALER. */
typedef enum { DG_PEND_INSTANCES, DG_PEND_VIEW, DG_PEND_STATUS,
	       DG_PEND_ACTION } dg_pend_kind_t;

typedef struct {
	uint64_t seq;           /* 0: free */
	dg_pend_kind_t kind;
	dg_view_t view;         /* DG_PEND_VIEW */
	int64_t sent;
	int timeout_ms;
	char label[96];         /* DG_PEND_ACTION: "drain t0" */
} dg_pending_t;

#define DG_PENDING_MAX 16

typedef enum { DG_MODE_NORMAL, DG_MODE_HELP, DG_MODE_CONFIRM,
	       DG_MODE_SEARCH, DG_MODE_FILTER, DG_MODE_FORM } dg_mode_t;

#define DG_FORM_FIELDS 5

typedef struct dg_console dg_console_t;
typedef void (dg_action_fn)(dg_console_t *con);

struct dg_console {
	/* options */
	char endpoint[256];     /* controller ROUTER */
	char publish[256];      /* controller PUB, "" when unknown */
	int delay_ds;           /* refresh interval, tenths of a second */
	bool mono;
	bool batch;
	int iterations;         /* batch snapshots, or curses frames; 0: on */

	/* connection */
	dg_client_t *client;
	zsock_t *sub;
	dg_pending_t pending[DG_PENDING_MAX];
	int64_t last_heard;     /* monotonic ms of the last reply or PUB */
	int64_t last_reconnect;
	int misses;             /* polls in a row that got no answer */
	bool ever_heard;

	/* model: the last reply of each kind, and when it came */
	dg_msg_t *instances;    /* instances.ok, snapshot or error */
	int64_t instances_at;
	dg_msg_t *view_reply[DG_VIEW_COUNT];
	int64_t view_at[DG_VIEW_COUNT];
	char view_for[DG_VIEW_COUNT][64];  /* the daemon a reply is about */
	dg_msg_t *follow_status;  /* status.ok of the followed room */
	uint64_t follow_room, follow_request;
	bool have_counters;
	uint64_t pending_n, active_n, done_n, failed_n;
	dg_event_row_t *events; /* ring of DG_EVENTS_MAX */
	uint64_t nevents;       /* ever received; events[(i) % MAX] */
	uint64_t events_frozen; /* nevents when paused */

	/* ui */
	dg_view_t view;
	dg_mode_t mode;
	char instance[64];      /* the daemon Queues, Threads, Sockets show */
	char sel_key[DG_VIEW_COUNT][64];   /* selection by identity */
	size_t sel[DG_VIEW_COUNT];         /* and by row, as a fallback */
	size_t top[DG_VIEW_COUNT];         /* first row shown */
	int sort_col[DG_VIEW_COUNT];       /* -1: as the controller sent */
	bool sort_rev[DG_VIEW_COUNT];
	bool events_tail;       /* Events: keep the newest row selected */
	char filter[DG_VIEW_COUNT][64];
	char search[64];
	char input[256];        /* the line being typed in a prompt */
	bool paused;
	char status[256];       /* the last outcome, on the status line */
	bool status_error;
	int64_t status_at;
	char confirm_text[160];
	dg_action_fn *confirm_fn;       /* runs on 'y', on the target below */
	char target_name[64];
	uint64_t target_id;
	char form[DG_FORM_FIELDS][128];
	int form_field;
	int help_top;
	bool dirty;
	bool curses;
	volatile int quit;
};

/* console.c */
int dg_cmd_console(int argc, char *argv[]);
int64_t dg_console_interval_ms(const dg_console_t *con);
bool dg_console_connected(const dg_console_t *con, int64_t now);
/* Send `m` (destroyed here) as a request of `kind`; false when it could
 * not be sent or too many are outstanding. */
bool dg_console_request(dg_console_t *con, dg_msg_t *m, dg_pend_kind_t kind,
    dg_view_t view, int timeout_ms, const char *label);
void dg_console_status(dg_console_t *con, bool error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The daemon the per-daemon views show: the selected one, else the first
 * instance listed. */
const char *dg_console_instance(dg_console_t *con);
/* Fetch what the current view needs now (curses: asynchronously). */
void dg_console_poll(dg_console_t *con);
/* Apply one message from the DEALER or SUB; takes it. */
void dg_console_apply(dg_console_t *con, dg_msg_t *m, bool from_pub);
void dg_console_events_add(dg_console_t *con, const dg_event_msg_t *e);
/* Wait until `due` (monotonic ms) at the latest for the keyboard (when
 * `keys`) or the sockets; apply what came, expire what is late.  True
 * when keys may be waiting. */
bool dg_console_pump(dg_console_t *con, int64_t due, bool keys);
/* No request is outstanding. */
bool dg_console_idle(const dg_console_t *con);
/* SIGINT, SIGTERM or SIGHUP came. */
bool dg_console_stopping(void);

/* console_table.c */
extern const char *const dg_view_names[DG_VIEW_COUNT];
extern const char *const dg_view_titles[DG_VIEW_COUNT];
int dg_view_lookup(const char *name);
void dg_ctable_build(dg_console_t *con, dg_view_t view, dg_ctable_t *t);
void dg_ctable_clear(dg_ctable_t *t);
/* One row (or the header when row is NULL) as a line of text. */
void dg_ctable_line(const dg_ctable_t *t, const dg_ct_row_t *row, char *buf,
    size_t size);
/* The row whose identity is `key` ("" or absent: -1). */
long dg_ctable_find(const dg_ctable_t *t, const char *key);
void dg_ctable_row_key(const dg_ct_row_t *row, char *buf, size_t size);
/* Next row from `from` (excluded) whose line contains `text`, going
 * forward or backward with wrap; -1 when none. */
long dg_ctable_search(const dg_ctable_t *t, size_t from, const char *text,
    bool forward);
const char *dg_ctable_sort_name(const dg_console_t *con, dg_view_t view);

/* console_actions.c */
typedef struct {
	int keys[3];            /* 0 ends the list */
	const char *name;
	const char *bar;        /* function bar label, NULL: not on the bar */
	const char *help;
	dg_action_fn *run;
} dg_action_t;

const dg_action_t *dg_console_actions(size_t *count);
/* "F1", "Tab", "C-l", "q"... */
const char *dg_console_key_name(int key, char *buf, size_t size);
/* Handle one key in normal mode; false when no action has it. */
bool dg_console_key(dg_console_t *con, int key);
/* Keys of the modes: prompt lines, the confirmation, the form. */
void dg_console_mode_key(dg_console_t *con, int key);
/* The selected row of the current view (NULL when none); `t` is filled
 * and must be cleared. */
const dg_ct_row_t *dg_console_selected(dg_console_t *con, dg_ctable_t *t);
extern const char *const dg_form_labels[DG_FORM_FIELDS];

/* console_draw.c */
int dg_draw_init(dg_console_t *con);
void dg_draw_end(void);
void dg_draw(dg_console_t *con);

/* console_batch.c */
int dg_console_batch(dg_console_t *con, dg_view_t view);

#endif
