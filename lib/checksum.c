/*  checksum.c: see checksum.h.  */
#include <xxhash.h>

#include "checksum.h"

uint64_t
dg_checksum(const void *data, size_t len)
{
	return (uint64_t)XXH3_64bits(data, len);
}
