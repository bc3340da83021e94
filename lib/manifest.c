/*  manifest.c: the checks on a manifest from the network; see
 *  manifest.h.  */
#include <stdarg.h>
#include <stdio.h>

#include "config.h"
#include "manifest.h"
#include "xfer.h"

static int
s_bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

/* A tensor name from the network, fit for a log line: printable ASCII,
 * the rest as '?', at most 64 bytes. */
static const char *
s_safe(const char *name, char *buf, size_t len)
{
	size_t i = 0;

	if (!name)
		return "?";
	for (; name[i] && i + 1 < len && i < 64; i++)
		buf[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
	buf[i] = '\0';
	return buf;
}

int
dg_manifest_check(const dg_manifest_msg_t *m, const dg_manifest_want_t *want,
    char *why, size_t whylen)
{
	/* The phase is the hop along the chain: 1 from the first stage to
	 * the second, and so on. */
	if (m->phase < 1 || m->phase >= DG_CHAIN_MAX)
		return s_bad(why, whylen, "phase %lld (1 to %d)",
		    (long long)m->phase, DG_CHAIN_MAX - 1);
	if (want->room && m->room != want->room)
		return s_bad(why, whylen, "room %llu, expected %llu",
		    (unsigned long long)m->room,
		    (unsigned long long)want->room);
	if (want->phase && m->phase != want->phase)
		return s_bad(why, whylen, "phase %lld, expected %lld",
		    (long long)m->phase, (long long)want->phase);
	if (m->gen == 0)
		return s_bad(why, whylen, "slot generation 0 (stale or "
		    "never reserved)");
	if (m->n_fabric < 1 || m->n_fabric > DG_XFER_MAX_RAILS)
		return s_bad(why, whylen, "%zu fabric addresses (1..%d)",
		    m->n_fabric, DG_XFER_MAX_RAILS);
	for (size_t i = 0; i < m->n_fabric; i++)
		if (m->fabric[i].size == 0 || m->fabric[i].size > DG_XFER_ADDR_MAX)
			return s_bad(why, whylen, "fabric address %zu of %zu "
			    "bytes", i, m->fabric[i].size);
	if (m->n_tensors == 0)
		return s_bad(why, whylen, "no tensors");
	if (want->bytes && m->n_tensors != want->n_tensors)
		return s_bad(why, whylen, "%zu tensors, this stage makes %zu",
		    m->n_tensors, want->n_tensors);

	/* Offsets are relative to the manifest's slot; tensors must not
	 * wrap, overlap, or reach past the extent the receiver can have. */
	uint64_t end = 0;
	for (size_t i = 0; i < m->n_tensors; i++) {
		const dg_tensor_row_t *t = &m->tensors[i];
		char safe[80];
		const char *name = s_safe(t->name, safe, sizeof safe);
		if (want->bytes && t->bytes != want->bytes[i])
			return s_bad(why, whylen, "tensor '%s': %llu bytes, "
			    "this stage makes %llu", name,
			    (unsigned long long)t->bytes,
			    (unsigned long long)want->bytes[i]);
		if (t->offset + t->bytes < t->offset)
			return s_bad(why, whylen, "tensor '%s': offset %llu + "
			    "%llu bytes overflows", name,
			    (unsigned long long)t->offset,
			    (unsigned long long)t->bytes);
		if (t->offset < end)
			return s_bad(why, whylen, "tensor '%s' at offset %llu "
			    "overlaps the one before (ends at %llu)", name,
			    (unsigned long long)t->offset,
			    (unsigned long long)end);
		end = t->offset + t->bytes;
		if (want->max_extent && end > want->max_extent)
			return s_bad(why, whylen, "tensor '%s' ends at %llu, "
			    "past the largest extent %llu", name,
			    (unsigned long long)end,
			    (unsigned long long)want->max_extent);
	}
	if (m->base + end < m->base)
		return s_bad(why, whylen, "base address %#llx + %llu bytes "
		    "overflows", (unsigned long long)m->base,
		    (unsigned long long)end);
	if (m->chunk == 0)
		return s_bad(why, whylen, "chunk size 0");
	/* The token travels in 32 bits of CQ data. */
	if (m->token > UINT32_MAX)
		return s_bad(why, whylen, "token %llu does not fit in 32 bits",
		    (unsigned long long)m->token);
	return 0;
}
