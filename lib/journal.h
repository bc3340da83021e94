/*  journal.h: the controller's append-only journal of accepted requests.
 *
 *  Every accepted request is appended (its id, its deadline on the wall
 *  clock and the submit message as it came) and every finished one is
 *  marked ended.  The controller syncs once per turn of its loop, before
 *  it tells clients their requests were accepted, so a controller that
 *  is killed and restarted replays exactly the requests it had accepted
 *  and not finished.  A torn record at the end (a crash mid-write) is
 *  cut off at open.  The file is rewritten with only the live requests
 *  when the ended ones dominate it.  */
#ifndef DG_JOURNAL_H
#define DG_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

typedef struct dg_journal dg_journal_t;

/* A request found at open, owned by the callee (dg_msg_destroy it):
 * unfinished ones as their `submit`, oldest first; and before them the
 * most recently finished ones (up to DG_JOURNAL_RECENT) as the `result`
 * their clients were sent, so that a client reconnecting after a
 * restart can still ask their status.  deadline_wall_ms is 0 for
 * those. */
typedef void (dg_journal_fn)(void *arg, uint64_t id,
    int64_t deadline_wall_ms, dg_msg_t *msg);

#define DG_JOURNAL_RECENT 1024

/* Open (creating it if needed) and replay the journal at `path`: `fn`
 * gets each accepted, unfinished request, oldest first.  NULL with the
 * reason in `err` when the file cannot be opened or written. */
dg_journal_t *dg_journal_open(const char *path, dg_journal_fn *fn,
    void *arg, char *err, size_t errlen);
void dg_journal_destroy(dg_journal_t **self_p);

/* The highest request id the journal has seen (0 when empty): new ids
 * continue above it so that a client's old ids stay unambiguous. */
uint64_t dg_journal_last_id(const dg_journal_t *self);
/* Room ids: the controller reserves them in blocks (dg_journal_rooms
 * records how far), so that after a restart it starts past every room
 * its predecessor could have placed, some of which may still live on
 * the stages for a moment.  0 when none were reserved. */
uint64_t dg_journal_rooms(const dg_journal_t *self);
int dg_journal_reserve_rooms(dg_journal_t *self, uint64_t upto);

/* Requests accepted and not ended. */
size_t dg_journal_live(const dg_journal_t *self);

/* Append; 0, or -1 (errno set) when the write failed. */
int dg_journal_accept(dg_journal_t *self, uint64_t id,
    int64_t deadline_wall_ms, const dg_msg_t *submit);
/* `result` (NULL: none) is kept with the end, see dg_journal_fn. */
int dg_journal_end(dg_journal_t *self, uint64_t id, const dg_msg_t *result);

/* Make what was appended durable (fdatasync) if anything was; compact
 * first when ended records dominate.  0, or -1. */
int dg_journal_sync(dg_journal_t *self);
/* Something appended since the last sync. */
bool dg_journal_dirty(const dg_journal_t *self);

#endif
