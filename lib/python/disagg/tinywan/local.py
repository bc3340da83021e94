"""local: run tinywan's stages in one process, without the daemon.

What the C host gives a stage, made with numpy buffers: an Env, a Request,
and Items whose inputs and outputs are numpy arrays that the stage writes in
place (bf16 as uint16 bits), with ``tensor()``, ``progress()``, ``stopped``,
``output`` and a context manager that records an exception instead of
letting it through.  Used by ``disagg.tinywan.run`` and the tests.
"""

import os
import time

import numpy as np
import torch

NUMPY = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16,
         "u8": np.uint8, "i32": np.int32, "i64": np.int64}


class Env:
    def __init__(self, role, options=None, output_dir=".", device=-1,
                 name=None):
        self.role = role
        self.name = name or role
        self.device = device
        self.memory = "host"
        self.step_ms = 0
        self.output_dir = os.path.abspath(output_dir)
        self.options = dict(options or {})


class Request:
    def __init__(self, prompt, negative_prompt="", frames=17, height=256,
                 width=448, steps=10, seed=0, request=1, room=0):
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.frames, self.height, self.width = frames, height, width
        self.steps, self.seed = steps, seed
        self.request, self.room = request, room
        self.resume_step = 0


def buffers(specs):
    """{name: zeroed numpy array} for a plan's (name, dtype, shape) list."""
    return {name: np.zeros(tuple(shape), dtype=NUMPY[dtype])
            for name, dtype, shape in specs}


class Item:
    def __init__(self, request, inputs, outputs, dtypes=None,
                 stop_after=None):
        self.request = request
        self.inputs, self.outputs = inputs, outputs
        self.dtypes = dict(dtypes or {})
        self.output = None
        self.error = None
        self.progress_calls = []
        self.stop_after = stop_after    # stopped once this many steps done
        self.yield_after = None         # asked to yield after this many
        self.suspended = None           # the step it suspended after

    @property
    def stopped(self):
        return self.stop_after is not None and \
            len(self.progress_calls) >= self.stop_after

    def progress(self, step, steps):
        self.progress_calls.append((step, steps))

    @property
    def should_yield(self):
        return self.yield_after is not None and \
            len(self.progress_calls) >= self.yield_after

    def suspend(self, step):
        self.suspended = step

    def tensor(self, name):
        arr = self.inputs[name] if name in self.inputs else \
            self.outputs[name]
        if self.dtypes.get(name) == "bf16":
            return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(arr)

    def __enter__(self):
        return self

    def __exit__(self, etype, exc, tb):
        if exc is not None:
            self.error = exc
            return True
        return False


class Pipeline:
    """The three stages in one process.  run() times each stage's run()."""

    def __init__(self, weights="", seed=0, output_dir=".", options=None):
        from .stages import Decoder, Encoder, Transformer
        opts = {"weights": weights, "seed": str(seed)}
        opts.update(options or {})
        self.init_ms = {}
        self.stages = {}
        for role, cls in (("encoder", Encoder), ("transformer", Transformer),
                          ("decoder", Decoder)):
            t = time.perf_counter()
            o = {k: v for k, v in opts.items() if k in cls.options}
            self.stages[role] = cls(Env(role, o, output_dir))
            self.init_ms[role] = (time.perf_counter() - t) * 1e3

    def items(self, request, stop_after=None):
        """Plan every stage and make its item, buffers shared between
        neighbours as the daemons' memory is."""
        items, prev = {}, {}
        for role, st in self.stages.items():
            ins, outs = st.plan(request)
            inputs = {}
            for name, dtype, shape in ins:
                if name not in prev or prev[name][0] != (dtype, tuple(shape)):
                    raise ValueError("%s wants %s %s %s, not what the stage "
                                     "before makes" % (role, name, dtype,
                                                       tuple(shape)))
                inputs[name] = prev[name][1]
            outputs = buffers(outs)
            dtypes = {n: d for n, d, _ in list(ins) + list(outs)}
            items[role] = Item(request, inputs, outputs, dtypes,
                               stop_after if role == "transformer" else None)
            prev = {n: ((d, tuple(s)), outputs[n]) for n, d, s in outs}
        return items

    def run(self, request, stop_after=None):
        """(items by role, ms by role).  Stops at the first failed stage."""
        items = self.items(request, stop_after)
        ms = {}
        for role, st in self.stages.items():
            t = time.perf_counter()
            st.run([items[role]])
            ms[role] = (time.perf_counter() - t) * 1e3
            if items[role].error is not None:
                break
        return items, ms
