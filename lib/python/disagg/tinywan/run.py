"""python3 -m disagg.tinywan.run: one request through tinywan's three
stages in this process, calling the stage classes directly (no daemon, no
transfer): the "direct Python" baseline the daemons are measured against.

Prints each stage's run() time in milliseconds and the video's path (JSON
with --json).  Stage start-up (weights) and buffer allocation are timed
apart and not counted in the stages' times.
"""

import argparse
import hashlib
import json
import os
import sys
import time


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python3 -m disagg.tinywan.run",
        description="Run tinywan's encoder, transformer and decoder stages "
                    "in one process and time each.")
    p.add_argument("--prompt", default="a red fox running through snow")
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=448)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--request", type=int, default=1,
                   help="request id: the video is DIR/REQUEST.y4m")
    p.add_argument("-o", "--output-dir", default="out")
    p.add_argument("--weights", default="",
                   help="weights file (made from --weights-seed if "
                        "missing); empty: made in memory")
    p.add_argument("--weights-seed", type=int, default=0)
    p.add_argument("--shift", default="5.0")
    p.add_argument("--guidance", default="5.0")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the request N times (same request id)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)

    from .local import Pipeline, Request
    os.makedirs(a.output_dir, exist_ok=True)
    t0 = time.perf_counter()
    pipe = Pipeline(a.weights, a.weights_seed, a.output_dir,
                    {"shift": a.shift, "guidance": a.guidance})
    req = Request(a.prompt, a.negative_prompt, a.frames, a.height, a.width,
                  a.steps, a.seed, a.request)
    runs, path, digest = [], None, None
    for i in range(max(1, a.repeat)):
        try:
            items, ms = pipe.run(req)
        except ValueError as e:           # plan refused the request
            print("tinywan: %s" % e, file=sys.stderr)
            return 2
        for role, item in items.items():
            if item.error is not None:
                print("tinywan: %s: %s" % (role, item.error),
                      file=sys.stderr)
                return 1
        ms["total"] = sum(ms.values())
        runs.append({k: round(v, 3) for k, v in ms.items()})
        path = items["decoder"].output
        with open(path, "rb") as f:
            d = hashlib.sha256(f.read()).hexdigest()
        if digest is not None and d != digest:
            print("tinywan: run %d made different bytes" % (i + 1),
                  file=sys.stderr)
            return 1
        digest = d
        if not a.json:
            print("run %d: encoder %.1f ms, transformer %.1f ms, decoder "
                  "%.1f ms, total %.1f ms" % (i + 1, ms["encoder"],
                                               ms["transformer"],
                                               ms["decoder"], ms["total"]))
    wall = (time.perf_counter() - t0) * 1e3
    if a.json:
        print(json.dumps({
            "request": a.request, "prompt": a.prompt, "frames": a.frames,
            "height": a.height, "width": a.width, "steps": a.steps,
            "seed": a.seed, "weights": a.weights,
            "init_ms": {k: round(v, 3) for k, v in pipe.init_ms.items()},
            "runs": runs,
            "min_ms": {k: min(r[k] for r in runs) for k in runs[0]},
            "output": os.path.abspath(path),
            "bytes": os.path.getsize(path), "sha256": digest,
            "wall_ms": round(wall, 3)}, indent=None))
    else:
        print("stage start-up: " + ", ".join(
            "%s %.1f ms" % kv for kv in pipe.init_ms.items()))
        print("output: %s (%d bytes, sha256 %s)"
              % (os.path.abspath(path), os.path.getsize(path), digest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
