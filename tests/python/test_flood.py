"""test_flood.py: 20 clients flooding the controller, each keeping 200
submits in flight for 6 s against max_pending = 1024.  Every request
accepted reaches its client's `result`, every client gets some of the
admission, and once the flood is over the controller's memory comes
back to within twice what it was before (it went 16 -> 295 MB and
stayed)."""

import threading
import time

import pytest

from conftest import wait_until
from test_chain import Raw, chain_ini

CLIENTS = 20
FLOOD_S = 6


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS for %d" % pid)


def sanitized(pid):
    """Whether the process runs with ASan or TSan (SANITIZE= builds)."""
    with open("/proc/%d/maps" % pid) as f:
        return any("libasan" in line or "libtsan" in line for line in f)


def _client(endpoint, out):
    """Flood for FLOOD_S seconds, then collect the result of every
    request accepted."""
    raw = Raw(endpoint)
    accepted, ended, sent, answered = set(), set(), 0, 0
    try:
        end = time.monotonic() + FLOOD_S
        while time.monotonic() < end:
            while sent - answered < 200:
                raw.send({"v": 1, "op": "submit", "prompt": "x" * 200,
                          "frames": 1, "height": 16, "width": 16,
                          "steps": 1, "seed": 1})
                sent += 1
            m = raw.recv(10)
            assert m is not None, "the controller stopped answering"
            if m["op"] in ("submit.ok", "error"):
                answered += 1
                if m["op"] == "error":
                    assert m["code"] == "busy", m
            if m["op"] == "submit.ok":
                accepted.add(m["request"])
            elif m["op"] == "result":
                ended.add(m["request"])
        while answered < sent or not accepted <= ended:
            m = raw.recv(60)
            assert m is not None, "%d of %d results" % (
                len(accepted & ended), len(accepted))
            answered += m["op"] in ("submit.ok", "error")
            if m["op"] == "submit.ok":
                accepted.add(m["request"])
            elif m["op"] == "result":
                assert m["status"] == "done", m
                ended.add(m["request"])
        out.append(len(accepted))
    except BaseException as e:      # reported by the test's thread
        out.append(e)
    finally:
        raw.close()


def test_flood_every_result_and_memory_back(pipeline_factory):
    p = pipeline_factory(lambda f: chain_ini(
        f, ("encoder", "transformer", "decoder"), stage="null",
        controller="max_pending = 1024\nkeep_finished_ms = 1s"),
        name="flood")
    p._read_pids()
    pid = p.pids["controller"]
    with p.client() as c:
        for _ in range(20):
            assert c.submit(frames=1, height=16, width=16,
                            steps=1).result(30)["status"] == "done"
    base = rss_mib(pid)
    got = []
    threads = [threading.Thread(target=_client, args=(p.endpoint, got))
               for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    peak = base
    # The peak, sampled while waiting for the clients to end.
    for t in threads:
        while t.is_alive():
            peak = max(peak, rss_mib(pid))
            t.join(0.2)
    errors = [g for g in got if isinstance(g, BaseException)]
    if errors:
        raise errors[0]
    assert len(got) == CLIENTS and min(got) > 0, got
    if sanitized(pid):
        pytest.skip("a sanitizer's allocator keeps what is freed: RSS "
                    "says nothing of the controller's")
    wait_until(lambda: rss_mib(pid) <= 2 * base, 20,
               "controller RSS back within 2x %.1f MiB (peak %.1f, now "
               "%.1f)" % (base, peak, rss_mib(pid)))
