/*  cuda.c: CUDA runtime probes; see cuda.h.  */
#include <stdio.h>

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

#endif
