/*  trust.h: whether a folder or file this process trusts is safe to
 *  trust: the run folder, CurveZMQ's key folders and secret, the
 *  journal, a stage's output folder.
 *
 *  Another local user who owns one, or can write to it, could plant a
 *  key and be served, forge a journal, or make us write through a link.
 *  So each must belong to us (or to root) and be writable by no group
 *  and no one else; a link is followed only when it is ours too.  */
#ifndef DG_TRUST_H
#define DG_TRUST_H

#include <stddef.h>

/* 0 when `path` may be trusted; -1 with a reason naming it as `what`
 * ("output folder") otherwise, or when it cannot be looked at. */
int dg_trust_check(const char *path, const char *what, char *why,
    size_t whysize);
/* The same for a path that may not exist yet: 0 when it does not (its
 * user says what is missing). */
int dg_trust_if_there(const char *path, const char *what, char *why,
    size_t whysize);

#endif
