"""Measures of benchmarks/canvas.py: layout/colour faithfulness at any size, detail, and the seam of a selection.

- blur-RMSE: RMS difference (0-255) between result and guide, both Gaussian-blurred with a radius of
  longer side / 32 (so it compares layout and colour at a scale that does not depend on the canvas size);
- detail: standard deviation of luminance minus its 2-px Gaussian blur (a flat or blurry result has none);
- streak ratio: of that same high-pass luminance, mean |d/dx|^2 over mean |d/dy|^2. Vertical streaks ("dripping
  paint") put their energy into horizontal differences (> 1); isotropic texture is near 1, and landscapes,
  mostly horizontal structure (horizons, strata, ripples), are near 1 or below;
- seam score: how much the result jumps across a selection's outline more than the guide does there.
- line step: how much a straight line shows: per side of a rectangle, the colour difference between the band
  just inside and just outside, averaged along the whole side first (texture averages out, a patch's
  colour or haze offset does not), minus the same for a reference picture; mean over the sides.
  Along the outline, for each boundary pixel, the colour step between the mean of a thin band just inside and
  just outside (colour term), and the difference of mean gradient magnitude between those bands (texture
  term, "hazier inside"); each minus the guide's own value at the same place (a stroke edge that crosses the
  outline is allowed to be there), clipped at 0, averaged. 0-255 units; lower = less visible seam.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    sig = (sigma, sigma, 0) if img.ndim == 3 else sigma
    return ndimage.gaussian_filter(img.astype(np.float32), sig, mode="nearest")


def blur_rmse(result: np.ndarray, guide: np.ndarray) -> float:
    """RMS of (blur(result) - blur(guide)) on the 0-255 scale, blur radius = longer side / 32."""
    sigma = max(result.shape[:2]) / 32
    return float(np.sqrt(np.mean((_blur(result, sigma) - _blur(guide, sigma)) ** 2)))


def detail(result: np.ndarray) -> float:
    """Standard deviation of luminance minus its 2-px Gaussian blur (0-255)."""
    lum = result.astype(np.float32) @ LUMA
    return float(np.std(lum - _blur(lum, 2.0)))


def streak_ratio(result: np.ndarray) -> float:
    """Horizontal over vertical gradient energy of the 2-px high-pass luminance (> 1: vertical streaks)."""
    lum = result.astype(np.float32) @ LUMA if result.ndim == 3 else result.astype(np.float32)
    high = lum - _blur(lum, 2.0)
    gx = np.mean(np.diff(high, axis=1) ** 2)
    gy = np.mean(np.diff(high, axis=0) ** 2)
    return float(gx / max(gy, 1e-12))


def _grad(img: np.ndarray) -> np.ndarray:
    lum = img.astype(np.float32) @ LUMA
    return np.hypot(ndimage.sobel(lum, 0, mode="nearest"), ndimage.sobel(lum, 1, mode="nearest")) / 8.0


def seam_parts(img: np.ndarray, box: tuple[int, int, int, int], band: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Per outline pixel of the rectangle box=(x0, y0, x1, y1): colour step and gradient-energy step between
    the `band` px just inside and just outside (only sides that have an outside in the picture)."""
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    col = _blur(img, 1.0)
    grad = _grad(img)
    colour, texture = [], []

    def add(inside: slice, outside: slice, axis: int, rows: slice) -> None:
        # axis 1: vertical outline (bands are column ranges); axis 0: horizontal outline (row ranges)
        if axis == 1:
            ci, co = col[rows, inside].mean(1), col[rows, outside].mean(1)
            gi, go = grad[rows, inside].mean(1), grad[rows, outside].mean(1)
        else:
            ci, co = col[inside, rows].mean(0), col[outside, rows].mean(0)
            gi, go = grad[inside, rows].mean(0), grad[outside, rows].mean(0)
        colour.append(np.linalg.norm(ci - co, axis=-1))
        texture.append(np.abs(gi - go))

    ys, xs = slice(y0, y1), slice(x0, x1)
    if x0 - band >= 0:
        add(slice(x0, x0 + band), slice(x0 - band, x0), 1, ys)
    if x1 + band <= w:
        add(slice(x1 - band, x1), slice(x1, x1 + band), 1, ys)
    if y0 - band >= 0:
        add(slice(y0, y0 + band), slice(y0 - band, y0), 0, xs)
    if y1 + band <= h:
        add(slice(y1 - band, y1), slice(y1, y1 + band), 0, xs)
    return np.concatenate(colour), np.concatenate(texture)


def seam_score(result: np.ndarray, guide: np.ndarray, box: tuple[int, int, int, int], band: int = 4) -> float:
    """Mean excess (over the guide's) colour step plus gradient-energy step across the box's outline."""
    rc, rt = seam_parts(result, box, band)
    gc, gt = seam_parts(guide, box, band)
    return float(np.mean(np.maximum(rc - gc, 0.0)) + np.mean(np.maximum(rt - gt, 0.0)))


def line_step(result: np.ndarray, reference: np.ndarray, box: tuple[int, int, int, int], band: int = 4) -> float:
    """Mean over the box's sides of |side-averaged (inside band - outside band) colour of result minus that of
    reference| (RGB distance, 0-255): a straight edge the reference does not have (see module doc)."""

    def steps(img: np.ndarray) -> list[np.ndarray]:
        x0, y0, x1, y1 = box
        h, w = img.shape[:2]
        f = img.astype(np.float32)
        out = []
        if x0 - band >= 0:
            out.append(f[y0:y1, x0:x0 + band].mean((0, 1)) - f[y0:y1, x0 - band:x0].mean((0, 1)))
        if x1 + band <= w:
            out.append(f[y0:y1, x1 - band:x1].mean((0, 1)) - f[y0:y1, x1:x1 + band].mean((0, 1)))
        if y0 - band >= 0:
            out.append(f[y0:y0 + band, x0:x1].mean((0, 1)) - f[y0 - band:y0, x0:x1].mean((0, 1)))
        if y1 + band <= h:
            out.append(f[y1 - band:y1, x0:x1].mean((0, 1)) - f[y1:y1 + band, x0:x1].mean((0, 1)))
        return out

    return float(np.mean([np.linalg.norm(a - b) for a, b in zip(steps(result), steps(reference))]))


def region_colour(result: np.ndarray, guide: np.ndarray, labels: np.ndarray, min_share: float = 0.01) -> tuple[float, float]:
    """Does each stroke region keep its colour? (area-weighted mean, worst) over the regions covering at least
    `min_share` of the picture of |mean colour of the result there - mean colour of the guide there| (RGB
    distance, 0-255). Each region is shrunk by 1 % of the longer side first, so the smeared stroke edges do
    not count; labels: (H, W) ints, one per flat stroke colour."""
    erode = max(1, int(round(max(labels.shape) / 100)))
    dists, areas = [], []
    for value in np.unique(labels):
        inside = ndimage.binary_erosion(labels == value, iterations=erode)
        if inside.sum() < min_share * labels.size:
            continue
        mean_r = result[inside].astype(np.float32).mean(0)
        mean_g = guide[inside].astype(np.float32).mean(0)
        dists.append(float(np.linalg.norm(mean_r - mean_g)))
        areas.append(int(inside.sum()))
    if not dists:
        return 0.0, 0.0
    return float(np.average(dists, weights=areas)), float(max(dists))
