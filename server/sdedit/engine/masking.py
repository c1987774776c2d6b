"""The masked-editing step shared by every sampler: outside the mask, the sample follows the kept guide.

Mask 1 = edit (docs/design.md §4): after each step the kept region is replaced by the guide noised to the level
just reached, so the edit and its surroundings stay at the same noise level until the last step.
"""
from __future__ import annotations

import torch


def keep_outside(x: torch.Tensor, kept: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """x where the mask is 1, `kept` where it is 0, blended where it is soft; x itself without a mask."""
    return x if mask is None else mask * x + (1.0 - mask) * kept
