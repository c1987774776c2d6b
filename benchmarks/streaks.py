"""Where do the vertical streaks come from? The streak ratio (benchmarks/canvas_metrics.py) per stage.

Measured on: the training scenes themselves (sdedit.synth.scenes, held-out seeds) and, with --terrain, the
3-D renderer's (sdedit.synth.terrain); the stroke paintings; single-stage edits at 256²; and, for larger
canvases, every stage of the native-scale pipeline (engine/native_scale.py): stage 1 at ~256², its bicubic
upscale, the refine stage's raw output, the kept result after the split, the detail pass; per sampler.

    python benchmarks/streaks.py                       # the model card's per-stage table
    python benchmarks/streaks.py --model runs/x/ema_latest --sizes 256x256 --sde ode vp
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from canvas import SEED_BASE, guides_for  # noqa: E402  (a sibling: benchmarks/ is on the path)
from canvas_metrics import detail, streak_ratio  # noqa: E402

from sdedit.engine import edit, native_scale  # noqa: E402
from sdedit.models import load_model  # noqa: E402
from sdedit.synth.scenes import render_scene  # noqa: E402


def to_uint8(x) -> np.ndarray:
    """(1,3,H,W) in [-1, 1] -> (H,W,3) uint8."""
    a = ((x[0].detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return a


class StageRecorder:
    """Wraps native_scale.run_two_stage so every stage's input and raw output are kept (first sample)."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []
        self._orig = native_scale.run_two_stage

    def __enter__(self):
        orig = self._orig

        def recording(stage, *args, **kw):
            def wrapped(guide, mask, seeds, t0, steps):
                out = stage(guide, mask, seeds, t0, steps)
                self.calls.append((to_uint8(guide), to_uint8(out)))
                return out
            return orig(wrapped, *args, **kw)

        native_scale.run_two_stage = recording
        return self

    def __exit__(self, *exc) -> None:
        native_scale.run_two_stage = self._orig


def scene_rows(n: int, sizes: tuple[int, ...], terrain: bool) -> list[tuple[str, float, float]]:
    rows = []
    for size in sizes:
        scenes = [render_scene(SEED_BASE + 100 + i, size) for i in range(n)]
        rows.append((f"training scenes (scenes.py) {size}²", np.mean([streak_ratio(s) for s in scenes]),
                     np.mean([detail(s) for s in scenes])))
        if terrain:
            from sdedit.synth.terrain import render_terrain

            ts = [render_terrain(SEED_BASE + 100 + i, size) for i in range(n)]
            rows.append((f"terrain scenes (terrain.py) {size}²", np.mean([streak_ratio(s) for s in ts]),
                         np.mean([detail(s) for s in ts])))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--sizes", nargs="*", default=["256x256", "1024x768", "2048x1536"])
    ap.add_argument("--sde", nargs="*", default=["ode", "vp"])
    ap.add_argument("--t0", type=float, nargs="*", default=[0.5])
    ap.add_argument("--guides", type=int, default=2)
    ap.add_argument("--first-guide", type=int, default=0)
    ap.add_argument("--set", choices=["scenes", "composed"], default="scenes",
                    help="scenes: quantised held-out scenes; composed: the hand-composed demo paintings")
    ap.add_argument("--scenes", type=int, default=12, help="training scenes to measure (0: skip)")
    ap.add_argument("--terrain", action="store_true", help="also the 3-D renderer's scenes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--refine-sde", default="ode",
                    help="engine/native_scale.REFINE_SDE for this run ('same': the request's sampler everywhere)")
    a = ap.parse_args(argv)
    import torch
    from PIL import Image

    torch.set_num_threads(a.threads)
    if hasattr(native_scale, "REFINE_SDE"):
        native_scale.REFINE_SDE = None if a.refine_sde == "same" else a.refine_sde
    print(f"load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    if a.scenes:
        for name, ratio, det in scene_rows(a.scenes, (256, 512), a.terrain):
            print(f"{name:<44} streak {ratio:5.2f}  detail {det:5.2f}", flush=True)
    model = load_model(a.model, device="cpu")
    for s in a.sizes:
        w, h = (int(v) for v in s.split("x"))
        guides = [guides_for(a.set, a.first_guide + i, w, h)[0] for i in range(a.guides)]
        print(f"{s} stroke paintings{'':<24} streak {np.mean([streak_ratio(g) for g in guides]):5.2f}", flush=True)
        for sde in a.sde:
            for t0 in a.t0:
                per_stage: dict[str, list[float]] = {}
                for i, g in enumerate(guides):
                    with StageRecorder() as rec:
                        res = edit(model, Image.fromarray(g), t0=t0, seed=i, sde=sde)
                    out = np.asarray(res.images[0].convert("RGB"))
                    names = []
                    for k, (inp, raw) in enumerate(rec.calls):
                        label = "stage 1 (~256²)" if k == 0 else f"pass {k} at {raw.shape[1]}x{raw.shape[0]}"
                        if k > 0:
                            names.append((f"  {label}: its input (upscaled)", inp))
                        names.append((f"  {label}: raw output", raw))
                    names.append(("  result", out))
                    for name, im in names:
                        per_stage.setdefault(name, []).append(streak_ratio(im))
                for name, vals in per_stage.items():
                    print(f"{s} {sde:>4} t0 {t0:.1f} {name:<44} streak {np.mean(vals):5.2f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
