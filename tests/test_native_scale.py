"""Canvases larger than the model's native size: two stages (native scale, then a small-t0 refine at full size)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdedit.engine import edit, native_scale
from sdedit.errors import Cancelled


def painting(width: int, height: int, seed: int = 0) -> Image.Image:
    """Flat-colour sky / hills / water bands with a little noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 3] = (120, 170, 230)
    img[height // 3: 2 * height // 3] = (60, 130, 60)
    img[2 * height // 3:] = (40, 80, 160)
    return Image.fromarray(np.clip(img + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    """The tiny fully convolutional (embedded-format) model, declaring a native size of 32 px."""
    from sdedit.models import load_model
    from tiny_models import make_unshuffle_folder

    model = load_model(str(make_unshuffle_folder(tmp_path_factory.mktemp("m") / "tiny-native")), "cpu")
    model.native_size = 32
    return model


def test_plan_kicks_in_above_native_size_and_not_below():
    assert native_scale.plan(256, (256, 256), 32, 16, 0.5, 20) is None
    assert native_scale.plan(256, (320, 192), 32, 16, 0.5, 20) is None  # within the 1.25 threshold
    assert native_scale.plan(None, (2048, 1536), 32, 16, 0.5, 20) is None  # a model without a native size
    p = native_scale.plan(256, (1056, 800), 32, 16, 0.5, 20)
    assert p is not None and p.full_size == (1056, 800)
    assert all(v % 32 == 0 for v in p.low_padded) and p.low_pad == 16
    w, h = p.low_size
    assert 0.7 < w * h / 256**2 < 1.4  # ~native area
    # the region's aspect to a pixel (the upscale back to full size stretches both axes alike: no streaks)
    assert abs(1056 / w - 800 / h) / (1056 / w) < 0.01
    assert all(lp >= v + 2 * p.low_pad for lp, v in zip(p.low_padded, p.low_size))
    assert p.refine_t0 == native_scale.REFINE_T0 and p.refine_steps == 8  # 20 steps x 0.2 / 0.5
    small = native_scale.plan(256, (1056, 800), 32, 16, 0.1, 20)
    assert small.refine_t0 == 0.1  # never more noise than the request's
    assert p.middle == ()  # 1024 px is within 4x of the stage-1 picture: straight to full size
    big = native_scale.plan(256, (2080, 1568), 32, 16, 0.5, 20)
    assert big.middle == ((1024, 768),) and big.extra_steps == 16  # 2048 px: refined at half size first
    square = native_scale.plan(32, (64, 64), 2, 0, 0.5, 6, square=True)
    assert square.low_padded == (32, 32) and square.full_size == (64, 64)


def test_any_size_pixel_models_refine_with_less_noise_than_latent_ones():
    """At t0 0.2 the embedded model's refine at 4x native scale painted vertical streaks (benchmarks/streaks.py);
    pixel models that take any size refine at PIXEL_REFINE_T0, latent ones keep REFINE_T0."""
    kw = dict(native_size=256, resolution=None, multiple=32, max_side=1024, edge_margin=16, t0=0.5, steps=20)
    _, pixel = native_scale.working_plan((1056, 800), **kw)
    _, latent = native_scale.working_plan((1056, 800), **{**kw, "edge_margin": 0}, detail=False)
    assert pixel.refine_t0 == native_scale.PIXEL_REFINE_T0 == 0.1 and pixel.refine_steps == 4
    assert latent.refine_t0 == native_scale.REFINE_T0 == 0.2 and latent.refine_steps == 8


def test_below_native_size_runs_one_stage(conv_model):
    seen = []
    res = edit(conv_model, painting(24, 20), t0=0.5, sde="ode", steps=5, seed=1,
               progress=lambda d, t: seen.append((d, t)))
    assert "stages" not in res.params and res.steps == 5 and seen[-1] == (5, 5)


def test_above_native_size_runs_two_stages_and_progress_covers_both(conv_model):
    seen = []
    res = edit(conv_model, painting(120, 80), t0=0.5, sde="ode", steps=6, samples=2, seed=1,
               progress=lambda d, t: seen.append((d, t)))
    first, second = res.params["stages"]
    assert first["t0"] == 0.5 and first["steps"] == 6 and second["t0"] == pytest.approx(native_scale.PIXEL_REFINE_T0)
    assert max(first["size"]) < max(second["size"]) and tuple(second["size"]) == res.working_size
    total = 6 + second["steps"]
    assert res.steps == total and seen == [(k, total) for k in range(1, total + 1)]  # one bar, both stages
    assert res.images[0].size == (120, 80)


@pytest.mark.parametrize("sde", ["vp", "ode"])
def test_two_stages_keep_mask_zero_pixels_exact_and_are_deterministic(conv_model, sde):
    img = painting(130, 90, seed=2)
    m = np.zeros((90, 130), np.uint8)
    m[20:70, 40:110] = 255
    mask = Image.fromarray(m)
    a = edit(conv_model, img, mask, t0=0.6, sde=sde, steps=5, seed=7)
    b = edit(conv_model, img, mask, t0=0.6, sde=sde, steps=5, seed=7)
    c = edit(conv_model, img, mask, t0=0.6, sde=sde, steps=5, seed=8)
    assert "stages" in a.params
    out, src = np.asarray(a.images[0]), np.asarray(img)
    assert np.array_equal(out[m == 0], src[m == 0])
    assert not np.array_equal(out[30:60, 50:100], src[30:60, 50:100])
    assert a.images[0].tobytes() == b.images[0].tobytes() != c.images[0].tobytes()


def test_k_samples_in_two_stages_each_reproducible_from_its_seed(conv_model):
    img = painting(120, 80)
    res = edit(conv_model, img, t0=0.5, sde="vp", steps=4, samples=2, seed=30)
    single = edit(conv_model, img, t0=0.5, sde="vp", steps=4, samples=1, seed=31)
    diff = np.abs(np.asarray(res.images[1]).astype(int) - np.asarray(single.images[0]))
    assert diff.max() <= 1 and not np.array_equal(np.asarray(res.images[0]), np.asarray(res.images[1]))


@pytest.mark.parametrize("stop_after", [2, 7])  # inside stage 1 (5 steps), inside stage 2
def test_cancel_works_in_both_stages(conv_model, stop_after):
    calls = []
    with pytest.raises(Cancelled):
        edit(conv_model, painting(120, 80), t0=0.5, sde="ode", steps=5, seed=1,
             progress=lambda d, t: calls.append(d), cancel=lambda: len(calls) >= stop_after)
    assert len(calls) == stop_after


def test_fixed_size_checkpoint_refines_at_the_regions_size(tiny_vp):
    """A 32x32 checkpoint on a 96x96 picture: stage 1 at 32x32 as before, stage 2 at 96x96, not upscaled."""
    res = edit(tiny_vp, painting(96, 96), t0=0.5, sde="ode", steps=4, seed=3)
    first, second = res.params["stages"]
    assert first["size"] == [32, 32] and second["size"] == [96, 96] and res.working_size == (96, 96)


def test_large_canvas_refines_in_steps_and_progress_covers_every_stage(conv_model):
    seen = []
    img = painting(300, 200)
    res = edit(conv_model, img, t0=0.5, sde="ode", steps=5, seed=2, progress=lambda d, t: seen.append((d, t)))
    stages = res.params["stages"]
    assert len(stages) >= 3 and [s["size"] for s in stages] == sorted((s["size"] for s in stages), key=max)
    assert all(max(b["size"]) <= native_scale.MAX_STEP_UP * max(a["size"]) for a, b in zip(stages, stages[1:]))
    total = sum(s["steps"] for s in stages)
    assert res.steps == total and seen == [(k, total) for k in range(1, total + 1)]
    again = edit(conv_model, img, t0=0.5, sde="ode", steps=5, seed=2)
    assert again.images[0].tobytes() == res.images[0].tobytes() and res.images[0].size == (300, 200)


def test_previews_cover_both_stages_at_the_canvas_aspect(conv_model):
    """Stage 1's small estimate is shown scaled up, so every preview has the canvas' shape."""
    seen = []
    plain = edit(conv_model, painting(120, 80), t0=0.5, sde="ode", steps=5, seed=4)
    res = edit(conv_model, painting(120, 80), t0=0.5, sde="ode", steps=5, seed=4, preview=seen.append,
               preview_every=1)
    assert len(seen) == res.steps - 1 and len({p.shape for p in seen}) == 1
    h, w = seen[0].shape[:2]
    assert abs(w / h - 1.5) < 0.1
    assert res.images[0].tobytes() == plain.images[0].tobytes()


def test_fixed_size_checkpoint_refines_at_most_four_times_its_size(tiny_vp):
    """A 32x32 checkpoint on a 320x240 picture (a square region for such models): the refine runs at 128x128,
    not 320x320 (attention stays small), and the result still has the picture's size."""
    res = edit(tiny_vp, painting(320, 240), t0=0.5, sde="ode", steps=4, seed=3)
    assert [s["size"] for s in res.params["stages"]] == [[32, 32], [128, 128]]
    assert res.images[0].size == (320, 240)


def test_plan_adds_a_detail_pass_only_above_the_refine_size():
    p = native_scale.plan(256, (1056, 800), 32, 16, 0.5, 20, detail_size=(2080, 1568))
    assert p.detail_size == (2080, 1568) and p.working_size == (2080, 1568)
    assert p.detail_t0 == native_scale.DETAIL_T0 and p.extra_steps == 8 + native_scale.DETAIL_STEPS
    assert p.describe(0.5, 20)[-1] == {"size": [2080, 1568], "t0": native_scale.DETAIL_T0,
                                       "steps": native_scale.DETAIL_STEPS}
    assert native_scale.plan(256, (1056, 800), 32, 16, 0.05, 20, detail_size=(2080, 1568)).detail_t0 == 0.05
    same = native_scale.plan(256, (1056, 800), 32, 16, 0.5, 20, detail_size=(1056, 800))
    assert same.detail_size is None and same.working_size == (1056, 800)
    margin_over = native_scale.plan(256, (1024, 768), 32, 16, 0.5, 20, detail_size=(1056, 800))
    assert margin_over.detail_size is None  # a 1024 px canvas plus its edge margin: scaled up 3 %, no pass


def test_canvas_above_max_side_gets_a_detail_pass_at_its_own_size(conv_model, monkeypatch):
    """Above the model's max_side the refine runs at max_side and a last low-noise pass at the canvas' size
    adds detail; its low frequencies are the refined picture's (colour and layout unchanged)."""
    monkeypatch.setattr(conv_model, "max_side", 128)
    seen = []
    img = painting(320, 224)
    res = edit(conv_model, img, t0=0.5, sde="ode", steps=5, seed=2, progress=lambda d, t: seen.append((d, t)))
    stages = res.params["stages"]
    assert max(stages[-2]["size"]) == 128 and stages[-1] == {"size": [352, 256], "t0": 0.1, "steps": 4}
    assert res.working_size == (352, 256) and res.images[0].size == (320, 224)
    assert seen[-1] == (res.steps, res.steps) == (sum(s["steps"] for s in stages),) * 2
    again = edit(conv_model, img, t0=0.5, sde="ode", steps=5, seed=2)
    assert again.images[0].tobytes() == res.images[0].tobytes()
    monkeypatch.setattr(native_scale, "DETAIL_MAX_SIDE", 128)  # too large for a detail pass: scaled up as before
    capped = edit(conv_model, img, t0=0.5, sde="ode", steps=5, seed=2)
    assert max(capped.params["stages"][-1]["size"]) == 128 and capped.images[0].size == (320, 224)


def test_detail_pass_keeps_mask_zero_pixels_exact(conv_model, monkeypatch):
    monkeypatch.setattr(conv_model, "max_side", 128)
    img = painting(320, 224, seed=5)
    mask = np.zeros((224, 320), np.uint8)
    mask[60:160, 80:240] = 255
    res = edit(conv_model, img, Image.fromarray(mask), t0=0.5, sde="ode", steps=5, seed=1)
    assert res.params["stages"][-1]["t0"] == 0.1
    out, src = np.asarray(res.images[0]), np.asarray(img)
    assert np.array_equal(out[mask == 0], src[mask == 0]) and not np.array_equal(out[mask > 0], src[mask > 0])


def test_gaussian_blur_keeps_flat_colour_and_the_mean():
    import torch

    flat = torch.full((1, 3, 40, 30), 0.25)
    assert torch.allclose(native_scale.gaussian_blur(flat, 3.0), flat, atol=1e-6)
    x = torch.rand(1, 3, 64, 48)
    y = native_scale.gaussian_blur(x, 2.0)
    assert y.shape == x.shape and abs(float(y.mean() - x.mean())) < 1e-2 and float(y.std()) < float(x.std())


def test_budget_counts_a_staged_job_as_the_engine_reports_it(conv_model, monkeypatch):
    """The server's up-front work estimate of a native-scale job is what the finished job reports (result
    size x all stages' steps), so the speed it learns from one job prices the next one right."""
    from sdedit.api.budget import Budget

    monkeypatch.setattr(conv_model, "max_side", 128)
    budget = Budget("cpu")
    budget.learn_model(conv_model)
    for w, h in ((320, 224), (100, 70), (30, 20)):
        res = edit(conv_model, painting(w, h), t0=0.5, sde="ode", steps=5, seed=2)
        work = budget.estimate(conv_model.id, None, w, h, 0.5, "ode", 5, 1)
        assert (work.width, work.height, work.steps) == (*res.working_size, res.steps)


def test_refine_stages_keep_stage_one_colour_and_add_only_fine_detail():
    """A refine stage that tints the whole picture and adds a 2-px checker: the tint is dropped (colour is
    stage 1's), the checker is kept (detail is the refine's)."""
    import torch

    p = native_scale.plan(32, (128, 96), 8, 0, 0.5, 6)
    guide = torch.zeros(1, 3, 96, 128)
    guide[:, 2, :48] = 0.6  # a blue sky over a dark field
    yy, xx = torch.meshgrid(torch.arange(96), torch.arange(128), indexing="ij")
    checker = 0.1 * (((yy // 2 + xx // 2) % 2) * 2 - 1).float()

    def stage(g, m, seeds, t0, steps):
        if g.shape[-1] != 128:  # stage 1 at native scale: faithful
            return g.expand(len(seeds), -1, -1, -1).clone()
        return (g + 0.3 + checker).clamp(-1, 1)  # the refine: a tint and fine detail

    out = native_scale.run_two_stage(stage, guide, None, [0], 0.5, 6, p)
    low = native_scale.gaussian_blur(out, native_scale.SPLIT_SIGMA)
    inner = (slice(None), slice(None), slice(16, 80), slice(16, 112))  # away from the edges
    assert float((low - native_scale.gaussian_blur(guide, native_scale.SPLIT_SIGMA))[inner].abs().mean()) < 0.03
    assert float((out - low)[inner].std()) > 0.05  # the checker survives


@pytest.mark.parametrize("sde, refine", [("vp", "ode"), ("ve", "ode"), ("ode", "ode"), ("ddim", "ddim")])
def test_refine_stages_run_a_deterministic_sampler_whatever_stage_one_used(conv_model, monkeypatch, sde, refine):
    """A stochastic sampler's few large steps at 4x the native scale painted vertical streaks
    (benchmarks/streaks.py): stage 1 runs the request's sampler, the refine stages a deterministic one."""
    import sys

    edit_module = sys.modules["sdedit.engine.edit"]  # (the package exports the function under the same name)
    calls = []
    spied = {name: (lambda fn, name: lambda *a, **k: calls.append(name) or fn(*a, **k))(fn, name)
             for name, fn in edit_module.SAMPLERS.items()}
    monkeypatch.setattr(edit_module, "SAMPLERS", spied)
    res = edit(conv_model, painting(120, 80), t0=0.5, sde=sde, steps=4, seed=3)
    assert len(res.params["stages"]) == 2 and res.params["sde"] == sde
    assert calls == [sde, refine]
