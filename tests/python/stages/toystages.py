"""toystages: small Python stages for the stage host's tests
(tests/python/test_stage_host.py).  Each proves one thing the host
promises; the prompt steers what goes wrong ("boom" raises in run,
"badplan" in plan, "slow" runs 50 steps of 20 ms)."""

import os
import threading
import time

import numpy as np

from disagg.stage import Stopped

N = 1024


def _in_pool(env, a):
    base, size = env.pool
    if size == 0:
        return True             # disagg ref: no pool to be in
    addr = a.__array_interface__["data"][0]
    return base <= addr and addr + a.nbytes <= base + size


# A step of the slow toy stage: simulated work, not a wait for anything.
STEP_S = 0.02


class Source:
    """Encoder: x = f32[N], filled from the prompt and the seed."""

    options = {"fail": "", "tag": "none"}

    def __init__(self, env):
        self.env = env
        if env.options["fail"] == "init":
            raise RuntimeError("the source refuses to start (fail = init)")
        print("source ready: tag=%s role=%s name=%s" % (
            env.options["tag"], env.role, env.name))

    def plan(self, req):
        if "badplan" in req.prompt:
            raise ValueError("this stage cannot plan %r" % req.prompt)
        return [], [("x", "f32", (N,)), ("b", "bf16", (2, 4))]

    def run(self, batch):
        for item in batch:
            with item:
                if "boom" in item.request.prompt:
                    raise RuntimeError("boom in room %d" % item.request.room)
                x = item.outputs["x"]
                x[:] = np.arange(N, dtype=np.float32) + item.request.seed
                t = item.tensor("b")
                import torch
                assert t.dtype == torch.bfloat16, t.dtype
                t.copy_(torch.full((2, 4), 1.5, dtype=torch.bfloat16))


class Middle:
    """Transformer: y = 2x + 1, computed through numpy views that must lie
    inside the daemon's pool (no copy); "slow" prompts take 50 steps of
    20 ms with the GIL released, checking item.stopped between steps."""

    options = {}

    def __init__(self, env):
        self.env = env
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def plan(self, req):
        return [("x", "f32", (N,)), ("b", "bf16", (2, 4))], \
            [("y", "f32", (N,)), ("stats", "i64", (4,))]

    def run(self, batch):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            for item in batch:
                with item:
                    self._one(item, len(batch))
        finally:
            with self.lock:
                self.running -= 1

    def _one(self, item, nbatch):
        x, y = item.inputs["x"], item.outputs["y"]
        for a in (x, y, item.outputs["stats"]):
            assert not a.flags.owndata, "an array owns its data: a copy"
        # Outputs may be views on the next stage's pool (zero copy on
        # one host); the input is always in ours.
        assert _in_pool(self.env, x), "an input outside the pool"
        b = item.tensor("b").float()
        assert float(b.sum()) == 12.0, b
        if "slow" in item.request.prompt:
            for k in range(50):
                if item.stopped:
                    raise Stopped("stopped after %d of 50 steps" % k)
                time.sleep(STEP_S)  # simulated work, GIL released: not a wait
                item.progress(k + 1, 50)
        np.multiply(x, 2, out=y)
        y += 1
        st = item.outputs["stats"]
        st[0] = nbatch
        st[1] = self.most
        st[2] = os.getpid()
        st[3] = threading.get_ident() & 0x7fffffff


class Sink:
    """Decoder: writes y as text, sets item.output, and the stats
    beside it in OUTPUT.stats."""

    options = {}

    def __init__(self, env):
        self.env = env

    def plan(self, req):
        return [("y", "f32", (N,)), ("stats", "i64", (4,))], []

    def run(self, batch):
        for item in batch:
            with item:
                y = item.inputs["y"]
                st = item.inputs["stats"]
                path = os.path.join(self.env.output_dir,
                                    "%d.txt" % item.request.request)
                tmp = path + ".tmp"
                with open(tmp, "w") as f:
                    f.write("sum %d\n" % int(y.sum()))
                    f.write("first %d last %d\n" % (int(y[0]), int(y[-1])))
                os.replace(tmp, path)
                # How it ran, beside the output (which must not depend on
                # it: disagg ref writes the same bytes).
                with open(path + ".stats", "w") as f:
                    f.write("batch %d concurrent %d\n" % (st[0], st[1]))
                item.output = path


class ContextSum:
    """Transformer after disagg-python(7)'s example ByteEncoder: y holds
    the sum of each row of the bf16 context (64 x 64), then zeros."""

    options = {}

    def __init__(self, env):
        pass

    def plan(self, req):
        return [("context", "bf16", (64, 64))], \
            [("y", "f32", (N,)), ("stats", "i64", (4,))]

    def run(self, batch):
        for item in batch:
            with item:
                rows = item.tensor("context").float().sum(dim=1)
                y = item.outputs["y"]
                y[:] = 0
                y[:64] = rows.numpy()
                item.outputs["stats"][:] = (len(batch), 1, 0, 0)


class CudaMiddle(Middle):
    """Middle on a memory = cuda pool: the values are torch CUDA tensors
    that share the device pool's memory."""

    def _one(self, item, nbatch):
        import torch
        x, y = item.inputs["x"], item.outputs["y"]
        assert isinstance(x, torch.Tensor) and x.is_cuda, type(x)
        base, size = self.env.pool
        assert base <= x.data_ptr() < base + size, "outside the pool"
        torch.mul(x, 2, out=y)
        y += 1
        item.outputs["stats"].copy_(torch.tensor([nbatch, 1, 0, 0]))
