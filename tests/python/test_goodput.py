"""test_goodput.py: deadlines and priorities against real daemons (a
one-host chain of reference stages whose single transformer takes 20 ms a
step, one worker).

What the people who pay for the GPUs rely on: once the controller has
learned what a request costs, a submit that cannot make its deadline is
refused at once with "deadline" (and taken with admission = open); an
urgent request overtakes the ones already waiting at a stage (order =
slack) and not with order = fifo; and the cost model is visible."""

import json

import pytest

from conftest import one_host_ini, wait_until

from disagg.errors import Error

P = dict(frames=5, height=64, width=64)


def ini(order="slack", admission="deadline"):
    def make(d):
        text = one_host_ini(d, step_ms=20,
                            controller="admission = %s" % admission)
        return text.replace("[transformer t0]\n",
                            "[transformer t0]\norder = %s\nworkers = 1\n" % order)
    return make


@pytest.fixture(scope="module")
def slack(module_pipeline_factory):
    return module_pipeline_factory(ini(), name="slack")


def learned(c):
    """Every instance has a cost once one request went through."""
    assert c.submit("warm up", steps=2, seed=1, **P).result(30)["status"] \
        == "done"
    rows = c.instances()
    assert all(r.get("ms_per_mpx", 0) > 0 for r in rows), rows
    return rows


def test_deadline_refused_at_submit(slack):
    with slack.client(timeout=5) as c:
        rows = learned(c)
        t0 = next(r for r in rows if r["name"] == "t0")
        # 20 ms a step over 5x64x64: about 977 ms per megapixel-step.
        assert 500 < t0["ms_per_mpx"] < 2000, t0
        with pytest.raises(Error) as e:
            c.submit("too late", steps=20, seed=2, deadline_ms=100, **P)
        assert e.value.code == "deadline"
        assert "predicted to take" in e.value.message
        ok = c.submit("in time", steps=20, seed=3, deadline_ms=5000, **P)
        assert ok.result(30)["status"] == "done"
    r = slack.cli("submit", "--steps", 20, "--deadline", 100, "--frames", 5,
                  "--height", 64, "--width", 64)
    assert r.returncode == 1 and "deadline: predicted to take" in r.stderr
    # 95 times the work it learned from: not judged, taken.
    r = slack.cli("submit", "--steps", 20, "--deadline", 100)
    assert r.returncode == 0, r.stderr
    r = slack.cli("submit", "--priority", 10)
    assert r.returncode == 1 and "priority must be 0 to 9" in r.stderr


def test_backlog_shows_placed_work(slack):
    with slack.client(timeout=5) as c:
        learned(c)
        reqs = [c.submit("queued", steps=40, seed=10 + i, **P)
                for i in range(3)]
        row = wait_until(lambda: next(
            (r for r in c.instances() if r["name"] == "t0" and
             r.get("backlog_ms", 0) > 0), None), 10, "t0 with a backlog")
        # Three 40-step rooms of 20 ms a step: 2.4 s of work, as learned
        # from one 2-step request (whose fixed costs weigh more per step).
        assert row["backlog_ms"] <= 3600, row
        for r in reqs:
            assert r.result(30)["status"] == "done"
        wait_until(lambda: next(r for r in c.instances()
                                if r["name"] == "t0").get("backlog_ms", 0) == 0,
                   10, "t0's backlog back to 0")


def done_order(reqs):
    """Request ids in the order their results came (each takes 300 ms
    of transformer time, far more than one poll)."""
    got = []

    def one_more():
        for r in reqs:
            if r.id not in got and r.done():
                got.append(r.id)
        return len(got) == len(reqs)
    wait_until(one_more, 60, "every result", interval=0.02)
    return got


def three_then_urgent(c):
    """Three ordinary requests (800 ms of transformer time each) on the
    one worker, then an urgent one once two of them wait ready."""
    learned(c)
    normal = [c.submit("normal %d" % i, steps=40, seed=20 + i, **P)
              for i in range(3)]
    wait_until(lambda: len([q for q in c.queues("t0")
                            if q["queue"] == "ready"]) == 2, 10,
               "two rooms ready on t0")
    urgent = c.submit("urgent", steps=40, seed=30, priority=9, **P)
    return normal, urgent


def test_urgent_goes_first_at_the_stage(slack):
    # It takes the worker at the running room's next step boundary (that
    # one is suspended, and resumes later), so it ends before all three.
    with slack.client(timeout=5) as c:
        normal, urgent = three_then_urgent(c)
        order = done_order(normal + [urgent])
        for r in normal + [urgent]:
            assert r.result(30)["status"] == "done"
        assert order[0] == urgent.id, order
        assert sorted(order[1:]) == sorted(r.id for r in normal), order


def test_fifo_keeps_arrival_order(pipeline_factory):
    # No priority, no preemption: the urgent one waits its turn.
    p = pipeline_factory(ini(order="fifo"), name="fifo")
    with p.client(timeout=5) as c:
        normal, urgent = three_then_urgent(c)
        wait_until(lambda: any(q["request"] == urgent.id and
                               q["queue"] == "ready"
                               for q in c.queues("t0")), 10,
                   "the urgent room ready on t0")
        rows = c.queues("t0")
        running = [q["request"] for q in rows if q["queue"] == "running"]
        # The ready queue as the stage lists it: the order rooms came in
        # (the encoder's two workers may have swapped two of them).
        ready = [q["request"] for q in rows if q["queue"] == "ready"]
        order = done_order(normal + [urgent])
        for r in normal + [urgent]:
            assert r.result(30)["status"] == "done"
        assert len(running) == 1 and ready[-1] == urgent.id, rows
        assert order == running + ready, order


def test_admission_open_takes_it(pipeline_factory):
    p = pipeline_factory(ini(admission="open"), name="open")
    with p.client(timeout=5) as c:
        learned(c)
        r = c.submit("too late", steps=20, seed=2, deadline_ms=100, **P)
        res = r.result(30)
        assert res["status"] == "failed" and "deadline" in res["error"]
    doc = json.loads(p.cli("instances", "--json").stdout)
    assert all("backlog_ms" in r for r in doc["instances"])


def ref_digest(pipe, request_id, prompt, seed, steps):
    """What `disagg ref` computes in one process for the same request."""
    r = pipe.cli("ref", "--json", "-o", pipe.dir / "ref", "--request",
                 request_id, "--prompt", prompt, "--seed", seed, "--frames",
                 P["frames"], "--height", P["height"], "--width", P["width"],
                 "--steps", steps, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["digest"]


def test_urgent_preempts_a_running_denoise(slack):
    """A long room runs on the only transformer worker; an urgent one
    comes: the long one is suspended at a step boundary, keeps its memory,
    and resumes after; the urgent one ends first, and both videos are
    byte for byte what one uninterrupted process makes."""
    with slack.client(timeout=5) as c:
        learned(c)
        long = c.submit("long", steps=100, seed=40, **P)   # 2 s
        wait_until(lambda: any(q["request"] == long.id and
                               q["queue"] == "running" and
                               q.get("step", 0) >= 5
                               for q in c.queues("t0")), 10,
                   "the long room running on t0")
        urgent = c.submit("urgent", steps=5, seed=41, priority=9, **P)
        order = done_order([long, urgent])
        assert order == [urgent.id, long.id], order
        res = {r.id: r.result(30) for r in (long, urgent)}
        assert all(x["status"] == "done" for x in res.values()), res
        assert res[long.id]["digest"] == ref_digest(slack, long.id, "long",
                                                    40, 100)
        assert res[urgent.id]["digest"] == ref_digest(slack, urgent.id,
                                                      "urgent", 41, 5)
        # The long room's compute is all of its steps, both runs.
        t = long.timings()
        assert t["transformer"]["compute"] >= 100 * 0.02 * 0.9, t
