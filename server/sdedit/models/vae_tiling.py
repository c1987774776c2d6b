"""When a Stable Diffusion VAE encodes or decodes in tiles: only when the picture is too large for one piece.

Tiled encoding and decoding (diffusers' `enable_tiling`) keeps memory bounded on large canvases, but its
pixels differ from the plain VAE's (seams are blended, each tile sees only itself). The tile side diffusers
uses is the threshold too (a picture with both sides within it is done in one piece), so it is set from the
memory the device has: the largest side whose one-piece decode fits a share of it. The rule depends on the
machine, not on the free memory of the moment, so the same seed on the same device gives the same bytes.
"""
from __future__ import annotations

import os

import torch

# Peak memory of SD's VAE decoder per output pixel, float32, 128 base channels (measured on CPU with the
# shipped SD 1.x config: 5.6 kB/px at 256 px, 4.1 kB/px at 384 px); encoding needs about half.
BYTES_PER_PIXEL = 6144
BASE_CHANNELS = 128
MEMORY_SHARE = 0.25  # of the device's total memory, for one VAE pass
SIDE_STEP = 64
FALLBACK_MEMORY = 8 << 30  # when the platform does not say


def device_memory(device: torch.device) -> int:
    """Total memory of the device in bytes (RAM for the CPU)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        try:
            import psutil

            return int(psutil.virtual_memory().total)
        except ImportError:
            return FALLBACK_MEMORY


def one_piece_side(vae, dtype: torch.dtype, memory: int) -> int:
    """The largest side (a multiple of 64 px) of a square the VAE decodes in one piece within its memory share."""
    channels = int(vae.config.block_out_channels[0])
    per_pixel = BYTES_PER_PIXEL * channels / BASE_CHANNELS * torch.finfo(dtype).bits / 32
    side = int((MEMORY_SHARE * memory / per_pixel) ** 0.5)
    return max(SIDE_STEP, side // SIDE_STEP * SIDE_STEP)


def tile_only_above(vae, side: int) -> None:
    """Encode and decode in one piece up to `side` pixels a side; larger pictures in overlapping tiles of it."""
    vae.enable_tiling()
    vae.tile_sample_min_size = side
    vae.tile_latent_min_size = side // 2 ** (len(vae.config.block_out_channels) - 1)


def configure(vae, device: torch.device) -> int:
    """Set the VAE's tiling threshold for this device; returns the one-piece side."""
    side = one_piece_side(vae, vae.dtype, device_memory(device))
    tile_only_above(vae, side)
    return side
