/*  console.c: `disagg console`: options, the connection to the
 *  controller and the one loop.
 *
 *  The loop waits in zmq_poll on stdin, the DEALER (replies) and the SUB
 *  (snapshots and events), never longer than what is due next: the next
 *  refresh, a reply's deadline, a redraw.  Requests are never awaited:
 *  each is a pending entry with a deadline, and a reply only replaces
 *  the model.  Two polls in a row without an answer mean the controller
 *  is gone: the DEALER and SUB are made anew (which drops what queued up
 *  for the dead peer) and the header says "disconnected" until a reply
 *  comes.  */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <curses.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "auth.h"
#include "console.h"
#include "run.h"
#include "wire.h"

#define S_ACTION_MS  3000       /* an action's reply */
#define S_MISSES     2          /* lost polls in a row before reconnecting */
#define S_REDRAW_MS  100        /* at most ten frames a second */

static volatile sig_atomic_t s_signal;

static void
s_on_signal(int sig)
{
	s_signal = sig;
}

/* A crash must not leave the terminal raw: restore it, then die of the
 * same signal (htop does the same). */
static void
s_on_fatal(int sig)
{
	dg_draw_end();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
s_signals(bool curses)
{
	struct sigaction sa = { .sa_handler = s_on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (curses) {
		signal(SIGSEGV, s_on_fatal);
		signal(SIGBUS, s_on_fatal);
		signal(SIGFPE, s_on_fatal);
		signal(SIGILL, s_on_fatal);
		signal(SIGABRT, s_on_fatal);
	}
}

/* ---- the connection ---------------------------------------------------- */

/* Where a wildcard bind is reached from this host. */
static void
s_reach(const char *ep, char *out, size_t size)
{
	static const char *const any[] = { "tcp://*:", "tcp://0.0.0.0:" };

	for (size_t i = 0; i < 2; i++) {
		size_t len = strlen(any[i]);
		if (strncmp(ep, any[i], len) == 0) {
			snprintf(out, size, "tcp://127.0.0.1:%s", ep + len);
			return;
		}
	}
	snprintf(out, size, "%s", ep);
}

/* The PUB endpoint: the `publish` of -f FILE, or of the running `disagg
 * up` when that is the controller we talk to; failing those, the one
 * the controller reports in instances.ok. */
static void
s_find_publish(dg_console_t *con, const char *file)
{
	char path[DG_PATH_MAX], listen[DG_ENDPOINT_MAX];

	if (con->publish[0])
		return;
	if (!file) {
		dg_run_path(path, sizeof path, "up.ini");
		if (access(path, R_OK) != 0)
			return;
	}
	dg_config_t *cfg = dg_config_load(file ? file : path);
	if (cfg && dg_config_error_count(cfg) == 0) {
		const dg_controller_conf_t *c = dg_config_controller(cfg);
		s_reach(c->listen, listen, sizeof listen);
		if (file || strcmp(listen, con->endpoint) == 0)
			s_reach(c->publish, con->publish, sizeof con->publish);
	}
	dg_config_destroy(&cfg);
}

static void
s_disconnect(dg_console_t *con)
{
	dg_client_destroy(&con->client);
	zsock_destroy(&con->sub);
	memset(con->pending, 0, sizeof con->pending);
}

static int
s_connect(dg_console_t *con)
{
	con->client = dg_client_new(con->endpoint);
	if (!con->client)
		return -1;
	/* A send must never block the loop, not even with no peer. */
	zsock_set_sndtimeo(dg_client_sock(con->client), 0);
	if (con->publish[0]) {
		char err[256];
		/* Without events the views still refresh by polling. */
		con->sub = dg_auth_sub_new(con->publish, err, sizeof err);
	}
	/* A question lost with the old sockets holds no event back. */
	dg_events_kept(con->panel[DG_VIEW_EVENTS], NULL);
	dg_events_resync(con->panel[DG_VIEW_EVENTS]);
	return 0;
}

int64_t
dg_console_interval_ms(const dg_console_t *con)
{
	return (int64_t)con->delay_ds * 100;
}

bool
dg_console_connected(const dg_console_t *con, int64_t now)
{
	return con->ever_heard && con->misses == 0 &&
	    now - con->last_heard <
	    dg_console_interval_ms(con) + 2 * DG_CALL_MS;
}

void
dg_console_status(dg_console_t *con, bool error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(con->status, sizeof con->status, fmt, ap);
	va_end(ap);
	con->status_error = error;
	con->status_at = zclock_mono();
	con->dirty = true;
}

bool
dg_console_request(dg_console_t *con, dg_msg_t *m, dg_pend_kind_t kind,
    dg_view_t view, int timeout_ms, const char *label)
{
	dg_pending_t *p = NULL;

	for (int i = 0; i < DG_PENDING_MAX && !p; i++)
		if (!con->pending[i].seq)
			p = &con->pending[i];
	uint64_t seq = p && m && con->client ?
	    dg_client_send(con->client, m) : 0;
	dg_msg_destroy(&m);
	if (!seq)
		return false;
	p->seq = seq;
	p->kind = kind;
	p->view = view;
	p->sent = zclock_mono();
	p->timeout_ms = timeout_ms;
	snprintf(p->label, sizeof p->label, "%s", label ? label : "");
	return true;
}

bool
dg_console_outstanding(const dg_console_t *con, dg_pend_kind_t kind,
    dg_view_t view)
{
	for (int i = 0; i < DG_PENDING_MAX; i++)
		if (con->pending[i].seq && con->pending[i].kind == kind &&
		    (kind != DG_PEND_VIEW || con->pending[i].view == view))
			return true;
	return false;
}

static bool
s_any_outstanding(const dg_console_t *con)
{
	for (int i = 0; i < DG_PENDING_MAX; i++)
		if (con->pending[i].seq)
			return true;
	return false;
}

const dg_instance_row_t *
dg_console_rows(const dg_console_t *con, size_t *n)
{
	const dg_msg_t *m = con->instances;

	*n = 0;
	if (!m || m->op == DG_OP_ERROR)
		return NULL;
	if (m->op == DG_OP_SNAPSHOT) {
		*n = m->u.snapshot.n_instances;
		return m->u.snapshot.instances;
	}
	*n = m->u.instances_ok.n_instances;
	return m->u.instances_ok.instances;
}

const char *
dg_console_instance(dg_console_t *con)
{
	size_t n;
	const dg_instance_row_t *rows = dg_console_rows(con, &n);

	if (con->instance[0])
		return con->instance;
	return n ? rows[0].name : NULL;
}

void
dg_console_poll(dg_console_t *con)
{
	dg_view_t v = con->view;
	dg_panel_t *p = con->panel[v];
	const dg_panel_class_t *cls = p->cls;

	if (!dg_console_outstanding(con, DG_PEND_INSTANCES, 0))
		dg_console_request(con, dg_msg_new(DG_OP_INSTANCES),
		    DG_PEND_INSTANCES, 0, DG_CALL_MS, NULL);
	if (cls->op && !dg_console_outstanding(con, DG_PEND_VIEW, v)) {
		const char *name = cls->per_daemon ? dg_console_instance(con) :
		    NULL;
		dg_msg_t *m = dg_msg_new(cls->op);
		if (m && (name || !cls->per_daemon)) {
			/* queues, threads, sockets and rooms share a body */
			m->u.queues.name = name;
			dg_console_request(con, m, DG_PEND_VIEW, v, DG_CALL_MS,
			    name);
		} else {
			dg_msg_destroy(&m);
		}
	}
	if (cls->poll)
		cls->poll(p, con);
	/* The kept events past those shown, once we subscribe: before
	 * the first, what a SUB still connecting missed since. */
	dg_panel_t *ev = con->panel[DG_VIEW_EVENTS];
	if (con->sub && !dg_console_outstanding(con, DG_PEND_EVENTS, 0)) {
		dg_msg_t *ask = dg_events_ask(ev);
		if (ask && !dg_console_request(con, ask, DG_PEND_EVENTS, 0,
		    DG_CALL_MS, NULL))
			dg_events_kept(ev, NULL);
	}
	dg_submit_poll(con);
}

void
dg_console_show(dg_console_t *con, dg_view_t view)
{
	con->view = view;
	if (!con->paused)
		dg_console_poll(con);
}

/* The instance list: the overview's rows, and what every view needs.
 * A polled one (once a refresh) is also a sample of the history. */
static void
s_instances(dg_console_t *con, dg_msg_t **m, int64_t now)
{
	if ((*m)->op == DG_OP_INSTANCES_OK && con->history)
		dg_history_sample(con->history, now,
		    (*m)->u.instances_ok.instances,
		    (*m)->u.instances_ok.n_instances);
	dg_msg_destroy(&con->instances);
	con->instances = *m;
	*m = NULL;
	con->panel[DG_VIEW_OVERVIEW]->at = now;
}

static void
s_apply_pub(dg_console_t *con, dg_msg_t *m, int64_t now)
{
	if (m->op == DG_OP_EVENT) {
		dg_events_live(con->panel[DG_VIEW_EVENTS], &m->u.event);
		if (!con->paused)
			con->dirty = true;
	} else if (m->op == DG_OP_SNAPSHOT) {
		con->have_counters = true;
		con->pending_n = m->u.snapshot.pending;
		con->active_n = m->u.snapshot.active;
		con->done_n = m->u.snapshot.done;
		con->failed_n = m->u.snapshot.failed;
		con->cancelled_n = m->u.snapshot.cancelled;
		if (!con->paused) {
			s_instances(con, &m, now);
			con->dirty = true;
		}
	}
	dg_msg_destroy(&m);
}

void
dg_console_apply(dg_console_t *con, dg_msg_t *m, bool from_pub)
{
	int64_t now = zclock_mono();
	dg_pending_t *p = NULL;

	con->last_heard = now;
	con->ever_heard = true;
	if (from_pub) {
		s_apply_pub(con, m, now);
		return;
	}
	if (m->op == DG_OP_RESULT) {    /* of a console submit */
		dg_submit_result(con, m);
		dg_msg_destroy(&m);
		return;
	}
	for (int i = 0; i < DG_PENDING_MAX && !p; i++)
		if (con->pending[i].seq && con->pending[i].seq == m->seq)
			p = &con->pending[i];
	if (!p) {               /* late: its deadline passed */
		dg_msg_destroy(&m);
		return;
	}
	con->misses = 0;
	con->dirty = true;
	switch (p->kind) {
	case DG_PEND_INSTANCES:
		/* The controller says where it publishes: subscribe, so
		 * that events come even when only -c was given. */
		if (!con->publish[0] && m->op == DG_OP_INSTANCES_OK &&
		    m->u.instances_ok.publish && *m->u.instances_ok.publish) {
			char err[256];
			dg_client_pub_endpoint(con->publish,
			    sizeof con->publish, m->u.instances_ok.publish,
			    con->endpoint);
			zsock_destroy(&con->sub);
			con->sub = dg_auth_sub_new(con->publish, err,
			    sizeof err);
		}
		if (!con->paused)
			s_instances(con, &m, now);
		break;
	case DG_PEND_VIEW:
		if (!con->paused)
			dg_panel_set_reply(con->panel[p->view], &m, now,
			    p->label);
		break;
	case DG_PEND_STATUS:
		dg_rooms_set_status(con->panel[DG_VIEW_ROOMS], &m);
		break;
	case DG_PEND_EVENTS:
		dg_events_kept(con->panel[DG_VIEW_EVENTS], m);
		break;
	case DG_PEND_SUBMIT:
		dg_submit_result(con, m);
		break;
	case DG_PEND_ACTION:
		if (m->op == DG_OP_ERROR)
			dg_console_status(con, true, "%s: %s: %s", p->label,
			    m->u.error.code, m->u.error.message);
		else if (m->op == DG_OP_SUBMIT_OK)
			dg_submit_accepted(con, m->u.submit_ok.request);
		else
			dg_console_status(con, false, "%s: ok", p->label);
		/* Show the effect now rather than at the next refresh. */
		if (!con->paused)
			dg_console_poll(con);
		break;
	}
	p->seq = 0;
	dg_msg_destroy(&m);
}

/* Requests past their deadline: an action says so; lost polls count
 * towards a reconnection. */
static void
s_expire(dg_console_t *con, int64_t now)
{
	for (int i = 0; i < DG_PENDING_MAX; i++) {
		dg_pending_t *p = &con->pending[i];
		if (!p->seq || now - p->sent < p->timeout_ms)
			continue;
		if (p->kind == DG_PEND_ACTION)
			dg_console_status(con, true, "%s: no answer within %d s; "
			    "it may still happen", p->label,
			    p->timeout_ms / 1000);
		else
			con->misses++;
		if (p->kind == DG_PEND_EVENTS)
			dg_events_kept(con->panel[DG_VIEW_EVENTS], NULL);
		p->seq = 0;
		con->dirty = true;
	}
	if (con->misses >= S_MISSES && now - con->last_reconnect >= 2000) {
		s_disconnect(con);
		s_connect(con);
		con->last_reconnect = now;
		con->misses = 1;        /* still disconnected until a reply */
	}
}

static int64_t
s_next_deadline(const dg_console_t *con, int64_t due)
{
	for (int i = 0; i < DG_PENDING_MAX; i++)
		if (con->pending[i].seq &&
		    con->pending[i].sent + con->pending[i].timeout_ms < due)
			due = con->pending[i].sent + con->pending[i].timeout_ms;
	return due;
}

/* Read what the sockets hold, a bounded number each, so that a flood
 * of events cannot starve the keyboard. */
static void
s_read(dg_console_t *con, zsock_t *sock, bool pub)
{
	for (int i = 0; i < 256 && sock; i++) {
		if (!(zsock_events(sock) & ZMQ_POLLIN))
			break;
		dg_msg_t *m = NULL;
		dg_proto_err_t err;
		int rc = dg_wire_recv(sock, NULL, &m, &err);
		if (rc < 0)
			break;
		if (rc > 0)
			dg_console_apply(con, m, pub);
	}
}

bool
dg_console_pump(dg_console_t *con, int64_t due, bool keys)
{
	zmq_pollitem_t items[3];
	int n = 0, ikeys = -1;
	int64_t now = zclock_mono();

	s_expire(con, now);
	due = s_next_deadline(con, due);
	if (keys) {
		items[n] = (zmq_pollitem_t){ .fd = STDIN_FILENO,
		    .events = ZMQ_POLLIN };
		ikeys = n++;
	}
	if (con->client)
		items[n++] = (zmq_pollitem_t){ .socket =
		    zsock_resolve(dg_client_sock(con->client)),
		    .events = ZMQ_POLLIN };
	if (con->sub)
		items[n++] = (zmq_pollitem_t){ .socket =
		    zsock_resolve(con->sub), .events = ZMQ_POLLIN };
	long wait = due > now ? (long)(due - now) : 0;
	int rc = zmq_poll(items, n, wait);
	if (rc < 0)
		return keys;    /* a signal: SIGWINCH is a key (KEY_RESIZE) */
	if (con->client)
		s_read(con, dg_client_sock(con->client), false);
	s_read(con, con->sub, true);
	s_expire(con, zclock_mono());
	return ikeys >= 0 && (items[ikeys].revents & ZMQ_POLLIN);
}

/* ---- the curses loop --------------------------------------------------- */

static int
s_run(dg_console_t *con)
{
	int64_t next_poll = 0, last_draw = 0;
	int frames = 0;

	if (dg_draw_init(con) < 0) {
		fprintf(stderr, "disagg console: cannot start the terminal "
		    "(TERM=%s)\n", getenv("TERM") ? getenv("TERM") : "");
		return DG_EXIT_FAIL;
	}
	con->dirty = true;
	while (!con->quit && !s_signal) {
		int64_t now = zclock_mono();
		if (now >= next_poll) {
			if (!con->paused)
				dg_console_poll(con);
			next_poll = now + dg_console_interval_ms(con);
			con->dirty = true;      /* ages move on */
		}
		if (con->dirty && now - last_draw >= S_REDRAW_MS) {
			dg_draw(con);
			con->dirty = false;
			last_draw = now;
			if (con->iterations && ++frames >= con->iterations)
				break;
		}
		int64_t due = next_poll;
		if (con->dirty && last_draw + S_REDRAW_MS < due)
			due = last_draw + S_REDRAW_MS;
		dg_console_pump(con, due, true);
		int ch;
		bool any = false;
		while ((ch = getch()) != ERR) {
			any = true;
			if (con->mode == DG_MODE_NORMAL)
				dg_console_key(con, ch);
			else
				dg_console_mode_key(con, ch);
			if (con->quit)
				break;
		}
		if (any) {
			/* A key answers at once, whatever the frame rate. */
			dg_draw(con);
			con->dirty = false;
			last_draw = zclock_mono();
		}
	}
	dg_draw_end();
	return DG_EXIT_OK;
}

/* ---- options ----------------------------------------------------------- */

static void
s_usage(FILE *out)
{
	fprintf(out, "usage: disagg console [-c endpoint] [-f file] "
	    "[-p endpoint] [-d tenths] [-C]\n"
	    "                      [-b] [-n count] [-v view] [-s name] "
	    "[--keys]\n");
}

static void
s_keys(void)
{
	size_t n;
	const dg_action_t *a = dg_console_actions(&n);
	char k[24];

	for (size_t i = 0; i < n; i++) {
		char prev[24] = "";
		for (int j = 0; j < 3 && a[i].keys[j]; j++) {
			dg_console_key_name(a[i].keys[j], k, sizeof k);
			if (strcmp(k, prev) != 0)   /* Enter: two key codes */
				printf("%s%s", j ? " " : "", k);
			snprintf(prev, sizeof prev, "%s", k);
		}
		printf("\t%s\t%s\n", a[i].name, a[i].help);
	}
}

static void
s_free(dg_console_t *con)
{
	s_disconnect(con);
	dg_msg_destroy(&con->instances);
	dg_history_destroy(&con->history);
	for (int v = 0; v < DG_VIEW_COUNT; v++)
		dg_panel_destroy(&con->panel[v]);
}

int
dg_cmd_console(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "keys", no_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	dg_console_t con = { .delay_ds = 10 };
	const char *cflag = NULL, *file = NULL, *view = "overview";
	const char *select = NULL;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:f:p:d:Cbn:v:s:h", opts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c': cflag = optarg; break;
		case 'f': file = optarg; break;
		case 'p': snprintf(con.publish, sizeof con.publish, "%s",
			    optarg); break;
		case 'd': con.delay_ds = atoi(optarg); break;
		case 'C': con.mono = true; break;
		case 'b': con.batch = true; break;
		case 'n': con.iterations = atoi(optarg); break;
		case 'v': view = optarg; break;
		case 's': select = optarg; break;
		case 'K': s_keys(); return DG_EXIT_OK;
		case 'h': s_usage(stdout); return DG_EXIT_OK;
		default: s_usage(stderr); return DG_EXIT_USAGE;
		}
	}
	int v = dg_view_lookup(view);
	if (optind != argc || con.delay_ds < 1 || con.delay_ds > 600 ||
	    con.iterations < 0 || v < 0) {
		if (v < 0)
			fprintf(stderr, "disagg console: unknown view '%s' "
			    "(overview, queues, rooms, threads, sockets, "
			    "events)\n", view);
		s_usage(stderr);
		return DG_EXIT_USAGE;
	}
	/* Both stdin and stdout must be a terminal for curses; otherwise
	 * the console prints snapshots. */
	if (!con.batch && !(isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))) {
		fprintf(stderr, "disagg console: not a terminal; use -b for "
		    "text snapshots\n");
		return DG_EXIT_USAGE;
	}
	if (con.batch && con.iterations == 0)
		con.iterations = 1;
	const char *nc = getenv("NO_COLOR");
	if (nc && *nc)
		con.mono = true;
	snprintf(con.endpoint, sizeof con.endpoint, "%s",
	    dg_client_endpoint(cflag, file));
	s_find_publish(&con, file);
	if (select)
		snprintf(con.instance, sizeof con.instance, "%s", select);
	con.view = (dg_view_t)v;
	bool made = (con.history = dg_history_new(DG_HISTORY_MS,
	    dg_console_interval_ms(&con))) != NULL;
	for (int i = 0; i < DG_VIEW_COUNT; i++)
		made = (con.panel[i] = dg_panel_new(dg_views[i])) && made;
	if (made && select)     /* -s selects its row too */
		snprintf(con.panel[DG_VIEW_OVERVIEW]->sel_key,
		    sizeof con.panel[DG_VIEW_OVERVIEW]->sel_key, "%s", select);
	if (!made || s_connect(&con) < 0) {
		fprintf(stderr, "disagg console: cannot connect to %s\n",
		    con.endpoint);
		s_free(&con);
		return DG_EXIT_UNREACHABLE;
	}
	setlocale(LC_ALL, "");
	con.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	s_signals(!con.batch);
	con.curses = !con.batch;
	int rc = con.batch ? dg_console_batch(&con, con.view) : s_run(&con);
	s_free(&con);
	if (s_signal && !con.batch)
		rc = DG_EXIT_OK;
	return rc;
}

bool
dg_console_stopping(void)
{
	return s_signal != 0;
}

bool
dg_console_idle(const dg_console_t *con)
{
	return !s_any_outstanding(con);
}
