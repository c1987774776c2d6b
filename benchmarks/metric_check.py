"""What the realism measure rewards: texture-KID of stroke guides and real scenes with pixel noise or blur added.

    python benchmarks/metric_check.py [--size 128] [--guides 50] [--real 100]

Same guides, held-out scenes and feature scaling as benchmarks/quality.py, at full and at half scale. A good
realism measure should score blurred or noisy real scenes near 0 and noisy flat paintings far from 0.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image, ImageFilter

from quality import held_out
from sdedit.synth.metrics import RealismKID
from sdedit.synth.strokes import stroke_painting


def noisy(images: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(images + rng.normal(0, std, images.shape), 0, 255).astype(np.uint8)


def blurred(images: np.ndarray, radius: float) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(radius))) for im in images])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--guides", type=int, default=50)
    ap.add_argument("--real", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sources = held_out(a.guides, 0, a.size)
    guides = np.stack([stroke_painting(im, seed=i) for i, im in enumerate(sources)])
    real = held_out(a.real, 100_000, a.size)
    rng = np.random.default_rng(0)
    sets = [("stroke guides", guides), ("guides + noise std 8", noisy(guides, 8, rng)),
            ("guides + noise std 16", noisy(guides, 16, rng)), ("their real sources", sources),
            ("sources, blur 1 px", blurred(sources, 1)), ("sources, blur 2 px", blurred(sources, 2)),
            ("sources + noise std 8", noisy(sources, 8, rng))]
    sub = min(50, a.guides, a.real)
    cols = []
    for half in (False, True):
        realism = RealismKID(real, guides, half=half, subset_size=sub)
        cols.append([realism(ims) for _, ims in sets])
    print(f"{a.guides} guides / sources, {a.real} other held-out scenes, {a.size}x{a.size}\n")
    print("| images | texture-KID | ± | KID at half scale | ± |\n|---|---|---|---|---|")
    for (name, _), (k, ks), (kh, khs) in zip(sets, *cols):
        print(f"| {name} | {k:.3f} | {ks:.3f} | {kh:.3f} | {khs:.3f} |")


if __name__ == "__main__":
    main()
