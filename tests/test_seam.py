"""A hard selection blends in: feathered and colour-matched inside its edge; kept pixels stay exact."""
from __future__ import annotations

import numpy as np
from PIL import Image

from sdedit.engine import edit, seam


def scene(width: int = 96, height: int = 80) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.zeros((height, width, 3), np.float32)
    img[:] = (90, 140, 70)
    img[: height // 2] = (120, 170, 230)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def rect_mask(width: int = 96, height: int = 80, box=(24, 20, 72, 60)) -> np.ndarray:
    m = np.zeros((height, width), np.uint8)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 255
    return m


def test_feather_is_inside_the_selection_and_kept_pixels_do_not_move():
    original = scene()
    mask = rect_mask()
    edited = original.astype(np.float32) + 40.0  # an edit whose colour drifted everywhere
    matched, feathered = seam.blend(original, edited, mask)
    assert np.array_equal(feathered == 0, mask == 0)  # not one kept pixel joins the blend
    band = seam.band_width(mask)
    assert feathered[40, 24] < 255 and feathered[40, 24 + band + 1] == 255  # ramps up inside the edge only
    # the drift is pulled back towards the kept surroundings at the edge, much less far inside
    at_edge = np.abs(matched[40, 25] - original[40, 25]).mean()
    deep = np.abs(matched[40, 48] - original[40, 48]).mean()
    assert at_edge < 20 < deep


def test_soft_masks_and_whole_image_edits_are_left_alone():
    original = scene()
    edited = original.astype(np.float32) + 40.0
    soft = rect_mask() // 2
    full = np.full(soft.shape, 255, np.uint8)
    for mask in (soft, full):
        out, m = seam.blend(original, edited, mask)
        assert out is edited and m is mask


def test_colour_is_not_matched_across_an_edge_the_input_already_has():
    """Where the artist painted another colour up to the selection's edge, that edge stays."""
    original = scene()
    original[20:60, 24:72] = (200, 60, 40)  # the selection holds a red stroke: a deliberate edge
    edited = original.astype(np.float32)
    matched, _ = seam.blend(original, edited, rect_mask())
    assert np.abs(matched[40, 25] - edited[40, 25]).max() < 3


def test_masked_edit_keeps_every_kept_pixel_byte_identical(tiny_vp):
    img = scene()
    mask = rect_mask()
    out = np.asarray(edit(tiny_vp, Image.fromarray(img), Image.fromarray(mask), t0=0.6, sde="ode", steps=4,
                          seed=1).images[0])
    assert np.array_equal(out[mask == 0], img[mask == 0])
    assert not np.array_equal(out[30:50, 35:60], img[30:50, 35:60])
