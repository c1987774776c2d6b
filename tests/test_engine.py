"""The whole-image edit: masks, seeds, K samples, sizes, alpha, progress and cancel, parameter checks."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdedit.engine import edit
from sdedit.errors import Cancelled, InputError
from sdedit.imaging import composite, working_region


def strokes(width: int = 64, height: int = 48, alpha: bool = False, seed: int = 0) -> Image.Image:
    """A flat-colour 'painting': sky, hill, water bands with a little noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 3] = (120, 170, 230)
    img[height // 3: 2 * height // 3] = (60, 130, 60)
    img[2 * height // 3:] = (40, 80, 160)
    img = np.clip(img + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    if alpha:
        a = rng.integers(0, 256, (height, width, 1), dtype=np.uint8)
        return Image.fromarray(np.concatenate([img, a], axis=2), "RGBA")
    return Image.fromarray(img, "RGB")


def half_mask(width: int, height: int, value: int = 255) -> Image.Image:
    m = np.zeros((height, width), np.uint8)
    m[:, width // 2:] = value
    return Image.fromarray(m, "L")


@pytest.mark.parametrize("sde", ["vp", "ve", "ode"])
def test_mask_zero_pixels_are_bit_exact(tiny_vp, sde):
    img = strokes(80, 60, alpha=True)
    mask = half_mask(80, 60)
    out = edit(tiny_vp, img, mask, t0=0.6, sde=sde, steps=8, seed=3).images[0]
    a, b = np.asarray(img), np.asarray(out)
    assert out.mode == "RGBA" and out.size == img.size
    assert np.array_equal(a[:, :40], b[:, :40])
    assert np.array_equal(a[..., 3], b[..., 3])  # alpha untouched everywhere
    assert np.abs(a[:, 40:, :3].astype(int) - b[:, 40:, :3]).mean() > 2  # the edited half changed


def test_soft_mask_blends_between_kept_and_edited(tiny_vp):
    img = strokes(64, 64)
    m = np.zeros((64, 64), np.uint8)
    m[:, 16:32] = 128
    m[:, 32:] = 255
    out = np.asarray(edit(tiny_vp, img, Image.fromarray(m), t0=0.7, steps=8, seed=5).images[0]).astype(int)
    src = np.asarray(img).astype(int)
    grey = np.abs(out[:, 20:28] - src[:, 20:28]).mean()
    white = np.abs(out[:, 40:60] - src[:, 40:60]).mean()
    assert np.array_equal(out[:, :16], src[:, :16])
    assert 0 < grey < white


def test_composite_formula_is_exact():
    orig = np.array([[[10, 20, 30], [200, 100, 0]]], np.uint8)
    edited = np.array([[[110.0, 120.0, 130.0], [0.0, 0.0, 255.0]]], np.float32)
    mask = np.array([[128, 0]], np.uint8)
    out = composite(orig, edited, mask)
    w = 128 / 255
    assert out[0, 0].tolist() == [round(10 * (1 - w) + 110 * w), round(20 * (1 - w) + 120 * w), round(30 * (1 - w) + 130 * w)]
    assert out[0, 1].tolist() == [200, 100, 0]


@pytest.mark.parametrize("sde", ["vp", "ode"])
def test_same_seed_same_bytes_other_seed_differs(tiny_vp, sde):
    img = strokes()
    a = edit(tiny_vp, img, t0=0.5, sde=sde, steps=6, seed=42).images[0].tobytes()
    b = edit(tiny_vp, img, t0=0.5, sde=sde, steps=6, seed=42).images[0].tobytes()
    c = edit(tiny_vp, img, t0=0.5, sde=sde, steps=6, seed=43).images[0].tobytes()
    assert a == b and a != c


def test_k_samples_each_reproducible_from_its_seed(tiny_vp):
    img = strokes()
    res = edit(tiny_vp, img, t0=0.5, steps=5, samples=3, seed=100)
    assert res.seeds == [100, 101, 102] and len(res.images) == 3
    arrays = [np.asarray(i).astype(int) for i in res.images]
    assert not np.array_equal(arrays[0], arrays[1]) and not np.array_equal(arrays[1], arrays[2])
    single = np.asarray(edit(tiny_vp, img, t0=0.5, steps=5, samples=1, seed=101).images[0]).astype(int)
    assert np.abs(single - arrays[1]).max() <= 1  # batched numerics may differ in the last bit only


def test_chunked_batches_give_the_same_samples(tiny_vp):
    img = strokes()
    together = edit(tiny_vp, img, t0=0.4, steps=4, samples=4, seed=9, max_batch=4)
    chunked = edit(tiny_vp, img, t0=0.4, steps=4, samples=4, seed=9, max_batch=2)
    assert together.evaluations == together.steps and chunked.evaluations == 2 * chunked.steps
    for a, b in zip(together.images, chunked.images):
        assert np.abs(np.asarray(a).astype(int) - np.asarray(b)).max() <= 1


@pytest.mark.parametrize("sde", ["vp", "ve"])
def test_t0_to_zero_returns_the_input(tiny_vp, sde):
    img = strokes(32, 32, alpha=True)  # the model's own resolution: no resampling in the way
    out = edit(tiny_vp, img, t0=0.001, sde=sde, steps=1, seed=1).images[0]
    diff = np.abs(np.asarray(out).astype(int) - np.asarray(img))
    assert diff.mean() < 1.5 and diff.max() <= 12


@pytest.mark.parametrize("sde", ["vp", "ve"])
def test_any_size_rgba_on_a_ve_model(tiny_ve, sde):
    img = strokes(97, 203, alpha=True)
    res = edit(tiny_ve, img, t0=0.5, sde=sde, steps=4, samples=2, seed=7)
    for out in res.images:
        assert out.size == (97, 203) and out.mode == "RGBA"
        assert np.array_equal(np.asarray(out)[..., 3], np.asarray(img)[..., 3])


def test_small_mask_in_large_image_edits_only_a_crop(tiny_vp):
    img = strokes(300, 200)
    m = np.zeros((200, 300), np.uint8)
    m[80:120, 200:240] = 255
    region = working_region(m, square=True)
    assert region.width == region.height and region.x0 <= 200 and region.x1 >= 240
    out = np.asarray(edit(tiny_vp, img, Image.fromarray(m), t0=0.6, steps=4, seed=2).images[0])
    src = np.asarray(img)
    keep = m == 0
    assert np.array_equal(out[keep], src[keep])
    assert not np.array_equal(out[80:120, 200:240], src[80:120, 200:240])


def test_empty_mask_returns_input_without_model_calls(tiny_vp):
    img = strokes()
    res = edit(tiny_vp, img, Image.new("L", img.size, 0), samples=2, seed=1)
    assert res.evaluations == 0 and all(i.tobytes() == img.tobytes() for i in res.images)


def test_progress_every_step_and_cancel_between_steps(tiny_vp):
    seen = []
    img = strokes(32, 24)  # within the model's native size: one stage (two stages: tests/test_native_scale.py)
    edit(tiny_vp, img, t0=0.5, steps=7, samples=2, seed=1, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(k, 7) for k in range(1, 8)]
    calls = []
    with pytest.raises(Cancelled):
        edit(tiny_vp, strokes(), t0=0.5, steps=50, seed=1, progress=lambda d, t: calls.append(d),
             cancel=lambda: len(calls) >= 3)
    assert len(calls) == 3


@pytest.mark.parametrize("kwargs, words", [
    ({"t0": 0.0}, "t0"), ({"t0": 1.5}, "t0"), ({"sde": "xy"}, "SDE"), ({"samples": 0}, "samples"),
    ({"steps": -1}, "steps"), ({"seed": -5}, "seed"),
])
def test_bad_parameters_raise_input_error(tiny_vp, kwargs, words):
    with pytest.raises(InputError, match=words):
        edit(tiny_vp, strokes(), **kwargs)


def test_wrong_mask_size_is_refused(tiny_vp):
    with pytest.raises(InputError, match="same size"):
        edit(tiny_vp, strokes(64, 48), Image.new("L", (10, 10), 255))


@pytest.fixture(scope="module")
def tiny_fully_conv(tmp_path_factory):
    from sdedit.models import load_model
    from tiny_models import make_unshuffle_folder

    return load_model(str(make_unshuffle_folder(tmp_path_factory.mktemp("m") / "tiny-unshuffle")), "cpu")


def test_fully_convolutional_model_edits_any_size_at_full_resolution(tiny_fully_conv):
    assert tiny_fully_conv.resolution is None and tiny_fully_conv.size_multiple == 8
    img = strokes(97, 203, alpha=True)
    assert tiny_fully_conv.edge_margin == 16
    res = edit(tiny_fully_conv, img, t0=0.5, steps=3, seed=1)
    # 16 px of margin on every side (the network's border artefacts fall outside the picture), then
    # padded to multiples of 8, not resampled
    assert res.working_size == (136, 240)
    assert (res.region.x0, res.region.y0) == (-19, -18)
    assert res.images[0].size == (97, 203) and res.images[0].mode == "RGBA"
    near = edit(tiny_fully_conv, img, t0=0.001, steps=1, seed=1).images[0]
    diff = np.abs(np.asarray(near).astype(int) - np.asarray(img))
    assert diff.mean() < 1.5 and diff.max() <= 12  # t0 -> 0 gives the input back, no resampling blur


def test_fully_convolutional_masked_edit_is_exact_outside(tiny_fully_conv):
    img = strokes(150, 90)
    m = np.zeros((90, 150), np.uint8)
    m[10:50, 60:100] = 255
    out = np.asarray(edit(tiny_fully_conv, img, Image.fromarray(m), t0=0.6, sde="ode", steps=3, seed=2).images[0])
    keep = m == 0
    assert np.array_equal(out[keep], np.asarray(img)[keep])
    assert not np.array_equal(out[10:50, 60:100], np.asarray(img)[10:50, 60:100])
