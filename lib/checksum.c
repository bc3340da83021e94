/*  checksum.c: see checksum.h.  */
#include <stdio.h>
#include <xxhash.h>

#include "checksum.h"

uint64_t
dg_checksum(const void *data, size_t len)
{
	return (uint64_t)XXH3_64bits(data, len);
}

int
dg_checksum_verify(const void *base, const dg_tensor_row_t *want,
    const dg_tensor_row_t *got, size_t n, size_t ngot, char *why,
    size_t whysize)
{
	if (n != ngot) {
		snprintf(why, whysize, "sender reported %zu tensors, %zu "
		    "expected", ngot, n);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (want[i].bytes != got[i].bytes) {
			snprintf(why, whysize, "tensor '%s': sender wrote %llu "
			    "bytes, %llu expected", want[i].name,
			    (unsigned long long)got[i].bytes,
			    (unsigned long long)want[i].bytes);
			return -1;
		}
		uint64_t sum = dg_checksum((const char *)base + want[i].offset,
		    want[i].bytes);
		if (sum != got[i].checksum) {
			snprintf(why, whysize, "tensor '%s': checksum %016llx, "
			    "sender's %016llx", want[i].name,
			    (unsigned long long)sum,
			    (unsigned long long)got[i].checksum);
			return -1;
		}
	}
	return 0;
}
