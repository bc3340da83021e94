"""tinywan's three stages in one process, through the fake host in
disagg.tinywan.local (numpy buffers, items that record their exception).

    cd /work/main && PYTHONPATH=lib/python python3 -m pytest -q \
        tests/python/test_tinywan_model.py
"""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from disagg.tinywan import model, stages, weights, y4m
from disagg.tinywan.local import Env, Item, Pipeline, Request, buffers

LIB = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                   "lib", "python"))

SMALL = dict(frames=5, height=64, width=64, steps=2)


def req(prompt="a red fox in the snow", **kw):
    args = dict(SMALL, seed=42, request=1)
    args.update(kw)
    return Request(prompt, **args)


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="module")
def pipe(outdir):
    return Pipeline("", 0, outdir)


def video(pipe, r):
    """The bytes of r's video, and the items."""
    items, _ = pipe.run(r)
    for role, it in items.items():
        assert it.error is None, "%s: %s" % (role, it.error)
    with open(items["decoder"].output, "rb") as f:
        return f.read(), items


def luma(data):
    head, frames = y4m.read_bytes(data)
    w, h = int(head["W"]), int(head["H"])
    return np.stack([np.frombuffer(f[:w * h], np.uint8).astype(np.float64)
                     for f in frames])


# ------------------------------------------------------------- plan

def test_plan_shapes(pipe):
    r = req(frames=17, height=256, width=448, steps=10)
    enc, tr, dec = (pipe.stages[k].plan(r) for k in
                    ("encoder", "transformer", "decoder"))
    assert enc == ([], [("context", "bf16", (2, 64, 64))])
    assert tr == ([("context", "bf16", (2, 64, 64))],
                  [("latents", "f32", (16, 5, 32, 56))])
    assert dec == ([("latents", "f32", (16, 5, 32, 56))], [])
    # Each stage's outputs are the next one's inputs.
    assert enc[1] == tr[0] and tr[1] == dec[0]
    r = req(frames=81, height=480, width=832)
    assert pipe.stages["transformer"].plan(r)[1] == \
        [("latents", "f32", (16, 21, 60, 104))]
    assert pipe.stages["decoder"].plan(req(frames=1))[0] == \
        [("latents", "f32", (16, 1, 8, 8))]


@pytest.mark.parametrize("kw, msg", [
    (dict(frames=80), "frames must be 4k+1 (1, 5, ..., 81), got 80"),
    (dict(frames=0), "frames must be 4k+1 (1, 5, ..., 81), got 0"),
    (dict(frames=85), "frames must be 4k+1 (1, 5, ..., 81), got 85"),
    (dict(height=250), "height must be a multiple of 16 from 16 to 1024, "
                       "got 250"),
    (dict(height=0), "height must be a multiple of 16 from 16 to 1024, "
                     "got 0"),
    (dict(width=1040), "width must be a multiple of 16 from 16 to 1024, "
                       "got 1040"),
    (dict(width=8), "width must be a multiple of 16 from 16 to 1024, got 8"),
    (dict(steps=0), "steps must be 1 to 100, got 0"),
    (dict(steps=101), "steps must be 1 to 100, got 101"),
    (dict(prompt=""), "prompt must not be empty"),
    (dict(prompt="   "), "prompt must not be empty"),
    (dict(frames=5.0), "frames must be an integer, got 5.0"),
])
def test_plan_rejects(pipe, kw, msg):
    r = req(**kw) if "prompt" not in kw else req(kw.pop("prompt"), **kw)
    for role, st in pipe.stages.items():
        with pytest.raises(ValueError) as e:
            st.plan(r)
        assert str(e.value) == msg, role


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="option seed must be an integer"):
        stages.Encoder(Env("encoder", {"seed": "zero"}))
    with pytest.raises(ValueError, match="option shift must be a number"):
        stages.Transformer(Env("transformer", {"shift": "-1"}))


# ------------------------------------------------------------- determinism

def test_same_request_same_bytes(pipe, outdir):
    a, _ = video(pipe, req())
    b, _ = video(pipe, req())
    assert a == b
    # A fresh set of stages (weights made again from the seed) agrees.
    c, _ = video(Pipeline("", 0, outdir), req())
    assert a == c


def test_same_bytes_in_another_process(pipe, tmp_path):
    a, _ = video(pipe, req(request=7))
    env = dict(os.environ, PYTHONPATH=LIB, PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(
        [sys.executable, "-m", "disagg.tinywan.run", "--prompt",
         "a red fox in the snow", "--frames", "5", "--height", "64",
         "--width", "64", "--steps", "2", "--seed", "42", "--request", "7",
         "-o", str(tmp_path), "--json"],
        env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["output"] == str(tmp_path / "7.y4m")
    assert set(res["runs"][0]) == {"encoder", "transformer", "decoder",
                                   "total"}
    assert res["sha256"] == hashlib.sha256(a).hexdigest()


def test_batch_is_per_item(pipe, outdir):
    """Batched with others, a request gives the same latents as alone, and
    one bad item fails alone."""
    tr = pipe.stages["transformer"]
    single, _ = pipe.run(req(seed=3))
    want = single["decoder"].inputs["latents"].copy()
    ctx = single["transformer"].inputs["context"]
    batch = []
    for seed in (5, 3):
        ins, outs = tr.plan(req(seed=seed))
        batch.append(Item(req(seed=seed), {"context": ctx.copy()},
                          buffers(outs), {"context": "bf16"}))
    broken = Item(req(seed=9), {}, buffers(outs), {"context": "bf16"})
    batch.insert(1, broken)
    tr.run(batch)
    assert isinstance(broken.error, KeyError)
    assert batch[0].error is None and batch[2].error is None
    assert np.array_equal(batch[2].outputs["latents"], want)
    assert not np.array_equal(batch[0].outputs["latents"], want)


def test_inputs_change_the_video(pipe):
    base, _ = video(pipe, req())
    assert video(pipe, req(seed=43))[0] != base
    assert video(pipe, req("a blue whale in the deep sea"))[0] != base
    neg, _ = video(pipe, req(negative_prompt="blurry, dark"))
    assert neg != base
    assert video(pipe, req(negative_prompt="grainy, bright"))[0] != neg


def test_context(pipe):
    _, items = video(pipe, req("abc", negative_prompt=""))
    ctx = items["encoder"].tensor("context").float()
    assert ctx.dtype == torch.float32 and ctx.shape == (2, 64, 64)
    assert torch.all(ctx[0, 3:] == 0) and torch.all(ctx[0, :3].abs().sum(1)
                                                    > 0)
    # No negative prompt: Wan's default one (64 bytes of it) is used.
    assert torch.all(ctx[1].abs().sum(1) > 0)
    assert not torch.equal(ctx[0], ctx[1])
    # The buffer the transformer reads is the one the encoder wrote.
    assert items["transformer"].inputs["context"] is \
        items["encoder"].outputs["context"]


def test_prompt_matters_through_the_dit(pipe):
    """The head is small but not zero: different contexts, different
    velocities, yet noise still dominates (untrained)."""
    a = video(pipe, req("a cat"))[1]["decoder"].inputs["latents"]
    b = video(pipe, req("a dog"))[1]["decoder"].inputs["latents"]
    d = np.abs(a - b).mean()
    assert 1e-3 < d < 0.5 * np.abs(a).mean()


def test_attention_kernels_agree():
    """The CPU kernel (oneDNN products, queries in slices) computes what
    the batched one (used on GPUs) does: batch 1 shared, bias, scale."""
    from disagg.tinywan import ops
    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 300, 2, 16, generator=g)
    k = torch.randn(2, 40, 2, 16, generator=g)
    v = torch.randn(2, 40, 2, 16, generator=g)
    bias = torch.randn(1, 2, 300, 40, generator=g)
    old = ops._SCORES
    ops._SCORES = 40 * 128          # three slices of queries
    try:
        for kw in ({}, {"bias": bias, "scale": 1.0}):
            a = ops.attention(q, k, v, **kw)
            b = ops.attention_batched(q, k, v, **kw)
            assert a.shape == b.shape == (2, 300, 2, 16)
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    finally:
        ops._SCORES = old


# ------------------------------------------------------------- weights

def test_weights_file(tmp_path, outdir):
    path = tmp_path / "w" / "tinywan.pt"
    mem = Pipeline("", 0, outdir)
    a, _ = video(mem, req())
    assert not path.exists()
    p1 = Pipeline(str(path), 0, outdir)
    assert path.is_file()
    assert [n for n in os.listdir(path.parent)] == ["tinywan.pt"]
    mtime = path.stat().st_mtime_ns
    b, _ = video(p1, req())
    p2 = Pipeline(str(path), 0, outdir)          # loads it
    assert path.stat().st_mtime_ns == mtime
    c, _ = video(p2, req())
    assert a == b == c
    # Loading gives exactly the tensors made from the seed.
    made = weights.make(0)
    got = weights.load(str(path), 0)
    assert got["config"] == made["config"] == weights._plain(model.CONFIG)
    for part in weights.PARTS:
        assert list(got[part]) == list(made[part])
        for k, t in made[part].items():
            assert got[part][k].dtype == t.dtype
            assert torch.equal(got[part][k], t), (part, k)
        net = p2.stages["encoder"].net if part == "encoder" else None
        if net is not None:
            for k, t in net.state_dict().items():
                assert torch.equal(t, made[part][k])
    # Another seed, other weights, another video.
    d, _ = video(Pipeline("", 1, outdir), req())
    assert d != a


def test_weights_file_errors(tmp_path):
    good = weights.make(0)
    path = str(tmp_path / "w.pt")
    bad = dict(good, config=dict(good["config"], dim=128))
    weights.save(bad, path)
    with pytest.raises(weights.WeightsError,
                       match=r"another model shape: config dim=128, model "
                             r"has 64"):
        stages.Encoder(Env("encoder", {"weights": path}))
    weights.save(good, path)
    with pytest.raises(weights.WeightsError,
                       match=r"made from seed 0, the stage's seed is 1"):
        stages.Decoder(Env("decoder", {"weights": path, "seed": "1"}))
    with open(path, "wb") as f:
        f.write(b"not a weights file" * 100)
    with pytest.raises(weights.WeightsError, match=r"cannot be read"):
        stages.Transformer(Env("transformer", {"weights": path}))
    # Cut short, as a crash mid-write would leave a file made in place.
    weights.save(good, path)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(weights.WeightsError, match=r"cannot be read"):
        stages.Encoder(Env("encoder", {"weights": path}))
    torch.save({"encoder": {}}, path)
    with pytest.raises(weights.WeightsError,
                       match=r"not a tinywan weights file"):
        stages.Encoder(Env("encoder", {"weights": path}))
    dropped = dict(good, dit={k: v for k, v in good["dit"].items()
                              if k != "head.head.weight"})
    weights.save(dropped, path)
    with pytest.raises(weights.WeightsError, match=r"head\.head\.weight"):
        stages.Transformer(Env("transformer", {"weights": path}))


def test_weights_made_by_several_at_once(tmp_path):
    """Daemons starting together each make the missing file; every one
    starts, and the file is whole and right."""
    path = tmp_path / "w.pt"
    code = ("import sys; from disagg.tinywan import stages; "
            "from disagg.tinywan.local import Env; "
            "stages.%s(Env('x', {'weights': sys.argv[1]}))")
    env = dict(os.environ, PYTHONPATH=LIB, PYTHONDONTWRITEBYTECODE="1")
    procs = [subprocess.Popen([sys.executable, "-c", code % cls, str(path)],
                              env=env, stderr=subprocess.PIPE, text=True)
             for cls in ("Encoder", "Transformer", "Decoder")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert os.listdir(tmp_path) == ["w.pt"]
    got, made = weights.load(str(path), 0), weights.make(0)
    for part in weights.PARTS:
        for k, t in made[part].items():
            assert torch.equal(got[part][k], t)


def test_weights_unusable_paths(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(weights.WeightsError,
                       match="cannot open weights file .*: Not a directory"):
        stages.Encoder(Env("encoder", {"weights": str(blocker / "w.pt")}))
    with pytest.raises(weights.WeightsError,
                       match="cannot open weights file .*: Is a directory"):
        stages.Encoder(Env("encoder", {"weights": str(tmp_path)}))
    # Missing, and its folder cannot be made (not even by root).
    with pytest.raises(weights.WeightsError, match="cannot write weights"):
        stages.Encoder(Env("encoder",
                           {"weights": "/proc/tinywan-test/w.pt"}))


# ------------------------------------------------------------- progress

def test_progress(pipe):
    _, items = video(pipe, req(steps=3))
    assert items["transformer"].progress_calls == [(1, 3), (2, 3), (3, 3)]


def test_stopped(pipe, outdir):
    items, _ = pipe.run(req(steps=4, request=99), stop_after=1)
    t = items["transformer"]
    assert t.error is not None and "stopped" in str(t.error)
    assert t.progress_calls == [(1, 4)]
    assert items["decoder"].output is None
    assert not any(n.endswith(".tmp") for n in os.listdir(outdir))


def test_suspend_and_resume_same_bytes(pipe):
    # Asked to yield after 2 of 5 steps: it suspends with its latents in
    # its output, runs on later from step 2, and the video is the one
    # an uninterrupted run makes, byte for byte.
    want, _ = video(pipe, req(steps=5, request=97))
    r = req(steps=5, request=97)
    items = pipe.items(r)
    pipe.stages["encoder"].run([items["encoder"]])
    t = items["transformer"]
    t.yield_after = 2
    pipe.stages["transformer"].run([t])
    assert t.error is None and t.suspended == 2
    assert t.progress_calls == [(1, 5), (2, 5)]
    t.yield_after = None
    r.resume_step = 2
    pipe.stages["transformer"].run([t])
    assert t.error is None
    assert t.progress_calls == [(k, 5) for k in range(1, 6)]
    pipe.stages["decoder"].run([items["decoder"]])
    with open(items["decoder"].output, "rb") as f:
        assert f.read() == want


def test_decoder_stopped(pipe, outdir):
    r = req(request=98)
    items = pipe.items(r)
    for role in ("encoder", "transformer"):
        pipe.stages[role].run([items[role]])
    dec = items["decoder"]
    dec.stop_after = 0
    pipe.stages["decoder"].run([dec])
    assert dec.error is not None and "stopped" in str(dec.error)
    assert dec.output is None
    names = os.listdir(outdir)
    assert "98.y4m" not in names
    assert not any(n.endswith(".tmp") for n in names)


# ------------------------------------------------------------- video

def test_y4m_file(pipe, outdir):
    r = req(frames=9, height=48, width=80, request=12)
    data, items = video(pipe, r)
    path = items["decoder"].output
    assert path == os.path.join(outdir, "12.y4m")
    head = data[:data.index(b"\n") + 1]
    assert head == b"YUV4MPEG2 W80 H48 F16:1 Ip A1:1 C420jpeg\n"
    h, frames = y4m.read_bytes(data)
    assert len(frames) == 9
    assert len(data) == y4m.size(80, 48, 9) == \
        len(head) + 9 * (6 + 80 * 48 * 3 // 2)
    assert not any(n.endswith(".tmp") for n in os.listdir(outdir))
    one, _ = video(pipe, req(frames=1, request=13))
    assert len(y4m.read_bytes(one)[1]) == 1


def test_yuv_exact():
    rgb = np.zeros((3, 2, 4), np.uint8)
    rgb[:, :, 0:2] = 255                                  # white
    rgb[0, :, 2:4] = 255                                  # red
    planes = y4m.rgb_to_yuv420(rgb)
    assert list(planes[:8]) == [255, 255, 77, 77] * 2
    assert list(planes[8:]) == [128, 85, 128, 255]


def test_frames_move_smoothly(pipe):
    r = req(frames=17, height=64, width=96, steps=2)
    a = luma(video(pipe, r)[0])
    b = luma(video(pipe, req(frames=17, height=64, width=96, steps=2,
                             seed=1234))[0])
    adjacent = np.mean([np.abs(a[i + 1] - a[i]).mean()
                        for i in range(len(a) - 1)])
    unrelated = np.abs(a - b).mean()
    assert adjacent < 0.3 * unrelated, (adjacent, unrelated)
    # A picture, not a flat field or clipped noise.
    assert 20 < a[0].std() < 90
    assert (a == 0).mean() < 0.05 and (a == 255).mean() < 0.05


# ------------------------------------------------------------- in daemons

def tinywan_ini(folder):
    """A one-host pipeline of the tinywan stages (real disaggd daemons)."""
    from conftest import ipc_path
    text = ["[controller]", "listen = " + ipc_path(folder, "ctl"),
            "publish = " + ipc_path(folder, "pub"), "heartbeat_ms = 100ms",
            "", "[fabric]", "provider = shm", "verify = on", ""]
    for role, name, cls in (("encoder", "e0", "Encoder"),
                            ("transformer", "t0", "Transformer"),
                            ("decoder", "d0", "Decoder")):
        text += ["[%s %s]" % (role, name),
                 "peer = " + ipc_path(folder, name),
                 "stage = python:disagg.tinywan.stages:" + cls,
                 "python_path = " + LIB, "pool = 16M",
                 "weights = %s" % (folder / "tinywan.pt")]
        if role == "decoder":
            text.append("output_dir = %s" % (folder / "out"))
        text.append("")
    return "\n".join(text)


def test_daemons_make_the_same_bytes(pipe, pipeline_factory):
    """Through disaggd (the C host, shm transfers, bf16 context on the
    wire) a request gives the bytes the stages give in one process."""
    p = pipeline_factory(tinywan_ini, name="tw", timeout=90)
    with p.client() as c:
        r = c.submit("a red fox in the snow", frames=5, height=64, width=64,
                     steps=2, seed=42).result(90)
        bad = c.submit("a red fox", frames=80, height=64, width=64,
                       steps=2).result(30)
    assert r["status"] == "done", (r, p.logs_tail())
    with open(r["output"], "rb") as f:
        got = f.read()
    assert got == video(pipe, req())[0]
    assert bad["status"] == "failed"
    assert "frames must be 4k+1 (1, 5, ..., 81), got 80" in bad["error"]


def test_writer_does_not_follow_a_planted_link(tmp_path):
    """A link planted at the Writer's temporary name (a shared output
    folder) is not written through; a stale temporary of ours is."""
    from disagg.tinywan.y4m import Writer
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    path = tmp_path / "7.y4m"
    tmp = tmp_path / (".7.y4m.%d.tmp" % os.getpid())
    tmp.symlink_to(victim)
    with pytest.raises(OSError, match="not written through"):
        with Writer(str(path), 16, 16, 1):
            pass
    assert victim.read_bytes() == b"precious"
    tmp.unlink()
    tmp.write_bytes(b"half a video")
    with Writer(str(path), 16, 16, 1) as out:
        out.write(np.zeros((3, 16, 16), dtype=np.uint8))
    assert path.stat().st_size > 0 and not tmp.exists()
