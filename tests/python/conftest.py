"""conftest.py: what the Python tests share: real pipelines of disaggd
daemons started with ``disagg up`` and always stopped with ``disagg
down``, free ports, ipc endpoints that fit.

    def test_something(pipeline_factory):
        p = pipeline_factory(one_host_ini)      # or an INI text
        with p.client() as c:
            assert c.submit(frames=5, height=64, width=64,
                            steps=2).result(30)["status"] == "done"

start_pipeline(ini, name="p", env=None, timeout=60) writes the INI into
a private temporary folder (``.dir``: the INI, ``run/`` with up.ini,
pids and every daemon's NAME.log, ``out/`` for the videos), starts it
with ``disagg up -f FILE -d RUN --timeout 60`` and returns a Pipeline
(``.endpoint``, ``.publish``, ``.run_dir``, ``.dir``, ``.out_dir``,
``.env``, ``.cli()``, ``.client()``, ``.log()``, ``.stop()``).  `ini` is
a text in which ``{dir}``, ``{run}`` and ``{out}`` stand for those
folders, or a function of the folder (a pathlib.Path) that returns the
text, such as one_host_ini.  The fixtures ``pipeline_factory``
(function scope) and ``module_pipeline_factory`` (module scope) stop
and remove everything they started, even when the test fails.

Binaries: tui/disagg and daemon/disaggd of this tree, or $DISAGG and
$DISAGGD.  `disagg up` runs the disaggd next to itself
(../daemon/disaggd) when there is one, else the first on PATH: $DISAGGD
is put first on PATH, so it counts only for a $DISAGG without one
beside it.  $DISAGG_KEEP=1 keeps the folders (not the daemons) for a
post-mortem.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "lib" / "python") not in sys.path:
    sys.path.insert(0, str(REPO / "lib" / "python"))

DISAGG = os.environ.get("DISAGG") or str(REPO / "tui" / "disagg")
DISAGGD = os.environ.get("DISAGGD") or str(REPO / "daemon" / "disaggd")
IPC_MAX = 107          # sun_path is 108 bytes with its NUL
_CLIENT_ENV = ("DISAGG_CONTROLLER", "DISAGG_KEY", "DISAGG_SERVER_KEY",
               "DISAGG_RUN")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ipc_path(folder, name):
    """ipc://FOLDER/NAME when that path fits in a unix socket's address,
    else tcp://127.0.0.1:FREE_PORT."""
    path = os.path.join(str(folder), name)
    if len(path.encode()) <= IPC_MAX:
        return "ipc://" + path
    return "tcp://127.0.0.1:%d" % free_port()


def short_tmpdir(prefix="dg-"):
    """A fresh private folder (0700) with a path short enough for ipc
    endpoints: under $TMPDIR when that is short, else under /tmp."""
    base = os.environ.get("TMPDIR") or "/tmp"
    if len(base) > 40 or not os.path.isdir(base):
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def one_host_ini(folder, *, transformers=("t0",), step_ms=0, controller="",
                 security="", tcp=False, pool="64M"):
    """A one-host topology in `folder`: the controller, e0, the named
    transformers and d0, with the reference stages, host memory and the
    shm provider; endpoints ipc in `folder` (tcp on free ports with
    tcp=True for the controller); videos into folder/out.  `controller`
    and `security` are extra lines for those sections; step_ms slows
    each transformer step."""
    folder = Path(folder)
    if tcp:
        listen = "tcp://127.0.0.1:%d" % free_port()
        publish = "tcp://127.0.0.1:%d" % free_port()
    else:
        listen = ipc_path(folder, "ctl")
        publish = ipc_path(folder, "pub")
    text = ["[controller]", "listen = " + listen, "publish = " + publish,
            "heartbeat_ms = 100ms", "dead_after_ms = 2000ms", controller,
            "", "[fabric]", "provider = shm", "verify = on", ""]
    if security:
        text += ["[security]", security, ""]
    stages = [("encoder", "e0", "ref-encoder")]
    stages += [("transformer", t, "ref-transformer") for t in transformers]
    stages += [("decoder", "d0", "ref-decoder")]
    for role, name, stage in stages:
        text += ["[%s %s]" % (role, name), "peer = " + ipc_path(folder, name),
                 "stage = " + stage, "memory = host", "pool = " + pool]
        if role == "transformer" and step_ms:
            text.append("step_ms = %dms" % step_ms)
        if role == "decoder":
            text.append("output_dir = %s" % (folder / "out"))
        text.append("")
    return "\n".join(text)


def _ini_listen(text, key):
    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[] ")
        elif section == "controller" and "=" in line and \
                line.split("=", 1)[0].strip() == key:
            return line.split("=", 1)[1].split(" ;")[0].strip()
    return None


def _is_disaggd(pid):
    """Whether `pid` is still a running disaggd (not gone, not a zombie,
    not a pid reused by another program)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0]
    except (OSError, IndexError):
        return False
    return b"disaggd" in os.path.basename(argv0)


class Pipeline:
    """One `disagg up` pipeline; see the module's docstring."""

    def __init__(self, name, folder, ini_path, ini_text, env):
        self.name = name
        self.dir = folder
        self.run_dir = folder / "run"
        self.out_dir = folder / "out"
        self.ini = ini_path
        self.ini_text = ini_text
        self.env = env
        listen = _ini_listen(ini_text, "listen") or "tcp://127.0.0.1:7700"
        for wild in ("tcp://*:", "tcp://0.0.0.0:"):
            if listen.startswith(wild):
                listen = "tcp://127.0.0.1:" + listen[len(wild):]
        self.endpoint = listen
        self.publish = _ini_listen(ini_text, "publish")
        self.pids = {}
        self.up_output = ""
        self.stopped = False

    def __repr__(self):
        return "<Pipeline %s at %s>" % (self.name, self.endpoint)

    def cli(self, *args, timeout=30, env=None, check=False):
        """Run `disagg ARGS...` against this pipeline (DISAGG_RUN set);
        a CompletedProcess with text stdout and stderr."""
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run([DISAGG] + [str(a) for a in args], env=e,
                              cwd=str(self.dir), capture_output=True,
                              text=True, timeout=timeout, check=check)

    def client(self, **kw):
        """A disagg.client.Client on this pipeline's controller, with the
        key from `env` given to start_pipeline unless key= says."""
        from disagg.client import Client
        kw.setdefault("key", self.env.get("DISAGG_KEY") or False)
        if kw["key"] and "server_key" not in kw:
            kw["server_key"] = self.env.get("DISAGG_SERVER_KEY")
        return Client(self.endpoint, **kw)

    def log(self, name):
        """The log of daemon `name` (controller, e0, ...), or ""."""
        try:
            return (self.run_dir / ("%s.log" % name)).read_text(
                errors="replace")
        except OSError:
            return ""

    def logs_tail(self, lines=15):
        out = []
        for path in sorted(self.run_dir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append("--- %s\n%s" % (path.name, "\n".join(tail)))
        return "\n".join(out)

    def stop(self, timeout=10):
        """`disagg down`, then SIGKILL to any daemon of this pipeline still
        running.  Safe to call more than once."""
        if self.stopped:
            return
        self.stopped = True
        try:
            self.cli("down", "-d", self.run_dir, "--timeout", timeout,
                     timeout=timeout * 5 + 30)
        except (OSError, subprocess.SubprocessError):
            pass
        self._read_pids()
        for pid in self.pids.values():
            if _is_disaggd(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def _read_pids(self):
        try:
            for line in (self.run_dir / "pids").read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1].isdigit():
                    self.pids[parts[0]] = int(parts[1])
        except OSError:
            pass


_LIVE = []      # started and not yet stopped, for atexit


def _stop_all():
    while _LIVE:
        _LIVE.pop().stop()


atexit.register(_stop_all)


def start_pipeline(ini, name="p", env=None, timeout=60, folder=None):
    """Write `ini` (text with {dir}, {run}, {out}; or a function of the
    folder) into a private folder (`folder`, else a new one) and start
    it with `disagg up`.  The Pipeline once every stage has registered;
    on failure it is stopped, a new folder removed, and RuntimeError says
    why, with the daemons' logs.  `env`: extra environment for up and the
    CLI (DISAGG_KEY for curve = on).  Stop it with .stop() (the fixtures
    do), or it is stopped at exit."""
    made = folder is None
    folder = Path(folder) if folder else short_tmpdir("dg-%s-" % name)
    (folder / "run").mkdir(mode=0o700, exist_ok=True)
    (folder / "out").mkdir(exist_ok=True)
    text = ini(folder) if callable(ini) else str(ini)
    text = (text.replace("{dir}", str(folder))
            .replace("{run}", str(folder / "run"))
            .replace("{out}", str(folder / "out")))
    path = folder / ("%s.ini" % name)
    path.write_text(text)
    e = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV}
    if os.environ.get("DISAGGD"):
        # `disagg up` looks beside itself first, then on PATH, for a
        # file named disaggd.
        bindir = folder / "bin"
        bindir.mkdir(exist_ok=True)
        (bindir / "disaggd").symlink_to(os.path.abspath(DISAGGD))
        e["PATH"] = "%s:%s" % (bindir, e.get("PATH", ""))
    e.update(env or {})
    e["DISAGG_RUN"] = str(folder / "run")
    p = Pipeline(name, folder, path, text, e)
    _LIVE.append(p)
    try:
        r = p.cli("up", "-f", path, "-d", p.run_dir, "--timeout", timeout,
                  timeout=timeout + 30)
        p.up_output = r.stdout + r.stderr
        p._read_pids()
        if r.returncode != 0:
            raise RuntimeError("disagg up -f %s exited %d:\n%s\n%s"
                               % (path, r.returncode, p.up_output,
                                  p.logs_tail()))
    except BaseException:
        p.stop()
        _LIVE.remove(p)
        if made and not os.environ.get("DISAGG_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)  # the error has the logs
        raise
    return p


class PipelineFactory:
    """start_pipeline() that remembers what it started, for close()."""

    def __init__(self):
        self.started = []

    def __call__(self, ini, name="p", env=None, timeout=60):
        p = start_pipeline(ini, name=name, env=env, timeout=timeout)
        self.started.append(p)
        return p

    def close(self):
        while self.started:
            p = self.started.pop()
            p.stop()
            if p in _LIVE:
                _LIVE.remove(p)
            if not os.environ.get("DISAGG_KEEP"):
                shutil.rmtree(p.dir, ignore_errors=True)


def _binaries_or_skip():
    for b in (DISAGG,):
        if not os.access(b, os.X_OK):
            pytest.skip("%s is not built (make)" % b)


@pytest.fixture
def pipeline_factory():
    """start_pipeline(ini, name="p", env=None, timeout=60) for one test;
    everything it started is stopped and removed afterwards."""
    _binaries_or_skip()
    f = PipelineFactory()
    try:
        yield f
    finally:
        f.close()


@pytest.fixture(scope="module")
def module_pipeline_factory():
    """The same, shared by the tests of one module."""
    _binaries_or_skip()
    f = PipelineFactory()
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def tmp_short():
    """A private temporary folder with a short path (ipc endpoints fit);
    removed afterwards."""
    d = short_tmpdir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def wait_until(predicate, timeout, what="condition", interval=0.05):
    """Call `predicate` until it returns something true, at most `timeout`
    seconds; its value, or AssertionError.  For conditions no socket can
    signal (a file appearing, a state in a status reply)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("%s not met within %g s" % (what, timeout))
        time.sleep(min(interval, left))  # bounded by the deadline above
