"""Any canvas size: layout, colour and detail of default edits from 256 px to 2048 px, and selection seams.

Held-out stroke paintings (scenes from sdedit.synth.scenes with seeds never used in training, turned into
flat-colour paintings by sdedit.synth.strokes, cropped to each canvas' aspect and resized to it) are edited
with the model's default sampler at t0 0.3 / 0.5 / 0.7. Per cell (mean over the guides):
  blur-RMSE  result vs guide, both Gaussian-blurred with radius = longer side / 32 (0-255): layout + colour
  detail     std of luminance minus its 2-px Gaussian blur: a flat or blurry result has none
  streak     that high-pass luminance's mean |d/dx|^2 over mean |d/dy|^2: > 1.2 reads as vertical streaks
             ("dripping paint"), isotropic texture is ~1, landscapes' horizontal structure < 1
  region     per stroke region (one flat colour of the painting, shrunk by 1 % of the side), the distance
             between the mean colour of the result and of the guide there (RGB, 0-255), area-weighted mean
             over the regions; worst = the largest over all regions and guides
  seconds    wall time of one edit
With --compare, the same cells edited in one stage at full size (the engine before native-scale editing);
with --compare-detail, without the last full-size detail pass (canvases above the model's max_side).
Masked cases (--masked): a rectangle across the middle of the canvas edited with the rest kept; the seam
score (benchmarks/canvas_metrics.py) of the masked edit, of the same edit without the seam blending, and of
the unmasked edit along the same line.

    python benchmarks/canvas.py --out docs/model_card              # the model card's table and grid
    python benchmarks/canvas.py --sizes 512x384 --t0 0.5 --compare # one row, two-stage vs one stage
    python benchmarks/canvas.py --quick                             # smoke run
    python benchmarks/canvas.py --set composed --guides 4           # drawn block paintings instead
    python benchmarks/canvas.py --sde ode vp --t0 0.5               # the streak column per sampler
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from canvas_metrics import blur_rmse, detail, region_colour, seam_score, streak_ratio  # noqa: E402

from sdedit.engine import edit, native_scale, seam  # noqa: E402
from sdedit.models import load_model  # noqa: E402
from sdedit.synth import guides as composed  # noqa: E402
from sdedit.synth.scenes import HELD_OUT_SEED_BASE  # noqa: E402
from sdedit.synth.scenes import render_scene  # noqa: E402
from sdedit.synth.strokes import stroke_painting  # noqa: E402

SIZES = ((256, 256), (512, 384), (640, 360), (1024, 768), (2048, 1536))
T0S = (0.3, 0.5, 0.7)
SEED_BASE = HELD_OUT_SEED_BASE + 500_000  # apart from quality.py's held-out seeds (1,000,000 + <200,000)
THUMB_H = 120
GRID_LIMIT = 1_000_000


TERRAIN_SEED_BASE = 1_700_000  # held-out terrain renders (training shards stay below 1,000,000; the card's grid 1,600,000)


def _painting(index: int, width: int, height: int, kind: str = "scenes") -> np.ndarray:
    """Held-out scene `index` at 512 px (sdedit.synth.scenes, or the 3-D terrain renderer for kind "terrain"),
    cropped to the canvas' aspect, as a flat-colour stroke painting."""
    if kind == "terrain":
        from sdedit.synth.terrain import render_terrain

        scene = render_terrain(TERRAIN_SEED_BASE + index, 512)
    else:
        scene = render_scene(SEED_BASE + index, 512)
    if width >= height:
        ch = int(round(512 * height / width))
        crop = scene[(512 - ch) // 2:(512 - ch) // 2 + ch]
    else:
        cw = int(round(512 * width / height))
        crop = scene[:, (512 - cw) // 2:(512 - cw) // 2 + cw]
    return stroke_painting(crop, seed=index)


def canvas_guide(index: int, width: int, height: int, kind: str = "scenes") -> np.ndarray:
    """A held-out stroke painting of the canvas' size: scene at 512 px, cropped to the aspect, painted, resized."""
    return np.asarray(Image.fromarray(_painting(index, width, height, kind)).resize((width, height), Image.LANCZOS))


def canvas_regions(index: int, width: int, height: int, kind: str = "scenes") -> np.ndarray:
    """The stroke regions of canvas_guide(index, ...): one label per flat colour of the painting (H, W)."""
    painting = _painting(index, width, height, kind)
    return np.asarray(Image.fromarray(_labels(painting)).resize((width, height), Image.NEAREST))


def _labels(painting: np.ndarray) -> np.ndarray:
    _, labels = np.unique(painting.reshape(-1, 3), axis=0, return_inverse=True)
    return labels.reshape(painting.shape[:2]).astype(np.int32)


COMPOSED = (composed.lake, composed.mountains, composed.sunset_sea, composed.valley)


def composed_guide(index: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Another kind of painting: hand-composed blocks with brushed outlines (sdedit.synth.guides, the demo
    guides' generator: drawn shapes, not quantised scenes), drawn at the canvas' size; (guide, regions)."""
    painting = np.asarray(COMPOSED[index % len(COMPOSED)](width, height).convert("RGB"))
    return painting, _labels(painting)


def guides_for(kind: str, index: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "composed":
        return composed_guide(index, width, height)
    return canvas_guide(index, width, height, kind), canvas_regions(index, width, height, kind)


@contextlib.contextmanager
def one_stage(model):
    """The engine as it was before native-scale editing: the whole region at full size in one stage."""
    saved = model.native_size
    model.native_size = None
    try:
        yield
    finally:
        model.native_size = saved


@contextlib.contextmanager
def no_detail_pass():
    """The engine without the last full-size pass: canvases above max_side are scaled up from it."""
    saved = native_scale.DETAIL_MAX_SIDE
    native_scale.DETAIL_MAX_SIDE = 0
    try:
        yield
    finally:
        native_scale.DETAIL_MAX_SIDE = saved


@contextlib.contextmanager
def no_seam_blend():
    saved = seam.blend
    seam.blend = lambda original, edited, mask: (edited, mask)
    try:
        yield
    finally:
        seam.blend = saved


def run_cell(model, guides: list[np.ndarray], t0: float, seed: int, mask: np.ndarray | None = None,
             regions: list[np.ndarray] | None = None, sde: str | None = None) -> dict:
    outs, secs = [], []
    for i, g in enumerate(guides):
        t = time.perf_counter()
        res = edit(model, Image.fromarray(g), None if mask is None else Image.fromarray(mask), t0=t0, seed=seed + i,
                   sde=sde)
        secs.append(time.perf_counter() - t)
        outs.append(np.asarray(res.images[0].convert("RGB")))
    return {"blur_rmse": float(np.mean([blur_rmse(o, g) for o, g in zip(outs, guides)])),
            "detail": float(np.mean([detail(o) for o in outs])), "seconds": float(np.mean(secs)),
            "streak": float(np.mean([streak_ratio(o) for o in outs])),
            **({} if regions is None else _region_columns(outs, guides, regions)),
            "sde": res.params["sde"], "stages": res.params.get("stages"), "outputs": outs}


def _region_columns(outs: list[np.ndarray], guides: list[np.ndarray], regions: list[np.ndarray]) -> dict:
    scores = [region_colour(o, g, r) for o, g, r in zip(outs, guides, regions)]
    return {"region_colour": float(np.mean([s[0] for s in scores])),
            "region_colour_worst": float(max(s[1] for s in scores))}


def thumb(img: np.ndarray, height: int = THUMB_H) -> Image.Image:
    h, w = img.shape[:2]
    return Image.fromarray(img).resize((max(1, round(w * height / h)), height), Image.LANCZOS)


def save_grid(rows: list[tuple[str, list[np.ndarray]]], t0s: list[float], path: Path) -> None:
    """One row per canvas size: guide, then the edits at each t0 (first guide), scaled to one height."""
    label_w, pad = 112, 4
    widths = [sum(thumb(im).width for im in ims) + pad * len(ims) for _, ims in rows]
    grid = Image.new("RGB", (label_w + max(widths), 18 + len(rows) * (THUMB_H + pad)), "white")
    d = ImageDraw.Draw(grid)
    d.text((label_w, 3), "guide, then t0 " + " / ".join(f"{t:.1f}" for t in t0s) + " (default sampler)", fill="black")
    for r, (label, ims) in enumerate(rows):
        y = 18 + r * (THUMB_H + pad)
        d.text((4, y + THUMB_H // 2 - 6), label, fill="black")
        x = label_w
        for im in ims:
            th = thumb(im)
            grid.paste(th, (x, y))
            x += th.width + pad
    grid.save(path, optimize=True)
    if path.stat().st_size > GRID_LIMIT:
        grid.quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)


def selection(width: int, height: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A hard rectangle across the middle of the canvas (crosses the horizon of most paintings)."""
    box = (width // 4, int(height * 0.3), 3 * width // 4, int(height * 0.75))
    m = np.zeros((height, width), np.uint8)
    m[box[1]:box[3], box[0]:box[2]] = 255
    return m, box


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model id or folder (default: the embedded default)")
    ap.add_argument("--sizes", nargs="*", default=[f"{w}x{h}" for w, h in SIZES])
    ap.add_argument("--t0", type=float, nargs="*", default=list(T0S))
    ap.add_argument("--guides", type=int, default=2, help="paintings per size")
    ap.add_argument("--first-guide", type=int, default=0, help="index of the first painting (another set)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sde", nargs="*", default=[None],
                    help="samplers to run (each a row per cell; default: the model's default sampler)")
    ap.add_argument("--set", choices=["scenes", "composed", "terrain"], default="scenes",
                    help="scenes: quantised held-out scenes; composed: the 4 hand-composed demo paintings; "
                         "terrain: quantised held-out 3-D terrain renders (seeds 1,700,000 + i)")
    ap.add_argument("--compare", action="store_true", help="also edit each cell in one stage at full size")
    ap.add_argument("--compare-detail", action="store_true",
                    help="also edit each cell without the last full-size detail pass (its cost and its effect)")
    ap.add_argument("--masked", nargs="*", default=None, help="sizes for the masked cases (t0 0.5)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="folder for canvas.png / canvas.json")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 guide, 256x256 and 512x384, t0 0.5")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.t0, a.guides, a.masked = ["256x256", "512x384"], [0.5], 1, ["512x384"]
    import torch

    torch.set_num_threads(a.threads)
    model = load_model(a.model, device="cpu")
    print(f"model {model.id}, native size {model.native_size}, default sampler {model.default_sde}; "
          f"{a.guides} guide(s) per size; load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes]
    modes = [("default", contextlib.nullcontext)] + ([("one stage", lambda: one_stage(model))] if a.compare else []) \
        + ([("no detail", no_detail_pass)] if a.compare_detail else [])
    rows, grid_rows = [], []
    print(f"{'size':>10} {'mode':>10} {'sde':>4} {'t0':>4} {'blur-RMSE':>9} {'detail':>7} {'streak':>6} "
          f"{'region':>6} {'worst':>6} {'s/edit':>7}", flush=True)
    for w, h in sizes:
        guides, regions = zip(*(guides_for(a.set, a.first_guide + i, w, h) for i in range(a.guides)))
        for (mode, ctx), sde in ((m, s) for m in modes for s in a.sde):
            pictures = [guides[0]]
            for t0 in a.t0:
                with ctx():
                    cell = run_cell(model, guides, t0, a.seed, regions=regions, sde=sde)
                pictures.append(cell.pop("outputs")[0])
                rows.append({"size": f"{w}x{h}", "mode": mode, "t0": t0, **cell})
                print(f"{w}x{h:<5} {mode:>10} {cell['sde']:>4} {t0:4.1f} {cell['blur_rmse']:9.1f} "
                      f"{cell['detail']:7.2f} {cell['streak']:6.2f} {cell['region_colour']:6.1f} "
                      f"{cell['region_colour_worst']:6.1f} {cell['seconds']:7.1f}", flush=True)
            grid_rows.append((f"{w}x{h}" + ("" if mode == "default" else f"\n{mode}")
                              + ("" if sde is None else f"\n{sde}"), pictures))
    seams = []
    for s in a.masked or []:
        w, h = (int(v) for v in s.split("x"))
        mask, box = selection(w, h)
        for i in range(a.first_guide, a.first_guide + a.guides):
            g = guides_for(a.set, i, w, h)[0]
            full = run_cell(model, [g], 0.5, a.seed + i)["outputs"][0]
            masked = run_cell(model, [g], 0.5, a.seed + i, mask)["outputs"][0]
            with no_seam_blend():
                hard = run_cell(model, [g], 0.5, a.seed + i, mask)["outputs"][0]
            row = {"size": s, "guide": i, "unmasked": seam_score(full, g, box), "masked": seam_score(masked, g, box),
                   "masked_no_blend": seam_score(hard, g, box)}
            row["ratio"] = row["masked"] / max(row["unmasked"], 1e-6)
            seams.append(row)
            print(f"seam {s} guide {i}: unmasked {row['unmasked']:.2f}, masked {row['masked']:.2f} "
                  f"(ratio {row['ratio']:.2f}), masked without blending {row['masked_no_blend']:.2f}", flush=True)
            if i == a.first_guide:
                grid_rows.append((f"{s} selection:\nguide, whole,\nselection,\nno blending", [g, full, masked, hard]))
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        save_grid(grid_rows, a.t0, a.out / "canvas.png")
        (a.out / "canvas.json").write_text(json.dumps({"rows": rows, "seams": seams, "guides": a.guides,
                                                       "model": model.id, "native_size": model.native_size},
                                                      indent=2) + "\n")
        print(f"wrote {a.out / 'canvas.png'} ({(a.out / 'canvas.png').stat().st_size // 1024} KB) and canvas.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
