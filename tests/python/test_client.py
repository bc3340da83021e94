"""test_client.py: disagg.client against real daemons: a one-host
pipeline of reference stages (e0, t0, t1, d0) shared by the module, and
one of its own for CurveZMQ.  Small requests (5 frames of 64x64, 2
steps); the slow ones (500 steps of 20 ms) are cancelled or released."""

import json
import os
import subprocess
import time

import pytest

from conftest import DISAGG, free_port, one_host_ini, wait_until

import disagg
from disagg.client import Client, Request, controller_endpoint
from disagg.errors import Error

SMALL = dict(frames=5, height=64, width=64, steps=2)
SLOW = dict(frames=1, height=16, width=16, steps=500)   # 10 s at step_ms 20


@pytest.fixture(scope="module")
def pipe(module_pipeline_factory):
    return module_pipeline_factory(
        lambda d: one_host_ini(d, transformers=("t0", "t1"), step_ms=20),
        name="client")


@pytest.fixture
def client(pipe):
    with pipe.client(timeout=5) as c:
        yield c


def ref(pipe, request_id, prompt, seed, **params):
    """What `disagg ref` computes in one process for the same request."""
    out = pipe.dir / "ref"
    args = ["ref", "--json", "-o", out, "--request", request_id,
            "--prompt", prompt, "--seed", seed]
    for k in ("frames", "height", "width", "steps"):
        args += ["--" + k, params[k]]
    r = pipe.cli(*args, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def placed(c, request_id):
    """status() once the request holds a room on every stage."""
    def room():
        st = c.status(request_id)
        return st if st["room"] and st["decoder"] else None
    return wait_until(room, 10, "request %d placed" % request_id)


def test_package_exports():
    assert disagg.Client is Client and disagg.Request is Request
    assert disagg.Error is Error
    e = Error("busy", "full")
    assert (e.code, e.message, str(e)) == ("busy", "full", "busy: full")


def test_submit_and_result(pipe, client):
    prompt = "a lighthouse in a storm, python client"
    req = client.submit(prompt, seed=7, **SMALL)
    assert isinstance(req, Request) and req.id > 0
    res = req.result(timeout=30)
    assert set(res) == {"request", "status", "output", "bytes", "digest",
                        "error", "timings"}
    assert res["request"] == req.id
    assert res["status"] == "done", res
    assert res["error"] is None
    assert os.path.isfile(res["output"])
    assert os.path.dirname(res["output"]) == str(pipe.out_dir)
    assert os.path.getsize(res["output"]) == res["bytes"] > 0
    for stage in ("encoder", "transformer", "decoder", "total"):
        assert res["timings"][stage] >= 0
    want = ref(pipe, req.id, prompt, 7, **SMALL)
    assert res["digest"] == want["digest"]
    assert res["bytes"] == want["bytes"]
    with open(res["output"], "rb") as a, open(want["output"], "rb") as b:
        assert a.read() == b.read()
    assert req.result() is res          # kept
    assert req.done()


def test_results_waited_out_of_order(client):
    reqs = [client.submit("out of order %d" % i, seed=i, **SMALL)
            for i in range(4)]
    assert len({r.id for r in reqs}) == 4
    # The last first: the others' results arrive meanwhile and are kept.
    results = {r.id: r.result(timeout=30) for r in reversed(reqs)}
    for r in reqs:
        assert results[r.id]["request"] == r.id
        assert results[r.id]["status"] == "done"
    assert len({x["digest"] for x in results.values()}) == 4


def test_results_of_two_clients(pipe):
    with pipe.client() as a, pipe.client() as b:
        ra = a.submit("client a", **SMALL)
        rb = b.submit("client b", **SMALL)
        assert rb.result(30)["status"] == "done"
        assert ra.result(30)["status"] == "done"


def test_status_of_finished_request(client):
    req = client.submit("status after the end", **SMALL)
    res = req.result(timeout=30)
    st = client.status(req.id)
    assert st["request"] == req.id
    assert st["state"] == "done"
    assert st["encoder"] == "e0" and st["decoder"] == "d0"
    assert st["transformer"] in ("t0", "t1")
    assert st["error"] is None and st["retries"] == 0
    assert st["age_ms"] >= res["timings"]["total"] - 1
    assert req.status()["state"] == "done"


def test_request_by_id_from_another_client(pipe, client):
    req = client.submit("followed by another", **SMALL)
    with pipe.client() as other:
        # Its result goes to `client`: `other` learns the end from
        # status, without the file's details.
        res = other.request(req.id).result(timeout=10)
        assert res["request"] == req.id and res["status"] == "done"
        assert res["output"] == "" and res["timings"] == {}
    assert req.result(timeout=10)["output"]


def test_submit_with_a_key_is_idempotent(pipe, client):
    """A submit repeated with its key (a reply lost) is the same request:
    the same id, its result again once it ended, nothing new started;
    status finds it by key; the CLI's --key does the same."""
    small = dict(frames=5, height=64, width=64, steps=2)
    first = client.submit(key="idem-1", **small)
    again = client.submit(key="idem-1", **small)
    assert again.id == first.id
    assert first.result(60)["status"] == "done"
    later = client.submit(key="idem-1", **small)
    assert later.id == first.id
    assert later.result(10)["status"] == "done"
    assert client.call("status", key="idem-1")["request"] == first.id
    other = client.submit(key="idem-2", **small)
    assert other.id != first.id
    other.result(60)
    out = [pipe.cli("submit", "--key", "idem-cli", "--frames", 5,
                    "--height", 64, "--width", 64, "--steps", 2, "--json",
                    check=True).stdout for _ in range(2)]
    assert out[0] == out[1] and '"request"' in out[0]


def test_cancel(client):
    req = client.submit("cancel me", **SLOW)
    assert client.status(req.id)["state"] not in ("done", "failed",
                                                  "cancelled")
    t0 = time.monotonic()
    req.cancel()
    res = req.result(timeout=10)
    assert res["status"] == "cancelled", res
    assert time.monotonic() - t0 < 5
    assert client.status(req.id)["state"] == "cancelled"
    with pytest.raises(Error) as e:
        client.cancel(req.id)
    assert e.value.code == "invalid"    # already over


def test_request_no_pool_can_hold(client):
    """Refused at submit, naming the sizes: it was accepted, held a
    transformer until its deadline, and every request behind it waited."""
    t0 = time.monotonic()
    with pytest.raises(Error) as e:
        client.submit("huge", frames=1001, height=2048, width=2048, steps=1)
    assert e.value.code == "invalid"
    assert e.value.message == ("needs 1008 MiB in a transformer pool; "
                               "the largest is 64 MiB")
    assert time.monotonic() - t0 < 5
    assert client.submit("after it", **SMALL).result(30)["status"] == "done"


def test_invalid_parameters(client):
    for bad in (dict(frames=0), dict(steps=-1), dict(height=0),
                dict(width=100000), dict(deadline_ms=-5)):
        params = dict(SMALL, **bad)
        with pytest.raises(Error) as e:
            client.submit("bad", **params)
        assert e.value.code == "invalid", bad
        assert e.value.message
    with pytest.raises(Error) as e:
        client.submit("")
    assert e.value.code == "invalid"
    with pytest.raises(Error) as e:         # caught before sending
        client.submit("typed", frames="five")
    assert e.value.code == "invalid"
    # The client is still in step with the controller afterwards.
    assert client.submit("after errors", **SMALL).result(30)["status"] \
        == "done"


def test_unknown_request_is_not_found(client):
    for call in (client.status, client.cancel,
                 lambda i: client.request(i).result(timeout=10)):
        with pytest.raises(Error) as e:
            call(987654321)
        assert e.value.code == "not-found"
        assert "987654321" in e.value.message


def test_instances_queues_rooms_release(client):
    inst = {i["name"]: i for i in client.instances()}
    assert set(inst) == {"e0", "t0", "t1", "d0"}
    assert {n: i["role"] for n, i in inst.items()} == {
        "e0": "encoder", "t0": "transformer", "t1": "transformer",
        "d0": "decoder"}
    assert all(i["state"] == "up" for i in inst.values())
    assert client.publish_endpoint().startswith("ipc://")

    req = client.submit("hold a room", **SLOW)
    try:
        st = placed(client, req.id)
        t = st["transformer"]
        rooms = [r for r in client.rooms() if r["request"] == req.id]
        assert len(rooms) == 1 and rooms[0]["room"] == st["room"]
        assert (rooms[0]["encoder"], rooms[0]["transformer"],
                rooms[0]["decoder"]) == ("e0", t, "d0")
        assert [r["request"] for r in client.rooms(t)].count(req.id) == 1
        q = wait_until(lambda: [x for x in client.queues(t)
                                if x["request"] == req.id], 10,
                       "the room in a queue of " + t)
        assert q[0]["room"] == st["room"] and q[0]["queue"] in (
            "incoming", "waiting", "ready", "running", "sending")
        assert client.queues("controller") == []    # nothing pending
        assert any(x["name"].startswith("worker") or x["name"] == "main"
                   for x in client.threads(t))
        socks = client.sockets("e0")
        assert socks["sockets"] and "rails" in socks
        client.release(st["room"], reason="python test")
        res = req.result(timeout=10)
        assert res["status"] == "failed"
        assert "released by an operator: python test" in res["error"]
    finally:
        if not req.done():
            client.cancel(req.id)
    with pytest.raises(Error) as e:
        client.release(st["room"])
    assert e.value.code == "not-found"
    with pytest.raises(Error) as e:
        client.queues("nobody")
    assert e.value.code == "not-found"


def test_drain_undrain(client):
    def state(name):
        return {i["name"]: i["state"] for i in client.instances()}[name]

    client.drain("t1")
    try:
        assert state("t1") in ("draining", "drained")
        wait_until(lambda: state("t1") == "drained", 10, "t1 drained")
        # Only t0 takes new work now.
        reqs = [client.submit("while t1 drains %d" % i, **SMALL)
                for i in range(3)]
        for r in reqs:
            assert r.result(30)["status"] == "done"
            assert r.status()["transformer"] == "t0"
    finally:
        client.undrain("t1")
    assert state("t1") == "up"
    with pytest.raises(Error) as e:
        client.drain("nobody")
    assert e.value.code == "not-found"


def test_watch(client):
    with client.watch(timeout=10) as w:
        first = next(w)
        assert first["op"] in ("event", "snapshot")
        assert first["ts_ms"] > 0
        client.submit("watched", **SMALL).result(30)
        seen = [first] + [w.next() for _ in range(3)]
    snaps = [m for m in seen if m["op"] == "snapshot"]
    assert snaps, seen
    names = {i["name"] for i in snaps[-1]["instances"]}
    assert names == {"e0", "t0", "t1", "d0"}
    assert snaps[-1]["done"] >= 1
    with pytest.raises(StopIteration):
        next(w)                         # closed


def test_endpoint_from_run_folder(pipe, monkeypatch):
    monkeypatch.delenv("DISAGG_CONTROLLER", raising=False)
    monkeypatch.delenv("DISAGG_KEY", raising=False)
    monkeypatch.setenv("DISAGG_RUN", str(pipe.run_dir))
    assert controller_endpoint() == pipe.endpoint
    with Client() as c:
        assert c.endpoint == pipe.endpoint
        assert len(c.instances()) == 4
    monkeypatch.setenv("DISAGG_CONTROLLER", "tcp://127.0.0.1:1")
    assert controller_endpoint() == "tcp://127.0.0.1:1"
    assert controller_endpoint("ipc:///x") == "ipc:///x"
    monkeypatch.delenv("DISAGG_CONTROLLER")
    monkeypatch.delenv("DISAGG_RUN")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(pipe.dir / "nowhere"))
    assert controller_endpoint() == "tcp://127.0.0.1:7700"


def test_endpoint_in_the_run_folder(tmp_short, monkeypatch):
    """The shipped examples' ipc://%r/NAME is a socket in the run folder
    (the Python client tried to connect to "ipc://%r/controller")."""
    monkeypatch.delenv("DISAGG_CONTROLLER", raising=False)
    monkeypatch.setenv("DISAGG_RUN", str(tmp_short))
    ini = tmp_short / "t.ini"
    ini.write_text("[controller]\nlisten = ipc://%r/controller\n")
    assert controller_endpoint(file=str(ini)) == \
        "ipc://%s/controller" % tmp_short
    (tmp_short / "up.ini").write_text(ini.read_text())
    assert controller_endpoint() == "ipc://%s/controller" % tmp_short


def test_dead_endpoint_times_out(tmp_short):
    for ep in ("ipc://%s/nobody" % tmp_short,
               "tcp://127.0.0.1:%d" % free_port()):
        with Client(ep, key=False, timeout=0.3) as c:
            t0 = time.monotonic()
            with pytest.raises(Error) as e:
                c.instances()
            assert e.value.code == "timeout"
            assert ep in e.value.message
            assert 0.25 < time.monotonic() - t0 < 3
            with pytest.raises(Error) as e:
                c.submit("nobody hears", **SMALL)
            assert e.value.code == "timeout"
    with pytest.raises(Error) as e:
        Client("nonsense", key=False)
    assert e.value.code == "invalid"
    c = Client("ipc://%s/x" % tmp_short, key=False)
    c.close()
    with pytest.raises(Error) as e:
        c.instances()
    assert e.value.code == "closed"


def test_curve(pipeline_factory, tmp_short, monkeypatch):
    k = tmp_short / "keys"
    for folder, names in (("server", ["server"]),
                          ("clients", ["alice", "bob"]),
                          ("admins", ["root"]), ("strangers", ["mallory"])):
        r = subprocess.run(
            [DISAGG, "keygen", "-d", str(k / folder)] + names,
            capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            pytest.skip("disagg keygen: %s" % r.stderr.strip())
    server = str(k / "server" / "server")
    admin = {"DISAGG_KEY": str(k / "admins" / "root_secret"),
             "DISAGG_SERVER_KEY": server}
    security = "\n".join(["curve = on", "key_dir = %s" % (k / "server"),
                          "client_keys = %s" % (k / "clients"),
                          "admin_keys = %s" % (k / "admins")])
    p = pipeline_factory(lambda d: one_host_ini(d, security=security,
                                                tcp=True, step_ms=20),
                         name="curve", env=admin)
    alice = str(k / "clients" / "alice_secret")
    with Client(p.endpoint, key=alice, server_key=server) as c:
        assert len(c.instances()) == 3
        res = c.submit("over curve", **SMALL).result(30)
        assert res["status"] == "done"
        with pytest.raises(Error) as e:
            c.drain("t0")
        assert e.value.code == "denied"
        slow = c.submit("alice's", **SLOW)
        with c.watch(timeout=10) as w:            # SUB over CURVE too
            assert next(w)["op"] in ("event", "snapshot")
    # The key file's name without _secret, and the server key found
    # beside it is not: ours is in another folder, so say it by env.
    monkeypatch.setenv("DISAGG_KEY", str(k / "clients" / "bob"))
    monkeypatch.setenv("DISAGG_SERVER_KEY", server)
    with Client(p.endpoint) as bob:
        with pytest.raises(Error) as e:
            bob.cancel(slow.id)
        assert e.value.code == "denied"
    monkeypatch.delenv("DISAGG_KEY")
    monkeypatch.delenv("DISAGG_SERVER_KEY")
    with Client(p.endpoint, key=admin["DISAGG_KEY"], server_key=server) as c:
        c.drain("t0")
        c.undrain("t0")
        c.cancel(slow.id)
    for key in (False, str(k / "strangers" / "mallory_secret")):
        with Client(p.endpoint, key=key, server_key=server,
                    timeout=0.5) as c:
            with pytest.raises(Error) as e:
                c.instances()
            assert e.value.code == "timeout"
    with pytest.raises(Error) as e:
        Client(p.endpoint, key=str(k / "server" / "server"),
               server_key=str(tmp_short / "none"))
    assert e.value.code == "invalid"
    with pytest.raises(Error) as e:         # no server file beside it
        Client(p.endpoint, key=alice)
    assert e.value.code == "invalid" and "DISAGG_SERVER_KEY" in e.value.message
