"""The 3-D landscape renderer (sdedit.synth.terrain): deterministic, varied, sky above land, no streaks."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sdedit.synth.terrain import depths, heightfield, render_terrain, shadow_map

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from canvas_metrics import detail, streak_ratio  # noqa: E402


def test_scenes_are_deterministic_varied_and_any_size():
    a, b = render_terrain(3, 96), render_terrain(3, 96)
    assert a.dtype == np.uint8 and a.shape == (96, 96, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, render_terrain(4, 96))
    assert render_terrain(5, width=128, height=64).shape == (64, 128, 3)


def test_sky_is_brighter_and_smoother_than_the_land_and_texture_is_not_streaky():
    scenes = [render_terrain(seed, 128) for seed in range(6)]
    top = np.mean([s[:12].mean() for s in scenes])
    bottom = np.mean([s[-12:].mean() for s in scenes])
    assert top > bottom  # sky over land, as photographs are
    assert np.mean([detail(s) for s in scenes]) > 2.0  # textured, not flat
    assert np.mean([streak_ratio(s) for s in scenes]) < 1.2  # no vertical streaks in the training data


def test_heightfield_has_ridges_and_shadows_fall_away_from_the_sun():
    h = heightfield(np.random.default_rng(0), 128)
    assert h.shape == (128, 128) and np.ptp(h) > 20
    low_sun = shadow_map(h, 0.3, 0.05)
    high_sun = shadow_map(h, 0.3, 1.4)
    assert low_sun.mean() < high_sun.mean() and high_sun.min() >= 0 and low_sun.max() <= 1
    zs = depths(0.5, 100, 0.05)
    assert zs[0] == 0.5 and zs[-1] >= 100 and np.all(np.diff(zs) > 0)


def test_command_writes_a_training_shard_that_the_trainer_loads(tmp_path):
    from sdedit.synth.terrain import main
    from sdedit.train.dataset import load_scenes

    main(["--out", str(tmp_path / "scenes_terrain.npy"), "--start", "7", "--count", "2", "--size", "64"])
    scenes = load_scenes(tmp_path)
    assert scenes.shape == (2, 64, 64, 3) and np.array_equal(scenes[1], render_terrain(8, 64))
