/*  console.h: the operator console (`disagg console`), shared between
 *  its files: console.c (options, connection, the one loop),
 *  console_panel.c (what every view's panel does alike), console_views.c,
 *  console_rooms.c and console_events.c (the views), console_history.c
 *  (the Overview's sparklines), console_draw.c (ncurses drawing),
 *  console_actions.c (the action table: keys, function bar, help and
 *  handlers), console_submit.c (a submit followed to its end) and
 *  console_batch.c (text snapshots without a terminal).
 *
 *  One thread.  Replies and PUB messages only ever replace the model
 *  (the last reply of each kind, kept by the panel of the view that
 *  shows it); drawing rebuilds the current panel's rows from it, so a
 *  slow or absent controller never holds a key press up.  */
#ifndef DG_CONSOLE_H
#define DG_CONSOLE_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "console_panel.h"
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

/* ---- the console -------------------------------------------------------- */

/* An outstanding request on the DEALER. */
typedef enum { DG_PEND_INSTANCES, DG_PEND_VIEW, DG_PEND_STATUS,
	       DG_PEND_ACTION, DG_PEND_EVENTS, DG_PEND_SUBMIT } dg_pend_kind_t;

typedef struct {
	uint64_t seq;           /* 0: free */
	dg_pend_kind_t kind;
	dg_view_t view;         /* DG_PEND_VIEW */
	int64_t sent;
	int timeout_ms;
	char label[96];         /* DG_PEND_ACTION: "drain t0" */
} dg_pending_t;

#define DG_PENDING_MAX 16
#define DG_CALL_MS 1000        /* a poll without its reply by then is lost */

typedef enum { DG_MODE_NORMAL, DG_MODE_HELP, DG_MODE_CONFIRM,
	       DG_MODE_SEARCH, DG_MODE_FILTER, DG_MODE_FORM } dg_mode_t;

#define DG_FORM_FIELDS 5

typedef void (dg_action_fn)(dg_console_t *con);

/* The Overview's history of each instance (console_history.c). */
typedef enum { DG_SERIES_RPS, DG_SERIES_P50, DG_SERIES_COUNT } dg_series_t;
typedef struct dg_history dg_history_t;
#define DG_HISTORY_MS (3 * 60 * 1000)   /* what a sparkline spans */

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

	/* model: the instances (every view needs them); the rest is in
	 * the panels */
	dg_msg_t *instances;    /* instances.ok, snapshot or error */
	bool have_counters;
	uint64_t pending_n, active_n, done_n, failed_n, cancelled_n;
	dg_history_t *history;  /* req/s and p50 of each instance */
	uint64_t submitted;     /* a console submit followed to its end */

	/* ui */
	dg_panel_t *panel[DG_VIEW_COUNT];
	dg_view_t view;
	dg_mode_t mode;
	char instance[64];      /* the daemon Queues, Threads, Sockets show */
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
	bool utf8;              /* the locale's: block glyphs, else ASCII */
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
/* The instances of the last instances.ok or snapshot; NULL (and n 0)
 * when none came. */
const dg_instance_row_t *dg_console_rows(const dg_console_t *con,
    size_t *n);
/* Fetch what the current view needs now (curses: asynchronously). */
void dg_console_poll(dg_console_t *con);
/* Make `view` the current one and fetch what it shows. */
void dg_console_show(dg_console_t *con, dg_view_t view);
/* Apply one message from the DEALER or SUB; takes it. */
void dg_console_apply(dg_console_t *con, dg_msg_t *m, bool from_pub);
/* A request of `kind` (for a view: of `view`) is outstanding. */
bool dg_console_outstanding(const dg_console_t *con, dg_pend_kind_t kind,
    dg_view_t view);
/* Wait until `due` (monotonic ms) at the latest for the keyboard (when
 * `keys`) or the sockets; apply what came, expire what is late.  True
 * when keys may be waiting. */
bool dg_console_pump(dg_console_t *con, int64_t due, bool keys);
/* No request is outstanding. */
bool dg_console_idle(const dg_console_t *con);
/* SIGINT, SIGTERM or SIGHUP came. */
bool dg_console_stopping(void);

/* console_views.c */
extern const dg_panel_class_t *const dg_views[DG_VIEW_COUNT];
int dg_view_lookup(const char *name);
/* The current view's panel. */
dg_panel_t *dg_console_panel(const dg_console_t *con);

/* console_rooms.c: the Rooms view can follow one room in a pane. */
extern const dg_panel_class_t dg_rooms_class;
/* Follow `room` (0: stop following). */
void dg_rooms_follow(dg_panel_t *rooms, uint64_t room, uint64_t request);
/* The followed room, or its request; 0: none. */
uint64_t dg_rooms_followed(const dg_panel_t *rooms, bool request);
/* The followed request's status reply (taken). */
void dg_rooms_set_status(dg_panel_t *rooms, dg_msg_t **m_p);

/* console_events.c: the controller's events, the newest few hundred. */
extern const dg_panel_class_t dg_events_class;
/* Those the controller kept come first (its `events` request), then
 * the live ones, each once: a live event is held while the kept ones
 * are on their way. */
void dg_events_live(dg_panel_t *events, const dg_event_msg_t *e);
/* The question for the kept ones past what is shown, asked at every
 * refresh; NULL when this controller keeps none.  Once sent, the live
 * ones are held until dg_events_kept. */
dg_msg_t *dg_events_ask(dg_panel_t *events);
/* Its answer: events.ok, an error (this controller keeps none), or
 * NULL (lost, or not sent); takes nothing. */
void dg_events_kept(dg_panel_t *events, const dg_msg_t *m);
/* A new connection: ask again even a controller that kept none. */
void dg_events_resync(dg_panel_t *events);
/* While paused, the view shows the events up to now. */
void dg_events_freeze(dg_panel_t *events);

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
extern const char *const dg_form_labels[DG_FORM_FIELDS];

/* console_draw.c */
int dg_draw_init(dg_console_t *con);
void dg_draw_end(void);
void dg_draw(dg_console_t *con);
/* For the panels' draw functions: a refreshed panel's table (its column
 * titles on the row above y), text cut at the screen's edge (returns the column
 * after it; attr is a curses attr_t), and a line in the colours of the
 * column titles. */
void dg_draw_table(dg_panel_t *p, dg_console_t *con, int y, int h,
    int64_t now);
int dg_draw_put(int y, int x, unsigned attr, const char *text);
void dg_draw_title_line(int y, const char *text);

/* console_history.c */
dg_history_t *dg_history_new(int64_t window_ms, int64_t interval_ms);
void dg_history_destroy(dg_history_t **self_p);
/* One sample of each instance's req/s and p50, taken at `now`. */
void dg_history_sample(dg_history_t *self, int64_t now,
    const dg_instance_row_t *rows, size_t n);
size_t dg_history_count(const dg_history_t *self, const char *name);
/* `width` glyphs of `name`'s series over the window up to `now`: the
 * higher the glyph, the nearer the series' top there; blank where no
 * sample was taken. */
const char *dg_history_spark(const dg_history_t *self, const char *name,
    dg_series_t series, int width, int64_t now, bool utf8, char *buf,
    size_t size);

/* console_submit.c: a console submit, followed until its result (or
 * its status says it ended) puts the outcome on the status line. */
void dg_submit_accepted(dg_console_t *con, uint64_t request);
/* A result (from the DEALER: it answers no request of ours) or the
 * followed request's status.ok; takes nothing. */
void dg_submit_result(dg_console_t *con, const dg_msg_t *m);
/* At each poll: the followed request's status. */
void dg_submit_poll(dg_console_t *con);

/* console_batch.c */
int dg_console_batch(dg_console_t *con, dg_view_t view);

#endif
