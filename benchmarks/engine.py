"""Seconds per edit and engine overhead over the bare network calls, for one model on this machine.

    .venv/bin/python benchmarks/engine.py [--model ID_OR_PATH] [--sizes 256 512] [--t0 0.5] [--repeats 2]
                                          [--out results.json]

overhead = edit seconds / (network calls x seconds of one bare call at the same working size); 1.0 means the
engine (noise, masks, resizing, compositing, PNG-free) costs nothing beyond the network itself.
"""
from __future__ import annotations

import statistics

import numpy as np
from PIL import Image

import bench
from sdedit.engine import edit


def sketch(size: int) -> Image.Image:
    """A stroke guide: sky, mountain, lake, grass in flat colours."""
    arr = np.zeros((size, size, 3), np.uint8)
    arr[: size // 2] = (120, 170, 235)
    ys = np.arange(size)[:, None]
    xs = np.arange(size)[None, :]
    ridge = size * 0.35 + size * 0.1 * np.sin(xs / size * 6.0)
    arr[(ys > ridge) & (ys < size * 0.6)] = (90, 95, 110)
    arr[int(size * 0.6): int(size * 0.8)] = (50, 100, 170)
    arr[int(size * 0.8):] = (70, 130, 50)
    return Image.fromarray(arr)


def main() -> None:
    ap = bench.parser(__doc__, out=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--t0", type=float, default=0.5)
    ap.add_argument("--sde", default="vp")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    model = bench.load(a)
    rows = []
    for size in a.sizes:
        img = sketch(size)
        edit(model, img, t0=a.t0, sde=a.sde, steps=2, seed=0)  # warm-up
        runs = [edit(model, img, t0=a.t0, sde=a.sde, seed=k) for k in range(a.repeats)]
        seconds = statistics.median(r.seconds for r in runs)
        res = runs[0]
        one = bench.call_seconds(model, res.working_size, max(3, a.repeats))
        rows.append({"size": f"{size}x{size}", "sde": a.sde, "t0": a.t0, "steps": res.steps,
                     "calls": res.evaluations, "edit s": seconds, "1 call s": one,
                     "overhead": seconds / (res.evaluations * one)})
    bench.write_results(rows, a.out, about=bench.machine(model),
                        formats={"t0": ".2f", "edit s": ".2f", "1 call s": ".3f", "overhead": ".3f"})


if __name__ == "__main__":
    main()
