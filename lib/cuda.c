/*  cuda.c: CUDA runtime probes; see cuda.h.  */
#include <stdio.h>
#include <string.h>

#include "cuda.h"

#ifdef DG_CUDA
#include <cuda_runtime.h>

bool
dg_cuda_built(void)
{
	return true;
}

int
dg_cuda_device_count(char *why, size_t whysize)
{
	int n = 0;
	cudaError_t err = cudaGetDeviceCount(&n);

	if (err != cudaSuccess) {
		if (why)
			snprintf(why, whysize, "%s", cudaGetErrorString(err));
		return 0;
	}
	if (n == 0 && why)
		snprintf(why, whysize, "no CUDA device");
	return n;
}

static int
s_fail(cudaError_t err, const char *what, char *why, size_t whysize)
{
	if (why)
		snprintf(why, whysize, "%s: %s", what, cudaGetErrorString(err));
	return -1;
}

int
dg_cuda_ipc_handle(void *dev, int device, unsigned char *handle, char *why,
    size_t whysize)
{
	cudaIpcMemHandle_t h;
	cudaError_t err = cudaSetDevice(device);

	if (err == cudaSuccess)
		err = cudaIpcGetMemHandle(&h, dev);
	if (err != cudaSuccess)
		return s_fail(err, "cudaIpcGetMemHandle", why, whysize);
	_Static_assert(sizeof h <= DG_CUDA_IPC_HANDLE, "IPC handle size");
	memset(handle, 0, DG_CUDA_IPC_HANDLE);
	memcpy(handle, &h, sizeof h);
	return 0;
}

void *
dg_cuda_ipc_open(const unsigned char *handle, int device, char *why,
    size_t whysize)
{
	cudaIpcMemHandle_t h;
	void *dev = NULL;
	cudaError_t err = cudaSetDevice(device);

	memcpy(&h, handle, sizeof h);
	if (err == cudaSuccess)
		err = cudaIpcOpenMemHandle(&dev, h,
		    cudaIpcMemLazyEnablePeerAccess);
	if (err != cudaSuccess) {
		s_fail(err, "cudaIpcOpenMemHandle", why, whysize);
		return NULL;
	}
	return dev;
}

void
dg_cuda_ipc_close(void *dev)
{
	if (dev)
		(void)cudaIpcCloseMemHandle(dev);
}

int
dg_cuda_copy(void *dst, const void *src, size_t n, char *why, size_t whysize)
{
	cudaError_t err = cudaMemcpy(dst, src, n, cudaMemcpyDefault);

	return err == cudaSuccess ? 0 : s_fail(err, "cudaMemcpy", why, whysize);
}

#else

bool
dg_cuda_built(void)
{
	return false;
}

int
dg_cuda_device_count(char *why, size_t whysize)
{
	if (why)
		snprintf(why, whysize, "built without CUDA (make CUDA=1)");
	return 0;
}

int
dg_cuda_ipc_handle(void *dev, int device, unsigned char *handle, char *why,
    size_t whysize)
{
	(void)dev;
	(void)device;
	(void)handle;
	if (why)
		snprintf(why, whysize, "CUDA IPC needs a CUDA build (make CUDA=1)");
	return -1;
}

void *
dg_cuda_ipc_open(const unsigned char *handle, int device, char *why,
    size_t whysize)
{
	(void)dg_cuda_ipc_handle(NULL, device, (unsigned char *)handle, why,
	    whysize);
	return NULL;
}

void
dg_cuda_ipc_close(void *dev)
{
	(void)dev;
}

int
dg_cuda_copy(void *dst, const void *src, size_t n, char *why, size_t whysize)
{
	(void)dst;
	(void)src;
	(void)n;
	if (why)
		snprintf(why, whysize, "device copies need a CUDA build "
		    "(make CUDA=1)");
	return -1;
}

#endif
