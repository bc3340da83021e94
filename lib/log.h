/*  log.h: levelled logging for every disagg program.
 *
 *  Lines go to stderr in the foreground and to syslog otherwise, each
 *  prefixed with the program's name; on stderr (unless systemd's
 *  journal takes it, which dates lines itself) after a UTC ISO 8601
 *  stamp, 2026-12-02T02:10:00.123Z, so that appended runs and rotated
 *  files still sort.  The level is checked before the
 *  arguments are formatted (or even evaluated), so debug calls cost one
 *  load when debug is off.  czmq's own zsys_* logging is routed here.  */
#ifndef DG_LOG_H
#define DG_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	DG_LOG_ERROR = 0,
	DG_LOG_WARN  = 1,
	DG_LOG_INFO  = 2,
	DG_LOG_DEBUG = 3
} dg_log_level_t;

/* Receives each finished line (no newline) instead of stderr/syslog. */
typedef void (dg_log_sink_fn)(int level, const char *line, void *arg);

/* name: the prefix ("disaggd", "e0", ...); foreground: stderr instead of
 * syslog; level: the most verbose level printed. */
void dg_log_init(const char *name, bool foreground, int level);
void dg_log_set_name(const char *name);
void dg_log_set_level(int level);
int dg_log_get_level(void);
void dg_log_set_sink(dg_log_sink_fn *fn, void *arg);

/* "error", "warn", "info", "debug" <-> level; -1 when unknown. */
int dg_log_level_parse(const char *word);
const char *dg_log_level_name(int level);

/* Send czmq's zsys_* lines through this logger at their own level. */
void dg_log_route_czmq(void);

/* SIGUSR1: reopen the log destination (syslog connection). */
void dg_log_reopen(void);

/* Rotated files kept beside a log: NAME.log.1 (the newest) to .3. */
#define DG_LOG_KEEP 3

/* When stderr is a regular file (`disagg up`'s RUN/NAME.log) and the
 * process logs there: rename it NAME.log.1 once it reaches max_bytes
 * and go on in a new NAME.log (see DG_LOG_KEEP); 0: never.  Applied at
 * once when the file is already larger. */
void dg_log_set_rotate(int64_t max_bytes);

/* The stamp lines carry: UTC, milliseconds, "...T02:10:00.123Z". */
const char *dg_log_stamp(char *buf, size_t size);

void dg_log_write(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void dg_log_vwrite(int level, const char *fmt, va_list ap);

#define dg_log_at(lvl, ...)                                         \
	do {                                                        \
		if ((lvl) <= dg_log_get_level())                    \
			dg_log_write((lvl), __VA_ARGS__);           \
	} while (0)
#define dg_log_error(...) dg_log_at(DG_LOG_ERROR, __VA_ARGS__)
#define dg_log_warn(...)  dg_log_at(DG_LOG_WARN, __VA_ARGS__)
#define dg_log_info(...)  dg_log_at(DG_LOG_INFO, __VA_ARGS__)
#define dg_log_debug(...) dg_log_at(DG_LOG_DEBUG, __VA_ARGS__)

#endif
