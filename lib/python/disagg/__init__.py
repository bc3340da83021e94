"""disagg: the Python side of the disagg runtime.

Two halves, imported lazily so that each costs only what it uses:

- the client (``disagg.Client``, ``disagg.Request``, ``disagg.Error``):
  submit requests to a running controller and follow them, in pure
  Python over pyzmq and msgpack (see disagg-client(7));
- the stage API (``disagg.stage``): a Python class that a stage daemon
  runs with ``stage = python:MODULE:CLASS`` (see disagg-python(7)), and
  ``disagg.tinywan``, a Wan-shaped PyTorch pipeline built on it.
"""

__all__ = ["Client", "Request", "Error", "breakdown"]


def __getattr__(name):
    # PEP 562: the client pulls in zmq, which a stage daemon never needs.
    if name in ("Client", "Request", "breakdown"):
        from . import client
        return getattr(client, name)
    if name == "Error":
        from .errors import Error
        return Error
    raise AttributeError("module 'disagg' has no attribute %r" % name)
