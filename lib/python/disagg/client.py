"""disagg.client: submit requests to a disagg controller and follow them.

Pure Python over pyzmq and msgpack (Debian's python3-zmq and
python3-msgpack); it speaks the protocol of disagg-protocol(7) the way
the ``disagg`` command does, and finds the controller and the CurveZMQ
keys by the same rules.  See disagg-client(7).

    from disagg.client import Client

    with Client() as c:                       # the running `disagg up`'s
        req = c.submit("a red fox", frames=17, steps=8)
        res = req.result(timeout=60)
        print(res["status"], res["output"], res["digest"])
"""

import os
import re
import time

import msgpack
import zmq

from .errors import Error

__all__ = ["Client", "Request", "Watch", "Error", "controller_endpoint",
           "run_dir", "load_key", "pub_endpoint", "SUBMIT_DEFAULTS"]

PROTOCOL_VERSION = 1
MAX_FRAME = 4 << 20                     # DG_PROTO_MAX_FRAME
DEFAULT_ENDPOINT = "tcp://127.0.0.1:7700"
RUN_ENDPOINT = "ipc://%r/"
DEFAULT_TIMEOUT = 5.0                   # seconds, the CLI's --timeout
STATUS_EVERY = 1.0                      # result(): ask status this often
TERMINAL = ("done", "failed", "cancelled")
_ZERO_KEY = "0" * 40                    # zcert's Z85 text of no key

# `disagg submit`'s defaults (tui/cmd_pipeline.c).
SUBMIT_DEFAULTS = {
    "prompt": "a red fox running through fresh snow at dawn",
    "frames": 17,
    "height": 256,
    "width": 448,
    "steps": 8,
    "seed": 42,
}


# ---- where the controller is ---------------------------------------------

def run_dir():
    """The run folder of `disagg up`: $DISAGG_RUN, else
    $XDG_RUNTIME_DIR/disagg, else /tmp/disagg-UID (lib/run.c)."""
    env = os.environ.get("DISAGG_RUN")
    if env:
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return xdg + "/disagg"
    return "/tmp/disagg-%d" % os.getuid()


def _ini_listen(path):
    """The [controller] listen of the topology file `path`, its default
    when the section or key is absent; None when the file cannot be
    read.  inih's syntax: ';' and '#' comments, ' ;' inline comments,
    'key = value' or 'key: value'."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    section, listen = None, None
    for raw in lines:
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if raw[:1] in (" ", "\t"):
            continue                    # a continuation line
        if line[0] == "[":
            end = line.find("]")
            section = line[1:end].strip() if end > 0 else None
            continue
        m = re.match(r"([^=:]+?)\s*[=:]\s*(.*)$", line)
        if not m or section != "controller":
            continue
        value = re.split(r"\s;", m.group(2), maxsplit=1)[0].strip()
        if m.group(1) == "listen":
            listen = value
    # ipc://%r/NAME: the socket NAME in the run folder, as the daemons
    # read it (DG_ENDPOINT_RUN, lib/config.c).
    if listen and listen.startswith(RUN_ENDPOINT):
        listen = "ipc://%s/%s" % (run_dir(), listen[len(RUN_ENDPOINT):])
    return listen or DEFAULT_ENDPOINT


def controller_endpoint(endpoint=None, file=None):
    """Where the controller listens, as `disagg` finds it
    (dg_client_endpoint): `endpoint`, else $DISAGG_CONTROLLER, else the
    `listen` of the topology `file`, else that of RUN/up.ini of the
    running `disagg up`, else tcp://127.0.0.1:7700.  A wildcard host
    (tcp://*:P, tcp://0.0.0.0:P) becomes 127.0.0.1, as `disagg up`
    reaches it."""
    if endpoint:
        return endpoint
    env = os.environ.get("DISAGG_CONTROLLER")
    if env:
        return env
    if not file:
        path = os.path.join(run_dir(), "up.ini")
        if os.access(path, os.R_OK):
            file = path
    listen = _ini_listen(file) if file else None
    if not listen:
        return DEFAULT_ENDPOINT
    for wild in ("tcp://*:", "tcp://0.0.0.0:"):
        if listen.startswith(wild):
            return "tcp://127.0.0.1:" + listen[len(wild):]
    return listen


def pub_endpoint(publish, via):
    """Where to subscribe, from the `publish` a controller reports
    (instances.ok) and the endpoint `via` it was reached on: a wildcard
    host becomes via's host (dg_client_pub_endpoint)."""
    m = re.match(r"tcp://(\*|0\.0\.0\.0):(.*)$", publish or "")
    v = re.match(r"tcp://(.*):[^:]*$", via or "")
    if not m or not v:
        return publish
    return "tcp://%s:%s" % (v.group(1), m.group(2))


# ---- CurveZMQ keys -----------------------------------------------------

def _zpl_curve(path):
    """The curve/public-key and curve/secret-key of a czmq certificate
    (ZPL text, as `disagg keygen` writes); None when unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    keys, stack = {}, []
    for raw in lines:
        body = raw.lstrip(" ")
        if not body.strip() or body.startswith("#"):
            continue
        depth = (len(raw) - len(body)) // 4
        m = re.match(r"([^\s=#]+)\s*(?:=\s*(.*))?$", body.rstrip())
        if not m:
            continue
        del stack[depth:]
        stack.append(m.group(1))
        value = m.group(2) or ""
        if value[:1] in ("'", '"'):
            end = value.find(value[0], 1)
            value = value[1:end] if end > 0 else value[1:]
        else:
            value = value.split("#", 1)[0].strip()
        keys["/".join(stack)] = value
    return keys


def load_key(path):
    """A czmq key file as (public, secret), Z85 text; secret is None when
    the file holds only the public key.  As zcert_load: PATH_secret is
    tried first, then PATH.  Raises Error("invalid") when neither holds a
    key."""
    for candidate in (path + "_secret", path):
        keys = _zpl_curve(candidate)
        if keys is not None:
            break
    public = (keys or {}).get("curve/public-key", "")
    if len(public) != 40:
        raise Error("invalid", "cannot load a CurveZMQ key from %s" % path)
    secret = (keys or {}).get("curve/secret-key", "")
    if len(secret) != 40 or secret == _ZERO_KEY:
        secret = None
    return public, secret


def _curve_keys(key, server_key):
    """(public, secret, server public) for a client socket, or None for
    a plain one.  key None: $DISAGG_KEY; False or "": no key.  server_key
    None: $DISAGG_SERVER_KEY, else the file `server` beside the key
    (dg_auth_client_from_env)."""
    if key is None:
        key = os.environ.get("DISAGG_KEY")
    if not key:
        return None
    key = os.fspath(key)
    public, secret = load_key(key)
    if not secret:
        raise Error("invalid", "cannot load the secret key %s" % key)
    if server_key is None:
        server_key = os.environ.get("DISAGG_SERVER_KEY")
    if not server_key:
        slash = key.rfind("/")
        server_key = (key[:slash] if slash >= 0 else ".") + "/server"
    try:
        server, _ = load_key(os.fspath(server_key))
    except Error:
        raise Error("invalid", "cannot load the server's public key %s "
                    "(set DISAGG_SERVER_KEY)" % server_key) from None
    return public, secret, server


def _apply_curve(sock, keys):
    if keys:
        sock.curve_publickey = keys[0].encode("ascii")
        sock.curve_secretkey = keys[1].encode("ascii")
        sock.curve_serverkey = keys[2].encode("ascii")


# ---- messages ----------------------------------------------------------

def _decode(frame):
    """One frame as a message map, or None when it is not one."""
    try:
        m = msgpack.unpackb(frame, raw=False)
    except Exception:                   # msgpack raises several kinds
        return None
    return m if isinstance(m, dict) and isinstance(m.get("op"), str) \
        else None


def _body(msg):
    return {k: v for k, v in msg.items() if k not in ("v", "op", "seq")}


def _result_dict(msg):
    """A result message as the documented dict."""
    timings = msg.get("timings")
    return {
        "request": msg.get("request"),
        "status": msg.get("status"),
        "output": msg.get("output") or "",
        "bytes": msg.get("bytes") or 0,
        "digest": msg.get("digest") or "",
        "error": msg.get("error"),
        "timings": dict(timings) if isinstance(timings, dict) else {},
    }


_PARTS = (("queue_us", "queue"), ("in_us", "transfer_in"),
          ("compute_us", "compute"), ("out_us", "transfer_out"),
          ("total_us", "total"))


def breakdown(timings):
    """A result's (or status's) timings as seconds per stage: {role:
    {"queue", "transfer_in", "compute", "transfer_out", "total"}} in the
    chain's order, and "total" (the request's, submit to result)."""
    out = {}
    for key, value in timings.items():
        role, _, part = key.rpartition(".")
        for wire, name in _PARTS:
            if role and part == wire:
                out.setdefault(role, {})[name] = value / 1e6
    if "total" in timings:
        out["total"] = timings["total"] / 1e3
    return out


def _int_arg(name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise Error("invalid", "%s must be an integer, not %r" % (name, value))
    if minimum is not None and value < minimum:
        raise Error("invalid", "%s must be at least %d" % (name, minimum))
    return value


def _str_arg(name, value):
    if not isinstance(value, str):
        raise Error("invalid", "%s must be a string, not %r" % (name, value))
    return value


class _Deadline:
    """A point on the monotonic clock; None: no deadline."""

    __slots__ = ("at",)

    def __init__(self, seconds):
        self.at = None if seconds is None else time.monotonic() + seconds

    def left(self):
        """Seconds left (never negative), or None without a deadline."""
        if self.at is None:
            return None
        return max(0.0, self.at - time.monotonic())

    def passed(self):
        return self.at is not None and time.monotonic() >= self.at

    def ms(self, cap=None):
        """Milliseconds to poll: the time left, at most `cap` seconds."""
        left = self.left()
        if cap is not None:
            left = cap if left is None else min(left, cap)
        return None if left is None else max(0, int(left * 1000 + 0.999))


# ---- the client --------------------------------------------------------

class Request:
    """A submitted request: its ``id`` and the ways to follow it.

    Created by Client.submit() (or Client.request() for an id known
    otherwise).  It belongs to its Client and to that Client's thread.
    """

    __slots__ = ("client", "id", "_result", "_ours", "_progress", "_seen")

    def __init__(self, client, request_id, ours=True, progress=False):
        self.client = client
        self.id = request_id
        self._result = None
        self._ours = ours           # submitted here: its result comes here
        self._progress = progress   # asked for progress messages
        self._seen = None           # the last word progress() returned

    def __repr__(self):
        return "<disagg Request %d%s>" % (
            self.id, " " + self._result["status"] if self._result else "")

    def result(self, timeout=None):
        """Wait for the request to end and return its result, a dict with
        request, status ("done", "failed" or "cancelled"), output (the
        file's path), bytes, digest (XXH3-128, hex), error (None unless
        failed or cancelled) and timings (milliseconds per stage and
        "total").  A failed or cancelled request is a result, not an
        exception.  Raises Error("timeout") after `timeout` seconds
        (None: as long as the request lasts, the controller answering
        its status every second)."""
        if self._result is None:
            self._result = self.client._wait_result(self.id, timeout,
                                                    self._ours)
        return self._result

    def done(self):
        """Whether the result is here, without waiting."""
        if self._result is None:
            self._result = self.client._take_result(self.id)
        return self._result is not None

    def progress(self, timeout=0):
        """How far the request has come: a dict with role (the stage at
        work), step and steps (1 <= step <= steps), from the newest
        ``progress`` message, or None when none has come.  It waits up to
        `timeout` seconds (0: not at all; None: until the request ends)
        for a word newer than the one it returned last, and returns the
        newest it has anyway.  Only for a request submitted with
        progress=True (else Error "invalid"); the controller sends at
        most one word per request every 100 ms, so a stage's last steps
        may go unsaid when the next stage starts at once."""
        if not self._progress:
            raise Error("invalid", "request %d was not submitted with "
                        "progress=True" % self.id)
        word = self.client._wait_progress(self.id, self._seen, timeout)
        self._seen = word
        return dict(word) if word else None

    def timings(self, timeout=None):
        """Where the request's time went, in seconds: breakdown() of its
        result's timings (waits for the result)."""
        return breakdown(self.result(timeout)["timings"])

    def status(self, timeout=None):
        """The controller's view of the request: Client.status()."""
        return self.client.status(self.id, timeout=timeout)

    def cancel(self, timeout=None):
        """Cancel it: Client.cancel().  Its result then says cancelled."""
        self.client.cancel(self.id, timeout=timeout)


class Client:
    """A connection to a disagg controller (one ZeroMQ DEALER socket).

    ``Client(endpoint=None, key=None, timeout=5.0)``

    endpoint: the controller's listen endpoint (tcp://HOST:PORT,
    ipc://PATH); None finds it as the ``disagg`` command does:
    $DISAGG_CONTROLLER, else the ``listen`` of RUN/up.ini written by the
    running ``disagg up`` (RUN is $DISAGG_RUN, else
    $XDG_RUNTIME_DIR/disagg, else /tmp/disagg-UID), else
    tcp://127.0.0.1:7700.  ``file=`` names a topology file instead of
    RUN/up.ini, as ``disagg -f`` does.

    key: the path of a CurveZMQ secret key file made by ``disagg keygen``
    (for ``[security] curve = on``); None takes $DISAGG_KEY, and no key
    when it is unset; False never uses one.  The server's public key is
    ``server_key=``, else $DISAGG_SERVER_KEY, else the file ``server``
    in the key's folder.

    timeout: seconds to wait for each reply (default 5, the CLI's).
    Every wait has a deadline; one that passes raises
    Error("timeout"), which is also how an absent controller or a
    refused CurveZMQ handshake shows.

    Results arrive unasked on the same socket.  Those that arrive while
    the client waits for something else are kept (by request id) until
    their Request asks, so several requests may be waited on in any
    order.

    Threads: a Client is NOT thread-safe (neither are ZeroMQ sockets).
    Use one Client per thread, and its Requests only in that thread; a
    Client may be handed to another thread only if the first one stops
    using it.  Clients are cheap; they share one zmq.Context.
    """

    def __init__(self, endpoint=None, key=None, timeout=DEFAULT_TIMEOUT, *,
                 server_key=None, file=None, context=None):
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not timeout > 0:
            raise Error("invalid", "timeout must be a number of seconds "
                        "above 0, not %r" % (timeout,))
        self.endpoint = controller_endpoint(endpoint, file)
        self.timeout = timeout
        self._keys = _curve_keys(key, server_key)
        self._ctx = context or zmq.Context.instance()
        self._results = {}
        self._progress = {}         # request -> its newest progress word
        self._sock = self._socket(zmq.DEALER, self.endpoint)
        # A distinctive start, so that replies meant for an earlier
        # client with the same identity are not taken for ours.
        self._seq = ((os.getpid() << 20) ^ int(time.time() * 1000)) \
            & 0x7FFFFFFFFFFFFFFF
        self._poller = zmq.Poller()
        self._poller.register(self._sock, zmq.POLLIN)

    def _socket(self, kind, endpoint):
        sock = self._ctx.socket(kind)
        try:
            sock.linger = 0
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
            _apply_curve(sock, self._keys)
            if kind == zmq.SUB:
                sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(endpoint)
        except zmq.ZMQError as e:
            sock.close(0)
            raise Error("invalid", "cannot connect to '%s': %s (a ZeroMQ "
                        "endpoint is tcp://HOST:PORT or ipc://PATH)"
                        % (endpoint, e)) from None
        return sock

    def __repr__(self):
        return "<disagg Client %s%s>" % (
            self.endpoint, " closed" if self._sock is None else "")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the socket; results not yet taken are dropped."""
        if self._sock is not None:
            self._poller.unregister(self._sock)
            self._sock.close(0)
            self._sock = None

    # -- the socket -------------------------------------------------------

    def _live(self):
        if self._sock is None:
            raise Error("closed", "this client is closed")
        return self._sock

    def _timeout_error(self, seconds):
        return Error("timeout", "controller at %s did not answer within "
                     "%g s" % (self.endpoint, seconds))

    def _send(self, op, fields, deadline, seconds):
        sock = self._live()
        self._seq = (self._seq + 1) & 0xFFFFFFFFFFFFFFFF
        msg = {"v": PROTOCOL_VERSION, "op": op, "seq": self._seq}
        msg.update((k, v) for k, v in fields.items() if v is not None)
        frame = msgpack.packb(msg, use_bin_type=True)
        out = zmq.Poller()
        out.register(sock, zmq.POLLOUT)
        while True:
            try:
                sock.send(frame, zmq.NOBLOCK)
                return self._seq
            except zmq.Again:
                pass
            if deadline.passed() or not out.poll(deadline.ms()):
                raise self._timeout_error(seconds)

    def _recv(self, deadline):
        """The next message before `deadline`, or None when it passed.
        Results are filed as they come and returned too."""
        sock = self._live()
        while True:
            if not dict(self._poller.poll(deadline.ms())):
                return None
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                continue
            msg = _decode(frame)
            if msg is None:
                continue                # not ours to crash on
            if msg["op"] == "result" and "request" in msg:
                self._results[msg["request"]] = _result_dict(msg)
                self._progress.pop(msg["request"], None)
            elif msg["op"] == "progress" and "request" in msg:
                self._progress[msg["request"]] = {
                    k: msg.get(k) for k in ("role", "step", "steps")}
            return msg

    def _drain_socket(self):
        """Take in what has already arrived, without waiting."""
        nowait = _Deadline(0)
        while self._recv(nowait) is not None:
            pass

    def call(self, op, timeout=None, **fields):
        """Send one op with `fields` (None values left out) and return the
        reply map (v, op, seq and the reply's fields).  An error reply
        raises Error(code, message); no reply within `timeout` seconds
        (None: the client's) raises Error("timeout")."""
        seconds = self.timeout if timeout is None else timeout
        deadline = _Deadline(seconds)
        seq = self._send(op, fields, deadline, seconds)
        while True:
            msg = self._recv(deadline)
            if msg is None:
                raise self._timeout_error(seconds)
            if msg["op"] in ("result", "event", "progress") or \
                    msg.get("seq") != seq:
                continue                # filed, or a late reply to another
            if msg["op"] == "error":
                raise Error(str(msg.get("code") or "error"),
                            str(msg.get("message") or ""))
            if msg["op"] != op + ".ok":
                raise Error("protocol", "%s was answered with %s"
                            % (op, msg["op"]))
            return msg

    # -- requests ---------------------------------------------------------

    def submit(self, prompt=SUBMIT_DEFAULTS["prompt"],
               frames=SUBMIT_DEFAULTS["frames"],
               height=SUBMIT_DEFAULTS["height"],
               width=SUBMIT_DEFAULTS["width"],
               steps=SUBMIT_DEFAULTS["steps"],
               seed=SUBMIT_DEFAULTS["seed"],
               negative_prompt=None, deadline_ms=None, timeout=None,
               key=None, progress=False, priority=None):
        """Queue a request; returns its Request once the controller has
        accepted it (submit.ok).  The defaults are ``disagg submit``'s.
        The controller checks the ranges (Error "invalid") and admission
        (Error "busy"); a parameter of the wrong type is refused here
        (Error "invalid").  deadline_ms: milliseconds the request may
        take, None for the controller's request_timeout_ms.

        key (1 to 64 bytes; a random one when None) makes the submit
        safe to repeat: when no reply comes within `timeout`, it is
        sent once more with the same key, and the controller answers
        with the same request instead of starting a second.  Giving a
        key again later gets the same request, its result included.

        progress=True asks the controller for the request's ``progress``
        messages (step k of n at each stage): Request.progress().

        priority (0 to 9, None: 0) puts it ahead of less urgent work
        waiting for instances and for each stage's workers; waiting
        work gains a step a second, so nothing starves.  With the
        controller's admission = deadline, a request the cost model
        predicts past its deadline is refused (Error "deadline")."""
        fields = {
            "prompt": _str_arg("prompt", prompt),
            "frames": _int_arg("frames", frames),
            "height": _int_arg("height", height),
            "width": _int_arg("width", width),
            "steps": _int_arg("steps", steps),
            "seed": _int_arg("seed", seed),
        }
        if negative_prompt is not None:
            fields["negative_prompt"] = _str_arg("negative_prompt",
                                                 negative_prompt)
        if deadline_ms is not None:
            fields["deadline_ms"] = _int_arg("deadline_ms", deadline_ms)
        fields["key"] = _str_arg("key", key) if key is not None else \
            "py-" + os.urandom(16).hex()
        if progress:
            fields["progress"] = True
        if priority is not None:
            fields["priority"] = _int_arg("priority", priority, 0)
        try:
            reply = self.call("submit", timeout=timeout, **fields)
        except Error as e:
            if e.code != "timeout":
                raise
            reply = self.call("submit", timeout=timeout, **fields)
        return Request(self, reply["request"], progress=bool(progress))

    def request(self, request_id):
        """A Request for an id known otherwise (an earlier client's, or
        from before a reconnect): its result comes from status."""
        return Request(self, _int_arg("request_id", request_id, 0),
                       ours=False)

    def status(self, request_id, timeout=None):
        """The controller's view of a request: a dict with request, state
        (pending, assigned, encoding, phase1, denoising, phase2, decoding,
        done, failed, cancelled), room, encoder, transformer, decoder
        (None until placed: the first place of the chain, the middle ones
        joined with commas, the last), age_ms, retries, error (None
        unless it failed), stage (the role it is at, as the configuration
        names it, or None) and stages (the chain, a list of dicts with
        role and name; empty until placed).  Error("not-found") for an id
        the controller does not know (or no longer keeps:
        keep_finished_ms)."""
        reply = self.call("status", timeout=timeout,
                          request=_int_arg("request_id", request_id, 0))
        out = {"request": reply.get("request", request_id),
               "state": reply.get("state"), "room": reply.get("room") or 0,
               "encoder": None, "transformer": None, "decoder": None,
               "age_ms": reply.get("age_ms") or 0,
               "retries": reply.get("retries") or 0, "error": None,
               "stage": None, "stages": []}
        out.update((k, v) for k, v in _body(reply).items()
                   if v is not None and k not in ("room", "age_ms",
                                                  "retries"))
        return out

    def cancel(self, request_id, timeout=None):
        """Cancel a request (cancel.ok); its result then says cancelled.
        Error("invalid") when it is already over, ("denied") when it is
        another client's and this key is not an admin's."""
        self.call("cancel", timeout=timeout,
                  request=_int_arg("request_id", request_id, 0))

    def _take_result(self, request_id):
        if request_id not in self._results and self._sock is not None:
            self._drain_socket()
        return self._results.pop(request_id, None)

    def _wait_progress(self, request_id, seen, timeout):
        deadline = _Deadline(timeout)
        if self._sock is not None:
            self._drain_socket()
        while True:
            word = self._progress.get(request_id)
            if word != seen or request_id in self._results or \
                    deadline.passed() or self._sock is None:
                return word or seen
            self._recv(_Deadline(min(0.1, deadline.left())
                                 if deadline.left() is not None else 0.1))

    def _wait_result(self, request_id, timeout, ours=True):
        deadline = _Deadline(timeout)
        ask = _Deadline(STATUS_EVERY if ours else 0)
        while True:
            res = self._results.pop(request_id, None)
            if res is not None:
                return res
            if deadline.passed():
                raise Error("timeout", "request %d has no result after %g "
                            "s" % (request_id, timeout))
            if ask.passed():
                # Now and then ask, so that a controller that went away
                # (Error "timeout") or a result that was lost does not
                # keep us waiting.  The controller sends a result before
                # it answers any later status on the same connection:
                # an ended state with no result here means it was lost
                # (say, sent before a reconnect), and status is all
                # there is to tell.
                left = deadline.left()
                st = self.status(request_id, timeout=self.timeout
                                 if left is None else
                                 max(0.001, min(self.timeout, left)))
                res = self._results.pop(request_id, None)
                if res is not None:
                    return res
                if st["state"] in TERMINAL:
                    return {"request": request_id, "status": st["state"],
                            "output": "", "bytes": 0, "digest": "",
                            "error": st.get("error"), "timings": {}}
                ask = _Deadline(STATUS_EVERY)
                continue
            wait = _Deadline(min(x for x in (deadline.left(), ask.left())
                                 if x is not None))
            self._recv(wait)

    # -- administration ---------------------------------------------------

    def instances(self, timeout=None):
        """The stage instances the controller knows: a list of dicts (role,
        name, host, state, peer, the queue lengths, rooms, free_slots,
        rps, p50_us, p99_us, heartbeat_age_ms, stalled_ms)."""
        return list(self.call("instances", timeout=timeout)
                    .get("instances") or [])

    def publish_endpoint(self, timeout=None):
        """Where the controller publishes events and snapshots, as this
        client reaches it (None from a controller that does not say)."""
        pub = self.call("instances", timeout=timeout).get("publish")
        return pub_endpoint(pub, self.endpoint) if pub else None

    def queues(self, name, timeout=None):
        """The rooms in each queue of a daemon (``controller`` or "": the
        controller's pending requests): a list of dicts (queue, room,
        request, age_ms)."""
        return list(self.call("queues", timeout=timeout,
                              name=_str_arg("name", name))
                    .get("rooms") or [])

    def rooms(self, name=None, timeout=None):
        """Every live room (name None), or those placed on one instance:
        a list of dicts (room, request, state, encoder, transformer,
        decoder, bytes, age_ms, stage, stages: as in status()), oldest
        request first."""
        return list(self.call("rooms", timeout=timeout,
                              name=_str_arg("name", name or ""))
                    .get("rooms") or [])

    def threads(self, name, timeout=None):
        """A daemon's threads: a list of dicts (name, state, room, cpu_us,
        progress_age_ms, tid, kernel)."""
        return list(self.call("threads", timeout=timeout,
                              name=_str_arg("name", name))
                    .get("threads") or [])

    def sockets(self, name, timeout=None):
        """A daemon's ZeroMQ sockets and fabric rails: a dict with name,
        sockets and rails (lists of dicts)."""
        reply = _body(self.call("sockets", timeout=timeout,
                                name=_str_arg("name", name)))
        reply.setdefault("sockets", [])
        reply.setdefault("rails", [])
        return reply

    def drain(self, name, exit=False, timeout=None):
        """Send the instance no new rooms; with exit=True it also exits
        once idle.  Needs an admin key under CurveZMQ."""
        self.call("drain", timeout=timeout, name=_str_arg("name", name),
                  exit=bool(exit))

    def undrain(self, name, timeout=None):
        """Send the instance work again."""
        self.call("undrain", timeout=timeout, name=_str_arg("name", name))

    def release(self, room, reason=None, timeout=None):
        """Free a room everywhere; its request fails (or is retried).
        Needs an admin key under CurveZMQ."""
        self.call("release", timeout=timeout,
                  room=_int_arg("room", room, 1),
                  reason=None if reason is None else _str_arg("reason",
                                                              reason))

    def reload(self, name=None, timeout=None):
        """Re-read the configuration of a daemon (None: the controller's);
        returns what changed, as a sentence."""
        reply = self.call("reload", timeout=timeout,
                          name=_str_arg("name", name or ""))
        return reply.get("message") or ""

    def watch(self, timeout=10.0, events_only=False):
        """The controller's events and snapshots as they are published: a
        Watch, an iterator of dicts (``op`` is "event" or "snapshot", then
        the message's fields).  Each next() waits at most `timeout`
        seconds (snapshots come at least every 5 s) and raises
        Error("timeout") after that.  Close it (or use it in a with
        block) to unsubscribe."""
        pub = self.publish_endpoint()
        if not pub:
            raise Error("protocol", "this controller does not say where it "
                        "publishes (an older version)")
        return Watch(self._socket(zmq.SUB, pub), pub, timeout, events_only)


class Watch:
    """An iterator over the controller's published events and snapshots
    (made by Client.watch()); a SUB socket of its own, with the Client's
    keys.  Not thread-safe either."""

    def __init__(self, sock, endpoint, timeout, events_only):
        self.endpoint = endpoint
        self.timeout = timeout
        self.events_only = events_only
        self._sock = sock
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)

    def __repr__(self):
        return "<disagg Watch %s>" % self.endpoint

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self, timeout=None):
        """The next event or snapshot within `timeout` seconds (None: the
        watch's), else Error("timeout")."""
        if self._sock is None:
            raise StopIteration
        seconds = self.timeout if timeout is None else timeout
        deadline = _Deadline(seconds)
        while True:
            if not dict(self._poller.poll(deadline.ms())):
                raise Error("timeout", "nothing published on %s within %g "
                            "s" % (self.endpoint, seconds))
            try:
                msg = _decode(self._sock.recv(zmq.NOBLOCK))
            except zmq.Again:
                continue
            if msg is None:
                continue
            if msg["op"] == "event" or (msg["op"] == "snapshot" and
                                        not self.events_only):
                out = {"op": msg["op"]}
                out.update(_body(msg))
                return out

    def close(self):
        if self._sock is not None:
            self._poller.unregister(self._sock)
            self._sock.close(0)
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
