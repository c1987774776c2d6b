"""Stroke-painting simulation as in the SDEdit paper: median filter, then a small colour palette.

The paper makes stroke guides from real images by median-filtering them and reducing them to a few
colours; that is what a person's flat-colour blocking-in looks like. Here: median filter at a quarter of
the resolution (kernel ~ 1/10 of the side, i.e. about 23-28 px at 256), k-means to `colors` colours,
back to full size with nearest-neighbour and one small median pass to round the blocky edges.
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage


def kmeans_palette(pixels: np.ndarray, k: int, rng: np.random.Generator, iters: int = 12) -> np.ndarray:
    """k colours (k, 3) float that summarise `pixels` (N, 3) float; plain Lloyd's k-means, k-means++ start."""
    n = len(pixels)
    centres = [pixels[rng.integers(n)]]
    for _ in range(1, k):
        d = np.min(((pixels[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        p = d / d.sum() if d.sum() > 0 else None
        centres.append(pixels[rng.choice(n, p=p)])
    c = np.array(centres, np.float32)
    for _ in range(iters):
        lab = np.argmin(((pixels[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        for j in range(k):
            sel = pixels[lab == j]
            if len(sel):
                c[j] = sel.mean(0)
    return c


def stroke_painting(image: np.ndarray | Image.Image, colors: int = 6, seed: int = 0,
                    kernel_frac: float = 0.1) -> np.ndarray:
    """A flat-colour 'stroke painting' (uint8 HxWx3) of a real image (uint8 HxWx3 or PIL)."""
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
    h, w, _ = arr.shape
    small = np.asarray(Image.fromarray(arr).resize((max(w // 4, 8), max(h // 4, 8)), Image.BOX), np.float32)
    k = max(3, int(round(kernel_frac * min(small.shape[:2]))) | 1)
    med = np.stack([ndimage.median_filter(small[..., c], size=k, mode="nearest") for c in range(3)], -1)
    rng = np.random.default_rng(seed)
    flat = med.reshape(-1, 3)
    pal = kmeans_palette(flat[rng.permutation(len(flat))[:4096]], colors, rng)
    lab = np.argmin(((flat[:, None, :] - pal[None]) ** 2).sum(-1), axis=1).reshape(med.shape[:2])
    lab = ndimage.median_filter(lab, size=3, mode="nearest")
    big = np.asarray(Image.fromarray(lab.astype(np.uint8)).resize((w, h), Image.NEAREST))
    big = ndimage.median_filter(big, size=5, mode="nearest")
    return np.clip(pal[big] + 0.5, 0, 255).astype(np.uint8)
