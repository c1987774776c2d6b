"""The reverse-SDE samplers of SDEdit (Meng et al. 2022, Alg. 1-5), masked editing included.

Both start from the guide perturbed to time t0 and integrate back to t = 0. With a mask, after every step the
kept region (mask 0) is replaced by the guide noised to the level the sample has just reached (the *next*
step's level; the clean guide after the last step), and soft mask values blend the two.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from sdedit.engine.masking import keep_outside
from sdedit.engine.noise import NoiseSource
from sdedit.schedules import respaced_indices, ve_sigma
from sdedit.errors import Cancelled
from sdedit.models.base import DiffusionModel

StepHook = Callable[[], None]  # called after each step (progress, cancel check)


@dataclass
class SamplerInput:
    """What a sampler works on: the guide (1,3,H,W) in [-1,1], an optional soft mask (1,1,H,W), noise."""

    guide: torch.Tensor
    mask: torch.Tensor | None
    noise: NoiseSource
    t0: float
    steps: int


def vp_plan(t0: float, steps: int | None, train_steps: int) -> list[int]:
    """The DDPM step indices the VP sampler evaluates, from T0 - 1 down to 0 (respaced if steps < T0)."""
    start = max(1, round(t0 * train_steps)) - 1
    return respaced_indices(start, steps if steps else start + 1)


def sample_vp(model: DiffusionModel, inp: SamplerInput, after_step: StepHook) -> torch.Tensor:
    """DDPM ancestral sampling (paper Alg. 4/5) with 'fixed small' variance on a respaced schedule.

    Between visited indices t > s the step uses beta' = 1 - abar_t / abar_s (exactly beta_t when nothing is
    skipped), mean = (x - beta'/sqrt(1-abar_t) eps) / sqrt(1-beta'), variance (1-abar_s)/(1-abar_t) beta'.
    """
    abar = model.alphas_cumprod
    plan = vp_plan(inp.t0, inp.steps, len(abar))
    batch = len(inp.noise.generators)
    guide = inp.guide.expand(batch, -1, -1, -1)
    a_start = float(abar[plan[0]])
    x = a_start**0.5 * guide + (1 - a_start) ** 0.5 * inp.noise.draw()
    for k, t in enumerate(plan):
        a_t = float(abar[t])
        a_s = float(abar[plan[k + 1]]) if k + 1 < len(plan) else 1.0
        beta = 1.0 - a_t / a_s
        eps = model.eps_vp(x, t)
        x = (x - beta / (1.0 - a_t) ** 0.5 * eps) / (1.0 - beta) ** 0.5
        if a_s < 1.0:
            x = x + ((1.0 - a_s) / (1.0 - a_t) * beta) ** 0.5 * inp.noise.draw()
        if inp.mask is not None:
            kept = a_s**0.5 * guide + (1.0 - a_s) ** 0.5 * inp.noise.draw() if a_s < 1.0 else guide
            x = keep_outside(x, kept, inp.mask)
        after_step()
    return x


def ve_plan(model: DiffusionModel, t0: float, steps: int) -> list[float]:
    """Noise levels sigma(t0 n / N), n = N..0, of the VE sampler on the model's geometric schedule, in the
    engine's [-1, 1] units (twice the [0, 1]-scale sigma an NCSN++ network is trained on; see VEScoreModel)."""
    sigma_min, sigma_max = model.ve_sigma_range()
    return [ve_sigma(t0 * n / steps, sigma_min, sigma_max) for n in range(steps, -1, -1)]


def sample_ve(model: DiffusionModel, inp: SamplerInput, after_step: StepHook) -> torch.Tensor:
    """Reverse VE SDE by Euler-Maruyama (paper Alg. 1-3): x += eps^2 s(x, sigma(t)) + eps z,
    eps^2 = sigma(t)^2 - sigma(t - dt)^2, with the score s = -eps_hat / sigma."""
    sigmas = ve_plan(model, inp.t0, inp.steps)
    batch = len(inp.noise.generators)
    guide = inp.guide.expand(batch, -1, -1, -1)
    x = guide + sigmas[0] * inp.noise.draw()
    for k in range(inp.steps):
        s_t, s_next = sigmas[k], sigmas[k + 1]
        step_var = s_t**2 - s_next**2
        eps_hat = model.eps_ve(x, torch.full((batch,), s_t, device=x.device))
        x = x - step_var / s_t * eps_hat + step_var**0.5 * inp.noise.draw()
        if inp.mask is not None:
            last = k == inp.steps - 1
            kept = guide if last else guide + s_next * inp.noise.draw()
            x = keep_outside(x, kept, inp.mask)
        after_step()
    return x


def ode_plan(model: DiffusionModel, t0: float, steps: int, rho: float = 7.0) -> list[float]:
    """Noise levels of the deterministic samplers: from the VP perturbation level at t0 (the same start as the
    VP sampler) down to the model's smallest trained level with Karras et al.'s rho-spacing, then 0."""
    train_steps = len(model.alphas_cumprod)
    s_max = float(model.table_sigmas[max(1, round(t0 * train_steps)) - 1])
    s_min = min(float(model.table_sigmas[0]), s_max)
    if steps == 1:
        return [s_max, 0.0]
    ramp = [i / (steps - 1) for i in range(steps)]
    levels = [(s_max ** (1 / rho) + r * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho for r in ramp]
    return levels + [0.0]


def _sample_ode(model: DiffusionModel, inp: SamplerInput, after_step: StepHook, second_order: bool) -> torch.Tensor:
    """Probability-flow ODE from the SDEdit perturbation at t0, in VE coordinates (where VP's ODE is the same).

    First order is DDIM with eta = 0: x' = D + sigma' eps. Second order is DPM-Solver++(2M) (Lu et al. 2022),
    a multistep correction of the data prediction D with the previous step's. Kept (mask 0) pixels follow the
    guide along the same initial noise, which is exactly their ODE trajectory.
    """
    own_plan = None if second_order else getattr(model, "ddim_sigmas", None)  # a model's own DDIM timesteps
    sigmas = own_plan(inp.t0, inp.steps) if own_plan else ode_plan(model, inp.t0, inp.steps)
    batch = len(inp.noise.generators)
    guide = inp.guide.expand(batch, -1, -1, -1)
    z0 = inp.noise.draw()
    x = guide + sigmas[0] * z0
    prev_denoised, prev_h = None, None
    for k in range(len(sigmas) - 1):
        s, s_next = sigmas[k], sigmas[k + 1]
        eps = model.eps_ve(x, torch.full((batch,), s, device=x.device))
        denoised = x - s * eps
        if s_next == 0.0:
            x = denoised
        else:
            h = math.log(s / s_next)
            d = denoised
            if second_order and prev_denoised is not None:
                r = prev_h / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * prev_denoised
            x = (s_next / s) * x + (1 - s_next / s) * d
            prev_denoised, prev_h = denoised, h
        if inp.mask is not None:
            x = keep_outside(x, guide + s_next * z0, inp.mask)
        after_step()
    return x


def sample_ode(model: DiffusionModel, inp: SamplerInput, after_step: StepHook) -> torch.Tensor:
    """DPM-Solver++(2M) on the probability-flow ODE: the fast deterministic sampler."""
    return _sample_ode(model, inp, after_step, second_order=True)


def sample_ddim(model: DiffusionModel, inp: SamplerInput, after_step: StepHook) -> torch.Tensor:
    """DDIM (eta = 0): first-order probability-flow ODE steps."""
    return _sample_ode(model, inp, after_step, second_order=False)


SAMPLERS = {"vp": sample_vp, "ve": sample_ve, "ode": sample_ode, "ddim": sample_ddim}
DETERMINISTIC = ("ode", "ddim")

from sdedit.engine.fewstep import FEW_STEP_SAMPLERS, sample_euler_a, sample_lcm  # noqa: E402  (live mode)

SAMPLERS.update({"lcm": sample_lcm, "euler_a": sample_euler_a})
DEFAULT_FAST_STEPS = 20


def check_cancel(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("The edit was cancelled.")
