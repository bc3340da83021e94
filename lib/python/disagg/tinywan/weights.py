"""weights: make tinywan's weights from a seed, save them, load them.

A weights file is what ``torch.save`` writes of a plain dict::

    {"format": "tinywan-weights", "seed": SEED, "config": CONFIG,
     "encoder": state_dict, "dit": state_dict, "vae": state_dict}

and is read back with ``torch.load(..., weights_only=True)``, which
unpickles tensors, dicts, lists, strings and integers and nothing else.
The first stage to want a file that does not exist makes the weights from
the seed and writes them under a temporary name beside it, renamed into
place only when complete (``os.replace``), so that daemons starting
together never read half a file; each makes the same bytes from the same
seed, so whichever rename lands last changes nothing.
"""

import os

import torch

from .model import CONFIG, build, init_weights

FORMAT = "tinywan-weights"
PARTS = ("encoder", "dit", "vae")


class WeightsError(RuntimeError):
    """A weights file that cannot be used, with what to do about it."""


def _plain(obj):
    # What weights_only can read back: dict, list, str, int.
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool) or not isinstance(obj, (int, str)):
        raise TypeError("weights config holds %r, not int/str" % (obj,))
    return obj


def make(seed):
    """The whole file's contents for `seed`, in memory."""
    w = init_weights(seed, CONFIG)
    w.update({"format": FORMAT, "seed": int(seed), "config": _plain(CONFIG)})
    return w


def save(weights, path):
    """Write `weights` to `path` atomically (temporary file beside it, then
    os.replace)."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, ".%s.%d.tmp" % (os.path.basename(path),
                                              os.getpid()))
    try:
        os.makedirs(folder, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(weights, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise WeightsError("cannot write weights file %s: %s"
                               % (path, e)) from None
        raise


def _diff(want, got, prefix=""):
    """The first difference between two configs, in words."""
    for k in sorted(set(want) | set(got)):
        if k not in got:
            return "%s%s missing (model has %r)" % (prefix, k, want[k])
        if k not in want:
            return "%s%s=%r unknown to this model" % (prefix, k, got[k])
        if want[k] != got[k]:
            return "%s%s=%r, model has %r" % (prefix, k, got[k], want[k])
    return None


def load(path, seed=None):
    """Read and check a weights file.  `seed`, when given, must be the one
    the file was made from.  Raises WeightsError saying what is wrong."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise
    except OSError as e:
        raise WeightsError("cannot open weights file %s: %s"
                           % (path, e.strerror or e)) from None
    try:
        with f:
            w = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(
            "weights file %s cannot be read (%s: %s); remove it to have it "
            "made again from the seed" % (path, type(e).__name__,
                                          str(e).strip()[:200])) from None
    if not isinstance(w, dict) or w.get("format") != FORMAT:
        raise WeightsError("weights file %s is not a tinywan weights file "
                           "(no format %r)" % (path, FORMAT))
    cfg = w.get("config")
    if not isinstance(cfg, dict):
        raise WeightsError("weights file %s has no config" % path)
    why = _diff(_plain(CONFIG), cfg)
    if why:
        raise WeightsError(
            "weights file %s was made for another model shape: config %s; "
            "remove it (or point weights elsewhere) to make new ones"
            % (path, why))
    if seed is not None and w.get("seed") != int(seed):
        raise WeightsError(
            "weights file %s was made from seed %r, the stage's seed is %d; "
            "remove it or set seed = %r" % (path, w.get("seed"), int(seed),
                                            w.get("seed")))
    for part in PARTS:
        if not isinstance(w.get(part), dict):
            raise WeightsError("weights file %s lacks the %s weights"
                               % (path, part))
    return w


def obtain(path, seed):
    """The weights for a stage: made from `seed` in memory when `path` is
    empty, else loaded from `path`, which is made first if missing."""
    if not path:
        return make(seed)
    path = os.path.abspath(path)
    try:
        return load(path, seed)
    except FileNotFoundError:
        pass
    w = make(seed)
    save(w, path)
    return w


def module(weights, part, device):
    """The network `part` ("encoder", "dit", "vae") with the weights'
    tensors, exactly, in eval mode on `device`."""
    m = build(CONFIG)[part]
    sd = weights[part]
    own = m.state_dict()
    missing = sorted(set(own) - set(sd))
    extra = sorted(set(sd) - set(own))
    if missing or extra:
        raise WeightsError("%s weights do not fit the model: missing %s, "
                           "unexpected %s" % (part, missing[:5], extra[:5]))
    for k, t in own.items():
        if not torch.is_tensor(sd[k]) or sd[k].shape != t.shape or \
                sd[k].dtype != t.dtype:
            raise WeightsError("%s weight %s: %s, model wants %s %s"
                               % (part, k, getattr(sd[k], "shape", "?"),
                                  tuple(t.shape), t.dtype))
    m.load_state_dict(sd, strict=True)
    return m.to(device).eval().requires_grad_(False)
