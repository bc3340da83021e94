/*  proctitle.c: see proctitle.h.
 *
 *  The kernel shows, in /proc/PID/cmdline, the memory where the
 *  arguments were placed at exec.  Rewriting it there is the portable
 *  way (PR_SET_MM needs a capability).  Only the arguments' own bytes
 *  are used, never the environment after them: the environment stays
 *  readable, and a title the length of `-d -f FILE -N NAME` is enough.
 *  The bytes past the title are zeroed, so that its last byte stays the
 *  NUL the kernel looks for and ps shows nothing of the old text.  */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proctitle.h"

static char *s_area;
static size_t s_size;

void
dg_proctitle_init(int argc, char *argv[])
{
	if (argc < 1 || !argv[0])
		return;
	/* The strings follow each other; stop at one that does not (a
	 * caller that moved an argument). */
	char *end = argv[0] + strlen(argv[0]) + 1;
	for (int i = 1; i < argc && argv[i] == end; i++)
		end = argv[i] + strlen(argv[i]) + 1;
	s_area = argv[0];
	s_size = (size_t)(end - argv[0]);
}

void
dg_proctitle_set(const char *fmt, ...)
{
	char title[256];
	va_list ap;

	if (!s_area || s_size < 2)
		return;
	va_start(ap, fmt);
	vsnprintf(title, sizeof title, fmt, ap);
	va_end(ap);
	size_t len = strlen(title);
	if (len > s_size - 1)
		len = s_size - 1;
	memset(s_area, 0, s_size);
	memcpy(s_area, title, len);
}
