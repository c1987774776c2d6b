"""Noise schedules of the two SDEs and the maps between them.

VP (DDPM) works on a discrete table of cumulative alphas; VE (NCSN++) on a continuous sigma(t). Both are
the same family up to a change of variables (docs/design.md §4): x_ve = x_vp / sqrt(abar), sigma = sqrt((1-abar)/abar).
"""
from __future__ import annotations

import math

import torch


def linear_alphas_cumprod(beta_start: float = 1e-4, beta_end: float = 0.02, steps: int = 1000) -> torch.Tensor:
    """DDPM's linear beta schedule as cumulative products abar_i, i = 0..steps-1 (float64)."""
    betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def scaled_linear_alphas_cumprod(beta_start: float, beta_end: float, steps: int) -> torch.Tensor:
    """The 'scaled_linear' schedule of latent diffusion checkpoints (linear in sqrt(beta))."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def cosine_alphas_cumprod(steps: int, s: float = 0.008) -> torch.Tensor:
    """The 'squaredcos_cap_v2' schedule (improved DDPM), betas capped at 0.999."""
    def f(t: float) -> float:
        return math.cos((t / steps + s) / (1 + s) * math.pi / 2) ** 2

    betas = torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(steps)], dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def sigmas_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """VE noise level of each VP step: sigma_i = sqrt((1 - abar_i) / abar_i)."""
    return ((1.0 - alphas_cumprod) / alphas_cumprod).sqrt()


def ve_sigma(t: float, sigma_min: float, sigma_max: float) -> float:
    """Geometric VE schedule sigma(t) = sigma_min (sigma_max / sigma_min)^t, t in [0, 1]."""
    return sigma_min * (sigma_max / sigma_min) ** t


def respaced_indices(start_index: int, steps: int) -> list[int]:
    """Strided subsequence of DDPM steps start_index, ..., 0 with `steps` entries (DDPM respacing).

    Evenly spaced in the index (as improved-DDPM's "respacing"), always containing the first and the last
    step, returned in the order the sampler visits them (descending).
    """
    if steps >= start_index + 1:
        return list(range(start_index, -1, -1))
    raw = torch.linspace(0, start_index, steps, dtype=torch.float64).round().long().tolist()
    return sorted(set(raw), reverse=True)


def timestep_for_sigma(sigma: torch.Tensor, table_sigmas: torch.Tensor) -> torch.Tensor:
    """Fractional DDPM step index whose noise level is sigma (interpolated in log sigma).

    Exact on the table's knots, clamped to its ends; lets a VP network be called at any VE noise level.
    """
    log_table = table_sigmas.log().to(sigma.device)
    log_s = sigma.to(log_table.dtype).log().clamp(log_table[0], log_table[-1])
    hi = torch.searchsorted(log_table, log_s).clamp(1, len(log_table) - 1)
    lo = hi - 1
    frac = (log_s - log_table[lo]) / (log_table[hi] - log_table[lo])
    return lo.to(log_table.dtype) + frac
