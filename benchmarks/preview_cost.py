"""What live previews cost an edit: edit seconds with and without them, and the time spent making them.

    .venv/bin/python benchmarks/preview_cost.py [--images examples/lake.png examples/valley_512.png]
                                                 [--repeats 3] [--threads 2] [--sde vp]

Runs the README example's edit (embedded model, t0 0.5, the model's default steps) alternately without
previews, with the server's previews (about ten per job, each also encoded as the PNG the endpoint serves, as if a client fetched every
one) and with a preview after every step. "engine s" is the time measured inside the engine's preview work
(x̂₀, crop, shrink), "png s" the PNG encoding (done on the request's thread in the server), "share" both over
the edit's time: on a busy machine a steadier measure than the ratio of two medians.
"""
from __future__ import annotations

import argparse
import importlib
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdedit.engine import edit
from sdedit.models import load_model

ROOT = Path(__file__).resolve().parent.parent
edit_module = importlib.import_module("sdedit.engine.edit")  # the module (the package exports the function)


class TimedPreviews:
    """Counts and times the engine's preview work (preview_image) plus the PNG encoding the server does."""

    def __init__(self) -> None:
        self.seconds = 0.0  # engine side: x̂₀, crop, shrink (on the worker thread)
        self.png_seconds = 0.0  # server side: the PNG the endpoint serves (on a request thread)
        self.count = 0
        self._inner = edit_module.preview_image
        edit_module.preview_image = self._timed

    def _timed(self, *args, **kwargs):
        started = time.perf_counter()
        out = self._inner(*args, **kwargs)
        self.seconds += time.perf_counter() - started
        return out

    def callback(self, rgb: np.ndarray) -> None:
        started = time.perf_counter()
        from sdedit.api.preview import preview_png
        from sdedit.api.jobs import Job
        from sdedit.api.preview import store_preview

        job = Job(id="bench", params=None, describe={})
        store_preview(job, rgb)
        preview_png(job)
        self.png_seconds += time.perf_counter() - started
        self.count += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", nargs="+", default=[str(ROOT / "examples" / "lake.png"),
                                                    str(ROOT / "examples" / "valley_512.png")])
    ap.add_argument("--model", default=None)
    ap.add_argument("--sde", default="vp")
    ap.add_argument("--t0", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    model = load_model(a.model, "auto")
    print(f"model {model.id} on {model.device} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}); median of {a.repeats} runs, alternated")
    print(f"{'image':>16} {'steps':>5} {'mode':>12} {'previews':>8} {'edit s':>7} {'ratio':>6} {'engine s':>8} "
          f"{'png s':>6} {'share':>6}")
    for path in a.images:
        image = Image.open(path)
        image.load()
        edit(model, image, t0=a.t0, sde=a.sde, steps=2, seed=0)  # warm-up
        modes = {"none": None, "server (~10)": None, "every step": 1}
        seconds = {mode: [] for mode in modes}
        spent = {mode: [] for mode in modes}
        pngs = {mode: [] for mode in modes}
        counts = {}
        for repeat in range(a.repeats):
            for mode, every in modes.items():
                timer = TimedPreviews() if mode != "none" else None
                try:
                    result = edit(model, image, t0=a.t0, sde=a.sde, seed=repeat,
                                  preview=timer.callback if timer else None, preview_every=every)
                finally:
                    if timer:
                        edit_module.preview_image = timer._inner
                seconds[mode].append(result.seconds)
                spent[mode].append(timer.seconds if timer else 0.0)
                pngs[mode].append(timer.png_seconds if timer else 0.0)
                counts[mode] = timer.count if timer else 0
                steps = result.steps
        base = statistics.median(seconds["none"])
        for mode in modes:
            med = statistics.median(seconds[mode])
            engine, png = statistics.median(spent[mode]), statistics.median(pngs[mode])
            print(f"{Path(path).name + ' ' + '%dx%d' % image.size:>16} {steps:>5} {mode:>12} {counts[mode]:>8} "
                  f"{med:>7.2f} {med / base:>6.3f} {engine:>8.3f} {png:>6.3f} {100 * (engine + png) / med:>5.1f}%")


if __name__ == "__main__":
    main()
