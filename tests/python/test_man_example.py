"""test_man_example.py: the complete stage of disagg-python(7), copied out
of the page as a reader would, runs as an encoder through `disagg ref -f`
and writes what its seeded table says."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import DISAGG, REPO

STAGES = Path(__file__).resolve().parent / "stages"
torch = pytest.importorskip("torch")


def example_source():
    page = (REPO / "man" / "disagg-python.7").read_text()
    m = re.search(r"A complete stage:.*?\.Bd -literal -offset indent\n(.*?)"
                  r"\.Ed\n", page, re.S)
    assert m, "the example is in the page"
    return m.group(1).replace("\\e", "\\")


def test_the_pages_example_stage_runs(tmp_short):
    src = example_source()
    assert 25 <= len(src.splitlines()) <= 40, "about 30 lines"
    (tmp_short / "byteenc.py").write_text(src)
    ini = tmp_short / "ex.ini"
    ini.write_text("\n".join([
        "[encoder e0]", "peer = ipc://%s/e0" % tmp_short,
        "stage = python:byteenc:ByteEncoder",
        "python_path = %s" % tmp_short, "dim = 64", "",
        "[transformer t0]", "peer = ipc://%s/t0" % tmp_short,
        "stage = python:toystages:ContextSum",
        "python_path = %s" % STAGES, "",
        "[decoder d0]", "peer = ipc://%s/d0" % tmp_short,
        "stage = python:toystages:Sink", "python_path = %s" % STAGES,
        "output_dir = %s" % (tmp_short / "out"), ""]))
    r = subprocess.run([DISAGG, "ref", "-f", str(ini), "--json",
                        "--prompt", "hi", "--frames", "5", "--height", "64",
                        "--width", "64", "--steps", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ByteEncoder e0 ready, dim 64" in r.stderr
    out = Path(json.loads(r.stdout)["output"]).read_text()
    # The same sums, computed here as the stages compute them.
    import numpy as np
    g = torch.Generator().manual_seed(0)
    table = torch.randn(256, 64, generator=g)
    ctx = torch.zeros(64, 64, dtype=torch.bfloat16)
    ctx[:2] = table[list(b"hi")].to(torch.bfloat16)
    y = np.zeros(1024, dtype=np.float32)
    y[:64] = ctx.float().sum(dim=1).numpy()
    assert "sum %d\n" % int(y.sum()) in out, out
