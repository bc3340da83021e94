"""test_metrics.py: GET /metrics of a running pipeline's daemons, in
Prometheus's text format: promtool accepts it, and the figures follow
what the pipeline does (a request done is counted done)."""

import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from pathlib import Path

from conftest import free_port, one_host_ini, wait_until

ROOT = Path(__file__).resolve().parents[2]


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=5) as r:
        assert r.headers["Content-Type"].startswith(
            "text/plain; version=0.0.4")
        return r.read().decode()


def promtool_check(text):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: make deps installs prometheus"
    r = subprocess.run([promtool, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def sample(text, name, **labels):
    """The value of the sample `name` whose labels include `labels`."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, value = line.rsplit(" ", 1)
        if all('%s="%s"' % kv in head for kv in labels.items()):
            return float(value)
    return None


def test_controller_metrics(pipeline_factory):
    port = free_port()
    p = pipeline_factory(lambda f: one_host_ini(
        f, controller="metrics = 127.0.0.1:%d" % port), name="metrics")
    text = scrape(port)
    promtool_check(text)
    assert sample(text, "disagg_requests_total", status="done",
                  role="controller", instance="controller") == 0
    assert sample(text, "disagg_build_info", role="controller") == 1
    wait_until(lambda: sample(scrape(port), "disagg_instances",
                              role="transformer", state="up") == 1, 10,
               "the transformer up in the metrics")
    with p.client() as c:
        assert c.submit(frames=5, height=64, width=64,
                        steps=2).result(60)["status"] == "done"
    wait_until(lambda: sample(scrape(port), "disagg_requests_total",
                              status="done") == 1, 10,
               "the request counted done")
    text = scrape(port)
    promtool_check(text)
    assert sample(text, "disagg_request_duration_seconds_count") == 1
    assert sample(text, "disagg_requests_in_flight") == 0
    assert sample(text, "disagg_requests_in_flight_limit") > 0
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen("http://127.0.0.1:%d/other" % port,
                               timeout=5)
    assert e.value.code == 404


def test_stage_metrics(pipeline_factory):
    port = free_port()

    def ini(f):
        return one_host_ini(f).replace(
            "[transformer t0]\n",
            "[transformer t0]\nmetrics = 127.0.0.1:%d\n" % port)
    p = pipeline_factory(ini, name="smetrics")
    promtool_check(scrape(port))
    with p.client() as c:
        assert c.submit(frames=5, height=64, width=64,
                        steps=2).result(60)["status"] == "done"
    wait_until(lambda: sample(scrape(port), "disagg_stage_rooms_total",
                              status="done", role="transformer",
                              instance="t0") == 1, 10,
               "t0's room counted done")
    text = scrape(port)
    promtool_check(text)
    assert sample(text, "disagg_stage_compute_seconds_count") == 1
    assert sample(text, "disagg_stage_batch_size_count") == 1
    # The context and latents in, the latents out.
    assert sample(text, "disagg_transfer_bytes_total",
                  direction="receive") > 0
    assert sample(text, "disagg_transfer_bytes_total",
                  direction="send") > 0
    assert sample(text, "disagg_transfer_seconds_count",
                  direction="send") == 1
    assert sample(text, "disagg_stage_rooms", queue="running") == 0
    # Every slot state has its bytes; an idle pool is all free.
    assert sample(text, "disagg_pool_bytes", state="free") == 64 << 20
    for state in ("reserved", "filling", "ready", "in_use"):
        assert sample(text, "disagg_pool_bytes", state=state) == 0
    # Where the room's time went: one observation per component, and
    # the 2 steps' compute at least as long as the batch's run.
    for part in ("queue", "transfer_in", "compute", "transfer_out",
                 "total"):
        assert sample(text, "disagg_stage_room_seconds_count",
                      component=part) == 1, part
    assert sample(text, "disagg_stage_room_seconds_sum",
                  component="total") >= sample(
        text, "disagg_stage_room_seconds_sum", component="compute")
    assert sample(text, "disagg_transfer_errors_total",
                  **{"class": "send_failed"}) == 0


def test_prometheus_scrapes_a_pipeline(pipeline_factory, tmp_path):
    """A real Prometheus server, on loopback, scrapes the controller and
    a stage and answers for their series through its query API."""
    import json
    import urllib.parse
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: make deps installs it"
    ctl, stage, web = free_port(), free_port(), free_port()

    # Through the fabric: its (peer, rail) series exist only for peers
    # it wrote to; the zero-copy series are there either way.
    def ini(f):
        return one_host_ini(
            f, controller="metrics = 127.0.0.1:%d" % ctl).replace(
            "[transformer t0]\n",
            "[transformer t0]\nmetrics = 127.0.0.1:%d\n" % stage).replace(
            "provider = shm\n", "provider = shm\nzero_copy = off\n")
    p = pipeline_factory(ini, name="prom")
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: disagg\n"
        # Our `instance` (t0) over Prometheus's own (the target).
        "    honor_labels: true\n    static_configs:\n"
        "      - targets: ['127.0.0.1:%d', '127.0.0.1:%d']\n" % (ctl, stage))
    log = open(tmp_path / "prometheus.log", "w")
    server = subprocess.Popen(
        [prometheus, "--config.file=%s" % (tmp_path / "prometheus.yml"),
         "--storage.tsdb.path=%s" % (tmp_path / "data"),
         "--web.listen-address=127.0.0.1:%d" % web],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        with p.client() as c:
            assert c.submit(frames=5, height=64, width=64,
                            steps=2).result(60)["status"] == "done"

        def query(q):
            url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (
                web, urllib.parse.quote(q))
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    got = json.load(r)
            except (OSError, ValueError):
                return []
            return got.get("data", {}).get("result", [])

        def done_counted():
            return [r for r in query('disagg_requests_total'
                                     '{status="done"}')
                    if r["value"][1] == "1"]
        wait_until(done_counted, 60, "Prometheus has the request done")
        wait_until(lambda: query('disagg_stage_rooms_total'
                                 '{instance="t0",status="done"}'), 30,
                   "Prometheus has t0's room done")
        up = query("up")
        assert len(up) == 2 and all(r["value"][1] == "1" for r in up), up
        # The shipped Grafana dashboard: every query parses and runs, and
        # every series it names exists.
        dash = json.loads((ROOT / "etc" / "grafana-disagg.json").read_text())
        exprs = [t["expr"].replace("$job", ".*")
                 for panel in dash["panels"] for t in panel["targets"]]
        assert len(exprs) >= 12
        for q in exprs:
            url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (
                web, urllib.parse.quote(q))
            with urllib.request.urlopen(url, timeout=5) as r:
                assert json.load(r)["status"] == "success", q
        names = set(re.findall(r"\bdisagg_[a-z_]+", " ".join(exprs)))
        for name in names:
            assert query('count({__name__="%s"})' % name), name
    finally:
        server.terminate()
        server.wait(30)
        log.close()
