/*  log.c: levelled logging to stderr or syslog; see log.h.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static _Atomic int s_level = DG_LOG_INFO;
static char s_name[64] = "disagg";
static bool s_foreground = true;
/* Under systemd, stderr goes to the journal: prefix <N> so it keeps the
 * level, and leave the timestamp to journald. */
static bool s_journal;
static dg_log_sink_fn *s_sink;
static void *s_sink_arg;

static const char *s_names[] = { "error", "warn", "info", "debug" };
static const int s_syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void
dg_log_init(const char *name, bool foreground, int level)
{
	dg_log_set_name(name);
	dg_log_set_level(level);
	s_foreground = foreground;
	s_journal = foreground && getenv("JOURNAL_STREAM") != NULL;
	if (!foreground)
		openlog(s_name, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
dg_log_set_name(const char *name)
{
	if (name)
		snprintf(s_name, sizeof s_name, "%s", name);
}

void
dg_log_set_level(int level)
{
	if (level < DG_LOG_ERROR)
		level = DG_LOG_ERROR;
	if (level > DG_LOG_DEBUG)
		level = DG_LOG_DEBUG;
	atomic_store_explicit(&s_level, level, memory_order_relaxed);
}

int
dg_log_get_level(void)
{
	return atomic_load_explicit(&s_level, memory_order_relaxed);
}

void
dg_log_set_sink(dg_log_sink_fn *fn, void *arg)
{
	s_sink = fn;
	s_sink_arg = arg;
}

int
dg_log_level_parse(const char *word)
{
	for (int i = 0; i < 4; i++)
		if (word && strcmp(word, s_names[i]) == 0)
			return i;
	return -1;
}

const char *
dg_log_level_name(int level)
{
	return level >= 0 && level < 4 ? s_names[level] : "?";
}

void
dg_log_reopen(void)
{
	if (!s_foreground) {
		closelog();
		openlog(s_name, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
}

void
dg_log_vwrite(int level, const char *fmt, va_list ap)
{
	char msg[2048];
	char line[2304];

	if (level < DG_LOG_ERROR)
		level = DG_LOG_ERROR;
	if (level > DG_LOG_DEBUG)
		level = DG_LOG_DEBUG;
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (s_sink) {
		snprintf(line, sizeof line, "%s %s: %s", s_name,
		    s_names[level], msg);
		s_sink(level, line, s_sink_arg);
		return;
	}
	if (!s_foreground) {
		syslog(s_syslog_prio[level], "%s: %s", s_names[level], msg);
		return;
	}
	if (s_journal) {
		snprintf(line, sizeof line, "<%d>%s %s: %s\n",
		    s_syslog_prio[level], s_name, s_names[level], msg);
	} else {
		struct timeval tv;
		struct tm tm;
		char stamp[32];

		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
		snprintf(line, sizeof line, "%s.%03ld %s %s: %s\n", stamp,
		    (long)(tv.tv_usec / 1000), s_name, s_names[level], msg);
	}
	/* One write per line so concurrent threads never interleave. */
	if (write(STDERR_FILENO, line, strlen(line)) < 0)
		return;
}

void
dg_log_write(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dg_log_vwrite(level, fmt, ap);
	va_end(ap);
}

/* czmq 4.2.1 writes "L: yy-mm-dd hh:mm:ss text" to its log stream and has
 * no level filter of its own; a cookie stream turns those lines back into
 * calls to this logger, which applies ours. */
static ssize_t
s_czmq_write(void *cookie, const char *buf, size_t size)
{
	(void)cookie;
	const char *end = buf + size;
	const char *p = buf;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		int level = DG_LOG_INFO;

		if (n >= 2 && p[1] == ':') {
			switch (p[0]) {
			case 'E': level = DG_LOG_ERROR; break;
			case 'W': level = DG_LOG_WARN; break;
			case 'D': level = DG_LOG_DEBUG; break;
			default: level = DG_LOG_INFO; break;
			}
			/* Skip "L: " and the date and time czmq put there. */
			const char *q = p + 2;
			for (int field = 0; field < 3 && q < p + n; field++) {
				while (q < p + n && *q == ' ')
					q++;
				if (field < 2)
					while (q < p + n && *q != ' ')
						q++;
			}
			n -= (size_t)(q - p);
			p = q;
		}
		if (n > 0 && level <= dg_log_get_level())
			dg_log_write(level, "czmq: %.*s", (int)n, p);
		p += n + (nl ? 1 : 0);
	}
	return (ssize_t)size;
}

void
dg_log_route_czmq(void)
{
	static FILE *stream;
	cookie_io_functions_t io = { .write = s_czmq_write };

	if (!stream) {
		stream = fopencookie(NULL, "w", io);
		if (!stream)
			return;
		setvbuf(stream, NULL, _IOLBF, 0);
	}
	zsys_set_logsystem(false);
	zsys_set_logstream(stream);
}
