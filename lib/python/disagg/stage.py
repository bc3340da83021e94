"""disagg.stage: what a Python stage class sees (disagg-python(7)).

A stage daemon configured with ``stage = python:MODULE:CLASS`` embeds
CPython, imports MODULE, and makes one instance of CLASS at start-up with
an :class:`Env`.  Then, for every room:

- ``plan(request)`` says which tensors the stage takes in and makes, from
  the :class:`Request` alone, so the next stage can reserve memory first;
- ``run(batch)`` computes a list of :class:`Item` whose inputs are here.

The arrays an item hands out are views on the daemon's registered pool:
nothing is copied in or out, outputs are written in place, and the views
are valid only until ``run`` returns.  The host itself is in
``disagg._host`` (called from C) and ``lib/stage_python.c``.
"""

import numpy as np

__all__ = ["Stopped", "Env", "Request", "Item", "DTYPES"]

# Wire dtype -> numpy dtype of the arrays handed out.  numpy has no
# bfloat16: bf16 tensors are uint16 arrays of the raw bits, and
# Item.tensor() gives the torch.bfloat16 view.
DTYPES = {
    "f32": np.float32,
    "f16": np.float16,
    "bf16": np.uint16,
    "u8": np.uint8,
    "i32": np.int32,
    "i64": np.int64,
}


class Stopped(Exception):
    """Raise it when ``item.stopped`` turned true: the room was released
    or cancelled, and giving up frees its memory at once."""


class Env:
    """Where the stage runs: the daemon's section of the configuration.

    role, name     the section's role and name ("transformer", "t0")
    device         CUDA device of the pool, or -1 for host memory
    memory         "host" or "cuda"
    step_ms        the section's step_ms (added cost per step)
    output_dir     absolute folder the decoder writes into ("" elsewhere)
    options        dict of the section's extra keys that the class
                   declared in its ``options`` class attribute, with the
                   declared defaults filled in (all strings)
    pool           (address, bytes) of the daemon's registered pool
    expert         "all", or "high"/"low" for one of two experts: a high
                   expert hands on what the low one continues from
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return "Env(%s)" % ", ".join(
            "%s=%r" % kv for kv in sorted(self.__dict__.items()))


class Request:
    """The request a room serves: prompt, negative_prompt ("" when
    none), frames, height, width, steps, seed, request (its id) and room;
    step_begin, step_end: the denoising steps this stage runs, all of them
    (0, steps) unless its section makes it one of two experts; and
    resume_step: 0, or the steps done when the room was suspended
    (Item.suspend): its outputs hold what the stage left there, and the
    run goes on from there."""

    __slots__ = ("prompt", "negative_prompt", "frames", "height", "width",
                 "steps", "seed", "request", "room", "step_begin",
                 "step_end", "resume_step")

    def __init__(self, **kw):
        kw.setdefault("step_begin", 0)
        kw.setdefault("step_end", kw.get("steps", 0))
        kw.setdefault("resume_step", 0)
        for k in self.__slots__:
            setattr(self, k, kw[k])

    def __repr__(self):
        return "Request(%s)" % ", ".join(
            "%s=%r" % (k, getattr(self, k)) for k in self.__slots__)


class Item:
    """One room of a batch.

    request          the :class:`Request`
    inputs, outputs  dict name -> numpy array on the pool (torch CUDA
                     tensors with memory = cuda); write outputs in place
    output           set by a stage that writes a file (the decoder)
    stopped          true once the room was released or cancelled
    progress(k, n)   report step k of n (liveness: a worker silent for
                     stall_ms makes the daemon unhealthy)
    should_yield     true when a more urgent room waits for this worker:
                     a stage that can leaves its state in its outputs at
                     a step boundary, calls suspend(k) and returns; the
                     room runs again later with request.resume_step = k
    suspend(k)       this item is suspended after step k

    ``with item:`` confines an exception to this item: it fails with the
    exception's message and the rest of the batch goes on.
    """

    def __init__(self, host, request, inputs, outputs, dtypes):
        self._host = host
        self._dtypes = dtypes
        self.request = request
        self.inputs = inputs
        self.outputs = outputs
        self.output = None
        self.error = None
        self._finished = False

    @property
    def stopped(self):
        return self._host.stopped()

    @property
    def should_yield(self):
        return self._host.should_yield()

    def suspend(self, step):
        self._host.suspend(int(step))

    def progress(self, step, steps):
        self._host.progress(int(step), int(steps))

    def tensor(self, name):
        """The torch tensor for input or output `name`, sharing its
        memory, with the tensor's own dtype (torch.bfloat16 for bf16)."""
        import torch
        a = self.outputs[name] if name in self.outputs else self.inputs[name]
        if isinstance(a, torch.Tensor):
            return a
        if self._dtypes[name] == "bf16":
            # torch takes no uint16 arrays: the same bits as int16.
            return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(a)

    def fail(self, message):
        """Fail this item with `message` (what raising does)."""
        if self.error is None:
            self.error = str(message) or "failed"

    def __enter__(self):
        return self

    def __exit__(self, etype, value, tb):
        self._finished = True
        if etype is None:
            return False
        from . import _host
        self.fail(_host.describe(value))
        _host.log_traceback(self.request, etype, value, tb)
        return not issubclass(etype, (KeyboardInterrupt, SystemExit))
