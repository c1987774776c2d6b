"""Vectorised fractal value noise (1-D and 2-D) for the procedural landscape generator."""
from __future__ import annotations

import numpy as np


def _smooth(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def value_noise_2d(h: int, w: int, cells: float, rng: np.random.Generator, aspect: float = 1.0) -> np.ndarray:
    """Smooth random field in [-1, 1]: `cells` lattice cells across the width (`aspect` stretches y)."""
    cx = max(cells, 1.0)
    cy = max(cells * h / w * aspect, 1.0)
    gh, gw = int(np.ceil(cy)) + 2, int(np.ceil(cx)) + 2
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)
    ys = np.linspace(0, cy, h, endpoint=False, dtype=np.float32) + rng.uniform(0, 1)
    xs = np.linspace(0, cx, w, endpoint=False, dtype=np.float32) + rng.uniform(0, 1)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    fy = _smooth(ys - y0)[:, None]
    fx = _smooth(xs - x0)[None, :]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    top = g00 + (g01 - g00) * fx
    bot = g10 + (g11 - g10) * fx
    return top + (bot - top) * fy


def fbm_2d(h: int, w: int, cells: float, rng: np.random.Generator, octaves: int = 5,
           gain: float = 0.5, aspect: float = 1.0) -> np.ndarray:
    """Fractal Brownian motion: octaves of value noise, roughly in [-1, 1]."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        c = cells * 2**o
        if c > w / 1.5:
            break
        out += amp * value_noise_2d(h, w, c, rng, aspect)
        total += amp
        amp *= gain
    return out / max(total, 1e-6)


def fbm_1d(n: int, cells: float, rng: np.random.Generator, octaves: int = 7, gain: float = 0.5,
           ridged: bool = False) -> np.ndarray:
    """1-D fractal noise (for ridge lines and shore lines), roughly in [-1, 1]."""
    out = np.zeros(n, np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        c = cells * 2**o
        if c > n / 1.5:
            break
        g = rng.uniform(-1, 1, size=int(np.ceil(c)) + 2).astype(np.float32)
        xs = np.linspace(0, c, n, endpoint=False, dtype=np.float32) + rng.uniform(0, 1)
        x0 = np.floor(xs).astype(np.int64)
        f = _smooth(xs - x0)
        v = g[x0] + (g[x0 + 1] - g[x0]) * f
        if ridged:
            v = 1.0 - 2.0 * np.abs(v)
        out += amp * v
        total += amp
        amp *= gain
    return out / max(total, 1e-6)
