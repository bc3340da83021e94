"""test_progress.py: how far a request has come and where its time went,
against real daemons (a one-host chain of reference stages whose
transformer takes 20 ms a step).

What a waiting user relies on: a client that asks (submit "progress":
true) hears step k of n of the stage at work, no more than once per 100
ms, and a client that does not ask hears nothing of it; status and the
rooms show the step too; `disagg submit --wait` draws a bar on a
terminal and a line per change elsewhere.  And result.timings says, per
stage, how long the room queued, moved in, computed and moved out."""

import json
import re
import subprocess
import time

import msgpack
import pytest
import zmq

from conftest import DISAGG, one_host_ini, wait_until

from disagg.client import breakdown
from disagg.errors import Error

STEPS = 30                              # 0.6 s at 20 ms a step
PARAMS = dict(frames=5, height=64, width=64, steps=STEPS)


@pytest.fixture(scope="module")
def pipe(module_pipeline_factory):
    return module_pipeline_factory(
        lambda d: one_host_ini(d, step_ms=20), name="progress")


def raw_submit(pipe, progress, seed):
    """Submit on a bare DEALER and take every message until the result:
    [(seconds since the submit, message)]."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(pipe.endpoint)
    msg = dict(v=1, op="submit", seq=1, prompt="progress test", seed=seed,
               **PARAMS)
    if progress is not None:
        msg["progress"] = progress
    t0 = time.monotonic()
    s.send(msgpack.packb(msg))
    got = []
    try:
        while not got or got[-1][1]["op"] != "result":
            assert s.poll(30000), "no result within 30 s: %r" % got
            m = msgpack.unpackb(s.recv())
            got.append((time.monotonic() - t0, m))
    finally:
        s.close()
    assert got[0][1]["op"] == "submit.ok", got[0]
    return got


def test_progress_when_asked(pipe):
    got = raw_submit(pipe, True, seed=1)
    words = [(t, m) for t, m in got if m["op"] == "progress"]
    end = got[-1][0]
    assert got[-1][1]["status"] == "done", got[-1]
    assert len(words) >= 2, got
    request = got[0][1]["request"]
    steps = []
    for _, m in words:
        assert set(m) == {"v", "op", "seq", "request", "role", "step",
                          "steps"}, m
        assert m["request"] == request and m["role"] == "transformer"
        assert m["steps"] == STEPS and 1 <= m["step"] <= STEPS
        steps.append(m["step"])
    assert steps == sorted(steps) and len(set(steps)) == len(steps), steps
    # At most one word every 100 ms: n words were sent over at least
    # (n - 1) * 100 ms, all of it between the submit and the result.
    assert (len(words) - 1) * 0.1 <= end + 0.01, (len(words), end)


def test_no_progress_unless_asked(pipe):
    for progress in (None, False):
        got = raw_submit(pipe, progress, seed=2)
        assert got[-1][1]["status"] == "done"
        assert [m["op"] for _, m in got] == ["submit.ok", "result"], got


def test_python_request_progress(pipe):
    with pipe.client(timeout=5) as c:
        plain = c.submit("no progress asked", seed=3, **PARAMS)
        with pytest.raises(Error) as e:
            plain.progress()
        assert e.value.code == "invalid"
        req = c.submit("progress asked", seed=4, progress=True, **PARAMS)
        seen = []
        while not req.done():
            word = req.progress(timeout=1.0)
            if word and (not seen or word != seen[-1]):
                seen.append(word)
        assert seen, "no progress before the result"
        assert all(w["role"] == "transformer" and w["steps"] == STEPS
                   for w in seen), seen
        assert req.result()["status"] == "done"
        assert plain.result(30)["status"] == "done"


def test_status_and_rooms_show_the_step(pipe):
    with pipe.client(timeout=5) as c:
        req = c.submit("watched", seed=5, **dict(PARAMS, steps=300))
        st = wait_until(lambda: (lambda s: s if s.get("steps") else None)(
            c.status(req.id)), 10, "status with a step")
        assert st["stage"] == "transformer" and st["steps"] == 300
        assert 1 <= st["step"] <= 300
        row = wait_until(lambda: next((r for r in c.rooms()
                                       if r["request"] == req.id and
                                       r.get("steps")), None),
                         10, "rooms with a step")
        assert row["steps"] == 300
        q = wait_until(lambda: next((r for r in c.queues("t0")
                                     if r["request"] == req.id and
                                     r.get("steps")), None),
                       10, "the stage's queues with a step")
        assert q["queue"] == "running" and q["steps"] == 300
        r = pipe.cli("status", "--json", req.id)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["steps"] == 300 and doc["step"] >= 1, doc
        for args in (("rooms",), ("queues", "t0")):
            r = pipe.cli(*args)
            assert r.returncode == 0, r.stderr
            assert "STEP" in r.stdout.splitlines()[0], r.stdout
            assert re.search(r"\b\d+/300\b", r.stdout), r.stdout
        req.cancel()
        assert req.result(30)["status"] == "cancelled"


def test_result_timings_per_stage(pipe):
    with pipe.client(timeout=5) as c:
        req = c.submit("timed", seed=6, **PARAMS)
        res = req.result(30)
        assert res["status"] == "done", res
        t = res["timings"]
        for role in ("encoder", "transformer", "decoder"):
            for part in ("queue_us", "in_us", "compute_us", "out_us",
                         "total_us"):
                assert t["%s.%s" % (role, part)] >= 0, (role, part, t)
        b = breakdown(t)
        assert list(b) == ["encoder", "transformer", "decoder", "total"]
        assert b == req.timings()
        # The transformer computed its 30 steps of 20 ms.
        assert b["transformer"]["compute"] >= STEPS * 0.02 * 0.9, b
        # Only the middle stage moves data both ways.
        assert b["encoder"]["transfer_in"] == 0
        assert b["decoder"]["transfer_out"] == 0
        for role in ("encoder", "transformer", "decoder"):
            p = b[role]
            parts = p["queue"] + p["transfer_in"] + p["compute"] + \
                p["transfer_out"]
            # ms clocks on the queue side: 1 ms of rounding per interval
            assert parts <= p["total"] + 0.004, (role, p)
            assert p["total"] <= b["total"] + 0.001, (role, b)
        st = c.status(req.id)
        assert st["timings"] == t


def test_cli_progress_off_a_terminal(pipe):
    r = pipe.cli("submit", "--wait", "--steps", STEPS, "--frames", 5,
                 "--height", 64, "--width", 64, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = re.findall(r"^request (\d+) transformer step (\d+)/(\d+)$",
                       r.stdout, re.M)
    assert lines, r.stdout
    assert all(int(n) == STEPS for _, _, n in lines)
    # The timings table: a row per stage and the request's total.
    assert re.search(r"^  timings +queue +in +compute +out +total",
                     r.stdout, re.M), r.stdout
    for role in ("encoder", "transformer", "decoder", "total"):
        assert re.search(r"^  %s " % role, r.stdout, re.M), r.stdout
    r = pipe.cli("submit", "--wait", "--json", "--steps", STEPS, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "step" not in r.stdout and json.loads(r.stdout)["status"] == \
        "done"


def test_cli_progress_bar_on_a_terminal(pipe):
    # script(1) gives the CLI a terminal of its own.
    cmd = "%s submit --wait --steps %d --frames 5 --height 64 --width 64" \
        % (DISAGG, STEPS)
    r = subprocess.run(["script", "-qefc", cmd, "/dev/null"], env=pipe.env,
                       cwd=str(pipe.dir), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    bars = re.findall(r"transformer \[([#.]+)\] (\d+)/%d" % STEPS, r.stdout)
    assert bars, r.stdout
    assert r.stdout.count("\x1b[K") >= 2   # redrawn in place
    assert re.search(r"request \d+ done", r.stdout), r.stdout
