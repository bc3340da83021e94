"""disagg._host: the Python half of the stage host (lib/stage_python.c).

The C host calls load() once, plan() per room and run() per batch, with
the GIL held only for the call.  Everything a stage author can get wrong
(a bad plan, an exception, an undeclared option) is turned here into a
message for the operator or the client; nothing raised here may take the
daemon down, so the C side treats an exception escaping these functions
as a failure of that one call.

``_disagg`` is the C module the host registers before the interpreter
starts: log(level, text), stopped(ctl), progress(ctl, step, steps).
"""

import importlib
import sys
import threading
import traceback

import numpy as np

import _disagg

from .stage import DTYPES, Env, Item, Request, Stopped

# Levels of lib/log.h.
ERROR, WARN, INFO, DEBUG = 0, 1, 2, 3

MAX_TENSORS = 8         # DG_STAGE_MAX_TENSORS
MAX_DIMS = 6            # DG_STAGE_MAX_DIMS
MAX_NAME = 31           # dg_tensor_spec_t.name holds 31 bytes and a NUL


class _LogStream:
    """sys.stdout and sys.stderr of the daemon's interpreter: whole lines
    go to the daemon's log at one level."""

    def __init__(self, level):
        self.level = level
        self.buf = ""
        self.lock = threading.Lock()
        self.encoding = "utf-8"
        self.errors = "replace"

    def write(self, text):
        with self.lock:
            self.buf += str(text)
            *lines, self.buf = self.buf.split("\n")
        for line in lines:
            _disagg.log(self.level, line)
        return len(text)

    def flush(self):
        with self.lock:
            line, self.buf = self.buf, ""
        if line:
            _disagg.log(self.level, line)

    def isatty(self):
        return False

    def writable(self):
        return True


def _start():
    sys.stdout = _LogStream(INFO)
    sys.stderr = _LogStream(WARN)


def describe(exc):
    """An exception as the one line a client reads."""
    if isinstance(exc, Stopped):
        return str(exc) or "stopped: the room was released"
    text = str(exc)
    return "%s: %s" % (type(exc).__name__, text) if text else \
        type(exc).__name__


def log_traceback(request, etype, value, tb):
    where = ("room=%s request=%s: " % (request.room, request.request)
             if request is not None else "")
    lines = "".join(traceback.format_exception(etype, value, tb))
    for line in lines.rstrip("\n").split("\n"):
        _disagg.log(ERROR, where + line)


def load(spec, env, given, file):
    """Import MODULE:CLASS and make the stage.  `env` is a dict for Env;
    `given` the (key, value, line) the section set that the key table
    does not know: each must be one the class declares in `options`."""
    modname, _, clsname = spec.partition(":")
    if not modname or not clsname or ":" in clsname:
        raise ValueError("stage = python:%s: want python:MODULE:CLASS" % spec)
    module = importlib.import_module(modname)
    cls = getattr(module, clsname, None)
    if cls is None:
        raise ValueError("module %s (%s) has no class %s" % (
            modname, getattr(module, "__file__", "?"), clsname))
    declared = dict(getattr(cls, "options", {}) or {})
    for key, default in declared.items():
        if not isinstance(key, str) or not isinstance(default, str):
            raise TypeError("%s.options must map key names to default "
                            "strings, got %r: %r" % (clsname, key, default))
    options = dict(declared)
    section = "[%s %s]" % (env["role"], env["name"])
    for key, value, line in given:
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ValueError("%s:%d: unknown key '%s' in %s (the keys %s "
                             "declares: %s)" % (file, line, key, section,
                                                spec, known))
        options[key] = value
    for name in ("plan", "run"):
        if not callable(getattr(cls, name, None)):
            raise TypeError("%s has no %s() method" % (spec, name))
    return cls(Env(options=options, **env))


def _check_specs(what, specs):
    specs = list(specs)
    if len(specs) > MAX_TENSORS:
        raise ValueError("%s: %d tensors, at most %d" % (
            what, len(specs), MAX_TENSORS))
    out = []
    for spec in specs:
        try:
            name, dtype, shape = spec
        except (TypeError, ValueError):
            raise TypeError("%s: each tensor is (name, dtype, shape), got "
                            "%r" % (what, spec)) from None
        if not isinstance(name, str) or not name or \
                len(name.encode()) > MAX_NAME:
            raise ValueError("%s: tensor name %r: want 1 to %d bytes" % (
                what, name, MAX_NAME))
        if dtype not in DTYPES:
            raise ValueError("%s: tensor %s: dtype %r is not one of %s" % (
                what, name, dtype, ", ".join(DTYPES)))
        shape = tuple(int(d) for d in shape)
        if len(shape) > MAX_DIMS or any(d < 0 for d in shape):
            raise ValueError("%s: tensor %s: shape %r: at most %d "
                             "dimensions, none negative" % (
                                 what, name, shape, MAX_DIMS))
        out.append((name, dtype, shape))
    return out


def plan(stage, req):
    result = stage.plan(Request(**req))
    try:
        ins, outs = result
    except (TypeError, ValueError):
        raise TypeError("plan() must return (inputs, outputs), got %r" %
                        (result,)) from None
    return _check_specs("inputs", ins), _check_specs("outputs", outs)


class _Ctl:
    """An item's line to the C host; dead once run() has returned."""

    __slots__ = ("cap",)

    def __init__(self, cap):
        self.cap = cap

    def stopped(self):
        return _disagg.stopped(self.cap)

    def progress(self, step, steps):
        _disagg.progress(self.cap, step, steps)

    def should_yield(self):
        return _disagg.should_yield(self.cap)

    def suspend(self, step):
        _disagg.suspend(self.cap, step)


def _array(dtype, shape, buf, device):
    if device >= 0:
        import torch.utils.dlpack
        return torch.utils.dlpack.from_dlpack(buf)
    return np.frombuffer(buf, dtype=DTYPES[dtype]).reshape(shape)


def run(stage, batch):
    """Run one batch.  `batch` holds (request, inputs, outputs, ctl) with
    inputs and outputs as (name, dtype, shape, buffer, device).  Returns
    (error or None, output file or None) per item."""
    items = []
    for req, ins, outs, cap in batch:
        dtypes = {}
        arrays = []
        for specs in (ins, outs):
            d = {}
            for name, dtype, shape, buf, device in specs:
                d[name] = _array(dtype, shape, buf, device)
                dtypes[name] = dtype
            arrays.append(d)
        items.append(Item(_Ctl(cap), Request(**req), arrays[0], arrays[1],
                          dtypes))
    try:
        stage.run(items)
    except BaseException as e:  # noqa: B902: nothing may escape to C
        # Items that a `with item:` block finished keep their result.
        message = describe(e)
        log_traceback(items[0].request if len(items) == 1 else None,
                      type(e), e, e.__traceback__)
        for it in items:
            if not getattr(it, "_finished", False):
                it.fail(message)
    out = []
    for it in items:
        output = it.output
        if it.error is None and output is not None and \
                not isinstance(output, str):
            output = str(output)
        out.append((it.error, output if it.error is None else None))
    return out
