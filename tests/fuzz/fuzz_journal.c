/*  fuzz_journal.c: libFuzzer target for the journal reader.
 *
 *  Whatever a journal file holds (a torn write, a damaged disk, a file
 *  that is not a journal at all), opening it replays only records whose
 *  framing and checksum hold, hands each callback a message that is a
 *  submit or a result, and never crashes or loops.  `make check`
 *  replays the corpus through this same function (replay_journal).  */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"

#define CHECK(c) do {                                                   \
		if (!(c)) {                                             \
			fprintf(stderr, "fuzz_journal: %s:%d: %s\n",    \
			        __FILE__, __LINE__, #c);                \
			abort();                                        \
		}                                                       \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
s_seen(void *arg, uint64_t id, int64_t deadline, dg_msg_t *m)
{
	size_t *n = arg;

	(void)deadline;
	CHECK(id != 0);
	CHECK(m && (m->op == DG_OP_SUBMIT || m->op == DG_OP_RESULT));
	(*n)++;
	dg_msg_destroy(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	char path[64], err[256];

	if (fd < 0) {
		/* In memory: the fuzzer must not wear out a disk. */
		fd = memfd_create("journal", 0);
		CHECK(fd >= 0);
		dg_log_set_level(DG_LOG_ERROR);
	}
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	size_t n = 0;
	dg_journal_t *j = dg_journal_open(path, s_seen, &n, err, sizeof err);
	CHECK(j);
	CHECK(dg_journal_live(j) <= n);
	dg_journal_destroy(&j);
	return 0;
}
