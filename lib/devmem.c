/*  devmem.c: pool memory kinds and the staging copier; see devmem.h.  */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cuda.h"
#include "devmem.h"

#ifdef DG_CUDA
#include <cuda_runtime.h>
#endif

const char *
dg_mem_kind_name(dg_mem_kind_t kind)
{
	static const char *const names[] = { "host", "pinned", "device" };
	return kind <= DG_MEM_DEVICE ? names[kind] : "?";
}

/* Pools are large and live as long as the daemon: ask for transparent
 * huge pages (a no-op where THP is "never"; the default, "madvise",
 * gives them only when asked).  Every copy in and out of a pool then
 * walks 512 times fewer page-table entries, and shm's cross-process copy
 * pins 2 MiB at a time (ARCHITECTURE.md, "Pool memory").  A memfd pool
 * follows the shmem_enabled setting instead; the advice is harmless
 * there. */
static void
s_want_huge(void *p, size_t size)
{
	(void)madvise(p, size, MADV_HUGEPAGE);
}

void *
dg_mem_alloc(dg_mem_kind_t kind, size_t size, int device, char *why,
    size_t whysize)
{
	if (kind == DG_MEM_HOST) {
		/* Fresh anonymous pages: nothing is touched until used. */
		void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			if (why)
				snprintf(why, whysize, "mmap of %zu bytes "
				    "failed", size);
			return NULL;
		}
		s_want_huge(p, size);
		return p;
	}
#ifdef DG_CUDA
	void *p = NULL;
	cudaError_t err = cudaSetDevice(device);
	if (err == cudaSuccess)
		err = kind == DG_MEM_PINNED ?
		    cudaHostAlloc(&p, size, cudaHostAllocPortable) :
		    cudaMalloc(&p, size);
	if (err != cudaSuccess) {
		if (why)
			snprintf(why, whysize, "%s of %zu bytes on device %d: "
			    "%s", kind == DG_MEM_PINNED ? "cudaHostAlloc" :
			    "cudaMalloc", size, device, cudaGetErrorString(err));
		return NULL;
	}
	return p;
#else
	(void)device;
	if (why)
		snprintf(why, whysize, "%s memory needs a CUDA build "
		    "(make CUDA=1)", dg_mem_kind_name(kind));
	return NULL;
#endif
}

void *
dg_mem_alloc_shared(size_t size, int *fd, char *why, size_t whysize)
{
	int f = memfd_create("disagg-pool", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (f < 0) {
		snprintf(why, whysize, "memfd_create: %s", strerror(errno));
		return NULL;
	}
	if (ftruncate(f, (off_t)size) < 0 || fcntl(f, F_ADD_SEALS,
	    F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		snprintf(why, whysize, "memfd of %zu bytes: %s", size,
		    strerror(errno));
		close(f);
		return NULL;
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	if (p == MAP_FAILED) {
		snprintf(why, whysize, "mmap of a %zu-byte memfd: %s", size,
		    strerror(errno));
		close(f);
		return NULL;
	}
	s_want_huge(p, size);
	*fd = f;
	return p;
}

void
dg_mem_free(dg_mem_kind_t kind, void *ptr, size_t size)
{
	if (!ptr)
		return;
	if (kind == DG_MEM_HOST) {
		munmap(ptr, size);
		return;
	}
#ifdef DG_CUDA
	if (kind == DG_MEM_PINNED)
		cudaFreeHost(ptr);
	else
		cudaFree(ptr);
#endif
}

dg_mem_kind_t
dg_mem_choose(bool want_cuda, int device, bool hmem, char *note,
    size_t notesize)
{
	char why[160] = "";

	if (!want_cuda) {
		snprintf(note, notesize, "pool in host memory");
		return DG_MEM_HOST;
	}
	int n = dg_cuda_device_count(why, sizeof why);
	if (device >= n) {
		snprintf(note, notesize, "memory = cuda but no CUDA device %d "
		    "(%s): pool in host memory", device, n ? "not that many "
		    "devices" : why);
		return DG_MEM_HOST;
	}
	if (hmem) {
		snprintf(note, notesize, "pool in memory of CUDA device %d, "
		    "registered with the fabric (FI_HMEM_CUDA)", device);
		return DG_MEM_DEVICE;
	}
	snprintf(note, notesize, "the fabric cannot register CUDA memory: "
	    "pool in pinned host memory, tensors staged to and from device "
	    "%d with cudaMemcpyAsync", device);
	return DG_MEM_PINNED;
}

/* ---- staging ----------------------------------------------------------- */

typedef struct {
	void *dst;
	const void *src;
	size_t n;
} s_copy_t;

struct _dg_staging_t {
	size_t piece;
	bool cuda;
	/* Host stand-in: copies wait here until sync, as on a stream. */
	s_copy_t *queue;
	size_t nqueue, capqueue;
	bool failed;
	char error[160];
	dg_staging_stats_t stats;
#ifdef DG_CUDA
	cudaStream_t stream;
	int device;
#endif
};

dg_staging_t *
dg_staging_new_host(size_t piece)
{
	dg_staging_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->piece = piece ? piece : 1;
	return self;
}

dg_staging_t *
dg_staging_new_cuda(int device, size_t piece, char *why, size_t whysize)
{
#ifdef DG_CUDA
	if (dg_cuda_device_count(why, whysize) <= device) {
		snprintf(why, whysize, "no CUDA device %d", device);
		return NULL;
	}
	dg_staging_t *self = dg_staging_new_host(piece);
	if (!self) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	self->cuda = true;
	self->device = device;
	cudaError_t err = cudaSetDevice(device);
	if (err == cudaSuccess)
		err = cudaStreamCreateWithFlags(&self->stream,
		    cudaStreamNonBlocking);
	if (err != cudaSuccess) {
		snprintf(why, whysize, "CUDA stream on device %d: %s", device,
		    cudaGetErrorString(err));
		free(self);
		return NULL;
	}
	return self;
#else
	(void)device;
	(void)piece;
	snprintf(why, whysize, "built without CUDA (make CUDA=1)");
	return NULL;
#endif
}

void
dg_staging_destroy(dg_staging_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_staging_t *self = *self_p;
#ifdef DG_CUDA
	if (self->cuda) {
		cudaStreamSynchronize(self->stream);
		cudaStreamDestroy(self->stream);
	}
#endif
	free(self->queue);
	free(self);
	*self_p = NULL;
}

static int
s_enqueue(dg_staging_t *self, void *dst, const void *src, size_t n)
{
#ifdef DG_CUDA
	if (self->cuda) {
		cudaError_t err = cudaMemcpyAsync(dst, src, n,
		    cudaMemcpyDefault, self->stream);
		if (err != cudaSuccess && !self->failed) {
			self->failed = true;
			snprintf(self->error, sizeof self->error,
			    "cudaMemcpyAsync of %zu bytes: %s", n,
			    cudaGetErrorString(err));
		}
		return err == cudaSuccess ? 0 : -1;
	}
#endif
	if (self->nqueue == self->capqueue) {
		size_t cap = self->capqueue ? self->capqueue * 2 : 16;
		s_copy_t *q = realloc(self->queue, cap * sizeof *q);
		if (!q)
			return -1;
		self->queue = q;
		self->capqueue = cap;
	}
	self->queue[self->nqueue++] = (s_copy_t){ dst, src, n };
	return 0;
}

int
dg_staging_copy(dg_staging_t *self, dg_stage_dir_t dir, void *pool,
    void *dev, size_t n)
{
	char *dst = dir == DG_STAGE_TO_POOL ? pool : dev;
	const char *src = dir == DG_STAGE_TO_POOL ? dev : pool;

	if ((!dst || !src) && n) {
		self->stats.errors++;
		if (!self->failed) {
			self->failed = true;
			snprintf(self->error, sizeof self->error,
			    "copy of %zu bytes with no %s buffer", n,
			    !dst ? "destination" : "source");
		}
		return -1;
	}
	for (size_t off = 0; off < n; off += self->piece) {
		size_t len = n - off < self->piece ? n - off : self->piece;
		if (s_enqueue(self, dst + off, src + off, len) < 0) {
			self->stats.errors++;
			return -1;
		}
		self->stats.pieces++;
	}
	self->stats.bytes += n;
	return 0;
}

int
dg_staging_sync(dg_staging_t *self, char *why, size_t whysize)
{
	self->stats.syncs++;
#ifdef DG_CUDA
	if (self->cuda) {
		cudaError_t err = cudaStreamSynchronize(self->stream);
		if (err != cudaSuccess && !self->failed) {
			self->failed = true;
			snprintf(self->error, sizeof self->error,
			    "cudaStreamSynchronize: %s",
			    cudaGetErrorString(err));
		}
	}
#endif
	for (size_t i = 0; i < self->nqueue; i++)
		memcpy(self->queue[i].dst, self->queue[i].src,
		    self->queue[i].n);
	self->nqueue = 0;
	if (self->failed) {
		if (why)
			snprintf(why, whysize, "%s", self->error);
		self->failed = false;
		return -1;
	}
	return 0;
}

void
dg_staging_stats(const dg_staging_t *self, dg_staging_stats_t *out)
{
	*out = self->stats;
}
