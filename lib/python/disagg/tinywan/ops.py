"""ops: the few numerical kernels tinywan needs, made fast and
deterministic on one CPU thread.

Debian's PyTorch links the reference BLAS, which multiplies matrices at a
few GFLOP/s; its oneDNN (MKL-DNN) kernels are ten times faster and, on one
thread, give the same bits every time for the same shapes.  So on the CPU
every matrix product goes through oneDNN's inner-product primitive
(``torch._C._nn.mkldnn_linear``, what ``torch.utils.mkldnn`` uses), and a
3-D convolution is a sum of 2-D ones over its time taps (PyTorch's own
conv3d takes the slow path there).  On a GPU the ordinary operators are used.

``setup`` also keeps glibc from handing freed memory back to the kernel
(process-wide: mallopt's mmap threshold, trim threshold and top pad): each
new page of a fresh multi-megabyte tensor costs a page fault, and on a
virtual machine that made a softmax over a 2240x2240 matrix twenty times
slower than the arithmetic.
"""

import ctypes
import ctypes.util
import os

import torch
import torch.nn.functional as F

_MKLDNN = (torch.backends.mkldnn.is_available()
           and hasattr(torch._C._nn, "mkldnn_linear"))

# Largest score matrix (elements) attention makes at once: queries are
# taken in slices so that big videos stay within memory.
_SCORES = 1 << 22

_malloc_tuned = False


def keep_freed_memory():
    """Tell glibc malloc to serve big blocks from the heap and not to trim
    it, so that memory freed by one step is reused by the next without page
    faults.  Harmless elsewhere; returns whether it was applied."""
    global _malloc_tuned
    if _malloc_tuned:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    # glibc caps the mmap threshold (32 MiB on older releases): try high
    # first, then the cap.
    ok = False
    for value in (1 << 30, 32 << 20):
        if mallopt(M_MMAP_THRESHOLD, ctypes.c_int(value)) == 1:
            ok = True
            break
    mallopt(M_TRIM_THRESHOLD, ctypes.c_int((1 << 31) - 1))
    # A daemon runs stages in worker threads, whose arenas are 64 MiB
    # heaps that glibc unmaps whole once empty, whatever the trim
    # threshold, unless the top pad covers a heap: that alone made the
    # decoder three times slower in a thread than in the main one.
    mallopt(M_TOP_PAD, ctypes.c_int(64 << 20))
    _malloc_tuned = ok
    return ok


def one_thread():
    """One intra-op thread for the calling thread.  OpenMP's thread count
    is per thread: the daemon's workers are not the thread that ran
    setup(), and would each start as many threads as there are cores."""
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def setup(device):
    """Deterministic, single-threaded PyTorch for a stage computing on
    `device` (a torch.device)."""
    if device.type == "cuda":
        # cuBLAS is deterministic only with a fixed workspace; it reads
        # this when it starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # Not set_num_interop_threads: a second call aborts the process, and
    # nothing here uses the inter-op pool.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if device.type == "cpu":
        keep_freed_memory()


def _fast(x):
    return _MKLDNN and x.device.type == "cpu" and x.dtype == torch.float32


def linear(x, weight, bias=None):
    """x @ weight.T + bias over the last dimension of x."""
    if not _fast(x):
        return F.linear(x, weight, bias)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    b = bias.contiguous().to_mkldnn() if bias is not None else None
    y = torch._C._nn.mkldnn_linear(x2.to_mkldnn(),
                                   weight.contiguous().to_mkldnn(), b)
    return y.to_dense().reshape(*lead, weight.shape[0])


def lin(x, layer):
    """`linear` with an nn.Linear's parameters (their oneDNN copies kept on
    the layer, remade if the weights change in place)."""
    if not _fast(x):
        return F.linear(x, layer.weight, layer.bias)
    w, b = layer.weight, layer.bias
    key = (w.data_ptr(), w._version, b.data_ptr() if b is not None else 0,
           b._version if b is not None else 0)
    cached = getattr(layer, "_tinywan_mkldnn", None)
    if cached is None or cached[0] != key:
        cached = (key, w.detach().contiguous().to_mkldnn(),
                  b.detach().contiguous().to_mkldnn() if b is not None
                  else None)
        layer._tinywan_mkldnn = cached
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    y = torch._C._nn.mkldnn_linear(x2.to_mkldnn(), cached[1], cached[2])
    return y.to_dense().reshape(*lead, w.shape[0])


def _mm_t(a, b):
    """a @ b.T for 2-D tensors."""
    return a @ b.t()


def attention(q, k, v, bias=None, scale=None):
    """Softmax attention.  q [B, Lq, H, D], k and v [B, Lk, H, D] (a batch
    of 1 in q or k/v is shared with every row of the other); bias, added to
    the scores, broadcasts to [B, H, Lq, Lk].  Returns [B, Lq, H, D]."""
    B = max(q.shape[0], k.shape[0])
    Lq, H, D = q.shape[1], q.shape[2], q.shape[3]
    Lk = k.shape[1]
    if scale is None:
        scale = D ** -0.5
    if q.device.type != "cpu":
        return attention_batched(q, k, v, bias, scale)
    if not _fast(q):
        mk = dense = (lambda t: t)
        mm = _mm_t
    else:
        # Scores stay in oneDNN's format from product to softmax to
        # product: two fewer copies of the biggest tensor.
        def mk(t):
            return t.contiguous().to_mkldnn()

        def dense(t):
            return t.to_dense()

        def mm(a, b):
            return torch._C._nn.mkldnn_linear(a, b, None)
    out = q.new_empty(B, Lq, H, D)
    rows = max(1, min(Lq, _SCORES // max(1, Lk)))
    for b in range(B):
        qb = q[b if q.shape[0] > 1 else 0]
        kb = k[b if k.shape[0] > 1 else 0]
        vb = v[b if v.shape[0] > 1 else 0]
        for h in range(H):
            kh = mk(kb[:, h])
            vt = mk(vb[:, h].t())                   # [D, Lk]
            bh = None
            if bias is not None:
                bb = bias[b if bias.shape[0] > 1 else 0]
                bh = bb[h if bb.shape[0] > 1 else 0]
            for i in range(0, Lq, rows):
                s = mm(mk(qb[i:i + rows, h] * scale), kh)
                if bh is not None:
                    s = dense(s)
                    s = mk(torch.softmax(
                        s + (bh[i:i + rows] if bh.shape[0] > 1 else bh), -1))
                else:
                    s = torch.softmax(s, -1)
                out[b, i:i + rows, h] = dense(mm(s, vt))
    return out


def attention_batched(q, k, v, bias=None, scale=None):
    """`attention` as batched matrix products (the GPU's way)."""
    B = max(q.shape[0], k.shape[0])
    if scale is None:
        scale = q.shape[-1] ** -0.5
    qh = q.expand(B, -1, -1, -1).transpose(1, 2)
    kh = k.expand(B, -1, -1, -1).transpose(1, 2)
    vh = v.expand(B, -1, -1, -1).transpose(1, 2)
    s = torch.matmul(qh * scale, kh.transpose(-1, -2))
    if bias is not None:
        s = s + bias
    return torch.matmul(s.softmax(-1), vh).transpose(1, 2)


def rms(x, weight=None, dim=-1, eps=1e-6):
    """Root-mean-square normalisation over `dim` (T5's and Wan's RMSNorm),
    times weight when given (shaped to broadcast)."""
    y = x * torch.rsqrt(x.pow(2).mean(dim, keepdim=True) + eps)
    return y * weight if weight is not None else y


def conv2d(x, weight, bias=None, padding=0):
    if weight.shape[-2:] == (1, 1) and _fast(x):
        # PyTorch sends a 1x1 convolution of a small batch on one thread to
        # its BLAS path: a matrix product over the channels instead.
        y = linear(x.permute(0, 2, 3, 1), weight[:, :, 0, 0], bias)
        return y.permute(0, 3, 1, 2).contiguous()
    return F.conv2d(x, weight.contiguous(), bias, padding=padding)


def causal_conv3d(x, weight, bias, cache):
    """A causal 3-D convolution over frames: x [T, C, H, W] (frames as
    the batch), weight [O, C, kt, kh, kw] with odd kh, kw.  Space is
    zero-padded on both sides; time only on the past side, with `cache`
    (the last kt-1 input frames before x, or None for zeros at the start).
    Returns (y [T, O, H, W], the cache for the next call)."""
    kt, kh, kw = weight.shape[2:]
    pad = (kh // 2, kw // 2)
    if kt == 1:
        return conv2d(x, weight[:, :, 0], bias, pad), None
    if cache is None:
        cache = x.new_zeros((kt - 1,) + tuple(x.shape[1:]))
    xp = torch.cat([cache, x], 0)
    T = x.shape[0]
    y = None
    for k in range(kt):
        tap = conv2d(xp[k:k + T], weight[:, :, k], bias if k == 0 else None,
                     pad)
        y = tap if y is None else y.add_(tap)
    return y, xp[-(kt - 1):].clone()
