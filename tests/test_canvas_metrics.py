"""The canvas benchmark's stroke-region colour measure (benchmarks/canvas_metrics.py) measures what it says."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from canvas_metrics import region_colour  # noqa: E402


def two_regions() -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((100, 200), np.int32)
    labels[40:] = 1
    guide = np.zeros((100, 200, 3), np.uint8)
    guide[:40] = (100, 150, 220)
    guide[40:] = (60, 120, 40)
    return guide, labels


def test_same_colours_score_zero_and_texture_around_the_mean_is_free():
    guide, labels = two_regions()
    assert region_colour(guide, guide, labels) == (0.0, 0.0)
    noisy = np.clip(guide + np.random.default_rng(0).normal(0, 20, guide.shape), 0, 255).astype(np.uint8)
    mean, worst = region_colour(noisy, guide, labels)
    assert mean < 1.0 and worst < 1.5  # zero-mean texture keeps each region's colour


def test_a_recoloured_region_is_measured_and_weighted_by_its_area():
    guide, labels = two_regions()
    result = guide.copy()
    result[40:, :, 1] += 30  # the green field gets brighter by 30
    mean, worst = region_colour(result, guide, labels)
    assert abs(worst - 30) < 1e-3
    assert 15 < mean < 30  # area-weighted with the unchanged sky


def test_edges_and_specks_do_not_count():
    guide, labels = two_regions()
    result = guide.copy()
    result[38:42] = 255  # the smeared stroke edge
    labels[5:7, 5:7] = 2  # a speck too small to be a region
    assert region_colour(result, guide, labels) == (0.0, 0.0)


def test_streak_ratio_tells_vertical_streaks_from_horizontal_structure_and_isotropic_texture():
    from canvas_metrics import streak_ratio

    rng = np.random.default_rng(0)
    noise = rng.normal(128, 30, (256, 256))
    assert 0.9 < streak_ratio(noise) < 1.1  # isotropic: about 1
    from scipy import ndimage

    vertical = ndimage.gaussian_filter1d(noise, 6, axis=0)  # smeared down the columns: dripping paint
    horizontal = ndimage.gaussian_filter1d(noise, 6, axis=1)  # smeared along rows: horizons, ripples
    assert streak_ratio(vertical) > 5
    assert streak_ratio(horizontal) < 0.2
    rgb = np.repeat(vertical[..., None], 3, axis=2).clip(0, 255).astype(np.uint8)
    assert streak_ratio(rgb) > 5  # colour pictures: measured on their luminance
