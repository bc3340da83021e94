"""test_stage_host.py: Python stages inside real daemons (stage =
python:MODULE:CLASS), with the small stages of stages/toystages.py.

What a PyTorch user relies on: an exception fails one item with its
message and never the daemon; the arrays are the pool's memory; batches
and two workers run; a release stops a running Python stage; the class's
own INI keys are checked; print() reaches the daemon's log; and `disagg
ref -f` gives the same bytes as the pipeline."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import DISAGG, DISAGGD, ipc_path, wait_until

STAGES = Path(__file__).resolve().parent / "stages"
N = 1024


def toy_ini(folder, *, provider="shm", source="", middle="", sink="",
            controller=""):
    """A one-host chain of the toy stages; the strings are extra lines of
    the sections."""
    folder = Path(folder)
    text = ["[controller]", "listen = " + ipc_path(folder, "ctl"),
            "publish = " + ipc_path(folder, "pub"), "heartbeat_ms = 100ms",
            controller, "", "[fabric]", "provider = " + provider,
            "verify = on", ""]
    for role, name, cls, extra in (("encoder", "e0", "Source", source),
                                   ("transformer", "t0", "Middle", middle),
                                   ("decoder", "d0", "Sink", sink)):
        text += ["[%s %s]" % (role, name), "peer = " + ipc_path(folder, name),
                 "stage = python:toystages:" + cls,
                 "python_path = %s" % STAGES, "pool = 16M", extra]
        if role == "decoder":
            text.append("output_dir = %s" % (folder / "out"))
        text.append("")
    return "\n".join(text)


def expected_sum(seed):
    # y = 2 (i + seed) + 1 for i < N, as Middle computes it from Source.
    return 2 * (N * (N - 1) // 2 + N * seed) + N


def stats(result):
    return Path(result["output"] + ".stats").read_text()


def submit(c, prompt, seed=42):
    return c.submit(prompt, frames=5, height=64, width=64, steps=2, seed=seed)


@pytest.fixture(scope="module")
def toy(module_pipeline_factory):
    return module_pipeline_factory(
        lambda d: toy_ini(d, source="tag = from-the-ini",
                          middle="workers = 2\nmax_batch = 1"), name="toy")


def test_result_is_the_computed_bytes(toy):
    with toy.client() as c:
        r = submit(c, "a cat", seed=7).result(60)
    assert r["status"] == "done", r
    text = Path(r["output"]).read_text()
    assert "sum %d" % expected_sum(7) in text
    assert r["bytes"] == len(text.encode())


def test_print_goes_to_the_log_and_options_reach_the_class(toy):
    log = toy.log("e0")
    assert "source ready: tag=from-the-ini role=encoder name=e0" in log


def test_exception_in_run_fails_that_request_only(toy):
    with toy.client() as c:
        bad = submit(c, "boom here")
        good = submit(c, "fine")
        rb, rg = bad.result(60), good.result(60)
    assert rb["status"] == "failed"
    assert "RuntimeError: boom in room" in rb["error"]
    assert rg["status"] == "done", rg
    log = toy.log("e0")
    assert "Traceback (most recent call last)" in log
    assert "raise RuntimeError(\"boom in room" in log


def test_exception_in_plan_is_invalid_with_the_message(toy):
    with toy.client() as c:
        r = submit(c, "badplan please").result(60)
    assert r["status"] == "failed"
    assert "invalid: ValueError: this stage cannot plan" in r["error"], r


def test_two_workers_run_two_batches_at_once(toy):
    # Middle sleeps 50 x 20 ms per "slow" item with the GIL released; with
    # workers = 2 the two requests overlap inside the stage.
    with toy.client() as c:
        reqs = [submit(c, "slow %d" % i) for i in range(2)]
        results = [r.result(60) for r in reqs]
    assert all(r["status"] == "done" for r in results), results
    seen = [int(stats(r).split("concurrent ")[1]) for r in results]
    assert max(seen) == 2, seen


def test_item_progress_reaches_the_client(toy):
    # item.progress(k, 50) in Middle's slow path: the client that asked
    # hears the Python stage's own steps.
    with toy.client() as c:
        req = c.submit("slow progress", frames=5, height=64, width=64,
                       steps=2, seed=9, progress=True)
        word = wait_until(lambda: req.progress(timeout=0.5), 30,
                          "a progress word")
        assert word["role"] == "transformer" and word["steps"] == 50
        assert 1 <= word["step"] <= 50
        assert req.result(30)["status"] == "done"


def test_release_stops_a_running_python_stage(toy):
    with toy.client() as c:
        req = submit(c, "slow release me")

        def running_room():
            for row in c.queues("t0"):
                if row.get("request") == req.id and \
                        row.get("queue") == "running":
                    return row["room"]
            return None
        room = wait_until(running_room, 30, "the room running on t0")
        c.release(room, reason="test")
        r = req.result(30)
        assert r["status"] in ("failed", "cancelled"), r
        wait_until(lambda: "stopped after" in toy.log("t0"), 10,
                   "the stage giving up between steps")
        # The room's slots are free: t0 holds no room.
        wait_until(lambda: not c.queues("t0"), 10, "t0 holding no room")


def test_batches_fail_per_item(pipeline_factory):
    # One worker and max_batch 8 on the transformer: items queue up and
    # run together; the Middle stage numbers its batch in the output.
    p = pipeline_factory(lambda d: toy_ini(
        d, middle="workers = 1\nmax_batch = 8"), name="batch")
    with p.client() as c:
        first = submit(c, "slow head")          # holds the worker
        rest = [submit(c, "item %d" % i, seed=i) for i in range(6)]
        results = [r.result(60) for r in [first] + rest]
    assert all(r["status"] == "done" for r in results), results
    sizes = [int(stats(r).split("batch ")[1].split()[0])
             for r in results[1:]]
    assert max(sizes) > 1, sizes
    for i, r in enumerate(results[1:]):
        assert "sum %d" % expected_sum(i) in Path(r["output"]).read_text()


def test_tcp_provider(pipeline_factory):
    p = pipeline_factory(lambda d: toy_ini(d, provider="tcp;ofi_rxm"),
                         name="tcp")
    with p.client() as c:
        r = submit(c, "over tcp", seed=3).result(60)
    assert r["status"] == "done", r
    assert "sum %d" % expected_sum(3) in Path(r["output"]).read_text()


def test_exception_in_init_stops_the_daemon_with_the_traceback(tmp_short):
    ini = tmp_short / "bad.ini"
    ini.write_text(toy_ini(tmp_short, source="fail = init"))
    r = subprocess.run([DISAGGD, "-d", "-f", str(ini), "-N", "e0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "Traceback (most recent call last)" in r.stderr
    assert "RuntimeError: the source refuses to start (fail = init)" \
        in r.stderr


def test_undeclared_key_is_refused_with_file_and_line(tmp_short):
    ini = tmp_short / "bad.ini"
    ini.write_text(toy_ini(tmp_short, middle="colour = blue"))
    line = ini.read_text().splitlines().index("colour = blue") + 1
    # -n knows the key table, not the class: it passes, and the daemon
    # refuses at start, naming the file and the line.
    assert subprocess.run([DISAGGD, "-n", "-f", str(ini)],
                          capture_output=True).returncode == 0
    r = subprocess.run([DISAGGD, "-d", "-f", str(ini), "-N", "t0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "%s:%d: unknown key 'colour' in [transformer t0]" % (ini, line) \
        in r.stderr, r.stderr


def test_unknown_key_of_a_c_stage_is_still_an_error(tmp_short):
    ini = tmp_short / "bad.ini"
    ini.write_text(toy_ini(tmp_short).replace(
        "stage = python:toystages:Middle", "stage = ref-transformer\n"
        "colour = blue"))
    r = subprocess.run([DISAGGD, "-n", "-f", str(ini)], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert "unknown key 'colour' in [transformer t0]" in r.stderr + r.stdout


def test_ref_gives_the_pipelines_bytes(toy, tmp_short):
    with toy.client() as c:
        r = submit(c, "same bytes", seed=11).result(60)
    assert r["status"] == "done", r
    out = subprocess.run(
        [DISAGG, "ref", "-f", str(toy.ini), "-o", str(tmp_short), "--json",
         "--prompt", "same bytes", "--seed", "11", "--frames", "5",
         "--height", "64", "--width", "64", "--steps", "2", "--request",
         str(r["request"])], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ref = json.loads(out.stdout)
    assert ref["digest"] == r["digest"]
    assert ref["bytes"] == r["bytes"]
    assert Path(ref["output"]).read_bytes() == Path(r["output"]).read_bytes()
    assert set(ref["timings"]) == {"encoder", "transformer", "decoder"}


def test_cuda_pool_hands_torch_cuda_tensors(pipeline_factory):
    """memory = cuda: inputs and outputs are torch CUDA tensors on the
    device pool (DLPack).  Needs a GPU, torch with CUDA and a CUDA=1
    build: skipped otherwise (the only test here that is)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device for torch")
    probe = subprocess.run([DISAGGD, "-V"], capture_output=True, text=True)
    if "cuda" not in (probe.stdout + probe.stderr).lower():
        pytest.skip("disaggd built without CUDA=1")
    p = pipeline_factory(lambda d: toy_ini(
        d, middle="memory = cuda").replace("python:toystages:Middle",
                                           "python:toystages:CudaMiddle"),
        name="cuda")
    with p.client() as c:
        r = submit(c, "on the gpu", seed=5).result(120)
    assert r["status"] == "done", r
    assert "sum %d" % expected_sum(5) in Path(r["output"]).read_text()
