"""stages: tinywan as the three stages of a disagg pipeline.

    [encoder]     stage = python:disagg.tinywan.stages:Encoder
    [transformer] stage = python:disagg.tinywan.stages:Transformer
    [decoder]     stage = python:disagg.tinywan.stages:Decoder

Tensors between them, for a request of F frames of H x W:

    encoder -> transformer   context  bf16 [2, 64, 64]   prompt, negative
    transformer -> decoder   latents  f32  [16, (F-1)/4+1, H/8, W/8]

and the decoder writes OUTPUT_DIR/<request>.y4m.  Options (INI keys of the
stage's section): ``weights`` (a file; empty: made from the seed in memory),
``seed`` (of the weights, default 0); the transformer also takes ``shift``
(of the flow-matching schedule, default 5.0) and ``guidance``
(classifier-free guidance scale, default 5.0).

Every item is computed on its own, single-threaded and with PyTorch's
deterministic algorithms, so that a request gives the same bytes whatever it
was batched with and whichever process ran it.
"""

import os

import torch

from . import ops, weights as wts, y4m
from .model import CONFIG, DEFAULT_NEGATIVE, flow_sigmas

MAX_FRAMES = 81
MAX_SIDE = 1024
MAX_STEPS = 100
SIDE_MULTIPLE = 16


class _Stopped(Exception):
    pass


def _stopped(what):
    """disagg.stage.Stopped when the host's module is there."""
    try:
        from disagg.stage import Stopped
    except Exception:
        Stopped = _Stopped
    return Stopped(what)


def _int(request, name):
    v = getattr(request, name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("%s must be an integer, got %r" % (name, v))
    return v


def check(request):
    """Raise ValueError, saying why, for a request tinywan cannot serve."""
    prompt = getattr(request, "prompt", None)
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must not be empty")
    neg = getattr(request, "negative_prompt", "")
    if neg is not None and not isinstance(neg, str):
        raise ValueError("negative_prompt must be a string")
    frames = _int(request, "frames")
    if frames < 1 or frames > MAX_FRAMES or (frames - 1) % 4:
        raise ValueError("frames must be 4k+1 (1, 5, ..., %d), got %d"
                         % (MAX_FRAMES, frames))
    for side in ("height", "width"):
        v = _int(request, side)
        if v < SIDE_MULTIPLE or v > MAX_SIDE or v % SIDE_MULTIPLE:
            raise ValueError("%s must be a multiple of %d from %d to %d, "
                             "got %d" % (side, SIDE_MULTIPLE, SIDE_MULTIPLE,
                                         MAX_SIDE, v))
    steps = _int(request, "steps")
    if steps < 1 or steps > MAX_STEPS:
        raise ValueError("steps must be 1 to %d, got %d" % (MAX_STEPS, steps))
    _int(request, "seed")


def context_spec():
    return ("context", "bf16", (2, CONFIG["text_len"], CONFIG["text_dim"]))


def latent_shape(request):
    st = CONFIG["vae_stride"]
    return (CONFIG["z_dim"], (request.frames - 1) // st[0] + 1,
            request.height // st[1], request.width // st[2])


def latents_spec(request):
    return ("latents", "f32", latent_shape(request))


def _device(env):
    dev = getattr(env, "device", -1)
    if dev is None or dev < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device %d asked for, but this PyTorch %s has no "
                           "CUDA; set device = -1 to run on the CPU"
                           % (dev, torch.__version__))
    return torch.device("cuda", dev)


def _option(opts, name, kind, check_fn=None, what=""):
    raw = opts.get(name, "")
    try:
        v = kind(str(raw).strip())
    except ValueError:
        raise ValueError("option %s must be %s, got %r"
                         % (name, what or kind.__name__, raw)) from None
    if check_fn is not None and not check_fn(v):
        raise ValueError("option %s must be %s, got %r" % (name, what, raw))
    return v


class _Stage:
    options = {"weights": "", "seed": "0"}
    part = None

    def __init__(self, env):
        self.env = env
        opts = dict(self.options)
        opts.update(getattr(env, "options", None) or {})
        self.opts = opts
        self.device = _device(env)
        ops.setup(self.device)
        self.seed = _option(opts, "seed", int, what="an integer")
        self.weights_path = os.path.abspath(opts["weights"]) \
            if opts["weights"] else ""
        self.net = wts.module(wts.obtain(self.weights_path, self.seed),
                              self.part, self.device)


class Encoder(_Stage):
    """Prompt and negative prompt -> their contexts."""
    part = "encoder"

    def plan(self, request):
        check(request)
        return [], [context_spec()]

    def encode(self, prompt, negative):
        neg = negative if negative else DEFAULT_NEGATIVE
        return torch.stack([self.net(prompt), self.net(neg)])

    def run(self, batch):
        ops.one_thread()
        for item in batch:
            with item:
                r = item.request
                ctx = self.encode(r.prompt, r.negative_prompt or "")
                item.tensor("context").copy_(ctx.to(torch.bfloat16))


class Transformer(_Stage):
    """Contexts -> latents: flow matching from seeded noise, Euler steps,
    classifier-free guidance."""
    part = "dit"
    options = dict(_Stage.options, shift="5.0", guidance="5.0")

    def __init__(self, env):
        super().__init__(env)
        self.shift = _option(self.opts, "shift", float, lambda v: v > 0,
                             "a number > 0")
        self.guidance = _option(self.opts, "guidance", float,
                                lambda v: v >= 0, "a number >= 0")

    def plan(self, request):
        check(request)
        return [context_spec()], [latents_spec(request)]

    def sample(self, context, request, progress=None, stopped=None,
               item=None):
        """context [2, L, D] (prompt, negative) -> latents [16, F', h, w]
        float32 on the stage's device; None when `item` was asked to
        yield and was suspended (its latents so far in its output)."""
        dit = self.net
        shape = latent_shape(request)
        start = getattr(request, "resume_step", 0) or 0
        if start:
            # Suspended after `start` steps: the latents it had then
            # are in the output, exactly (float32 both ways).
            x = item.tensor("latents").to(self.device, torch.float32)
            x = x.clone()
        else:
            # The noise is drawn on the CPU whatever the device, as Wan
            # seeds it, so that a seed means one video.
            g = torch.Generator().manual_seed(
                request.seed & 0xFFFFFFFFFFFFFFFF)
            x = torch.randn(shape, generator=g, dtype=torch.float32)
            x = x.to(self.device)
        ctx = context.to(self.device, torch.float32)
        guided = self.guidance != 1.0
        ctx = dit.embed_text(ctx if guided else ctx[:1])
        grid = dit.grid(shape)
        rope = dit.rope(grid, self.device)
        sig = flow_sigmas(request.steps, self.shift,
                          CONFIG["num_train_timesteps"])
        for i in range(start, request.steps):
            if stopped is not None and stopped():
                raise _stopped("request %d stopped at step %d of %d"
                               % (request.request, i, request.steps))
            # A step boundary: make way for a more urgent room (at least
            # one step done in this run, so it always moves on).
            if item is not None and i > start and \
                    getattr(item, "should_yield", False):
                item.tensor("latents").copy_(x)
                item.suspend(i)
                return None
            v = dit(x, sig[i] * CONFIG["num_train_timesteps"], ctx, rope,
                    grid)
            v = v[1] + self.guidance * (v[0] - v[1]) if guided else v[0]
            x = x + (sig[i + 1] - sig[i]) * v
            if progress is not None:
                progress(i + 1, request.steps)
        return x

    def run(self, batch):
        ops.one_thread()
        for item in batch:
            with item:
                r = item.request
                x = self.sample(item.tensor("context"), r, item.progress,
                                lambda: item.stopped, item)
                if x is not None:
                    item.tensor("latents").copy_(x)


class Decoder(_Stage):
    """Latents -> OUTPUT_DIR/<request>.y4m."""
    part = "vae"

    def plan(self, request):
        check(request)
        return [latents_spec(request)], []

    def decode_to(self, latents, path, stopped=None, what="video"):
        """Write the video of latents [16, F', h, w] to path; its size."""
        C, Fr, h, w = latents.shape
        st = CONFIG["vae_stride"]
        frames = 1 + st[0] * (Fr - 1)
        z = latents.to(self.device, torch.float32)
        with y4m.Writer(path, w * st[2], h * st[1], frames) as out:
            for chunk in self.net.decode(z):
                if stopped is not None and stopped():
                    raise _stopped("%s stopped while decoding" % what)
                for frame in y4m.to_u8(chunk):
                    out.write(frame)
        return out.bytes

    def run(self, batch):
        ops.one_thread()
        for item in batch:
            with item:
                r = item.request
                path = os.path.join(self.env.output_dir, "%d.y4m" % r.request)
                self.decode_to(item.tensor("latents"), path,
                               lambda: item.stopped, "request %d" % r.request)
                item.output = path
