/*  journal.c: the controller's append-only journal; see journal.h.
 *
 *  Written by hand: what is needed is a few dozen lines of framing over
 *  write(2) and fdatasync(2), which no Debian library offers without a
 *  database around it.  A record is a 4-byte little-endian payload
 *  length, the low 32 bits of the payload's XXH3, then the payload: a
 *  kind byte and a request id (8 bytes), and for an accepted request its
 *  wall-clock deadline (8 bytes) and the submit message as encoded on
 *  the wire, which the codec already knows how to check.  */
#define _GNU_SOURCE
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"
#include "journal.h"
#include "log.h"
#include "trust.h"

enum { K_ACCEPT = 'A', K_END = 'E', K_LAST = 'N', K_ROOMS = 'R' };

#define REC_HEAD        8
#define REC_MAX         (DG_PROTO_MAX_FRAME + 64)
/* Compact when this many records are dead and they outnumber the live
 * ones twice over: rewriting costs the live set, so it stays rare. */
#define COMPACT_DEAD    4096

typedef struct {
	uint64_t id;
	size_t len;
	uint8_t *rec;           /* the whole record, header included */
} s_live_t;

struct dg_journal {
	char *path;
	int fd;
	zhashx_t *live;         /* id -> s_live_t */
	zlistx_t *recent;       /* s_live_t: the last ends with a result */
	uint64_t last_id;
	uint64_t rooms;         /* room ids reserved up to here */
	size_t dead;            /* records that rewriting would drop */
	bool dirty;
};

static char *
s_key(char *buf, uint64_t id)
{
	snprintf(buf, 24, "%llu", (unsigned long long)id);
	return buf;
}

static void
s_live_destroy(void **item)
{
	s_live_t *l = *item;

	if (l) {
		free(l->rec);
		free(l);
		*item = NULL;
	}
}

static void
s_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
s_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
s_get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t
s_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* A record around `payload`, in a buffer of its own. */
static uint8_t *
s_record(const uint8_t *payload, size_t len, size_t *total)
{
	uint8_t *rec = malloc(REC_HEAD + len);

	if (!rec)
		return NULL;
	s_put32(rec, (uint32_t)len);
	s_put32(rec + 4, (uint32_t)dg_checksum(payload, len));
	memcpy(rec + REC_HEAD, payload, len);
	*total = REC_HEAD + len;
	return rec;
}

static int
s_write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
s_append(dg_journal_t *self, const uint8_t *rec, size_t len)
{
	if (s_write_all(self->fd, rec, len) < 0)
		return -1;
	self->dirty = true;
	return 0;
}

static int
s_append_small(dg_journal_t *self, int kind, uint64_t id)
{
	uint8_t payload[9], rec[REC_HEAD + 9];

	payload[0] = (uint8_t)kind;
	s_put64(payload + 1, id);
	s_put32(rec, sizeof payload);
	s_put32(rec + 4, (uint32_t)dg_checksum(payload, sizeof payload));
	memcpy(rec + REC_HEAD, payload, sizeof payload);
	return s_append(self, rec, sizeof rec);
}

/* Remember an end record with its result, dropping the oldest beyond
 * DG_JOURNAL_RECENT. */
static int
s_keep_recent(dg_journal_t *self, const uint8_t *rec, size_t len,
    uint64_t id)
{
	s_live_t *l = calloc(1, sizeof *l);

	if (!l || !(l->rec = malloc(len))) {
		free(l);
		return -1;
	}
	l->id = id;
	l->len = len;
	memcpy(l->rec, rec, len);
	zlistx_add_end(self->recent, l);
	while (zlistx_size(self->recent) > DG_JOURNAL_RECENT) {
		zlistx_first(self->recent);
		zlistx_delete(self->recent, zlistx_cursor(self->recent));
	}
	return 0;
}

/* ---- replay ------------------------------------------------------------ */

/* Read every whole, intact record; cut the file after the last one.
 * Fills the live set, and `order` with their ids in file order. */
static int
s_load(dg_journal_t *self, zlistx_t *order)
{
	struct stat st;

	if (fstat(self->fd, &st) < 0)
		return -1;
	size_t size = (size_t)st.st_size, off = 0;
	uint8_t *all = size ? malloc(size) : NULL;
	if (size && !all)
		return -1;
	for (size_t got = 0; got < size;) {
		ssize_t n = pread(self->fd, all + got, size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(all);
			return -1;
		}
		got += (size_t)n;
	}
	while (size - off >= REC_HEAD) {
		uint32_t len = s_get32(all + off);
		const uint8_t *p = all + off + REC_HEAD;
		if (len < 9 || len > REC_MAX || len > size - off - REC_HEAD ||
		    s_get32(all + off + 4) != (uint32_t)dg_checksum(p, len))
			break;
		uint64_t id = s_get64(p + 1);
		char key[24];
		if (p[0] == K_ROOMS) {
			if (id > self->rooms)
				self->rooms = id;
			off += REC_HEAD + len;
			continue;
		}
		if (id > self->last_id)
			self->last_id = id;
		if (p[0] == K_ACCEPT && len > 17 && id != 0) {
			s_live_t *l = calloc(1, sizeof *l);
			if (!l || !(l->rec = malloc(REC_HEAD + len))) {
				free(l);
				free(all);
				return -1;
			}
			l->id = id;
			l->len = REC_HEAD + len;
			memcpy(l->rec, all + off, l->len);
			zhashx_update(self->live, s_key(key, id), l);
			zlistx_add_end(order, (void *)(uintptr_t)id);
		} else if (p[0] == K_END) {
			if (zhashx_lookup(self->live, s_key(key, id))) {
				zhashx_delete(self->live, key);
				self->dead += 2;
			}
			if (len > 9 && s_keep_recent(self, all + off,
			    REC_HEAD + len, id) < 0) {
				free(all);
				return -1;
			}
		}
		off += REC_HEAD + len;
	}
	free(all);
	if (off < size) {
		dg_log_warn("journal %s: %zu bytes of a torn or damaged "
		    "record at offset %zu cut off", self->path, size - off,
		    off);
		if (ftruncate(self->fd, (off_t)off) < 0)
			return -1;
	}
	return lseek(self->fd, 0, SEEK_END) < 0 ? -1 : 0;
}

dg_journal_t *
dg_journal_open(const char *path, dg_journal_fn *fn, void *arg, char *err,
    size_t errlen)
{
	dg_journal_t *self = calloc(1, sizeof *self);
	zlistx_t *order = zlistx_new();

	if (self)
		self->fd = -1;
	if (!self || !order || !(self->path = strdup(path)) ||
	    !(self->live = zhashx_new())) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	zhashx_set_destructor(self->live, s_live_destroy);
	if (!(self->recent = zlistx_new())) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	zlistx_set_destructor(self->recent, s_live_destroy);
	/* A journal someone else can write is requests someone else can
	 * make us run: its folder and it must be ours alone. */
	char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if (!dir || dg_trust_if_there(slash ? dir : ".", "journal folder",
	    err, errlen) < 0) {
		if (!dir)
			snprintf(err, errlen, "out of memory");
		free(dir);
		goto fail;
	}
	free(dir);
	/* In a folder only we can write, the file is ours: made 0600. */
	self->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (self->fd < 0) {
		snprintf(err, errlen, "cannot open journal %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (s_load(self, order) < 0) {
		snprintf(err, errlen, "cannot read journal %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	for (s_live_t *l = zlistx_first(self->recent); l;
	    l = zlistx_next(self->recent)) {
		dg_msg_t *m = NULL;
		dg_proto_err_t perr;
		if (dg_proto_decode(l->rec + REC_HEAD + 9, l->len - REC_HEAD - 9,
		    &m, &perr) == 0 && m->op == DG_OP_RESULT)
			fn(arg, l->id, 0, m);
		else
			dg_msg_destroy(&m);
	}
	/* The order holds ids: an entry may have ended since. */
	for (void *it = zlistx_first(order); it; it = zlistx_next(order)) {
		char key[24];
		s_live_t *l = zhashx_lookup(self->live,
		    s_key(key, (uint64_t)(uintptr_t)it));
		if (!l)
			continue;
		const uint8_t *p = l->rec + REC_HEAD;
		dg_msg_t *m = NULL;
		dg_proto_err_t perr;
		if (dg_proto_decode(p + 17, l->len - REC_HEAD - 17, &m,
		    &perr) < 0 || m->op != DG_OP_SUBMIT) {
			dg_log_warn("journal %s: request %llu cannot be "
			    "replayed: %s", path, (unsigned long long)l->id,
			    m ? "not a submit" : perr.message);
			dg_msg_destroy(&m);
			/* Never replayable: not carried into a rewrite. */
			zhashx_delete(self->live, key);
			continue;
		}
		fn(arg, l->id, (int64_t)s_get64(p + 9), m);
	}
	zlistx_destroy(&order);
	return self;
fail:
	zlistx_destroy(&order);
	dg_journal_destroy(&self);
	return NULL;
}

void
dg_journal_destroy(dg_journal_t **self_p)
{
	dg_journal_t *self = *self_p;

	if (!self)
		return;
	if (self->fd >= 0 && self->dirty)
		(void)fdatasync(self->fd);
	if (self->fd >= 0)
		close(self->fd);
	zhashx_destroy(&self->live);
	zlistx_destroy(&self->recent);
	free(self->path);
	free(self);
	*self_p = NULL;
}

uint64_t
dg_journal_last_id(const dg_journal_t *self)
{
	return self->last_id;
}

uint64_t
dg_journal_rooms(const dg_journal_t *self)
{
	return self->rooms;
}

int
dg_journal_reserve_rooms(dg_journal_t *self, uint64_t upto)
{
	if (upto <= self->rooms)
		return 0;
	if (s_append_small(self, K_ROOMS, upto) < 0)
		return -1;
	self->rooms = upto;
	return 0;
}

size_t
dg_journal_live(const dg_journal_t *self)
{
	return zhashx_size(self->live);
}

bool
dg_journal_dirty(const dg_journal_t *self)
{
	return self->dirty;
}

/* ---- appending --------------------------------------------------------- */

int
dg_journal_accept(dg_journal_t *self, uint64_t id, int64_t deadline_wall_ms,
    const dg_msg_t *submit)
{
	dg_buf_t body = { 0 };
	char key[24];

	if (dg_proto_encode(submit, &body) < 0)
		return -1;
	size_t plen = 17 + body.size, len = 0;
	uint8_t *payload = malloc(plen);
	s_live_t *l = calloc(1, sizeof *l);
	if (!payload || !l) {
		free(payload);
		free(l);
		dg_buf_free(&body);
		errno = ENOMEM;
		return -1;
	}
	payload[0] = K_ACCEPT;
	s_put64(payload + 1, id);
	s_put64(payload + 9, (uint64_t)deadline_wall_ms);
	memcpy(payload + 17, body.data, body.size);
	dg_buf_free(&body);
	l->id = id;
	l->rec = s_record(payload, plen, &len);
	l->len = len;
	free(payload);
	if (!l->rec || s_append(self, l->rec, l->len) < 0) {
		free(l->rec);
		free(l);
		return -1;
	}
	if (id > self->last_id)
		self->last_id = id;
	zhashx_update(self->live, s_key(key, id), l);
	return 0;
}

int
dg_journal_end(dg_journal_t *self, uint64_t id, const dg_msg_t *result)
{
	char key[24];

	if (!zhashx_lookup(self->live, s_key(key, id)))
		return 0;
	dg_buf_t body = { 0 };
	if (!result || dg_proto_encode(result, &body) < 0) {
		if (s_append_small(self, K_END, id) < 0)
			return -1;
	} else {
		size_t plen = 9 + body.size, len = 0;
		uint8_t *payload = malloc(plen), *rec = NULL;
		if (payload) {
			payload[0] = K_END;
			s_put64(payload + 1, id);
			memcpy(payload + 9, body.data, body.size);
			rec = s_record(payload, plen, &len);
		}
		free(payload);
		dg_buf_free(&body);
		if (!rec || s_append(self, rec, len) < 0 ||
		    s_keep_recent(self, rec, len, id) < 0) {
			free(rec);
			return -1;
		}
		free(rec);
	}
	zhashx_delete(self->live, key);
	self->dead += 2;
	return 0;
}

/* ---- sync and compaction ---------------------------------------------- */

static int
s_cmp_live(const void *a, const void *b)
{
	const s_live_t *x = *(s_live_t *const *)a, *y = *(s_live_t *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* Rewrite the file with the live records only, oldest first, through a
 * temporary file renamed over it: a crash leaves the old or the new. */
static int
s_compact(dg_journal_t *self)
{
	size_t n = zhashx_size(self->live), i = 0;
	s_live_t **all = calloc(n + 1, sizeof *all);
	char *tmp = NULL;
	int fd = -1;

	if (!all || asprintf(&tmp, "%s.tmp", self->path) < 0) {
		free(all);
		return -1;
	}
	for (s_live_t *l = zhashx_first(self->live); l;
	    l = zhashx_next(self->live))
		all[i++] = l;
	qsort(all, n, sizeof *all, s_cmp_live);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	int keep = self->fd;
	self->fd = fd;
	/* The highest id survives even when no request is live. */
	int rc = s_append_small(self, K_LAST, self->last_id);
	if (rc == 0 && self->rooms)
		rc = s_append_small(self, K_ROOMS, self->rooms);
	for (s_live_t *l = zlistx_first(self->recent); l && rc == 0;
	    l = zlistx_next(self->recent))
		rc = s_append(self, l->rec, l->len);
	for (i = 0; i < n && rc == 0; i++)
		rc = s_append(self, all[i]->rec, all[i]->len);
	self->fd = keep;
	if (rc < 0 || fdatasync(fd) < 0 || rename(tmp, self->path) < 0) {
		close(fd);
		unlink(tmp);
		goto fail;
	}
	close(self->fd);
	self->fd = fd;
	self->dead = 0;
	self->dirty = false;
	/* The rename itself is durable once the folder is synced. */
	char *dir = strdup(self->path), *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash) {
		*(slash == dir ? slash + 1 : slash) = '\0';
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
	}
	free(dir);
	dg_log_debug("journal %s: compacted to %zu live requests",
	    self->path, n);
	free(all);
	free(tmp);
	return 0;
fail:
	free(all);
	free(tmp);
	return -1;
}

int
dg_journal_sync(dg_journal_t *self)
{
	size_t nlive = zhashx_size(self->live);

	if (self->dead >= COMPACT_DEAD && self->dead > 2 * nlive &&
	    s_compact(self) < 0)
		dg_log_warn("journal %s: cannot compact: %s", self->path,
		    strerror(errno));
	if (!self->dirty)
		return 0;
	if (fdatasync(self->fd) < 0)
		return -1;
	self->dirty = false;
	return 0;
}
