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
    r = slack.cli("submit", "--steps", 20, "--deadline", 100)
    assert r.returncode == 1 and "deadline: predicted to take" in r.stderr
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


def run_order(pipe):
    """Three ordinary requests (800 ms of transformer time each) on one
    worker, then an urgent one once two wait ready: the one running when
    the urgent one is ready, the urgent one, and the order results came
    in."""
    with pipe.client(timeout=5) as c:
        learned(c)
        normal = [c.submit("normal %d" % i, steps=40, seed=20 + i, **P)
                  for i in range(3)]

        def queue_of(request):
            return {q["request"]: q["queue"] for q in c.queues("t0")}.get(
                request)
        wait_until(lambda: len([q for q in c.queues("t0")
                                if q["queue"] == "ready"]) == 2, 10,
                   "two rooms ready on t0")
        urgent = c.submit("urgent", steps=40, seed=30, priority=9, **P)
        wait_until(lambda: queue_of(urgent.id) == "ready", 10,
                   "the urgent room ready on t0")
        running = [q["request"] for q in c.queues("t0")
                   if q["queue"] == "running"]
        order = done_order(normal + [urgent])
        for r in normal + [urgent]:
            assert r.result(30)["status"] == "done"
        assert len(running) == 1, running
        rest = [r.id for r in normal if r.id != running[0]]
        return running[0], rest, urgent.id, order


def test_urgent_overtakes_at_the_stage(slack):
    first, rest, urgent, order = run_order(slack)
    # The one running goes on; the urgent one goes next, then the rest
    # by deadline, which is their order of arrival.
    assert order == [first, urgent] + rest, order


def test_fifo_keeps_arrival_order(pipeline_factory):
    p = pipeline_factory(ini(order="fifo"), name="fifo")
    first, rest, urgent, order = run_order(p)
    assert order == [first] + rest + [urgent], order


def test_admission_open_takes_it(pipeline_factory):
    p = pipeline_factory(ini(admission="open"), name="open")
    with p.client(timeout=5) as c:
        learned(c)
        r = c.submit("too late", steps=20, seed=2, deadline_ms=100, **P)
        res = r.result(30)
        assert res["status"] == "failed" and "deadline" in res["error"]
    doc = json.loads(p.cli("instances", "--json").stdout)
    assert all("backlog_ms" in r for r in doc["instances"])
