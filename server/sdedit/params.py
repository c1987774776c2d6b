"""The edit's parameters and their allowed ranges, checked without importing torch.

Bad input must be refused in well under a second: the command line checks everything here (and the files,
and the model id) before the engine, torch or diffusers are imported.
"""
from __future__ import annotations

import math
import re
from typing import Any

from sdedit.errors import InputError

T0_MIN_EXCLUSIVE, T0_MAX = 0.0, 1.0  # t0 in (0, 1]
MAX_SAMPLES = 16
MAX_STEPS = 1000
MAX_SEED = 2**63 - 1
MIN_GUIDANCE, MAX_GUIDANCE = 0.0, 50.0
MAX_PROMPT_CHARS = 2000
SDE_NAMES = ("vp", "ve", "ode", "ddim", "lcm", "euler_a")  # the engine's SAMPLERS, in the same order
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def edit_limits() -> dict:
    """The ranges of an edit's parameters, as the server publishes them (GET /v1/health "limits") so that
    clients read them instead of keeping a copy (shared/sdedit_client/params.py keeps one for older servers)."""
    return {"t0_min_exclusive": T0_MIN_EXCLUSIVE, "t0_max": T0_MAX, "max_samples": MAX_SAMPLES,
            "max_steps": MAX_STEPS, "max_seed": MAX_SEED, "min_guidance": MIN_GUIDANCE, "max_guidance": MAX_GUIDANCE,
            "max_prompt_chars": MAX_PROMPT_CHARS, "samplers": list(SDE_NAMES)}


def validate(t0: float, sde: str | None, steps: int | None, samples: int, seed: int | None) -> None:
    """Range checks with messages that name the parameter and its allowed values."""
    if isinstance(t0, bool) or not isinstance(t0, (int, float)) or not (T0_MIN_EXCLUSIVE < float(t0) <= T0_MAX):
        raise InputError(f"t0 must be a number in (0, 1], got {t0!r}.")
    if sde is not None and sde not in SDE_NAMES:  # None: the model's declared default, known once it is loaded
        raise InputError(f"Unknown SDE '{sde}': choose one of {', '.join(SDE_NAMES)}.")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_STEPS):
        raise InputError(f"steps must be a whole number from 1 to {MAX_STEPS} (0 or none for the model's default), got {steps!r}.")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise InputError(f"samples must be a whole number from 1 to {MAX_SAMPLES}, got {samples!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise InputError(f"seed must be a whole number from 0 to 2^63-1, got {seed!r}.")


def validate_text(model: Any, prompt: str | None, negative_prompt: str | None, guidance: float | None) -> None:
    """Text options only for models that take text (`model`: its facts, or anything with `id` and
    `takes_text`); guidance a finite number in [0, 50]."""
    given = [name for name, v in (("prompt", prompt), ("negative prompt", negative_prompt), ("guidance", guidance))
             if v not in (None, "")]
    if given and not model.takes_text:
        raise InputError(f"The model '{model.id}' takes no text, so {' and '.join(given)} cannot be used; choose a "
                         "Stable Diffusion model (see `sdedit models`) or leave them out.")
    for name, text in (("prompt", prompt), ("negative prompt", negative_prompt)):
        if text is not None and (not isinstance(text, str) or len(text) > MAX_PROMPT_CHARS):
            raise InputError(f"The {name} must be text of at most {MAX_PROMPT_CHARS} characters.")
    if guidance is not None and (isinstance(guidance, bool) or not isinstance(guidance, (int, float))
                                 or not math.isfinite(guidance) or not MIN_GUIDANCE <= guidance <= MAX_GUIDANCE):
        raise InputError(f"guidance must be a number from {MIN_GUIDANCE:g} to {MAX_GUIDANCE:g}, got {guidance!r}.")


def check_device(device: str) -> None:
    """The spelling of a device request (whether CUDA is really there is asked of torch later)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise InputError(f"Unknown device '{device}': use auto, cpu or cuda.")


def check_precision(precision: str | None) -> None:
    if precision is not None and precision not in PRECISIONS:
        raise InputError(f"Unknown precision '{precision}': use one of {', '.join(PRECISIONS)}.")
