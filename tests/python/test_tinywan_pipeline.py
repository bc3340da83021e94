"""test_tinywan_pipeline.py: tinywan (PyTorch) served by real daemons,
on shm and on tcp;ofi_rxm: every video is byte-identical to `disagg ref
-f` on the same topology, the weights file the first start made is what
later starts load, and bad requests fail with the model's reason."""

import json
import subprocess
from pathlib import Path

import pytest

from conftest import DISAGG, REPO, ipc_path

pytest.importorskip("torch")

REQUESTS = [
    dict(prompt="a red fox running through fresh snow", frames=5,
         height=64, width=112, steps=3, seed=1),
    dict(prompt="waves at dusk", negative_prompt="blurry", frames=9,
         height=96, width=64, steps=2, seed=7),
]


def tinywan_ini(folder, provider):
    """etc/tinywan.ini with this test's endpoints, folders and provider."""
    folder = Path(folder)
    text = (REPO / "etc" / "tinywan.ini").read_text()
    for old, new in (("ipc://%r/controller", ipc_path(folder, "ctl")),
                     ("ipc://%r/events", ipc_path(folder, "pub")),
                     ("ipc://%r/e0", ipc_path(folder, "e0")),
                     ("ipc://%r/t0", ipc_path(folder, "t0")),
                     ("ipc://%r/d0", ipc_path(folder, "d0")),
                     ("provider = auto", "provider = " + provider),
                     ("weights = out/tinywan.pt",
                      "weights = %s" % (folder / "tinywan.pt")),
                     ("output_dir = out", "output_dir = %s" % (folder /
                                                                "out"))):
        assert old in text, old
        text = text.replace(old, new)
    return text


def ref(ini, outdir, req, request_id):
    args = [DISAGG, "ref", "-f", str(ini), "-o", str(outdir), "--json",
            "--request", str(request_id)]
    for k, v in req.items():
        args += ["--" + {"negative_prompt": "negative"}.get(k, k), str(v)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("provider", ["shm", "tcp;ofi_rxm"])
def test_tinywan_pipeline_equals_ref(pipeline_factory, tmp_short, provider):
    p = pipeline_factory(lambda d: tinywan_ini(d, provider), name="tw")
    weights = p.dir / "tinywan.pt"
    assert weights.exists(), "the first start saves the weights"
    made = weights.read_bytes()
    with p.client() as c:
        reqs = [c.submit(**r) for r in REQUESTS]
        results = [q.result(300) for q in reqs]
    for req, res in zip(REQUESTS, results):
        assert res["status"] == "done", res
        mine = ref(p.ini, tmp_short, req, res["request"])
        assert mine["digest"] == res["digest"]
        assert Path(mine["output"]).read_bytes() == \
            Path(res["output"]).read_bytes()
        header = Path(res["output"]).read_bytes()[:64].split(b"\n")[0]
        assert header.startswith(b"YUV4MPEG2 W%d H%d " % (req["width"],
                                                         req["height"]))
    assert weights.read_bytes() == made, "later users load, not remake"


def test_tinywan_refuses_what_it_cannot_serve(pipeline_factory):
    p = pipeline_factory(lambda d: tinywan_ini(d, "shm"), name="twbad")
    with p.client() as c:
        r = c.submit("a fox", frames=8, height=64, width=64,
                     steps=2).result(120)
    assert r["status"] == "failed"
    assert "invalid" in r["error"] and "frames must be 4k+1" in r["error"]
