/*  console_draw.c: the console's screen, with ncurses.  Each frame is
 *  drawn whole from the model (erase, draw, refresh: curses sends only
 *  what changed), so a resize is just the next frame.
 *
 *      row 0       title, controller, connection, request counters
 *      row 1       the views (current one marked), daemon, sort, filter
 *      row 2       column titles
 *      rows 3..    the table; a followed room's pane at the bottom
 *      LINES-2     status line: outcome of the last action, or a prompt
 *      LINES-1     function bar (from the action table)
 *
 *  Colours have roles (htop's ColorElements); the monochrome scheme
 *  (-C, NO_COLOR, or a terminal without colours) uses reverse and bold,
 *  and every state is spelled out, never shown by colour alone.  */
#define _GNU_SOURCE
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "lifecycle.h"

enum { P_HEAD = 1, P_SEL, P_BAR, P_OK, P_WARN, P_BAD, P_TITLE };

static bool s_active;
static bool s_color;

int
dg_draw_init(dg_console_t *con)
{
	if (!initscr())
		return -1;
	s_active = true;
	cbreak();               /* C-c stays SIGINT: a clean exit */
	noecho();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);  /* the loop waits in zmq_poll, not getch */
	set_escdelay(25);
	curs_set(0);
	s_color = !con->mono && has_colors();
	if (s_color) {
		start_color();
		use_default_colors();
		init_pair(P_HEAD, COLOR_BLACK, COLOR_GREEN);
		init_pair(P_SEL, COLOR_BLACK, COLOR_CYAN);
		init_pair(P_BAR, COLOR_BLACK, COLOR_CYAN);
		init_pair(P_OK, COLOR_GREEN, -1);
		init_pair(P_WARN, COLOR_YELLOW, -1);
		init_pair(P_BAD, COLOR_RED, -1);
		init_pair(P_TITLE, COLOR_CYAN, -1);
	}
	return 0;
}

void
dg_draw_end(void)
{
	if (s_active) {
		s_active = false;
		endwin();
	}
}

static attr_t
s_attr(int pair, attr_t mono)
{
	return s_color ? COLOR_PAIR(pair) : mono;
}

/* `text` at (y, x), cut at the screen's edge: by display columns, not
 * bytes, since a sparkline's glyph is three bytes of UTF-8. */
static int
s_put(int y, int x, attr_t a, const char *text)
{
	size_t bytes;

	if (y < 0 || y >= LINES || x >= COLS)
		return x;
	int n = dg_text_width(text, COLS - x, &bytes);
	attrset(a);
	mvaddnstr(y, x, text, (int)bytes);
	attrset(A_NORMAL);
	return x + n;
}

/* A whole line in `a`, padded to the right edge. */
static void
s_line(int y, attr_t a, const char *text)
{
	if (y < 0 || y >= LINES)
		return;
	attrset(a);
	mvhline(y, 0, ' ', COLS);
	attrset(A_NORMAL);
	s_put(y, 0, a, text);
}

int
dg_draw_put(int y, int x, unsigned attr, const char *text)
{
	return s_put(y, x, attr, text);
}

void
dg_draw_title_line(int y, const char *text)
{
	s_line(y, s_attr(P_HEAD, A_REVERSE), text);
}

/* The request counters, in short words when the full ones leave no
 * room for the endpoint on a narrow screen. */
static void
s_counters(const dg_console_t *con, char *buf, size_t size, bool brief)
{
	snprintf(buf, size, brief ? "  pend %llu act %llu done %llu "
	    "fail %llu canc %llu" : "  pending %llu  active %llu  done %llu"
	    "  failed %llu  cancelled %llu",
	    (unsigned long long)con->pending_n,
	    (unsigned long long)con->active_n,
	    (unsigned long long)con->done_n,
	    (unsigned long long)con->failed_n,
	    (unsigned long long)con->cancelled_n);
}

static void
s_header(dg_console_t *con, int64_t now)
{
	char buf[512], counts[160];
	bool up = dg_console_connected(con, now);
	int x = s_put(0, 0, s_attr(P_TITLE, A_BOLD) | A_BOLD, "disagg console");

	/* What counts comes first; the endpoint, which does not change,
	 * last, where a narrow screen cuts it. */
	x = s_put(0, x, A_NORMAL, "  ");
	if (up) {
		x = s_put(0, x, s_attr(P_OK, A_BOLD), "connected");
	} else if (!con->ever_heard) {
		x = s_put(0, x, s_attr(P_BAD, A_BOLD) | A_BOLD,
		    "disconnected: waiting for the controller");
	} else {
		snprintf(buf, sizeof buf, "disconnected: no answer for %.1f s, "
		    "reconnecting", (double)(now - con->last_heard) / 1000.0);
		x = s_put(0, x, s_attr(P_BAD, A_BOLD) | A_BOLD, buf);
	}
	if (con->have_counters) {
		s_counters(con, counts, sizeof counts, false);
		if (x + (int)strlen(counts) > COLS)
			s_counters(con, counts, sizeof counts, true);
		x = s_put(0, x, A_NORMAL, counts);
	}
	if (con->paused) {
		x = s_put(0, x, A_NORMAL, "  ");
		x = s_put(0, x, s_attr(P_WARN, A_BOLD) | A_BOLD | A_REVERSE,
		    " PAUSED ");
	}
	snprintf(buf, sizeof buf, "  every %.1f s  %s",
	    (double)con->delay_ds / 10, con->endpoint);
	s_put(0, x, A_NORMAL, buf);

	/* Row 1: the views, then what the view is about. */
	x = 0;
	for (int v = 0; v < DG_VIEW_COUNT; v++) {
		snprintf(buf, sizeof buf, " %d %s ", v + 1, dg_views[v]->title);
		x = s_put(1, x, v == (int)con->view ?
		    s_attr(P_SEL, A_REVERSE) | A_BOLD : A_NORMAL, buf);
	}
	buf[0] = '\0';
	const char *inst = dg_console_instance(con);
	const dg_panel_t *p = dg_console_panel(con);
	size_t len = 0;
	if (p->cls->per_daemon)
		len += (size_t)snprintf(buf + len, sizeof buf - len,
		    "  daemon %s", inst ? inst : "-");
	if (p->sort_col >= 0 || p->sort_rev)
		len += (size_t)snprintf(buf + len, sizeof buf - len,
		    "  sort %s%s", dg_panel_sort_name(p),
		    p->sort_rev ? " (reversed)" : "");
	if (p->filter[0])
		len += (size_t)snprintf(buf + len, sizeof buf - len,
		    "  filter '%s'", p->filter);
	/* Columns off the screen: left of it (scrolled), right of it or
	 * left out; and the keys that bring them. */
	int left = p->hscroll ? p->hscroll - 1 : 0;
	if (left && p->hidden)
		snprintf(buf + len, sizeof buf - len, " cols <%d %d>", left,
		    p->hidden);
	else if (left)
		snprintf(buf + len, sizeof buf - len, " cols <%d (Left)",
		    left);
	else if (p->hidden)
		snprintf(buf + len, sizeof buf - len, " cols %d> (Right)",
		    p->hidden);
	s_put(1, x, A_BOLD, buf);
}

/* A row whose word says something is wrong is red, a draining one
 * yellow; the word is there too, for the monochrome screen. */
static attr_t
s_row_attr(const dg_panel_t *p, const dg_prow_t *r)
{
	int c = dg_panel_col(p, p->cls->colour_key);
	const char *word = c >= 0 ? r->cell[c] : NULL;

	if (!word)
		return A_NORMAL;
	int inst = dg_inst_state_lookup(word);
	if (inst == DG_INST_DEAD || inst == DG_INST_UNHEALTHY ||
	    dg_req_state_lookup(word) == DG_REQ_FAILED)
		return s_attr(P_BAD, A_BOLD);
	if (!strncmp(word, "drain", 5) || !strcmp(word, "undrain"))
		return s_attr(P_WARN, A_NORMAL);
	return A_NORMAL;
}

void
dg_draw_table(dg_panel_t *p, dg_console_t *con, int y0, int h, int64_t now)
{
	char line[1024];
	const dg_prow_t *sel = p->nrows ? &p->rows[p->sel] : NULL;
	/* Data older than two refreshes is dim: it is what was, not what
	 * is. */
	bool stale = !p->cls->live && (!dg_console_connected(con, now) ||
	    now - p->at > 2 * dg_console_interval_ms(con) + 1000);

	dg_panel_fit_line(p, NULL, line, sizeof line);
	dg_draw_title_line(y0 - 1, line);
	if (p->nrows == 0 && p->note[0])
		s_put(y0, 1, A_BOLD, p->note);
	size_t *top = &p->top;
	if (sel && p->sel < *top)
		*top = p->sel;
	if (sel && h > 0 && p->sel >= *top + (size_t)h)
		*top = p->sel - (size_t)h + 1;
	if (*top >= p->nrows)
		*top = 0;
	for (int i = 0; i < h && *top + (size_t)i < p->nrows; i++) {
		const dg_prow_t *r = &p->rows[*top + (size_t)i];
		dg_panel_fit_line(p, r, line, sizeof line);
		attr_t a = r == sel ? s_attr(P_SEL, A_REVERSE) |
		    A_BOLD : s_row_attr(p, r);
		if (stale && r != sel)
			a |= A_DIM;
		s_line(y0 + i, a, line);
	}
	if (stale && con->ever_heard && p->at) {
		snprintf(line, sizeof line, " data %.1f s old ",
		    (double)(now - p->at) / 1000.0);
		s_put(y0 - 1, COLS - (int)strlen(line) > 0 ?
		    COLS - (int)strlen(line) : 0, A_BOLD | A_REVERSE, line);
	}
}

/* The current view's panel, between the view bar and the status line. */
static void
s_panel(dg_console_t *con, int64_t now)
{
	dg_panel_t *p = dg_console_panel(con);
	int y0 = 3;

	dg_panel_refresh(p, con);
	dg_panel_fit(p, COLS);
	if (p->cls->draw)
		p->cls->draw(p, con, y0, LINES - 2 - y0, now);
	else
		dg_draw_table(p, con, y0, LINES - 2 - y0, now);
}

static void
s_status(dg_console_t *con)
{
	char buf[512];
	int y = LINES - 2;

	move(y, 0);
	clrtoeol();
	switch (con->mode) {
	case DG_MODE_CONFIRM:
		s_put(y, 0, s_attr(P_WARN, A_BOLD) | A_BOLD, con->confirm_text);
		return;
	case DG_MODE_SEARCH:
	case DG_MODE_FILTER:
		snprintf(buf, sizeof buf, "%s: %s_", con->mode == DG_MODE_SEARCH ?
		    "Search" : "Filter", con->input);
		s_put(y, 0, A_BOLD, buf);
		s_put(y, (int)strlen(buf) + 2, A_DIM, "Enter: keep  Esc: "
		    "cancel");
		return;
	default:
		break;
	}
	if (con->status[0])
		s_put(y, 0, con->status_error ? s_attr(P_BAD, A_BOLD) | A_BOLD :
		    A_NORMAL, con->status);
}

/* The bar's labels: in htop's six columns and a blank, or, when that
 * is wider than the screen, as they are (every one fits in 80). */
static int
s_bar_width(const dg_action_t *a, size_t n, bool padded)
{
	char key[16];
	int w = 0;

	for (size_t i = 0; i < n; i++) {
		int len = a[i].bar ? (int)strlen(a[i].bar) : 0;
		if (a[i].bar)
			w += (int)strlen(dg_console_key_name(a[i].keys[0], key,
			    sizeof key)) + (padded ? (len > 6 ? len : 6) + 1 :
			    len);
	}
	return w;
}

static void
s_function_bar(void)
{
	size_t n;
	const dg_action_t *a = dg_console_actions(&n);
	char key[16], label[16];
	int y = LINES - 1, x = 0;
	bool padded = s_bar_width(a, n, true) <= COLS;

	move(y, 0);
	clrtoeol();
	for (size_t i = 0; i < n && x < COLS; i++) {
		if (!a[i].bar)
			continue;
		x = s_put(y, x, A_NORMAL, dg_console_key_name(a[i].keys[0], key,
		    sizeof key));
		snprintf(label, sizeof label, padded ? "%-6s " : "%s",
		    a[i].bar);
		x = s_put(y, x, s_attr(P_BAR, A_REVERSE), label);
	}
	if (x < COLS) {
		attrset(s_attr(P_BAR, A_REVERSE));
		mvhline(y, x, ' ', COLS - x);
		attrset(A_NORMAL);
	}
}

/* A box in the middle of the screen; its inner origin and size. */
static void
s_box(int want_h, int want_w, int *y, int *x, int *h, int *w)
{
	*h = want_h < LINES - 2 ? want_h : LINES - 2;
	*w = want_w < COLS - 2 ? want_w : COLS - 2;
	*y = (LINES - *h) / 2;
	*x = (COLS - *w) / 2;
	for (int r = 0; r < *h; r++) {
		move(*y + r, *x);
		for (int c = 0; c < *w; c++)
			addch(' ');
	}
	attrset(A_BOLD);
	mvhline(*y, *x, ACS_HLINE, *w);
	mvhline(*y + *h - 1, *x, ACS_HLINE, *w);
	mvvline(*y, *x, ACS_VLINE, *h);
	mvvline(*y, *x + *w - 1, ACS_VLINE, *h);
	mvaddch(*y, *x, ACS_ULCORNER);
	mvaddch(*y, *x + *w - 1, ACS_URCORNER);
	mvaddch(*y + *h - 1, *x, ACS_LLCORNER);
	mvaddch(*y + *h - 1, *x + *w - 1, ACS_LRCORNER);
	attrset(A_NORMAL);
}

static void
s_help(dg_console_t *con)
{
	size_t n;
	const dg_action_t *a = dg_console_actions(&n);
	int y, x, h, w;
	char keys[64], k[16], line[256];

	s_box((int)n + 4, 96, &y, &x, &h, &w);
	s_put(y, x + 2, A_BOLD, " disagg console: keys (any other key "
	    "closes) ");
	int rows = h - 2;
	if (con->help_top > (int)n - rows)
		con->help_top = (int)n - rows > 0 ? (int)n - rows : 0;
	for (int i = 0; i < rows && con->help_top + i < (int)n; i++) {
		const dg_action_t *e = &a[con->help_top + i];
		keys[0] = '\0';
		for (int j = 0; j < 3 && e->keys[j]; j++) {
			dg_console_key_name(e->keys[j], k, sizeof k);
			/* Enter is there twice (two key codes). */
			if (j && strstr(keys, k))
				continue;
			snprintf(keys + strlen(keys), sizeof keys - strlen(keys),
			    "%s%s", j ? " " : "", k);
		}
		snprintf(line, sizeof line, "%-14s %s", keys, e->help);
		move(y + 1 + i, x + 2);
		attrset(A_BOLD);
		addnstr(line, 14 < w - 4 ? 14 : w - 4);
		attrset(A_NORMAL);
		if (w - 4 > 14)
			addnstr(line + 14, w - 4 - 14);
	}
}

static void
s_form(dg_console_t *con)
{
	int y, x, h, w;
	char line[256];

	s_box(DG_FORM_FIELDS + 5, 72, &y, &x, &h, &w);
	s_put(y, x + 2, A_BOLD, " Submit a request ");
	for (int i = 0; i < DG_FORM_FIELDS && 1 + i < h - 1; i++) {
		snprintf(line, sizeof line, "%10s: %s%s", dg_form_labels[i],
		    con->form[i], i == con->form_field ? "_" : "");
		move(y + 1 + i, x + 2);
		attrset(i == con->form_field ? s_attr(P_SEL, A_REVERSE) :
		    A_NORMAL);
		addnstr(line, w - 4);
		attrset(A_NORMAL);
	}
	if (h > DG_FORM_FIELDS + 3)
		s_put(y + h - 2, x + 2, A_DIM, "Tab/Down: next field  "
		    "Enter: submit  Esc: cancel");
}

void
dg_draw(dg_console_t *con)
{
	int64_t now = zclock_mono();

	erase();
	if (LINES < 6 || COLS < 20) {
		s_put(0, 0, A_BOLD, "disagg console: the terminal is too "
		    "small");
		refresh();
		return;
	}
	/* The panel first: the header says which columns it left out. */
	s_panel(con, now);
	s_header(con, now);
	s_status(con);
	s_function_bar();
	if (con->mode == DG_MODE_HELP)
		s_help(con);
	else if (con->mode == DG_MODE_FORM)
		s_form(con);
	refresh();
}
