"""The edit's parameters and their allowed ranges, checked without importing torch.

Bad input must be refused in well under a second: the command line checks everything here (and the files,
and the model id) before the engine, torch or diffusers are imported.
"""
from __future__ import annotations

import re

from sdedit.errors import InputError

MAX_SAMPLES = 16
MAX_STEPS = 1000
MAX_SEED = 2**63 - 1
SDE_NAMES = ("vp", "ve", "ode", "ddim", "lcm", "euler_a")  # the engine's SAMPLERS, in the same order
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def validate(t0: float, sde: str, steps: int | None, samples: int, seed: int | None) -> None:
    """Range checks with messages that name the parameter and its allowed values."""
    if isinstance(t0, bool) or not isinstance(t0, (int, float)) or not (0.0 < float(t0) <= 1.0):
        raise InputError(f"t0 must be a number in (0, 1], got {t0!r}.")
    if sde not in SDE_NAMES:
        raise InputError(f"Unknown SDE '{sde}': choose one of {', '.join(SDE_NAMES)}.")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_STEPS):
        raise InputError(f"steps must be a whole number from 1 to {MAX_STEPS} (0 or none for the model's default), got {steps!r}.")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise InputError(f"samples must be a whole number from 1 to {MAX_SAMPLES}, got {samples!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise InputError(f"seed must be a whole number from 0 to 2^63-1, got {seed!r}.")


def check_device(device: str) -> None:
    """The spelling of a device request (whether CUDA is really there is asked of torch later)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise InputError(f"Unknown device '{device}': use auto, cpu or cuda.")


def check_precision(precision: str | None) -> None:
    if precision is not None and precision not in PRECISIONS:
        raise InputError(f"Unknown precision '{precision}': use one of {', '.join(PRECISIONS)}.")
