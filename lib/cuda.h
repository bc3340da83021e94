/*  cuda.h: the little disagg needs from the CUDA runtime, behind one
 *  header so the default build needs no CUDA at all.  Built against the
 *  runtime only with `make CUDA=1` (DG_CUDA defined); otherwise every
 *  call reports that no device exists.  */
#ifndef DG_CUDA_H
#define DG_CUDA_H

#include <stdbool.h>
#include <stddef.h>

/* True when this build was made with CUDA=1. */
bool dg_cuda_built(void);

/* Number of usable CUDA devices now; 0 without CUDA or without a device
 * (a missing driver is not an error: the caller falls back to host
 * memory).  `why`, when not NULL, receives the runtime's reason. */
int dg_cuda_device_count(char *why, size_t whysize);

/* CUDA IPC, for zero copy between device pools on one host
 * (xfer_local.c): a handle names device memory another process can open
 * (cudaIpcGetMemHandle / cudaIpcOpenMemHandle).  Without CUDA each call
 * fails with its reason. */
#define DG_CUDA_IPC_HANDLE 64
int dg_cuda_ipc_handle(void *dev, int device, unsigned char *handle,
    char *why, size_t whysize);
void *dg_cuda_ipc_open(const unsigned char *handle, int device, char *why,
    size_t whysize);
void dg_cuda_ipc_close(void *dev);
/* A copy between any two device or host addresses (cudaMemcpy with the
 * unified address space): 0, or -1 with the reason. */
int dg_cuda_copy(void *dst, const void *src, size_t n, char *why,
    size_t whysize);

#endif
