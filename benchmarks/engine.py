"""Seconds per edit and engine overhead over the bare network calls, for one model on this machine.

    .venv/bin/python benchmarks/engine.py [--model ID_OR_PATH] [--sizes 256 512] [--t0 0.5] [--repeats 2]

overhead = edit seconds / (network calls x seconds of one bare call at the same working size); 1.0 means the
engine (noise, masks, resizing, compositing, PNG-free) costs nothing beyond the network itself.
"""
from __future__ import annotations

import argparse
import platform
import statistics

import numpy as np
import torch
from PIL import Image

from sdedit.engine import edit
from timing import bare_call_seconds
from sdedit.models import load_model


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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--t0", type=float, default=0.5)
    ap.add_argument("--sde", default="vp")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    model = load_model(a.model, a.device)
    print(f"model {model.id} on {model.device} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__})")
    print(f"{'size':>9} {'sde':>4} {'t0':>5} {'steps':>6} {'calls':>6} {'edit s':>8} {'1 call s':>9} {'overhead':>9}")
    for size in a.sizes:
        img = sketch(size)
        edit(model, img, t0=a.t0, sde=a.sde, steps=2, seed=0)  # warm-up
        runs = [edit(model, img, t0=a.t0, sde=a.sde, seed=k) for k in range(a.repeats)]
        seconds = statistics.median(r.seconds for r in runs)
        res = runs[0]
        one = bare_call_seconds(model, res.working_size, max(3, a.repeats))
        print(f"{size:>4}x{size:<4} {a.sde:>4} {a.t0:>5.2f} {res.steps:>6} {res.evaluations:>6} {seconds:>8.2f} "
              f"{one:>9.3f} {seconds / (res.evaluations * one):>9.3f}")


if __name__ == "__main__":
    main()
