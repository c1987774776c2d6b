"""Few-step samplers for live mode: `lcm` (Latent Consistency Models, LCM-LoRA) and `euler_a` (Euler ancestral
on "trailing" timesteps, what SD-Turbo / SDXL-Turbo are distilled for). docs/design.md "Live mode".

Both start SDEdit's way, from the guide noised to about t0, and both take their timesteps the way diffusers'
img2img does with `strength` = t0: the schedule for N = steps / t0 inference steps, of which the last `steps`
are run (so diffusers' rule "num_inference_steps x strength >= 1" is met by construction: `steps` here is
the number of network calls, at least 1). Kept (mask 0) regions follow the guide noised to the level just
reached, as in the SDEdit samplers.

Self-contained on purpose (no import of samplers.py, which imports this module to register the samplers).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from sdedit.engine.masking import keep_outside

if TYPE_CHECKING:
    from sdedit.engine.samplers import SamplerInput
    from sdedit.models.base import DiffusionModel

LCM_ORIGINAL_STEPS = 50  # the distillation schedule LCM checkpoints were trained on (LCMScheduler's default)
LCM_TIMESTEP_SCALING = 10.0
LCM_SIGMA_DATA = 0.5
FEW_STEP_SAMPLERS = ("lcm", "euler_a")
DEFAULT_FEW_STEPS = 4


def _total_steps(t0: float, steps: int) -> int:
    """diffusers' num_inference_steps whose last `steps` start at about t0: steps / t0."""
    return max(int(steps), int(round(steps / float(t0))))


def trailing_timesteps(t0: float, steps: int, train_steps: int = 1000) -> list[int]:
    """The timesteps diffusers visits with timestep_spacing="trailing", num_inference_steps = steps / t0 and
    strength = t0: the last `steps` of round(arange(T, 0, -T/N)) - 1 (the first one is T - 1: Turbo's)."""
    total = _total_steps(t0, steps)
    stamps = np.arange(train_steps, 0, -train_steps / total).round().astype(np.int64) - 1
    return [int(t) for t in stamps[-int(steps):]]


def lcm_timesteps(t0: float, steps: int, train_steps: int = 1000,
                  original_steps: int = LCM_ORIGINAL_STEPS) -> list[int]:
    """LCMScheduler's timesteps for num_inference_steps = steps / t0 (at most the 50 of its distillation
    schedule), the last `steps` of them as img2img with strength t0 runs."""
    total = min(original_steps, _total_steps(t0, steps))
    k = train_steps // original_steps
    origin = (np.arange(1, original_steps + 1) * k - 1)[::-1]
    stamps = origin[np.floor(np.linspace(0, original_steps, num=total, endpoint=False)).astype(np.int64)]
    return [int(t) for t in stamps[-min(int(steps), total):]]


def _lcm_scalings(t: int) -> tuple[float, float]:
    """The consistency model's boundary condition: c_skip -> 1, c_out -> 0 as t -> 0."""
    scaled = t * LCM_TIMESTEP_SCALING
    c_skip = LCM_SIGMA_DATA**2 / (scaled**2 + LCM_SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + LCM_SIGMA_DATA**2) ** 0.5
    return c_skip, c_out


def sample_lcm(model: DiffusionModel, inp: SamplerInput, after_step: Callable[[], None]) -> torch.Tensor:
    """Multistep consistency sampling (Luo et al. 2023; diffusers' LCMScheduler): at each timestep predict the
    clean image, apply the boundary condition, and re-noise it to the next timestep with fresh noise."""
    abar = model.alphas_cumprod
    plan = lcm_timesteps(inp.t0, inp.steps, len(abar))
    batch = len(inp.noise.generators)
    guide = inp.guide.expand(batch, -1, -1, -1)
    a0 = float(abar[plan[0]])
    x = a0**0.5 * guide + (1.0 - a0) ** 0.5 * inp.noise.draw()
    for k, t in enumerate(plan):
        a_t = float(abar[t])
        eps = model.eps_vp(x, t)
        x0 = (x - (1.0 - a_t) ** 0.5 * eps) / a_t**0.5
        c_skip, c_out = _lcm_scalings(t)
        denoised = c_out * x0 + c_skip * x
        if k + 1 < len(plan):
            a_next = float(abar[plan[k + 1]])
            x = a_next**0.5 * denoised + (1.0 - a_next) ** 0.5 * inp.noise.draw()
            if inp.mask is not None:
                x = keep_outside(x, a_next**0.5 * guide + (1.0 - a_next) ** 0.5 * inp.noise.draw(), inp.mask)
        else:
            x = keep_outside(denoised, guide, inp.mask)
        after_step()
    return x


def sample_euler_a(model: DiffusionModel, inp: SamplerInput, after_step: Callable[[], None]) -> torch.Tensor:
    """Euler ancestral steps (Karras et al. 2022; diffusers' EulerAncestralDiscreteScheduler) on trailing
    timesteps, in VE coordinates x = x0 + sigma z: what Turbo checkpoints are distilled for (1-4 steps)."""
    abar = model.alphas_cumprod
    plan = trailing_timesteps(inp.t0, inp.steps, len(abar))
    sigmas = [float(((1.0 - abar[t]) / abar[t]) ** 0.5) for t in plan] + [0.0]
    batch = len(inp.noise.generators)
    guide = inp.guide.expand(batch, -1, -1, -1)
    x = guide + sigmas[0] * inp.noise.draw()
    for k, t in enumerate(plan):
        s_from, s_to = sigmas[k], sigmas[k + 1]
        eps = model.eps_vp(x / (s_from**2 + 1.0) ** 0.5, t)  # the network sees the VP-scaled input
        denoised = x - s_from * eps
        s_up = (s_to**2 * (s_from**2 - s_to**2) / s_from**2) ** 0.5
        s_down = (s_to**2 - s_up**2) ** 0.5
        x = x + (x - denoised) / s_from * (s_down - s_from)
        x = x + s_up * inp.noise.draw()  # drawn at every step, as diffusers does (zero-scaled at the last)
        if inp.mask is not None:
            kept = guide if s_to == 0.0 else guide + s_to * inp.noise.draw()
            x = keep_outside(x, kept, inp.mask)
        after_step()
    return x
