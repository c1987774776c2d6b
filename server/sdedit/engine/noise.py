"""Per-sample noise streams: each sample draws from its own seeded generator, so a sample's noise does not
depend on how many other samples share its batch or on the device."""
from __future__ import annotations

import torch


class NoiseSource:
    """Standard normal noise for a batch, one CPU generator per sample."""

    def __init__(self, seeds: list[int], shape: tuple[int, ...], device: torch.device) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.shape = shape
        self.device = device

    def draw(self) -> torch.Tensor:
        noise = torch.stack([torch.randn(self.shape, generator=g) for g in self.generators])
        return noise.to(self.device)
