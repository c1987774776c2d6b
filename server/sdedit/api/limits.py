"""Server limits in one place: request size, pixels, queue length, how long results are kept.

Defaults suit a painter's machine; each can be tuned with an environment variable (SDEDIT_MAX_BODY_MB,
SDEDIT_MAX_PIXELS, SDEDIT_MAX_QUEUE, SDEDIT_RESULT_TTL_S, SDEDIT_MAX_RESULTS, SDEDIT_MAX_RESULT_MB, SDEDIT_HEADER_TIMEOUT_S,
SDEDIT_BODY_TIMEOUT_S, SDEDIT_MIN_BODY_RATE, SDEDIT_MAX_CONNECTIONS, SDEDIT_MAX_LARGE_BODIES, SDEDIT_MAX_WORK, SDEDIT_MAX_JOB_S).
Loaded models are cached (LRU) by sdedit.models.load_model itself.
The ranges of t0, steps, samples and seed are the engine's, enforced by the request schema (schemas.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from ..errors import InputError


@dataclass(frozen=True)
class Limits:
    """What one server accepts and keeps; frozen so every part sees the same numbers."""

    max_body_bytes: int = 96 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    max_queue: int = 32
    result_ttl_s: float = 900.0
    max_results: int = 64
    max_result_bytes: int = 1024 * 1024 * 1024
    header_timeout_s: float = 10.0  # a request's headers must be complete this long after its first byte
    body_timeout_s: float = 30.0  # at most this long between two chunks of a body the server waits for
    min_body_rate: float = 4096.0  # bytes a second a body must average over each body_timeout_s window
    max_connections: int = 128  # open connections at once (lowered to fit the open-file limit)
    max_large_bodies: int = 2  # bodies over 8 MiB (or of unknown size) read and decoded at once
    max_work: Optional[int] = None  # pixel-steps one job may ask for; None = max_job_s on this device
    max_job_s: float = 3600.0

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Limits":
        """Defaults overridden by SDEDIT_* environment variables; a bad value is an InputError."""
        env = os.environ if env is None else env
        base = cls()
        return cls(
            max_body_bytes=int(_number(env, "SDEDIT_MAX_BODY_MB", base.max_body_bytes / 2**20) * 2**20),
            max_pixels=int(_number(env, "SDEDIT_MAX_PIXELS", base.max_pixels)),
            max_queue=int(_number(env, "SDEDIT_MAX_QUEUE", base.max_queue)),
            result_ttl_s=_number(env, "SDEDIT_RESULT_TTL_S", base.result_ttl_s),
            max_results=int(_number(env, "SDEDIT_MAX_RESULTS", base.max_results)),
            max_result_bytes=int(_number(env, "SDEDIT_MAX_RESULT_MB", base.max_result_bytes / 2**20) * 2**20),
            header_timeout_s=_number(env, "SDEDIT_HEADER_TIMEOUT_S", base.header_timeout_s),
            body_timeout_s=_number(env, "SDEDIT_BODY_TIMEOUT_S", base.body_timeout_s),
            min_body_rate=_number(env, "SDEDIT_MIN_BODY_RATE", base.min_body_rate),
            max_connections=int(_number(env, "SDEDIT_MAX_CONNECTIONS", base.max_connections)),
            max_large_bodies=int(_number(env, "SDEDIT_MAX_LARGE_BODIES", base.max_large_bodies)),
            max_work=int(_number(env, "SDEDIT_MAX_WORK", 1)) if env.get("SDEDIT_MAX_WORK", "").strip() else None,
            max_job_s=_number(env, "SDEDIT_MAX_JOB_S", base.max_job_s),
        )


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise InputError(f"{name} must be a positive number, not {raw!r}.")
    return value
