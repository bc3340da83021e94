"""test_chain.py: the pipeline's shape from the configuration, and no
fixed caps, with real daemons.

- a four-stage chain (encoder, two experts of the reference transformer
  split at a boundary, decoder) serves requests whose files are the
  bytes ``disagg ref -f`` writes, and the CLI names its roles;
- a version-1 client (hand-made frames) is still served, and a
  version-1 daemon op is refused by name;
- an instance that dies holding 1,500 rooms has every one of them
  placed again and finished elsewhere;
- a controller stopped with 5,000 live requests gives each its result.
"""

import os
import signal
import subprocess
import time

import msgpack
import pytest
import zmq

from conftest import DISAGG, ipc_path, one_host_ini, wait_until


def chain_ini(folder, roles, *, stage=None, extra=None, controller="",
              dead_after="5s"):
    """One instance of each role of `roles` (name: first letter + 0),
    ipc endpoints in `folder`, shm, reference stages unless `stage`
    names one for all; `extra` maps a role to more lines."""
    text = ["[controller]", "listen = " + ipc_path(folder, "ctl"),
            "publish = " + ipc_path(folder, "pub"), "heartbeat_ms = 100ms",
            "dead_after_ms = " + dead_after, controller, "",
            "[pipeline]", "stages = " + " ".join(roles), "",
            "[fabric]", "provider = shm", "verify = on", ""]
    for i, role in enumerate(roles):
        name = role[0] + "0"
        text += ["[%s %s]" % (role, name), "peer = " + ipc_path(folder, name),
                 "memory = host"]
        text.append("stage = " + (stage or {
            0: "ref-encoder", len(roles) - 1: "ref-decoder"}.get(
                i, "ref-transformer")))
        if i == len(roles) - 1:
            text.append("output_dir = %s" % (folder / "out"))
        text += (extra or {}).get(role, [])
        text.append("")
    return "\n".join(text)


EXPERTS = ("encoder", "high", "low", "decoder")


def experts_ini(folder):
    return chain_ini(folder, EXPERTS, extra={
        "high": ["expert = high", "boundary = 0.875", "pool = 64M"],
        "low": ["expert = low", "boundary = 0.875", "pool = 64M"]})


def test_four_stage_chain_is_the_reference(pipeline_factory, tmp_short):
    p = pipeline_factory(experts_ini, name="experts")
    sizes = [(5, 64, 64, 1), (9, 64, 96, 2), (17, 128, 128, 10),
             (5, 32, 32, 8)]
    with p.client() as c:
        reqs = [c.submit(prompt="lighthouse %d" % i, frames=f, height=h,
                         width=w, steps=s, seed=i)
                for i, (f, h, w, s) in enumerate(sizes)]
        results = [r.result(120) for r in reqs]
        st = c.status(reqs[0].id)
        inst = c.instances()
    for (f, h, w, s), r, i in zip(sizes, results, range(len(sizes))):
        assert r["status"] == "done", r
        # Each place of the chain is timed under its own role name, and
        # its parts under ROLE.PART_us.
        assert {k for k in r["timings"] if "." not in k} == \
            set(EXPERTS) | {"total"}
        assert {k for k in r["timings"] if "." in k} == {
            "%s.%s_us" % (role, part) for role in EXPERTS
            for part in ("queue", "in", "compute", "out", "total")}
        ref = subprocess.run(
            [DISAGG, "ref", "-f", str(p.ini), "-o", str(tmp_short),
             "--prompt", "lighthouse %d" % i, "--frames", str(f),
             "--height", str(h), "--width", str(w), "--steps", str(s),
             "--seed", str(i), "--request", str(r["request"])],
            capture_output=True, text=True, timeout=120)
        assert ref.returncode == 0, ref.stderr
        made = (tmp_short / ("%d.y4m" % r["request"])).read_bytes()
        with open(r["output"], "rb") as got:
            assert got.read() == made, "request %d differs" % r["request"]
    assert st["state"] == "done"
    assert [(s["role"], s["name"]) for s in st["stages"]] == [
        ("encoder", "e0"), ("high", "h0"), ("low", "l0"), ("decoder", "d0")]
    assert sorted(i["role"] for i in inst) == sorted(EXPERTS)
    out = p.cli("instances").stdout
    assert "high" in out and "low" in out


class Raw:
    """A DEALER speaking hand-made frames: what a client built against
    version 1 of the protocol sends and reads."""

    def __init__(self, endpoint):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.seq = 0

    def send(self, msg):
        self.seq += 1
        msg.setdefault("seq", self.seq)
        self.sock.send(msgpack.packb(msg))
        return msg["seq"]

    def recv(self, timeout):
        if not self.sock.poll(int(timeout * 1000)):
            return None
        return msgpack.unpackb(self.sock.recv(), raw=False)

    def close(self):
        self.sock.close()


def test_version_1_client_is_served(pipeline_factory):
    p = pipeline_factory(one_host_ini, name="v1")
    raw = Raw(p.endpoint)
    try:
        raw.send({"v": 1, "op": "submit", "prompt": "a cat", "frames": 5,
                  "height": 64, "width": 64, "steps": 2, "seed": 7})
        got = {}
        while "result" not in got:
            m = raw.recv(60)
            assert m is not None, "no reply within 60 s: %s" % got
            got[m["op"]] = m
        # Every reply to a client op is a version-1 frame it can read.
        assert got["submit.ok"]["v"] == 1
        assert got["result"]["v"] == 1
        assert got["result"]["status"] == "done"
        rid = got["submit.ok"]["request"]
        raw.send({"v": 1, "op": "status", "request": rid})
        st = raw.recv(10)
        assert st["v"] == 1 and st["op"] == "status.ok"
        assert (st["encoder"], st["transformer"], st["decoder"]) == \
            ("e0", "t0", "d0")
        raw.send({"v": 1, "op": "cancel", "request": rid})
        err = raw.recv(10)
        assert err["op"] == "error" and err["code"] == "invalid"
        # A daemon of version 1 is refused at its hello, by name.
        raw.send({"v": 1, "op": "hello", "role": "encoder", "name": "old",
                  "host": "h", "pid": 1, "peer": "ipc://@x",
                  "pool_bytes": 1, "slots": 1, "workers": 1})
        err = raw.recv(10)
        assert err["op"] == "error" and err["code"] == "version", err
        assert "'hello' of protocol version 1" in err["message"]
    finally:
        raw.close()


def null_ini(folder, *, rooms, controller=""):
    """Null stages, two transformers: t0 holds every room (a batch of 64
    runs a day), t1 is fast; limits fitted to `rooms`."""
    pool = "%dM" % max(16, rooms * 16 // 1024 + 1)
    common = ["stage = null", "pool = " + pool, "slot = 4K",
              "queue_depth = %d" % (2 * rooms)]
    # A daemon taking in thousands of rooms on a loaded machine (or a
    # sanitizer's build) can go quiet for seconds: the kill, not the
    # load, is what must declare t0 dead.
    return chain_ini(
        folder, ("encoder", "transformer", "decoder"), stage="null",
        dead_after="10s",
        controller="\n".join([
            "max_pending = %d" % rooms,
            "max_pending_per_client = %d" % rooms, controller]),
        extra={"encoder": common[1:], "decoder": common[1:],
               "transformer": common[1:] + [
                   "workers = 2", "max_batch = 64", "step_ms = 1s"]},
    ) + "\n".join([
        "", "[transformer t1]", "peer = " + ipc_path(folder, "t1"),
        "memory = host"] + common) + "\n"


def _submit_all(raw, n, steps):
    """Submit n requests, each asking for `steps` steps; their ids."""
    for _ in range(n):
        raw.send({"v": 1, "op": "submit", "prompt": "x", "frames": 1,
                  "height": 16, "width": 16, "steps": steps, "seed": 1})
    ids = []
    while len(ids) < n:
        m = raw.recv(60)
        assert m is not None, "only %d of %d accepted" % (len(ids), n)
        assert m["op"] == "submit.ok", m
        ids.append(m["request"])
    return ids


def _results(raw, ids, timeout):
    """The result of every request of `ids`, by id; none may take more
    than `timeout` seconds after the one before."""
    results = {}
    while len(results) < len(ids):
        m = raw.recv(timeout)
        assert m is not None, "%d of %d results" % (len(results), len(ids))
        if m["op"] == "result":
            results[m["request"]] = m
    assert set(results) == set(ids)
    return results


def _rooms_on(c, name):
    return next((i["rooms"] for i in c.instances() if i["name"] == name), 0)


def test_instance_dies_holding_1500_rooms(pipeline_factory):
    n = 1500
    p = pipeline_factory(lambda f: null_ini(f, rooms=n), name="fo")
    raw = Raw(p.endpoint)
    try:
        with p.client() as c:
            c.drain("t1")
            ids = _submit_all(raw, n, 100000)
            wait_until(lambda: _rooms_on(c, "t0") == n, 60,
                       "t0 holds all %d rooms" % n)
            c.undrain("t1")
        p._read_pids()
        os.kill(p.pids["t0"], signal.SIGKILL)
        # t1 takes them all (100,000 null steps at 0 ms) and they end.
        results = _results(raw, ids, 90)
        bad = [r for r in results.values() if r["status"] != "done"]
        assert not bad, bad[:3]
        # Each one was placed again once (t0's death), on t1.
        with p.client() as c:
            for i in ids:
                st = c.status(i)
                assert (st["retries"], st["transformer"]) == (1, "t1"), st
    finally:
        raw.close()


def test_controller_stop_ends_5000_live(pipeline_factory):
    n = 5000
    p = pipeline_factory(lambda f: null_ini(
        f, rooms=n, controller="drain_timeout_ms = 500ms"), name="stop")
    raw = Raw(p.endpoint)
    try:
        with p.client() as c:
            c.drain("t1")
        ids = _submit_all(raw, n, 100000)
        p._read_pids()
        os.kill(p.pids["controller"], signal.SIGTERM)
        try:
            results = _results(raw, ids, 60)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, p.logs_tail(8))) from e
        assert all(r["status"] == "failed" and r["error"] ==
                   "controller stopped" for r in results.values())
    finally:
        raw.close()


def test_paused_controller_declares_no_stage_dead(pipeline_factory):
    """A controller stopped (SIGSTOP: a paused VM, a debugger) for longer
    than dead_after_ms holds that silence, its own, against no stage."""
    p = pipeline_factory(lambda f: chain_ini(
        f, ("encoder", "transformer", "decoder"), dead_after="1s"),
        name="pause")
    p._read_pids()
    ctl = p.pids["controller"]
    os.kill(ctl, signal.SIGSTOP)
    try:
        # The pause lasts 2.5 s: longer than dead_after_ms.
        end = time.monotonic() + 2.5
        wait_until(lambda: time.monotonic() >= end, 5, "the pause")
    finally:
        os.kill(ctl, signal.SIGCONT)
    with p.client() as c:
        wait_until(lambda: "did not run for" in p.log("controller"), 10,
                   "the controller to notice its pause")
        states = {i["name"]: i["state"] for i in c.instances()}
    assert set(states.values()) == {"up"}, states
    assert " is dead" not in p.log("controller")

