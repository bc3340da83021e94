/*  log.c: levelled logging to stderr or syslog; see log.h.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
/* Rotation of a log file on stderr (dg_log_set_rotate): the limit (0:
 * none) and the bytes written since it was last measured, so that only
 * a line that may cross it costs an fstat. */
static _Atomic int64_t s_rotate_max;
static _Atomic int64_t s_written;
static pthread_mutex_t s_rotate_lock = PTHREAD_MUTEX_INITIALIZER;

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

const char *
dg_log_stamp(char *buf, size_t size)
{
	struct timeval tv;
	struct tm tm;
	char sec[24];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(sec, sizeof sec, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03ldZ", sec, (long)(tv.tv_usec / 1000));
	return buf;
}

/* The file stderr writes to, when it is a regular file: its path in
 * `path` and its size.  -1 otherwise (a terminal, a pipe, the journal,
 * a file removed under us). */
static int64_t
s_stderr_file(char *path, size_t size)
{
	struct stat st;

	if (fstat(STDERR_FILENO, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_nlink == 0)
		return -1;
	ssize_t n = readlink("/proc/self/fd/2", path, size - 1);
	if (n <= 0 || (size_t)n >= size - 1)
		return -1;
	path[n] = '\0';
	return st.st_size;
}

/* NAME.log past the limit: NAME.log.2 becomes .3 (the oldest goes),
 * .1 becomes .2, NAME.log becomes .1, and a new NAME.log takes over
 * stderr (and stdout, when it wrote to the same file: a Python stage's
 * prints).  Under a lock: one thread rotates, the others find the file
 * small again. */
static void
s_rotate(int64_t max)
{
	char path[4096], from[4200], to[4200];
	struct stat out, err;

	pthread_mutex_lock(&s_rotate_lock);
	int64_t size = s_stderr_file(path, sizeof path);
	atomic_store(&s_written, size > 0 ? size : 0);
	if (size < max)
		goto out;
	for (int k = DG_LOG_KEEP; k > 1; k--) {
		snprintf(from, sizeof from, "%s.%d", path, k - 1);
		snprintf(to, sizeof to, "%s.%d", path, k);
		(void)rename(from, to);
	}
	snprintf(to, sizeof to, "%s.1", path);
	if (rename(path, to) < 0)
		goto out;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		goto out;
	bool same = fstat(STDOUT_FILENO, &out) == 0 &&
	    fstat(STDERR_FILENO, &err) == 0 && out.st_dev == err.st_dev &&
	    out.st_ino == err.st_ino;
	dup2(fd, STDERR_FILENO);
	if (same)
		dup2(fd, STDOUT_FILENO);
	close(fd);
	atomic_store(&s_written, 0);
out:
	pthread_mutex_unlock(&s_rotate_lock);
}

void
dg_log_set_rotate(int64_t max_bytes)
{
	char path[4096];

	/* Only our own file: not the journal's stream, not syslog. */
	int64_t size = s_foreground && !s_journal && max_bytes > 0 ?
	    s_stderr_file(path, sizeof path) : -1;
	atomic_store(&s_written, size > 0 ? size : 0);
	atomic_store(&s_rotate_max, size >= 0 ? max_bytes : 0);
	if (size >= max_bytes && size > 0)
		s_rotate(max_bytes);
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
		char stamp[32];
		snprintf(line, sizeof line, "%s %s %s: %s\n",
		    dg_log_stamp(stamp, sizeof stamp), s_name, s_names[level],
		    msg);
	}
	/* One write per line so concurrent threads never interleave. */
	size_t len = strlen(line);
	if (write(STDERR_FILENO, line, len) < 0)
		return;
	int64_t max = atomic_load_explicit(&s_rotate_max,
	    memory_order_relaxed);
	if (max > 0 && atomic_fetch_add(&s_written, (int64_t)len) +
	    (int64_t)len >= max)
		s_rotate(max);
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
