/*  console_actions.c: the console's action table (htop's Action.c and
 *  tig's request list in one): each entry names its keys, its label on
 *  the function bar, its help line and its handler.  Key dispatch, the
 *  function bar, the help overlay and `disagg console --keys` (which
 *  the man page test reads) are all generated from it, so none of them
 *  can forget a key.  Also here: the keys of the modes (prompts, the
 *  y/n confirmation, the submit form).  */
#define _GNU_SOURCE
#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "registry.h"

#define S_ACTION_MS 3000

const char *const dg_form_labels[DG_FORM_FIELDS] = {
	"prompt", "frames", "size WxH", "steps", "seed"
};

/* ---- selection --------------------------------------------------------- */

static void
s_move(dg_console_t *con, long delta)
{
	dg_panel_t *p = dg_console_panel(con);

	dg_panel_refresh(p, con);
	dg_panel_select(p, con, (long)p->sel + delta);
}

static int
s_page(void)
{
	return LINES > 8 ? LINES - 6 : 1;
}

static void s_up(dg_console_t *con) { s_move(con, -1); }
static void s_down(dg_console_t *con) { s_move(con, 1); }
static void s_pgup(dg_console_t *con) { s_move(con, -s_page()); }
static void s_pgdn(dg_console_t *con) { s_move(con, s_page()); }
static void s_home(dg_console_t *con) { s_move(con, -1000000); }
static void s_end(dg_console_t *con) { s_move(con, 1000000); }

/* Columns: Right shows them all in their order, a column further
 * each time; Left goes back, to the columns chosen by priority. */
static void
s_scroll(dg_console_t *con, int step)
{
	dg_panel_t *p = dg_console_panel(con);

	if (step > 0 && p->hidden == 0) {
		dg_console_status(con, false, "%s", p->hscroll ?
		    "the last column is on the screen (Left scrolls back)" :
		    "every column is on the screen");
		return;
	}
	if (step < 0 && p->hscroll == 0)
		return;
	p->hscroll += step;
}

static void s_left(dg_console_t *con) { s_scroll(con, -1); }
static void s_right(dg_console_t *con) { s_scroll(con, 1); }

/* ---- views ------------------------------------------------------------- */

static void s_view1(dg_console_t *c) { dg_console_show(c, DG_VIEW_OVERVIEW); }
static void s_view2(dg_console_t *c) { dg_console_show(c, DG_VIEW_QUEUES); }
static void s_view3(dg_console_t *c) { dg_console_show(c, DG_VIEW_ROOMS); }
static void s_view4(dg_console_t *c) { dg_console_show(c, DG_VIEW_THREADS); }
static void s_view5(dg_console_t *c) { dg_console_show(c, DG_VIEW_SOCKETS); }
static void s_view6(dg_console_t *c) { dg_console_show(c, DG_VIEW_EVENTS); }

static void
s_next_view(dg_console_t *con)
{
	dg_console_show(con, (dg_view_t)((con->view + 1) % DG_VIEW_COUNT));
}

static void
s_prev_view(dg_console_t *con)
{
	dg_console_show(con, (dg_view_t)((con->view + DG_VIEW_COUNT - 1) %
	    DG_VIEW_COUNT));
}

/* ---- comforts ---------------------------------------------------------- */

static void
s_help(dg_console_t *con)
{
	con->mode = DG_MODE_HELP;
	con->help_top = 0;
}

static void
s_search(dg_console_t *con)
{
	con->mode = DG_MODE_SEARCH;
	con->input[0] = '\0';
}

static void
s_find(dg_console_t *con, bool forward, bool from_here)
{
	dg_panel_t *p = dg_console_panel(con);
	const dg_prow_t *row = dg_panel_refresh(p, con);
	size_t from = p->sel;

	if (!con->search[0]) {
		dg_console_status(con, true, "no search yet: / to search");
	} else if (row || p->nrows == 0) {
		/* Typing a search first looks at the selected row itself. */
		if (from_here && p->nrows)
			from = (from + p->nrows - 1) % p->nrows;
		long i = dg_panel_search(p, from, con->search, forward);
		if (i < 0)
			dg_console_status(con, true, "'%s' not found",
			    con->search);
		else
			dg_panel_select(p, con, i);
	}
}

static void s_next(dg_console_t *con) { s_find(con, true, false); }
static void s_prev(dg_console_t *con) { s_find(con, false, false); }

static void
s_filter(dg_console_t *con)
{
	con->mode = DG_MODE_FILTER;
	snprintf(con->input, sizeof con->input, "%s",
	    dg_console_panel(con)->filter);
}

static void
s_sorted(dg_console_t *con)
{
	const dg_panel_t *p = dg_console_panel(con);

	dg_console_status(con, false, "sorted by %s%s", dg_panel_sort_name(p),
	    p->sort_rev ? ", reversed" : "");
}

static void
s_sort(dg_console_t *con, int step)
{
	dg_panel_sort_step(dg_console_panel(con), step);
	s_sorted(con);
}

static void s_sort_next(dg_console_t *con) { s_sort(con, 1); }
static void s_sort_prev(dg_console_t *con) { s_sort(con, -1); }

static void
s_invert(dg_console_t *con)
{
	dg_panel_t *p = dg_console_panel(con);

	p->sort_rev = !p->sort_rev;
	s_sorted(con);
}

static void
s_pause(dg_console_t *con)
{
	con->paused = !con->paused;
	dg_events_freeze(con->panel[DG_VIEW_EVENTS]);
	dg_console_status(con, false, con->paused ? "paused: Z to resume" :
	    "resumed");
	if (!con->paused)
		dg_console_poll(con);
}

static void
s_redraw(dg_console_t *con)
{
	clearok(curscr, TRUE);
	con->dirty = true;
}

static void
s_back(dg_console_t *con)
{
	dg_rooms_follow(con->panel[DG_VIEW_ROOMS], 0, 0);
	con->status[0] = '\0';
}

static void
s_quit(dg_console_t *con)
{
	con->quit = 1;
}

/* Enter: what it means is the view's; by default, the selected row's
 * room is followed in the Rooms view. */
static void
s_follow(dg_console_t *con)
{
	dg_panel_t *p = dg_console_panel(con);
	const dg_prow_t *row = dg_panel_refresh(p, con);

	if (p->cls->follow && p->cls->follow(p, con, row))
		return;
	if (!row || !row->room) {
		dg_console_status(con, true, "nothing to follow here: select a "
		    "room");
		return;
	}
	dg_rooms_follow(con->panel[DG_VIEW_ROOMS], row->room, row->request);
	dg_console_status(con, false, "following room %llu (Esc stops)",
	    (unsigned long long)row->room);
	dg_console_show(con, DG_VIEW_ROOMS);
}

/* ---- actions on the pipeline ------------------------------------------ */

static void
s_confirm(dg_console_t *con, dg_action_fn *fn, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
s_confirm(dg_console_t *con, dg_action_fn *fn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(con->confirm_text, sizeof con->confirm_text, fmt, ap);
	va_end(ap);
	con->confirm_fn = fn;
	con->mode = DG_MODE_CONFIRM;
}

static void
s_send_action(dg_console_t *con, dg_msg_t *m, const char *label)
{
	if (!dg_console_request(con, m, DG_PEND_ACTION, 0, S_ACTION_MS,
	    label))
		dg_console_status(con, true, "%s: cannot send it now "
		    "(disconnected?)", label);
	else
		dg_console_status(con, false, "%s ...", label);
}

static void
s_do_drain(dg_console_t *con, bool drain)
{
	char label[96];
	dg_msg_t *m = dg_msg_new(drain ? DG_OP_DRAIN : DG_OP_UNDRAIN);

	snprintf(label, sizeof label, "%s %s", drain ? "drain" : "undrain",
	    con->target_name);
	if (m)
		m->u.drain.name = con->target_name;   /* copied when sent */
	s_send_action(con, m, label);
}

static void s_drain_yes(dg_console_t *con) { s_do_drain(con, true); }

/* The instance an action on "the selected instance" means. */
static bool
s_target_instance(dg_console_t *con)
{
	const char *name = dg_console_instance(con);

	if (!name) {
		dg_console_status(con, true, "no instance selected");
		return false;
	}
	snprintf(con->target_name, sizeof con->target_name, "%s", name);
	return true;
}

/* The role of instance `name` when it is the last of its role that is
 * up, else NULL: draining it leaves that role's requests waiting. */
static const char *
s_last_up(const dg_console_t *con, const char *name)
{
	size_t n;
	const dg_instance_row_t *rows = dg_console_rows(con, &n);
	const dg_instance_row_t *me = NULL;
	size_t others = 0;

	for (size_t i = 0; i < n && !me; i++)
		if (strcmp(rows[i].name, name) == 0)
			me = &rows[i];
	if (!me || dg_inst_state_lookup(me->state) != DG_INST_UP)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (&rows[i] != me && strcmp(rows[i].role, me->role) == 0 &&
		    dg_inst_state_lookup(rows[i].state) == DG_INST_UP)
			others++;
	return others ? NULL : me->role;
}

static void
s_drain(dg_console_t *con)
{
	if (!s_target_instance(con))
		return;
	const char *role = s_last_up(con, con->target_name);
	if (role)
		s_confirm(con, s_drain_yes, "Warning: %s is the last %s up: "
		    "new requests wait. Drain anyway? [y/N]",
		    con->target_name, role);
	else
		s_confirm(con, s_drain_yes, "Drain %s: it gets no new work? "
		    "[y/N]", con->target_name);
}

static void
s_undrain(dg_console_t *con)
{
	if (s_target_instance(con))
		s_do_drain(con, false);
}

/* The selected row's room (want_request: its request). */
static bool
s_target_room(dg_console_t *con, bool want_request)
{
	const dg_prow_t *row = dg_panel_refresh(dg_console_panel(con), con);
	uint64_t id = !row ? 0 : want_request ? row->request : row->room;
	uint64_t followed = dg_rooms_followed(con->panel[DG_VIEW_ROOMS],
	    want_request);

	if (con->view == DG_VIEW_ROOMS && followed)
		id = followed;
	if (!id) {
		dg_console_status(con, true, "select a %s first (Rooms, Queues "
		    "or Events view)", want_request ? "request" : "room");
		return false;
	}
	con->target_id = id;
	return true;
}

static void
s_release_yes(dg_console_t *con)
{
	char label[64];
	dg_msg_t *m = dg_msg_new(DG_OP_RELEASE);

	snprintf(label, sizeof label, "release room %llu",
	    (unsigned long long)con->target_id);
	if (m) {
		m->u.release.room = con->target_id;
		m->u.release.reason = "released from the console";
	}
	s_send_action(con, m, label);
}

static void
s_release(dg_console_t *con)
{
	if (s_target_room(con, false))
		s_confirm(con, s_release_yes, "Release room %llu: its request "
		    "fails and its slots are freed? [y/N]",
		    (unsigned long long)con->target_id);
}

static void
s_cancel_yes(dg_console_t *con)
{
	char label[64];
	dg_msg_t *m = dg_msg_new(DG_OP_CANCEL);

	snprintf(label, sizeof label, "cancel request %llu",
	    (unsigned long long)con->target_id);
	if (m)
		m->u.cancel.request = con->target_id;
	s_send_action(con, m, label);
}

static void
s_cancel(dg_console_t *con)
{
	if (s_target_room(con, true))
		s_confirm(con, s_cancel_yes, "Cancel request %llu? [y/N]",
		    (unsigned long long)con->target_id);
}

static void
s_submit(dg_console_t *con)
{
	static const char *const defaults[DG_FORM_FIELDS] = {
		"a red fox running through fresh snow at dawn", "17", "448x256",
		"8", "42"
	};

	/* The last values stay, so that a second submit is one key. */
	if (!con->form[0][0])
		for (int i = 0; i < DG_FORM_FIELDS; i++)
			snprintf(con->form[i], sizeof con->form[i], "%s",
			    defaults[i]);
	con->form_field = 0;
	con->mode = DG_MODE_FORM;
}

static bool
s_int(const char *s, long long *out)
{
	char *end;

	*out = strtoll(s, &end, 10);
	return *s && !*end;
}

static void
s_submit_send(dg_console_t *con)
{
	long long frames, steps, seed, w = 0, h = 0;
	char *x = strchr(con->form[2], 'x');

	if (x) {
		*x = '\0';
		bool okw = s_int(con->form[2], &w);
		*x = 'x';
		if (!okw || !s_int(x + 1, &h))
			x = NULL;
	}
	if (!con->form[0][0] || !s_int(con->form[1], &frames) || !x ||
	    !s_int(con->form[3], &steps) || !s_int(con->form[4], &seed)) {
		dg_console_status(con, true, "submit: a prompt, and numbers for "
		    "frames, size (WxH), steps and seed");
		return;
	}
	dg_msg_t *m = dg_msg_new(DG_OP_SUBMIT);
	if (m) {
		m->u.submit.prompt = con->form[0];
		m->u.submit.frames = frames;
		m->u.submit.width = w;
		m->u.submit.height = h;
		m->u.submit.steps = steps;
		m->u.submit.seed = seed;
	}
	con->mode = DG_MODE_NORMAL;
	s_send_action(con, m, "submit");
}

/* ---- the table --------------------------------------------------------- */

#define C(c) ((c) & 0x1f)       /* a control key */
#define ESC 27

static const dg_action_t s_actions[] = {
	{ { KEY_F(1), '?', 'h' }, "help", "Help",
	  "show this help (any key closes it)", s_help },
	{ { KEY_F(2), 's' }, "submit", "Submit",
	  "submit a request: a form with prompt, frames, size, steps, seed",
	  s_submit },
	{ { KEY_F(3), '/' }, "search", "Search",
	  "search the rows of the view for a text", s_search },
	{ { 'n' }, "search-next", NULL, "the next row that matches", s_next },
	{ { 'N' }, "search-previous", NULL, "the previous row that matches",
	  s_prev },
	{ { KEY_F(4), '\\' }, "filter", "Filter",
	  "show only the rows that contain a text (empty: all)", s_filter },
	{ { KEY_F(5), '\n', KEY_ENTER }, "follow", "Follow",
	  "follow the selected room in a detail pane; on an instance, its "
	  "queues", s_follow },
	{ { KEY_F(6), '>' }, "sort", "SortBy",
	  "sort by the next column", s_sort_next },
	{ { '<' }, "sort-previous", NULL, "sort by the previous column",
	  s_sort_prev },
	{ { 'I' }, "invert", NULL, "reverse the sort order", s_invert },
	{ { KEY_F(7), 'd' }, "drain", "Drain",
	  "drain the selected instance: no new work (asks y/n)", s_drain },
	{ { KEY_F(8), 'u' }, "undrain", "Undrain",
	  "send the selected instance work again", s_undrain },
	{ { KEY_F(9), 'r' }, "release", "Release",
	  "release the selected room: its request fails, its slots are "
	  "freed (asks y/n)", s_release },
	{ { 'c' }, "cancel", NULL,
	  "cancel the selected room's request (asks y/n)", s_cancel },
	{ { 'Z' }, "pause", NULL,
	  "pause: stop updating the display; again to resume", s_pause },
	{ { '\t' }, "next-view", NULL, "the next view", s_next_view },
	{ { KEY_BTAB }, "previous-view", NULL, "the previous view",
	  s_prev_view },
	{ { '1' }, "overview", NULL, "Overview: every instance", s_view1 },
	{ { '2' }, "queues", NULL, "Queues: the rooms in each queue of the "
	  "selected instance", s_view2 },
	{ { '3' }, "rooms", NULL, "Rooms: every live room", s_view3 },
	{ { '4' }, "threads", NULL, "Threads of the selected daemon",
	  s_view4 },
	{ { '5' }, "sockets", NULL, "Sockets and fabric rails of the "
	  "selected daemon", s_view5 },
	{ { '6' }, "events", NULL, "Events: the controller's live events",
	  s_view6 },
	{ { KEY_UP, 'k' }, "up", NULL, "select the row above", s_up },
	{ { KEY_DOWN, 'j' }, "down", NULL, "select the row below", s_down },
	{ { KEY_PPAGE }, "page-up", NULL, "a page up", s_pgup },
	{ { KEY_NPAGE, ' ' }, "page-down", NULL, "a page down", s_pgdn },
	{ { KEY_HOME, 'g' }, "first", NULL, "the first row", s_home },
	{ { KEY_END, 'G' }, "last", NULL, "the last row (Events: follow "
	  "the tail)", s_end },
	{ { KEY_RIGHT }, "scroll-right", NULL, "scroll the columns: "
	  "show those left out on a narrow screen", s_right },
	{ { KEY_LEFT }, "scroll-left", NULL, "scroll the columns back",
	  s_left },
	{ { C('l') }, "redraw", NULL, "redraw the screen", s_redraw },
	{ { ESC }, "back", NULL, "stop following a room, clear the status "
	  "line", s_back },
	{ { KEY_F(10), 'q' }, "quit", "Quit", "leave the console", s_quit },
};
#define NACTIONS (sizeof s_actions / sizeof s_actions[0])

const dg_action_t *
dg_console_actions(size_t *count)
{
	*count = NACTIONS;
	return s_actions;
}

const char *
dg_console_key_name(int key, char *buf, size_t size)
{
	static const struct { int key; const char *name; } names[] = {
		{ '\t', "Tab" }, { '\n', "Enter" }, { KEY_ENTER, "Enter" },
		{ KEY_BTAB, "S-Tab" }, { KEY_UP, "Up" }, { KEY_DOWN, "Down" },
		{ KEY_PPAGE, "PgUp" }, { KEY_NPAGE, "PgDn" },
		{ KEY_HOME, "Home" }, { KEY_END, "End" }, { ESC, "Esc" },
		{ KEY_LEFT, "Left" }, { KEY_RIGHT, "Right" },
		{ ' ', "Space" },
	};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].key == key)
			return snprintf(buf, size, "%s", names[i].name), buf;
	if (key >= KEY_F(1) && key <= KEY_F(12))
		snprintf(buf, size, "F%d", key - KEY_F(0));
	else if (key > 0 && key < 32)
		snprintf(buf, size, "C-%c", key + 'a' - 1);
	else
		snprintf(buf, size, "%c", key);
	return buf;
}

bool
dg_console_key(dg_console_t *con, int key)
{
	if (key == KEY_RESIZE) {
		con->dirty = true;
		return true;
	}
	for (size_t i = 0; i < NACTIONS; i++)
		for (int j = 0; j < 3 && s_actions[i].keys[j]; j++)
			if (s_actions[i].keys[j] == key) {
				s_actions[i].run(con);
				con->dirty = true;
				return true;
			}
	return false;
}

/* ---- the modes --------------------------------------------------------- */

/* Edit `buf` with one key; true when it changed. */
static bool
s_edit(char *buf, size_t size, int key)
{
	size_t len = strlen(buf);

	if ((key == KEY_BACKSPACE || key == 127 || key == C('h')) && len) {
		buf[len - 1] = '\0';
		return true;
	}
	if (key == C('u')) {
		buf[0] = '\0';
		return true;
	}
	/* Bytes of UTF-8 come one at a time and pass as they are. */
	if (key >= 32 && key < 256 && key != 127 && len + 1 < size) {
		buf[len] = (char)key;
		buf[len + 1] = '\0';
		return true;
	}
	return false;
}

static void
s_form_key(dg_console_t *con, int key)
{
	switch (key) {
	case ESC:
		con->mode = DG_MODE_NORMAL;
		dg_console_status(con, false, "submit: cancelled");
		return;
	case '\n': case KEY_ENTER:
		s_submit_send(con);
		return;
	case '\t': case KEY_DOWN:
		con->form_field = (con->form_field + 1) % DG_FORM_FIELDS;
		return;
	case KEY_BTAB: case KEY_UP:
		con->form_field = (con->form_field + DG_FORM_FIELDS - 1) %
		    DG_FORM_FIELDS;
		return;
	}
	s_edit(con->form[con->form_field], sizeof con->form[0], key);
}

void
dg_console_mode_key(dg_console_t *con, int key)
{
	con->dirty = true;
	if (key == KEY_RESIZE)
		return;
	switch (con->mode) {
	case DG_MODE_HELP:
		if (key == KEY_DOWN || key == 'j' || key == KEY_NPAGE)
			con->help_top += key == KEY_NPAGE ? s_page() : 1;
		else if (key == KEY_UP || key == 'k' || key == KEY_PPAGE)
			con->help_top -= key == KEY_PPAGE ? s_page() : 1;
		else
			con->mode = DG_MODE_NORMAL;
		if (con->help_top < 0)
			con->help_top = 0;
		return;
	case DG_MODE_CONFIRM:
		con->mode = DG_MODE_NORMAL;
		if (key == 'y' || key == 'Y')
			con->confirm_fn(con);
		else
			dg_console_status(con, false, "not done");
		return;
	case DG_MODE_FORM:
		s_form_key(con, key);
		return;
	case DG_MODE_SEARCH:
	case DG_MODE_FILTER:
		break;
	default:
		con->mode = DG_MODE_NORMAL;
		return;
	}
	bool search = con->mode == DG_MODE_SEARCH;
	dg_panel_t *p = dg_console_panel(con);
	char *target = search ? con->search : p->filter;
	size_t tsize = search ? sizeof con->search : sizeof p->filter;
	if (key == ESC) {
		/* Esc forgets a filter being typed: all rows again. */
		if (!search)
			p->filter[0] = '\0';
		con->mode = DG_MODE_NORMAL;
		return;
	}
	if (key == '\n' || key == KEY_ENTER) {
		con->mode = DG_MODE_NORMAL;
		return;
	}
	if (s_edit(con->input, tsize < sizeof con->input ? tsize :
	    sizeof con->input, key)) {
		/* Both act as one types, as htop's do. */
		snprintf(target, tsize, "%.*s", (int)tsize - 1, con->input);
		if (search)
			s_find(con, true, true);
	}
}
