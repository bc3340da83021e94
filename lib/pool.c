/*  pool.c: the slot pool behind every room's tensors; see pool.h.
 *
 *  Free space is a bitmap (1 = taken) under one mutex, searched next-fit
 *  from a cursor a word at a time, so one reserve costs at most one pass
 *  over the bitmap (slots / 64 words plus the free runs it steps over),
 *  and freed runs coalesce with their neighbours by construction.
 *
 *  The state word of each extent lives in a small head record per slot,
 *  beside the region rather than in it: the region is registered memory
 *  that peers write tensors into, and a stray RDMA write must not be
 *  able to forge a state.  Only the head slot's record means anything;
 *  the records of the slots behind it keep whatever FREE word they last
 *  had.
 *
 *  Generations come from one counter for the whole pool, so a
 *  (slot, generation) pair names at most one reservation ever, whatever
 *  slot it lands on.  A word whose state is FREE is dead for every
 *  caller: the extent it belonged to is over, so any handle to it is
 *  stale, and only dg_pool_reserve (under the mutex, on slots the bitmap
 *  says are free) ever writes a FREE word again.  */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"

/* The word: generation above, state in the low bits. */
#define STATE_BITS      3
#define STATE_MASK      ((UINT64_C(1) << STATE_BITS) - 1)
#define GEN_MAX         (UINT64_MAX >> STATE_BITS)

/* Refusal logs: the first few in full, then one line per this many. */
#define LOG_FIRST       10
#define LOG_EVERY       1000

/* nslots and bytes are written before the word that publishes them and
 * read after it; they are atomics because a reader may be looking at a
 * record that a new reservation is rewriting (see s_check). */
struct s_head {
	_Atomic uint64_t word;
	_Atomic uint64_t bytes;
	_Atomic uint32_t nslots;
};

struct _dg_pool_t {
	uint8_t *base;
	size_t size;                    /* slots * slot_size */
	size_t map_len;                 /* what was allocated */
	int fd;                         /* the memfd behind it, or -1 */
	dg_mem_kind_t kind;
	int device;
	size_t slot_size;
	uint32_t slots;
	struct s_head *heads;           /* [slots] */

	pthread_mutex_t lock;           /* guards the three below */
	uint64_t *bitmap;               /* 1 = taken; bits past slots stay 0 */
	uint32_t cursor;                /* next-fit: where the last run ended */
	uint32_t nfree;

	_Atomic uint64_t next_gen;      /* every gen below it was handed out */
	_Atomic uint64_t reserved, freed;
	_Atomic uint64_t refused_illegal, refused_stale, nospace, invalid;
};

static const char *const s_state_names[DG_SLOT_NSTATES] =
	{ "free", "reserved", "filling", "ready", "in_use" };

const char *
dg_slot_state_name(int state)
{
	return state >= 0 && state < DG_SLOT_NSTATES ?
	    s_state_names[state] : "?";
}

const char *
dg_slot_rc_name(int rc)
{
	switch (rc) {
	case DG_SLOT_OK: return "ok";
	case DG_SLOT_STALE: return "stale";
	case DG_SLOT_ILLEGAL: return "illegal";
	case DG_SLOT_NOSPACE: return "nospace";
	case DG_SLOT_INVALID: return "invalid";
	default: return "?";
	}
}

static inline uint64_t
s_pack(uint64_t gen, int state)
{
	return gen << STATE_BITS | (uint64_t)state;
}

static inline uint64_t
s_gen(uint64_t word)
{
	return word >> STATE_BITS;
}

static inline int
s_state(uint64_t word)
{
	return (int)(word & STATE_MASK);
}

/* ---- construction ------------------------------------------------------ */

dg_pool_t *
dg_pool_new(size_t bytes, size_t slot_size)
{
	return dg_pool_new_kind(bytes, slot_size, DG_MEM_HOST, 0, NULL, 0);
}

dg_pool_t *
dg_pool_new_kind(size_t bytes, size_t slot_size, dg_mem_kind_t kind,
    int device, char *why, size_t whysize)
{
	return dg_pool_new_shared(bytes, slot_size, kind, device, false, why,
	    whysize);
}

dg_pool_t *
dg_pool_new_shared(size_t bytes, size_t slot_size, dg_mem_kind_t kind,
    int device, bool share, char *why, size_t whysize)
{
	if (why)
		snprintf(why, whysize, "bad pool geometry (%zu bytes in slots "
		    "of %zu)", bytes, slot_size);
	if (bytes == 0 || slot_size == 0)
		return NULL;
	size_t slots = bytes / slot_size + (bytes % slot_size != 0);
	if (slots > UINT32_MAX || slot_size > SIZE_MAX / slots)
		return NULL;

	dg_pool_t *self = calloc(1, sizeof *self);
	if (!self)
		return NULL;
	self->slots = (uint32_t)slots;
	self->slot_size = slot_size;
	self->size = slots * slot_size;
	self->map_len = self->size;
	atomic_init(&self->next_gen, 1);
	/* calloc of anything large is fresh mmapped zero pages, so neither
	 * the region nor these arrays are touched until they are used. */
	self->heads = calloc(slots, sizeof *self->heads);
	self->bitmap = calloc((slots + 63) / 64, sizeof *self->bitmap);
	if (!self->heads || !self->bitmap)
		goto fail;
	self->kind = kind;
	self->device = device;
	self->fd = -1;
	void *base = share && kind == DG_MEM_HOST ?
	    dg_mem_alloc_shared(self->map_len, &self->fd, why, whysize) :
	    dg_mem_alloc(kind, self->map_len, device, why, whysize);
	if (!base)
		goto fail;
	self->base = base;
	self->nfree = self->slots;
	if (pthread_mutex_init(&self->lock, NULL) != 0) {
		dg_mem_free(kind, self->base, self->map_len);
		if (self->fd >= 0)
			close(self->fd);
		goto fail;
	}
	return self;
fail:
	free(self->heads);
	free(self->bitmap);
	free(self);
	return NULL;
}

void
dg_pool_destroy(dg_pool_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_pool_t *self = *self_p;
	dg_mem_free(self->kind, self->base, self->map_len);
	if (self->fd >= 0)
		close(self->fd);
	pthread_mutex_destroy(&self->lock);
	free(self->heads);
	free(self->bitmap);
	free(self);
	*self_p = NULL;
}

dg_mem_kind_t
dg_pool_kind(const dg_pool_t *self)
{
	return self->kind;
}

int
dg_pool_device(const dg_pool_t *self)
{
	return self->device;
}

int
dg_pool_fd(const dg_pool_t *self)
{
	return self->fd;
}

void *
dg_pool_base(const dg_pool_t *self)
{
	return self ? self->base : NULL;
}

size_t
dg_pool_size(const dg_pool_t *self)
{
	return self ? self->size : 0;
}

size_t
dg_pool_slot_size(const dg_pool_t *self)
{
	return self ? self->slot_size : 0;
}

uint32_t
dg_pool_slots(const dg_pool_t *self)
{
	return self ? self->slots : 0;
}

/* ---- the bitmap (callers hold the lock) -------------------------------- */

/* First slot in [i, end) whose bit is `taken`, or end: a word at a time. */
static uint64_t
s_next_slot(const dg_pool_t *self, uint64_t i, uint64_t end, bool taken)
{
	while (i < end) {
		uint64_t bits = self->bitmap[i / 64];
		uint64_t w = (taken ? bits : ~bits) & (~UINT64_C(0) << (i % 64));
		if (w) {
			uint64_t at = (i & ~UINT64_C(63)) + (uint64_t)__builtin_ctzll(w);
			return at < end ? at : end;
		}
		i = (i | 63) + 1;
	}
	return end;
}

static uint64_t
s_next_free(const dg_pool_t *self, uint64_t i, uint64_t end)
{
	return s_next_slot(self, i, end, false);
}

static uint64_t
s_next_taken(const dg_pool_t *self, uint64_t i, uint64_t end)
{
	return s_next_slot(self, i, end, true);
}

/* A run of n free slots starting in [from, until); UINT64_MAX if none.
 * Each failed candidate ends at a taken slot and the search resumes past
 * it, so the whole call is one pass over the range. */
static uint64_t
s_find_run(const dg_pool_t *self, uint64_t from, uint64_t until, uint64_t n)
{
	uint64_t i = from;

	while (i < until) {
		i = s_next_free(self, i, until);
		if (i >= until || i + n > self->slots)
			return UINT64_MAX;
		uint64_t j = s_next_taken(self, i, i + n);
		if (j == i + n)
			return i;
		i = j + 1;
	}
	return UINT64_MAX;
}

static void
s_mark(dg_pool_t *self, uint64_t start, uint64_t n, bool taken)
{
	uint64_t i = start, end = start + n;

	while (i < end) {
		uint64_t lo = i % 64;
		uint64_t span = end - i < 64 - lo ? end - i : 64 - lo;
		uint64_t bits = (span == 64 ? ~UINT64_C(0) :
		    ((UINT64_C(1) << span) - 1)) << lo;
		if (taken)
			self->bitmap[i / 64] |= bits;
		else
			self->bitmap[i / 64] &= ~bits;
		i += span;
	}
}

/* Called only by whoever won the CAS to FREE, so exactly once. */
static void
s_release(dg_pool_t *self, uint32_t slot, uint32_t nslots)
{
	pthread_mutex_lock(&self->lock);
	s_mark(self, slot, nslots, false);
	self->nfree += nslots;
	pthread_mutex_unlock(&self->lock);
	atomic_fetch_add_explicit(&self->freed, 1, memory_order_relaxed);
}

/* ---- refusals ---------------------------------------------------------- */

/* A refusal can come in floods (a peer replaying old manifests, a storm
 * of timeouts), so say the first few and then one per LOG_EVERY. */
static bool
s_say(uint64_t nth)
{
	return nth <= LOG_FIRST || nth % LOG_EVERY == 0;
}

static dg_slot_rc_t
s_illegal(dg_pool_t *self, const dg_extent_t *ext, int cur, int from, int to)
{
	uint64_t n = atomic_fetch_add_explicit(&self->refused_illegal, 1,
	    memory_order_relaxed) + 1;
	if (s_say(n))
		dg_log_warn("pool: refused %s -> %s on extent %" PRIu32
		    " gen %" PRIu64 ": it is %s (%" PRIu64 " refused)",
		    dg_slot_state_name(from), dg_slot_state_name(to),
		    ext->slot, ext->gen, dg_slot_state_name(cur), n);
	return DG_SLOT_ILLEGAL;
}

/* Stale is logged at debug, not warn: it is the expected end of a race
 * the design allows (a completion arriving after its room timed out and
 * the slots were reused, two releasers racing), is harmless because it
 * was refused, and would be noise in a timeout storm.  The counter shows
 * it on the console; a rising one is worth a look, one line is not. */
static dg_slot_rc_t
s_stale(dg_pool_t *self, const dg_extent_t *ext, int from, int to)
{
	uint64_t n = atomic_fetch_add_explicit(&self->refused_stale, 1,
	    memory_order_relaxed) + 1;
	if (s_say(n))
		dg_log_debug("pool: refused %s%s%s on extent %" PRIu32 " gen %"
		    PRIu64 ": generation moved on (%" PRIu64 " stale)",
		    from < 0 ? "free" : dg_slot_state_name(from),
		    from < 0 ? "" : " -> ",
		    from < 0 ? "" : dg_slot_state_name(to),
		    ext->slot, ext->gen, n);
	return DG_SLOT_STALE;
}

/* Not counted in the stats (there is no field), but a handle that was
 * never ours is a bug or a forged manifest: say so, within limits. */
static dg_slot_rc_t
s_invalid(const dg_pool_t *cself, const dg_extent_t *ext, const char *what)
{
	dg_pool_t *self = (dg_pool_t *)cself;   /* a counter, not the value */
	uint64_t n = atomic_fetch_add_explicit(&self->invalid, 1,
	    memory_order_relaxed) + 1;
	if (s_say(n)) {
		if (ext)
			dg_log_warn("pool: refused %s on extent %" PRIu32
			    "+%" PRIu32 " gen %" PRIu64 ": not an extent of "
			    "this pool (%" PRIu64 " invalid)", what, ext->slot,
			    ext->nslots, ext->gen, n);
		else
			dg_log_warn("pool: refused %s: no extent or no bytes "
			    "(%" PRIu64 " invalid)", what, n);
	}
	return DG_SLOT_INVALID;
}

/* ---- checking a handle ------------------------------------------------- */

static bool
s_dead(uint64_t word, uint64_t gen)
{
	return s_gen(word) != gen || s_state(word) == DG_SLOT_FREE;
}

/* Whether `ext` is a live extent of this pool: DG_SLOT_OK with its word
 * in *word, DG_SLOT_STALE when it was freed (and maybe reused), or
 * DG_SLOT_INVALID when it never was one.  Generation first, so a handle
 * to a reused slot reads as stale even though its nslots no longer match
 * the record.  Neither refusal is counted here. */
static dg_slot_rc_t
s_check(const dg_pool_t *self, const dg_extent_t *ext, uint64_t *word)
{
	if (!ext || ext->slot >= self->slots || ext->gen == 0 ||
	    ext->gen >= atomic_load(&self->next_gen) || ext->nslots == 0 ||
	    ext->nslots > self->slots - ext->slot ||
	    ext->offset != (uint64_t)ext->slot * self->slot_size)
		return DG_SLOT_INVALID;
	const struct s_head *h = &self->heads[ext->slot];
	uint64_t w = atomic_load(&h->word);
	if (s_dead(w, ext->gen))
		return DG_SLOT_STALE;
	if (atomic_load(&h->nslots) != ext->nslots ||
	    atomic_load(&h->bytes) != ext->bytes) {
		/* Either the handle is forged, or the extent was freed and
		 * reserved again between the two loads, and then the record
		 * we read was written after the CAS to FREE: the word says
		 * which. */
		w = atomic_load(&h->word);
		return s_dead(w, ext->gen) ? DG_SLOT_STALE : DG_SLOT_INVALID;
	}
	*word = w;
	return DG_SLOT_OK;
}

/* ---- the state machine ------------------------------------------------- */

dg_slot_rc_t
dg_pool_reserve(dg_pool_t *self, uint64_t bytes, dg_extent_t *out)
{
	if (!self)
		return DG_SLOT_INVALID;
	if (!out || bytes == 0)
		return s_invalid(self, NULL, "reserve");
	uint64_t n = bytes / self->slot_size + (bytes % self->slot_size != 0);

	pthread_mutex_lock(&self->lock);
	uint64_t start = UINT64_MAX;
	uint64_t gen = atomic_load(&self->next_gen);
	if (n <= self->nfree && gen <= GEN_MAX) {
		start = s_find_run(self, self->cursor, self->slots, n);
		if (start == UINT64_MAX)
			start = s_find_run(self, 0, self->cursor, n);
	}
	if (start == UINT64_MAX) {
		pthread_mutex_unlock(&self->lock);
		if (gen > GEN_MAX)
			dg_log_error("pool: generations exhausted");
		atomic_fetch_add_explicit(&self->nospace, 1,
		    memory_order_relaxed);
		return DG_SLOT_NOSPACE;
	}
	s_mark(self, start, n, true);
	self->nfree -= (uint32_t)n;
	self->cursor = start + n == self->slots ? 0 : (uint32_t)(start + n);
	atomic_store(&self->next_gen, gen + 1);

	struct s_head *h = &self->heads[start];
	atomic_store(&h->nslots, (uint32_t)n);
	atomic_store(&h->bytes, bytes);
	/* Nobody else can move a FREE word (every other CAS expects a live
	 * state), so this cannot lose; a word that is not FREE on a slot
	 * the bitmap calls free means the pool is corrupt, and handing the
	 * slot out again would give one room another's memory. */
	uint64_t w = atomic_load(&h->word);
	if (s_state(w) != DG_SLOT_FREE ||
	    !atomic_compare_exchange_strong(&h->word, &w,
	    s_pack(gen, DG_SLOT_RESERVED))) {
		dg_log_error("pool: slot %" PRIu64 " is %s but free in the "
		    "bitmap", start, dg_slot_state_name(s_state(w)));
		abort();
	}
	pthread_mutex_unlock(&self->lock);
	atomic_fetch_add_explicit(&self->reserved, 1, memory_order_relaxed);

	*out = (dg_extent_t){
		.slot = (uint32_t)start,
		.nslots = (uint32_t)n,
		.gen = gen,
		.offset = start * self->slot_size,
		.bytes = bytes,
	};
	return DG_SLOT_OK;
}

/* The edges of pool.h, except FREE -> RESERVED, which only reserve takes. */
static bool
s_legal(int from, int to)
{
	if (from <= DG_SLOT_FREE || from >= DG_SLOT_NSTATES ||
	    to < DG_SLOT_FREE || to >= DG_SLOT_NSTATES)
		return false;
	return to == DG_SLOT_FREE || to == from + 1;
}

dg_slot_rc_t
dg_pool_transition(dg_pool_t *self, const dg_extent_t *ext,
    dg_slot_state_t from, dg_slot_state_t to)
{
	if (!self)
		return DG_SLOT_INVALID;
	uint64_t w;
	dg_slot_rc_t rc = s_check(self, ext, &w);
	if (rc == DG_SLOT_INVALID)
		return s_invalid(self, ext, "transition");
	if (rc == DG_SLOT_STALE)
		return s_stale(self, ext, (int)from, (int)to);
	if (!s_legal((int)from, (int)to))
		return s_illegal(self, ext, s_state(w), (int)from, (int)to);

	uint64_t want = s_pack(ext->gen, (int)from);
	if (atomic_compare_exchange_strong(&self->heads[ext->slot].word,
	    &want, s_pack(ext->gen, (int)to))) {
		if (to == DG_SLOT_FREE)
			s_release(self, ext->slot, ext->nslots);
		return DG_SLOT_OK;
	}
	/* `want` now holds what the word was. */
	if (s_dead(want, ext->gen))
		return s_stale(self, ext, (int)from, (int)to);
	return s_illegal(self, ext, s_state(want), (int)from, (int)to);
}

dg_slot_rc_t
dg_pool_free(dg_pool_t *self, const dg_extent_t *ext)
{
	if (!self)
		return DG_SLOT_INVALID;
	uint64_t w;
	dg_slot_rc_t rc = s_check(self, ext, &w);
	if (rc == DG_SLOT_INVALID)
		return s_invalid(self, ext, "free");
	/* The state may move under us (the owner finishing a fill while a
	 * watchdog frees the room); retry on the new state, not on a new
	 * generation.  Whoever moves it to FREE gives the slots back. */
	while (rc == DG_SLOT_OK) {
		if (atomic_compare_exchange_strong(&self->heads[ext->slot].word,
		    &w, s_pack(ext->gen, DG_SLOT_FREE))) {
			s_release(self, ext->slot, ext->nslots);
			return DG_SLOT_OK;
		}
		if (s_dead(w, ext->gen))
			rc = DG_SLOT_STALE;
	}
	return s_stale(self, ext, -1, DG_SLOT_FREE);
}

int
dg_pool_state(const dg_pool_t *self, const dg_extent_t *ext)
{
	uint64_t w;

	if (!self)
		return DG_SLOT_INVALID;
	dg_slot_rc_t rc = s_check(self, ext, &w);
	return rc == DG_SLOT_OK ? s_state(w) : rc;
}

dg_slot_rc_t
dg_pool_lookup(const dg_pool_t *self, uint32_t slot, uint64_t gen,
    dg_extent_t *out)
{
	if (!self || !out || slot >= self->slots || gen == 0 ||
	    gen >= atomic_load(&self->next_gen))
		return DG_SLOT_INVALID;
	const struct s_head *h = &self->heads[slot];
	uint64_t w = atomic_load(&h->word);
	if (s_dead(w, gen))
		return DG_SLOT_STALE;
	uint32_t nslots = atomic_load(&h->nslots);
	uint64_t bytes = atomic_load(&h->bytes);
	/* If the extent was freed and reused while we read the record, the
	 * record may be the new one's; the word tells us (see s_check). */
	if (s_dead(atomic_load(&h->word), gen))
		return DG_SLOT_STALE;
	*out = (dg_extent_t){
		.slot = slot,
		.nslots = nslots,
		.gen = gen,
		.offset = (uint64_t)slot * self->slot_size,
		.bytes = bytes,
	};
	return DG_SLOT_OK;
}

void *
dg_pool_ptr(const dg_pool_t *self, const dg_extent_t *ext)
{
	uint64_t w;

	if (!self || s_check(self, ext, &w) != DG_SLOT_OK)
		return NULL;
	return self->base + ext->offset;
}

bool
dg_pool_contains(const dg_extent_t *ext, uint64_t offset, uint64_t len)
{
	if (!ext || offset < ext->offset)
		return false;
	/* Subtract, never add: offset + len may wrap. */
	uint64_t into = offset - ext->offset;
	return into <= ext->bytes && len <= ext->bytes - into;
}

void
dg_pool_stats(const dg_pool_t *cself, dg_pool_stats_t *out)
{
	dg_pool_t *self = (dg_pool_t *)cself;   /* to take the lock */

	if (!out)
		return;
	memset(out, 0, sizeof *out);
	if (!self)
		return;
	out->reserved = atomic_load_explicit(&self->reserved,
	    memory_order_relaxed);
	out->freed = atomic_load_explicit(&self->freed, memory_order_relaxed);
	out->refused_illegal = atomic_load_explicit(&self->refused_illegal,
	    memory_order_relaxed);
	out->refused_stale = atomic_load_explicit(&self->refused_stale,
	    memory_order_relaxed);
	out->nospace = atomic_load_explicit(&self->nospace,
	    memory_order_relaxed);
	out->slots = self->slots;

	/* Under the lock the taken bits are exactly the live extents laid
	 * end to end, so walking heads by their nslots visits each once.
	 * One being freed right now (FREE, bits not yet cleared) is counted
	 * nowhere, which is what "live" means. */
	pthread_mutex_lock(&self->lock);
	out->slots_free = self->nfree;
	uint64_t i = 0;
	while ((i = s_next_taken(self, i, self->slots)) < self->slots) {
		const struct s_head *h = &self->heads[i];
		int st = s_state(atomic_load(&h->word));
		uint32_t n = atomic_load(&h->nslots);
		if (st != DG_SLOT_FREE) {
			out->extents[st]++;
			out->slots_in[st] += n;
		}
		i += n ? n : 1;
	}
	out->slots_in[DG_SLOT_FREE] = self->nfree;
	pthread_mutex_unlock(&self->lock);
}
