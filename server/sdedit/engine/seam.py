"""Selections that blend in: a feathered band and a colour match just inside a hard selection's edge.

A hard selection pasted back as is shows its outline: the edit's colour drifts a little from the kept
surroundings and its texture stops at a straight line. Two fixes, both *inside* the selection (docs/design.md §3:
pixels outside the mask come back unchanged, byte for byte):

- feather: the mask falls from full to zero over a band of pixels just inside the outline, so the edit
  fades into the input there instead of stopping at a step;
- colour match: along the outline, the low-frequency colour of the edit's inner band is pulled towards the
  kept pixels just outside, fading with the distance from the outline, but only where the input itself is
  continuous across the outline (where the artist painted a different colour up to the edge, that edge is
  meant to be there and is kept).

Soft (grey) masks are the artist's own blend and are left as they are. The context the model sees around
the selection comes from imaging.working_region (the bounding box plus a quarter of its size per side).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

FEATHER_FRACTION = 0.04  # band width: this fraction of the selection's shorter side...
MIN_BAND, MAX_BAND = 2, 32  # ...within these bounds, in pixels
CONTINUITY_TOLERANCE = 24.0  # RGB distance (0-255) of input colours across the outline still "continuous"


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
