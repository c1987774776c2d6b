"""Live previews: the sampler's current clean estimate x̂₀, small, every few steps.

The samplers stay untouched: `EstimateWatcher` stands in for the model and remembers the last network
call, from which x̂₀ follows in closed form (VP: (x − √(1−ᾱ)·ε̂)/√ᾱ; VE and the ODE samplers: x − σ·ε̂).
It is computed only when a preview is due, so a job without a preview callback pays nothing.
In a latent model's space the estimate is a latent: `latent_rgb_map` fits, once per job, a linear map from
latent channels to RGB on the guide and its own encoding, so a preview never runs the VAE decoder.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from sdedit import imaging

PREVIEW_MAX_SIDE = 256
PREVIEWS_PER_JOB = 10  # about this many previews per job: every ceil(steps / 10) steps

#: Called with a uint8 (h, w, 3) RGB array, at most PREVIEW_MAX_SIDE a side.
Preview = Callable[[np.ndarray], None]


def preview_interval(total_steps: int, every: int | None = None) -> int:
    """Steps between previews: `every` when given, else about PREVIEWS_PER_JOB previews per job."""
    if every:
        return max(1, int(every))
    return max(1, math.ceil(total_steps / PREVIEWS_PER_JOB))


class EstimateWatcher:
    """The model, as the samplers see it, plus the clean estimate of its last call."""

    def __init__(self, model: Any, to_rgb: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self._model = model
        self._to_rgb = to_rgb
        self._last: tuple | None = None

    def __getattr__(self, name: str) -> Any:  # everything but the two network views is the model's own
        return getattr(self._model, name)

    def eps_vp(self, x: torch.Tensor, step: int) -> torch.Tensor:
        eps = self._model.eps_vp(x, step)
        self._last = ("vp", x, eps, float(self._model.alphas_cumprod[step]))
        return eps

    def eps_ve(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        eps = self._model.eps_ve(x, sigma)
        self._last = ("ve", x, eps, sigma)
        return eps

    def estimate(self, first: int | None = None) -> torch.Tensor | None:
        """x̂₀ at the last network call, (B, 3, h, w) in about [-1, 1] (only the `first` samples of the batch
        when given: a preview needs one); None before any call."""
        if self._last is None:
            return None
        kind, x, eps, level = self._last
        if first is not None:
            x, eps = x[:first], eps[:first]
            level = level if kind == "vp" else level[:first]
        if kind == "vp":
            x0 = (x - (1.0 - level) ** 0.5 * eps) / level**0.5
        else:
            x0 = x - level.to(x.device, x.dtype).view(-1, 1, 1, 1) * eps
        return self._to_rgb(x0) if self._to_rgb is not None else x0


def latent_rgb_map(latent: torch.Tensor, rgb: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A least-squares affine map latent (B, C, h, w) -> RGB (B, 3, h, w), fitted on the guide's own latent
    (1, C, h, w) and the guide (1, 3, H, W) shrunk to the latent grid. Good enough to watch an edit take
    shape; the decoder would cost as much as several sampler steps."""
    channels = latent.shape[1]
    target = F.interpolate(rgb.float().cpu(), size=tuple(latent.shape[-2:]), mode="area")
    inputs = latent[0].float().cpu().reshape(channels, -1).T
    design = torch.cat([inputs, torch.ones(inputs.shape[0], 1)], dim=1)
    weights = torch.linalg.lstsq(design, target[0].reshape(3, -1).T).solution  # (C + 1, 3)

    def to_rgb(x0: torch.Tensor) -> torch.Tensor:
        w = weights.to(x0.device, torch.float32)
        return torch.einsum("bchw,cd->bdhw", x0.float(), w[:channels]) + w[channels].view(1, 3, 1, 1)

    return to_rgb


def preview_image(x0: torch.Tensor, guide: torch.Tensor, mask: torch.Tensor | None, region: imaging.Region,
                  image_size: tuple[int, int], max_side: int = PREVIEW_MAX_SIDE) -> np.ndarray:
    """The first sample's estimate as the painter will see it: kept pixels from the guide, the padding
    outside the picture cut off, shrunk to at most `max_side` a side; uint8 (h, w, 3)."""
    est = x0[:1].float()
    if est.shape[-2:] != guide.shape[-2:]:  # a latent model's estimate: on the latent grid
        est = F.interpolate(est, size=tuple(guide.shape[-2:]), mode="bilinear", align_corners=False)
    if mask is not None:
        est = mask.to(est.device) * est + (1.0 - mask.to(est.device)) * guide.to(est.device)
    height, width = est.shape[-2:]
    sx, sy = width / region.width, height / region.height
    x_lo, x_hi = max(0, region.x0) - region.x0, min(image_size[0], region.x1) - region.x0
    y_lo, y_hi = max(0, region.y0) - region.y0, min(image_size[1], region.y1) - region.y0
    est = est[..., round(y_lo * sy):max(round(y_lo * sy) + 1, round(y_hi * sy)),
              round(x_lo * sx):max(round(x_lo * sx) + 1, round(x_hi * sx))]
    height, width = est.shape[-2:]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        est = F.interpolate(est, size=size, mode="bilinear", antialias=True, align_corners=False)
    rgb = ((est[0].clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return rgb.permute(1, 2, 0).cpu().numpy()
