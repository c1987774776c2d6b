"""Realism vs faithfulness of SDEdit with a model, as in the paper's Fig. 3 (and Table 2's measures).

For t0 in {0.2, ..., 0.8}: edit N stroke guides (made from held-out real images of the training domain the
paper's way: median filter + a small k-means palette, see sdedit.synth.strokes) and measure
  - faithfulness: per-image RMS difference between result and guide on the 0-255 scale
    (sqrt of the mean over pixels and channels of the squared difference), averaged over images;
  - realism: KID between the results and M other held-out real images, on fixed weight-free multi-scale
    texture features (sdedit.synth.metrics; no Inception weights are available offline), standardised
    once with the real images and the guides together so every row shares one kernel scale.
Lower is better for both. The paper's shape: as t0 grows KID falls and L2 rises.

    python benchmarks/quality.py                      # 50 guides, 256x256, embedded default model
    python benchmarks/quality.py --quick              # 6 guides, 64x64, 3 t0 values (smoke run)
    python benchmarks/quality.py --model PATH --size 128 --out docs/model_card
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sdedit.engine import edit
from sdedit.models import load_model
from sdedit.synth.scenes import HELD_OUT_SEED_BASE
from sdedit.synth.metrics import RealismKID, faithfulness_l2
from sdedit.synth.scenes import render_scene
from sdedit.synth.strokes import stroke_painting

T0S = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def held_out(n: int, offset: int, size: int) -> np.ndarray:
    """Held-out 'real' scenes (seeds never used in training), rendered at 256 and resized to `size`."""
    ims = []
    for s in range(n):
        im = render_scene(HELD_OUT_SEED_BASE + offset + s, 256)
        if size != 256:
            im = np.asarray(Image.fromarray(im).resize((size, size), Image.LANCZOS))
        ims.append(im)
    return np.stack(ims)


def plot(rows: list[dict], path: Path, guide_kid: float) -> None:
    """Two-axis line plot (KID falls, L2 rises with t0), drawn with Pillow."""
    W, H, L, R, T, B = 640, 400, 70, 70, 40, 50
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    t0s = [r["t0"] for r in rows]
    kids = [r["kid"] for r in rows] + [guide_kid]
    kids_half = [r["kid_half"] for r in rows if "kid_half" in r]
    l2s = [r["l2"] for r in rows]
    kmax = max(kids + kids_half) * 1.1 or 1.0
    lmax = max(l2s) * 1.1 or 1.0

    def px(t0: float) -> float:
        return L + (t0 - 0.15) / 0.7 * (W - L - R)

    def py(v: float, vmax: float) -> float:
        return H - B - v / vmax * (H - T - B)

    d.rectangle([L, T, W - R, H - B], outline="black")
    for t0 in t0s:
        d.line([px(t0), H - B, px(t0), H - B + 5], fill="black")
        d.text((px(t0) - 8, H - B + 8), f"{t0:.1f}", fill="black")
    for k in range(5):
        v = kmax * k / 4
        d.text((5, py(v, kmax) - 5), f"{v:.3g}", fill=(200, 40, 40))
        v = lmax * k / 4
        d.text((W - R + 6, py(v, lmax) - 5), f"{v:.0f}", fill=(40, 40, 200))
    d.line([L, py(guide_kid, kmax), W - R, py(guide_kid, kmax)], fill=(240, 170, 170))
    d.text((L + 4, py(guide_kid, kmax) - 12), "KID of the stroke guides themselves", fill=(200, 120, 120))
    series = [(kids[:-1], kmax, (200, 40, 40)), (l2s, lmax, (40, 40, 200))]
    if len(kids_half) == len(rows):
        series.append((kids_half, kmax, (40, 150, 40)))
        d.text((L, 24), "green: KID at half scale (same left axis)", fill=(40, 150, 40))
    for vals, vmax, col in series:
        pts = [(px(t), py(v, vmax)) for t, v in zip(t0s, vals)]
        d.line(pts, fill=col, width=2)
        for x, y in pts:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=col)
    d.text((L, 10), "SDEdit on stroke guides: realism (KID, red, left) vs faithfulness (L2 0-255, blue, right)",
           fill="black")
    d.text((W // 2 - 10, H - 20), "t0", fill="black")
    img.save(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model id or folder (default: the embedded default)")
    ap.add_argument("--guides", type=int, default=50)
    ap.add_argument("--real", type=int, default=100, help="held-out real images for KID")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    ap.add_argument("--sde", default="vp", choices=["vp", "ve", "ode", "ddim"])
    ap.add_argument("--t0", type=float, nargs="*", default=list(T0S))
    ap.add_argument("--out", type=Path, default=None, help="folder for quality.png / quality.json")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 when something else runs)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 6 guides, 64x64, t0 0.3/0.5/0.7")
    a = ap.parse_args(argv)
    if a.quick:
        a.guides, a.real, a.size, a.t0 = 6, 12, 64, [0.3, 0.5, 0.7]
    if a.guides < 2 or a.real < 2:
        ap.error("--guides and --real must be at least 2 (KID needs pairs)")

    import torch
    torch.set_num_threads(a.threads)
    model = load_model(a.model, device="cpu")
    t = time.time()
    sources = held_out(a.guides, 0, a.size)
    guides = np.stack([stroke_painting(im, seed=i) for i, im in enumerate(sources)])
    real = held_out(a.real, 100_000, a.size)
    sub = min(50, a.guides, a.real)
    realism = RealismKID(real, guides, subset_size=sub)  # one fixed feature scaling for the whole table
    # the same measure on 2x downscaled images (less sensitive to pixel-scale sharpness and noise)
    realism_half = RealismKID(real, guides, half=True, subset_size=sub)
    kid_guides, kid_sources = realism(guides)[0], realism(sources)[0]
    kidh_guides, kidh_sources = realism_half(guides)[0], realism_half(sources)[0]
    print(f"{a.guides} guides, {a.real} real images at {a.size}x{a.size} ({time.time() - t:.0f}s to prepare); "
          f"KID guides {kid_guides:.4f}, KID of the guides' source images {kid_sources:.4f}; at half scale "
          f"{kidh_guides:.4f} and {kidh_sources:.4f}", flush=True)
    rows = []
    print(f"{'t0':>4} {'L2 (0-255)':>11} {'KID':>9} {'KID std':>8} {'KID half':>9} {'std':>7} {'s/edit':>7}",
          flush=True)
    for t0 in a.t0:
        t = time.time()
        res = []
        for i, g in enumerate(guides):
            out = edit(model, Image.fromarray(g), t0=t0, sde=a.sde, steps=a.steps, seed=1000 + i)
            res.append(np.asarray(out.images[0].convert("RGB")))
        res = np.stack(res)
        l2 = float(faithfulness_l2(res, guides).mean())
        per = (time.time() - t) / len(guides)
        (k, ks), (kh, khs) = realism(res), realism_half(res)
        rows.append({"t0": t0, "l2": l2, "kid": k, "kid_std": ks, "kid_half": kh, "kid_half_std": khs,
                     "s_per_edit": per})
        print(f"{t0:4.1f} {l2:11.1f} {k:9.4f} {ks:8.4f} {kh:9.4f} {khs:7.4f} {per:7.2f}", flush=True)
        if a.out:
            a.out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.concatenate(list(res[:6]), 1)).save(a.out / f"quality_samples_t{int(t0 * 10)}.png")
    kids = [r["kid"] for r in rows]
    l2s = [r["l2"] for r in rows]
    falls = all(x >= y for x, y in zip(kids, kids[1:]))
    rises = all(x <= y for x, y in zip(l2s, l2s[1:]))
    kh = [r["kid_half"] for r in rows]
    falls_h = all(x >= y for x, y in zip(kh, kh[1:]))
    print(f"KID falls monotonically with t0: {falls} (at half scale: {falls_h}); L2 rises monotonically with t0: "
          f"{rises}")
    # "realistic and faithful": KID within 2x of its best value, and the lowest L2 among those t0
    kbest = min(kids)
    ok = [r for r in rows if r["kid"] <= 2 * kbest + 1e-4]
    sweet = min(ok, key=lambda r: r["l2"])
    print(f"realistic-and-faithful point: t0 = {sweet['t0']} (KID {sweet['kid']:.4f} within 2x of the best "
          f"{kbest:.4f}, with the lowest L2 {sweet['l2']:.1f} among those)")
    if a.out:
        plot(rows, a.out / "quality.png", kid_guides)
        summary = {"rows": rows, "guides": a.guides, "real": a.real, "size": a.size, "sde": a.sde,
                   "steps": a.steps, "kid_guides": kid_guides, "kid_sources": kid_sources,
                   "kid_half_guides": kidh_guides, "kid_half_sources": kidh_sources, "kid_half_falls": falls_h,
                   "kid_falls": falls, "l2_rises": rises, "sweet_t0": sweet["t0"]}
        (a.out / "quality.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {a.out / 'quality.png'} and {a.out / 'quality.json'}")


if __name__ == "__main__":
    sys.exit(main())
