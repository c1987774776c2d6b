"""What an NCSN++-style (ScoreSdeVe) network receives: sigma on its own [0, 1] data scale, as in the paper.

A tiny real diffusers UNet2DModel with fourier embedding, saved in the ScoreSdeVe folder layout, is loaded
by the registry and driven by the engine; a forward pre-hook records the sigma of every network call.
"""
from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from sdedit.engine import edit
from sdedit.models import load_model
from sdedit.schedules import linear_alphas_cumprod
from tiny_models import make_ve_folder

SIGMA_MIN = 0.01


@pytest.fixture(scope="module")
def ve_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("ve-sigma")
    return {smax: load_model(str(make_ve_folder(root / f"ve-{int(smax)}", sigma_max=smax)), "cpu")
            for smax in (348.0, 378.0, 380.0, 1348.0)}


def _record(model):
    seen: list[float] = []

    def hook(_module, args):
        seen.append(float(torch.as_tensor(args[1]).reshape(-1)[0]))

    handle = model.net.register_forward_pre_hook(hook)
    return seen, handle


def _edit_and_record(model, **kw) -> list[float]:
    seen, handle = _record(model)
    try:
        edit(model, Image.new("RGB", (32, 32), (120, 150, 90)), seed=0, **kw)
    finally:
        handle.remove()
    return seen


def paper_sigma(t: float, sigma_max: float) -> float:
    return SIGMA_MIN * (sigma_max / SIGMA_MIN) ** t


@pytest.mark.parametrize("sigma_max", [348.0, 378.0, 380.0, 1348.0])
def test_ve_sampler_gives_the_network_the_papers_sigma(ve_models, sigma_max):
    model = ve_models[sigma_max]
    assert (model.sigma_min, model.sigma_max) == (pytest.approx(SIGMA_MIN), pytest.approx(sigma_max))
    t0, steps = 0.3, 6
    seen = _edit_and_record(model, t0=t0, sde="ve", steps=steps)
    expected = [paper_sigma(t0 * n / steps, sigma_max) for n in range(steps, 0, -1)]
    assert seen == pytest.approx(expected, rel=1e-5)
    if sigma_max == 348.0:
        assert seen[0] == pytest.approx(0.2304, abs=5e-5)  # 0.01 * 34800^0.3, the worked number
    assert min(seen) >= SIGMA_MIN


@pytest.mark.parametrize("sigma_max", [348.0, 1348.0])
def test_vp_and_ode_samplers_on_a_ve_model_stay_in_its_trained_range(ve_models, sigma_max):
    """VP: x_VE = x_VP / sqrt(abar) on [-1, 1] data is sigma_VE = sqrt((1 - abar) / abar) there, half that
    on the network's [0, 1] scale; the smallest steps fall below sigma_min and are clamped to it."""
    model = ve_models[sigma_max]
    abar = linear_alphas_cumprod()
    seen = _edit_and_record(model, t0=0.5, sde="vp", steps=0)  # all 500 steps: i = 499 .. 0
    expected = [min(max(math.sqrt((1 - float(abar[i])) / float(abar[i])) / 2, SIGMA_MIN), sigma_max)
                for i in range(499, -1, -1)]
    assert seen == pytest.approx(expected, rel=1e-5)
    assert min(seen) == pytest.approx(SIGMA_MIN)
    ode = _edit_and_record(model, t0=0.5, sde="ode", steps=8)
    assert ode[0] == pytest.approx(expected[0], rel=1e-5) and min(ode) >= SIGMA_MIN * (1 - 1e-6)


def test_noise_estimate_is_consistent_across_the_two_scales(ve_models):
    """eps from the score at the level the network is called with: z = -s * score on [0, 1] data."""
    model = ve_models[348.0]
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    sigma_engine = torch.tensor([3.0])
    eps = model.eps_ve(x, sigma_engine)
    score = model.net((x + 1) / 2, torch.tensor([1.5])).sample
    torch.testing.assert_close(eps, -1.5 * score, rtol=1e-5, atol=1e-6)
