"""The samplers against closed-form answers: forward marginals at t0 and exact posteriors of Gaussian data."""
from __future__ import annotations

import math

import pytest
import torch

from sdedit.engine.noise import NoiseSource
from sdedit.engine.samplers import SamplerInput, sample_ve, sample_vp, ve_plan, vp_plan
from sdedit.models.base import DiffusionModel
from sdedit.schedules import linear_alphas_cumprod, respaced_indices, timestep_for_sigma, sigmas_from_alphas_cumprod

MU, S = -0.2, 0.3  # the Gaussian "data set" of the oracle model


class GaussianOracle(DiffusionModel):
    """The exact denoiser of data x0 ~ N(MU, S^2) per pixel: E[z | x0 + sigma z = x] = sigma (x - MU) / (S^2 + sigma^2).

    It also records the first input it sees, to check the perturbation at t0.
    """

    def __init__(self, sigma_max: float = 157.0) -> None:
        super().__init__(id="oracle", native_sde="vp", resolution=None, size_multiple=1,
                         default_steps={"vp": None, "ve": None}, sigma_min=0.01, sigma_max=sigma_max,
                         device=torch.device("cpu"))
        self.first_input: torch.Tensor | None = None
        self.calls = 0

    def eps_ve(self, x_ve: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.first_input is None:
            self.first_input = x_ve.clone()
        s = sigma.view(-1, 1, 1, 1).to(x_ve.dtype)
        return s * (x_ve - MU) / (S**2 + s**2)


def _run(sampler, model, guide_value: float, t0: float, steps: int, batch: int = 4, size: int = 64):
    guide = torch.full((1, 3, size, size), guide_value)
    noise = NoiseSource(list(range(batch)), (3, size, size), torch.device("cpu"))
    return sampler(model, SamplerInput(guide, None, noise, t0, steps), lambda: None)


def test_vp_forward_marginal_matches_formula():
    model = GaussianOracle()
    g, t0 = 0.6, 0.4
    _run(sample_vp, model, g, t0, steps=5)
    abar = float(linear_alphas_cumprod()[round(t0 * 1000) - 1])
    # the oracle sees VE coordinates x_vp / sqrt(abar); convert back to check the VP marginal
    x_vp = model.first_input * math.sqrt(abar)
    assert x_vp.mean().item() == pytest.approx(math.sqrt(abar) * g, abs=0.01)
    assert x_vp.std().item() == pytest.approx(math.sqrt(1 - abar), rel=0.02)


def test_ve_forward_marginal_matches_formula():
    model = GaussianOracle()
    g, t0 = 0.6, 0.45
    _run(sample_ve, model, g, t0, steps=5)
    sigma0 = 0.01 * (157.0 / 0.01) ** t0
    assert model.first_input.mean().item() == pytest.approx(g, abs=0.03)
    assert model.first_input.std().item() == pytest.approx(sigma0, rel=0.02)


def _posterior_stats(sigma0: float, g: float) -> tuple[float, float]:
    """Mean and std of SDEdit's output when the reverse SDE is exact: x0 ~ p(x0 | g + sigma0 z)."""
    w = S**2 / (S**2 + sigma0**2)
    mean = MU + w * (g - MU)
    var = w**2 * sigma0**2 + S**2 * sigma0**2 / (S**2 + sigma0**2)
    return mean, math.sqrt(var)


@pytest.mark.parametrize("t0", [0.3, 0.5])
def test_vp_sampler_reaches_exact_posterior(t0):
    g = 0.8
    out = _run(sample_vp, GaussianOracle(), g, t0, steps=round(t0 * 1000))
    abar = float(linear_alphas_cumprod()[round(t0 * 1000) - 1])
    mean, std = _posterior_stats(math.sqrt((1 - abar) / abar), g)
    assert out.mean().item() == pytest.approx(mean, abs=0.01)
    assert out.std().item() == pytest.approx(std, rel=0.03)


def test_vp_respaced_sampler_stays_close_to_posterior():
    g, t0 = 0.8, 0.5
    out = _run(sample_vp, GaussianOracle(), g, t0, steps=50)
    abar = float(linear_alphas_cumprod()[499])
    mean, std = _posterior_stats(math.sqrt((1 - abar) / abar), g)
    assert out.mean().item() == pytest.approx(mean, abs=0.02)
    # 'fixed small' variance under-disperses on a coarse grid (about -10% at 50 steps); the mean is still exact
    assert out.std().item() == pytest.approx(std, rel=0.15)


@pytest.mark.parametrize("t0", [0.3, 0.45])
def test_ve_sampler_reaches_exact_posterior(t0):
    g = 0.8
    out = _run(sample_ve, GaussianOracle(), g, t0, steps=1000)
    mean, std = _posterior_stats(0.01 * (157.0 / 0.01) ** t0, g)
    assert out.mean().item() == pytest.approx(mean, abs=0.01)
    assert out.std().item() == pytest.approx(std, rel=0.04)


def test_masked_vp_keeps_guide_and_counts_steps():
    model = GaussianOracle()
    guide = torch.full((1, 3, 16, 16), 0.5)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 8:] = 1.0
    calls = []
    noise = NoiseSource([1, 2], (3, 16, 16), torch.device("cpu"))
    out = sample_vp(model, SamplerInput(guide, mask, noise, 0.3, 20), lambda: calls.append(1))
    assert len(calls) == 20 and model.calls == 20
    assert torch.equal(out[..., :8], guide.expand(2, -1, -1, -1)[..., :8])  # clean guide after the last step
    assert not torch.allclose(out[..., 8:], guide.expand(2, -1, -1, -1)[..., 8:], atol=1e-3)


def test_schedules_and_plans():
    assert respaced_indices(499, 1000) == list(range(499, -1, -1))
    plan = respaced_indices(499, 25)
    assert plan[0] == 499 and plan[-1] == 0 and len(plan) == 25 and plan == sorted(plan, reverse=True)
    assert vp_plan(0.5, None, 1000)[0] == 499
    sig = ve_plan(GaussianOracle(), 0.5, 10)
    assert len(sig) == 11 and sig[0] == pytest.approx(0.01 * 15700**0.5) and sig[-1] == pytest.approx(0.01)
    table = sigmas_from_alphas_cumprod(linear_alphas_cumprod())
    assert timestep_for_sigma(table[[0, 250, 999]], table).tolist() == [0.0, 250.0, 999.0]
    mid = timestep_for_sigma((table[10] * table[11]).sqrt().view(1), table).item()
    assert 10.0 < mid < 11.0


@pytest.mark.parametrize("name, steps, tol", [("ddim", 200, 0.01), ("ode", 20, 0.01)])
def test_probability_flow_ode_reaches_exact_posterior_mean(name, steps, tol):
    """The ODE maps g + sigma0 z to the posterior mean plus a deterministic shrink of the noise:
    for Gaussian data x(0) = MU + (S / sqrt(S^2 + sigma0^2)) (x(sigma0) - MU)."""
    from sdedit.engine.samplers import SAMPLERS

    g, t0 = 0.8, 0.5
    model = GaussianOracle()
    out = _run(SAMPLERS[name], model, g, t0, steps=steps)
    abar = float(linear_alphas_cumprod()[499])
    sigma0 = math.sqrt((1 - abar) / abar)
    scale = S / math.sqrt(S**2 + sigma0**2)
    assert model.calls == steps
    assert out.mean().item() == pytest.approx(MU + scale * (g - MU), abs=tol)
    assert out.std().item() == pytest.approx(scale * sigma0, rel=0.03)


def test_dpm_solver_beats_ddim_at_few_steps():
    """Second order pays off: at 6 steps DPM-Solver++(2M) is closer to the exact ODE solution than DDIM."""
    from sdedit.engine.samplers import sample_ddim, sample_ode

    exact = _run(sample_ddim, GaussianOracle(), 0.8, 0.5, steps=400)
    err_ddim = (_run(sample_ddim, GaussianOracle(), 0.8, 0.5, steps=6) - exact).abs().mean().item()
    err_dpm = (_run(sample_ode, GaussianOracle(), 0.8, 0.5, steps=6) - exact).abs().mean().item()
    assert err_dpm < 0.5 * err_ddim
