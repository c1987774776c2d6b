"""A hard selection blends in: grown and feathered outward (edit_mask), and seam.blend's colour match;
pixels beyond the grown band stay exact."""
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


def test_hard_selection_grows_by_a_smooth_band_that_scales_with_its_size_and_t0():
    mask = rect_mask()  # 48x40 selected
    grown = seam.edit_mask(mask, 0.5)
    width = seam.transition_width(mask > 0, 0.5)
    assert np.array_equal(grown[mask == 255], mask[mask == 255])  # the selection itself: fully edited
    row = grown[40, : 24]  # leftwards from the outline at x = 24
    assert row[-1] > row[-2] > 0 and row[23 - width - 1] == 0  # falls to zero across the band, not beyond
    assert np.all(np.diff(row.astype(int)) >= 0)
    beyond = np.ones_like(mask, bool)
    beyond[20 - width - 1:60 + width + 1, 24 - width - 1:72 + width + 1] = False
    assert np.all(grown[beyond] == 0)
    big = rect_mask(400, 300, (100, 60, 300, 240)) > 0
    assert seam.transition_width(big, 0.5) > 2 * width  # a larger selection, a longer fade
    assert seam.transition_width(big, 0.7) > seam.transition_width(big, 0.5) > seam.transition_width(big, 0.3)


def test_antialiased_selections_grow_and_feathered_or_painted_masks_do_not():
    yy, xx = np.mgrid[:80, :96]
    r = np.hypot(xx - 48, yy - 40)
    ellipse = np.clip((20.5 - r) * 255, 0, 255).astype(np.uint8)  # a one-pixel antialiased edge
    assert seam.is_hard_edged(ellipse) and seam.edit_mask(ellipse, 0.5).astype(bool).sum() > (ellipse > 0).sum()
    feathered = np.clip((24 - r) * 255 / 10, 0, 255).astype(np.uint8)  # a 10 px feather: the artist's blend
    for mask in (feathered, rect_mask() // 2, np.full((80, 96), 255, np.uint8), np.zeros((80, 96), np.uint8)):
        assert not seam.is_hard_edged(mask) and seam.edit_mask(mask, 0.5) is mask


def test_masked_edit_keeps_every_pixel_beyond_the_grown_band_byte_identical(tiny_vp):
    img = scene()
    mask = rect_mask()
    res = edit(tiny_vp, Image.fromarray(img), Image.fromarray(mask), t0=0.6, sde="ode", steps=4, seed=1, grow=True)
    out = np.asarray(res.images[0])
    grown = seam.edit_mask(mask, 0.6)
    assert np.array_equal(res.mask, grown)  # the result says which mask it used
    assert np.array_equal(out[grown == 0], img[grown == 0])
    band = (mask == 0) & (grown > 0)
    assert np.any(out[band] != img[band])  # the edit fades out beyond the outline
    assert not np.array_equal(out[30:50, 35:60], img[30:50, 35:60])


def test_without_grow_the_mask_is_the_contract_black_pixels_are_kept_exactly(tiny_vp):
    """grow is what the plugins ask for; the engine's, CLI's and API's default keeps every black pixel."""
    img = scene()
    mask = rect_mask()
    res = edit(tiny_vp, Image.fromarray(img), Image.fromarray(mask), t0=0.6, sde="ode", steps=4, seed=1)
    out = np.asarray(res.images[0])
    assert np.array_equal(res.mask, mask)
    assert np.array_equal(out[mask == 0], img[mask == 0])
    assert not np.array_equal(out[30:50, 35:60], img[30:50, 35:60])
