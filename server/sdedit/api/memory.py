"""The memory one job may need, refused up front above a per-device limit (the work budget's twin).

A 50 KB flat PNG of 4096x4096 px is a cheap request and an expensive job: the detail pass runs the network at
the full canvas size, and on CPU it took the server from 1.1 to 4.9 GB (the model card measured 6.2 GB peak at
4096x4096). The estimate is the largest network pass (pixels x samples x bytes per pixel of the network's
activations, measured for the embedded model at that size) plus the canvas arrays the engine keeps at full
size. The limit is SDEDIT_MAX_JOB_MEMORY_MB when set, else a share of the device's memory: half the machine's
RAM on CPU, 90 % of the GPU's on CUDA.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import InputError

LIMIT_ENV = "SDEDIT_MAX_JOB_MEMORY_MB"
# Peak bytes per working pixel and sample of one network call, fp32 (model card: 6.2 GB at 4096x4096 for
# the embedded pixel model, ~1.1 GB of it the process itself). Latent models work on 1/64 of the pixels but
# their UNet is ~100x wider; their VAE is tiled (bounded), so their canvas cost is the arrays below.
NETWORK_BYTES_PER_PIXEL = {"pixel": 300, "latent": 40}
CANVAS_BYTES_PER_PIXEL = 4 + 3 * 4 * 3  # the decoded RGBA input plus about three float RGB copies
CPU_SHARE, CUDA_SHARE = 0.5, 0.9


@dataclass(frozen=True)
class MemoryNeed:
    bytes: int
    largest_pass: Tuple[int, int]  # the network's largest input, in pixels (width, height)


def estimate(kind: str, canvas: Tuple[int, int], largest_pass: Tuple[int, int], samples: int) -> MemoryNeed:
    """The job's peak memory beyond the loaded model, in bytes."""
    per_pixel = NETWORK_BYTES_PER_PIXEL.get(kind, NETWORK_BYTES_PER_PIXEL["pixel"])
    network = largest_pass[0] * largest_pass[1] * max(1, samples) * per_pixel
    return MemoryNeed(network + canvas[0] * canvas[1] * CANVAS_BYTES_PER_PIXEL, largest_pass)


def device_limit(device_type: str) -> Tuple[int, str]:
    """(bytes one job may use, how the limit was set in words)."""
    raw = os.environ.get(LIMIT_ENV, "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise InputError(f"{LIMIT_ENV} must be a positive number of MiB, not {raw!r}.")
        return int(value * 2**20), LIMIT_ENV
    if device_type == "cuda":
        total = _cuda_total()
        if total:
            return int(total * CUDA_SHARE), f"{CUDA_SHARE:.0%} of the GPU's memory"
    total = _ram_total()
    return int(total * CPU_SHARE), f"{CPU_SHARE:.0%} of this machine's memory, on {device_type}"


def check(need: MemoryNeed, device_type: str) -> None:
    allowed, why = device_limit(device_type)
    if need.bytes > allowed:
        w, h = need.largest_pass
        raise InputError(
            f"This edit needs about {_gb(need.bytes)} of memory (the network runs at {w}x{h} px), over this "
            f"server's limit of {_gb(allowed)} per job on {device_type} ({why}; {LIMIT_ENV} sets it); use a "
            "smaller image or selection, or fewer samples.")


def check_job(info, work, canvas: Tuple[int, int], samples: int, device_type: str) -> None:
    """The hook budget.check_request calls: `work` is its Work (the engine's working size once the model was
    loaded, the largest pass; before that the canvas capped at the detail pass's largest side)."""
    from ..engine.native_scale import DETAIL_MAX_SIDE

    kind = getattr(info, "kind", "pixel")
    largest = (work.width, work.height)
    if kind == "pixel" and not getattr(info, "resolution", None):
        scale = min(1.0, DETAIL_MAX_SIDE / max(canvas))
        largest = max(largest, (round(canvas[0] * scale), round(canvas[1] * scale)), key=lambda s: s[0] * s[1])
    check(estimate(kind, canvas, largest, samples), device_type)


def _gb(size: int) -> str:
    return f"{size / 2**30:.1f} GB"


def _ram_total() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30  # unknown (Windows): assume a modest machine


def _cuda_total() -> Optional[int]:
    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)
    except Exception:  # noqa: BLE001 - no usable GPU: the CPU rule applies
        return None
    return None
