"""Selections that blend in: a hard selection is grown and feathered outward, the way painters expect.

A hard selection pasted back as is shows its outline: the edit's colour and texture stop at a straight
line. In-editor generators (krita-ai-diffusion among them) grow the selection and feather its border, so
the edit fades into the picture over a band *outside* what the artist selected. Here:

- edit_mask: the mask the whole edit uses. A hard selection (kept and edited pixels, at most an antialiased
  outline of grey between them) becomes the selection, still fully edited, plus a transition band outside
  it where the mask falls smoothly from full to zero. The band's width scales with the selection's size
  (TRANSITION_FRACTION of the geometric mean of its bounding box's sides at the paper's t0 0.5) and with t0
  (a stronger edit differs more from the picture and needs a longer fade), within MIN/MAX_TRANSITION px.
  The sampler gets this soft mask, so the transition is re-generated step by step towards the kept picture
  (docs/design.md §4 "Masks"), and the composite blends by it. Pixels beyond the band come back byte for
  byte: "outside" now means outside the grown selection, which EditResult.mask holds and the server returns.
- blend: along the grown outline, the low-frequency colour of the edit's outer band is pulled towards the
  kept pixels just outside it, where the input itself is continuous there.

Soft (feathered, painted) masks are the artist's own blend and are left as they are. The context the model
sees around the selection comes from imaging.working_region (the bounding box plus a quarter of its size
per side).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

FEATHER_FRACTION = 0.04  # blend's colour-match band: this fraction of the selection's shorter side...
MIN_BAND, MAX_BAND = 2, 32  # ...within these bounds, in pixels
CONTINUITY_TOLERANCE = 24.0  # RGB distance (0-255) of input colours across the outline still "continuous"
#: The transition outside a hard selection at t0 0.5: this fraction of the selection's size (the geometric
#: mean of its bounding box's sides), proportional to t0, within these bounds in pixels (benchmarks/seam.py).
TRANSITION_FRACTION = 0.10
MIN_TRANSITION, MAX_TRANSITION = 4, 96
#: Grey pixels up to this many per outline pixel still make a hard selection (an antialiased edge).
ANTIALIAS_WIDTH = 2.0


def is_hard_edged(mask: np.ndarray) -> bool:
    """Kept and edited pixels with at most an antialiased outline of grey between them: a plain selection
    (rectangle, ellipse, lasso), not a feathered or painted blend."""
    if mask.min() != 0 or mask.max() != 255:
        return False
    grey = int(np.count_nonzero((mask > 0) & (mask < 255)))
    if grey == 0:
        return True
    sel = mask >= 128
    outline = int(np.count_nonzero(sel & ~ndimage.binary_erosion(sel, border_value=1)))
    return grey <= ANTIALIAS_WIDTH * max(outline, 1)


def transition_width(sel: np.ndarray, t0: float) -> int:
    """Pixels over which a hard selection's edit fades out beyond its outline (see module doc)."""
    ys, xs = np.nonzero(sel)
    size = float(np.sqrt((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)))
    width = TRANSITION_FRACTION * size * float(t0) / 0.5
    return int(np.clip(round(width), MIN_TRANSITION, MAX_TRANSITION))


def edit_mask(mask: np.ndarray, t0: float) -> np.ndarray:
    """The mask the edit runs with: a hard selection grown by a smooth transition band (uint8, 255 = edit);
    any other mask (soft, empty, everything) unchanged. Zero exactly beyond the band."""
    if not is_hard_edged(mask):
        return mask
    sel = mask >= 128
    width = transition_width(sel, t0)
    box = _box(sel, width + 1, mask.shape)
    beyond = ndimage.distance_transform_edt(~sel[box])  # 0 inside, distance to the selection outside
    x = np.clip(1.0 - beyond / (width + 1), 0.0, 1.0)
    ramp = np.rint(255.0 * x * x * (3.0 - 2.0 * x)).astype(np.uint8)  # smoothstep: no kink at either end
    grown = mask.copy()
    grown[box] = np.maximum(mask[box], ramp)
    return grown


def band_width(mask: np.ndarray) -> int:
    ys, xs = np.nonzero(mask)
    short = min(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    return int(np.clip(round(FEATHER_FRACTION * short), MIN_BAND, MAX_BAND))


def is_hard_selection(mask: np.ndarray) -> bool:
    """A mask with kept and edited pixels and nothing between (a plain selection, not a painted blend)."""
    return bool(mask.min() == 0 and mask.max() == 255 and np.all((mask == 0) | (mask == 255)))


def blend(original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edited colours matched at the outline, feathered mask) for imaging.composite; unchanged otherwise.

    original: uint8 (H, W, 3) input; edited: float (H, W, 3) 0..255 full canvas; mask: uint8 (H, W).
    The feathered mask is 0 exactly where `mask` is 0, so kept pixels stay byte-identical.
    """
    if not is_hard_selection(mask):
        return edited, mask
    band = band_width(mask)
    box = _box(mask > 0, 4 * band + 1, mask.shape)
    sel = mask[box] > 0
    inside = ndimage.distance_transform_edt(sel)  # distance to the nearest kept pixel (1 on the outline)
    outside = ndimage.distance_transform_edt(~sel)
    out = edited.copy()
    out[box] = _match_colour(original[box].astype(np.float32), edited[box], sel, inside, outside, band)
    feathered = mask.copy()
    ramp = np.clip(inside / (band + 1), 0.0, 1.0)
    feathered[box] = np.where(sel, np.maximum(1, np.rint(255 * ramp)), 0).astype(np.uint8)
    return out, feathered


def _box(sel: np.ndarray, grow: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    ys, xs = np.nonzero(sel)
    return (slice(max(0, ys.min() - grow), min(shape[0], ys.max() + 1 + grow)),
            slice(max(0, xs.min() - grow), min(shape[1], xs.max() + 1 + grow)))


def _local_mean(img: np.ndarray, where: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-weighted mean of img over the pixels `where` (normalised convolution) and its weight."""
    weight = ndimage.gaussian_filter(where.astype(np.float32), sigma, mode="nearest")
    total = ndimage.gaussian_filter(img * where[..., None], (sigma, sigma, 0), mode="nearest")
    return total / np.maximum(weight, 1e-6)[..., None], weight


def _match_colour(original: np.ndarray, edited: np.ndarray, sel: np.ndarray, inside: np.ndarray,
                  outside: np.ndarray, band: int) -> np.ndarray:
    """Shift the edit's low frequencies near the outline towards the kept surroundings (see module doc)."""
    ring_out = (~sel) & (outside <= band)
    ring_in = sel & (inside <= band)
    if not ring_out.any() or not ring_in.any():
        return edited
    sigma = 2.0 * band
    kept_mean, w_out = _local_mean(original, ring_out, sigma)
    edit_mean, w_in = _local_mean(edited, ring_in, sigma)
    input_mean, _ = _local_mean(original, ring_in, sigma)
    continuous = np.exp(-(np.linalg.norm(input_mean - kept_mean, axis=-1) / CONTINUITY_TOLERANCE) ** 2)
    reach = (w_out > 1e-3) & (w_in > 1e-3)
    fade = np.where(sel & reach, np.exp(-(inside - 1) / (2.0 * band)), 0.0) * continuous
    return edited + (kept_mean - edit_mean) * fade[..., None]
