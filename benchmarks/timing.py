"""Timing helpers shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import time

import torch


def bare_call_seconds(model, size: tuple[int, int], repeats: int = 5) -> float:
    """Median seconds of one network call (batch 1, DDPM step 400) at working size (width, height)."""
    x = torch.randn(1, 3, size[1], size[0], device=model.device)
    model.eps_vp(x, 400)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.eps_vp(x, 400)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
