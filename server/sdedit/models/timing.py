"""Timing one network call of a loaded model: what the server's job budget calibrates with, what start-up
compilation warms, and what the benchmarks measure, written once.

A call is timed with the device synchronised before and after (CUDA runs asynchronously), after a first
untimed call (allocations, kernel choice, compilation).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from sdedit.models.facts import facts_of

LATENT_FACTOR = 8  # a latent model's network sees 1/8 the side in 4 channels (models/latent.py VAE_FACTOR)


@dataclass(frozen=True)
class CallTiming:
    """Seconds of one network call: the first (warm-up) and the median of the timed ones."""

    first: float
    median: float
    times: tuple[float, ...]


def network_input(model, width: int, height: int, batch: int = 1, random: bool = False) -> torch.Tensor:
    """What the network takes for a width x height working size: pixels (B, 3, H, W), or for a latent model
    its latent (B, 4, H/8, W/8)."""
    if facts_of(model).kind == "latent":
        shape = (batch, 4, max(1, height // LATENT_FACTOR), max(1, width // LATENT_FACTOR))
    else:
        shape = (batch, 3, height, width)
    make = torch.randn if random else torch.zeros
    return make(*shape, device=model.device)


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_call(model, size: tuple[int, int], *, batch: int = 1, repeats: int = 5, step: int = 400,
              warmup: int = 1, random: bool = True, x: torch.Tensor | None = None) -> CallTiming:
    """Time model.eps_vp at working size (width, height): `warmup` untimed calls (the first one timed as
    `first`), then `repeats` timed ones."""
    x = network_input(model, *size, batch=batch, random=random) if x is None else x
    with torch.inference_mode():
        sync(model.device)
        started = time.perf_counter()
        model.eps_vp(x, step)
        sync(model.device)
        first = time.perf_counter() - started
        for _ in range(max(0, warmup - 1)):
            model.eps_vp(x, step)
        times = []
        for _ in range(repeats):
            sync(model.device)
            started = time.perf_counter()
            model.eps_vp(x, step)
            sync(model.device)
            times.append(time.perf_counter() - started)
    return CallTiming(first, statistics.median(times) if times else first, tuple(times))


def warm_call(model, size: tuple[int, int], step: int = 500) -> None:
    """One untimed call at working size (width, height): compilation happens now, not in a job."""
    with torch.inference_mode():
        model.eps_vp(network_input(model, *size), step)
