"""Hand-composed stroke paintings (flat colour blocks, as a person blocks in a landscape) for examples/.

`python -m sdedit.synth.guides examples/` writes the bundled demo guides. Shapes are polygons with
slightly wobbly (fractal) outlines so they look brushed rather than geometric.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .noise import fbm_1d

SKY = (110, 160, 220)
SKY_LOW = (170, 200, 235)
MOUNTAIN = (110, 115, 135)
MOUNTAIN_FAR = (150, 160, 185)
SNOW = (235, 238, 245)
WATER = (60, 100, 150)
GRASS = (90, 140, 60)
GRASS_FAR = (130, 160, 90)
TREES = (35, 70, 40)
SAND = (215, 195, 150)


def _edge(w: int, base: float, amp: float, cells: float, seed: int, ridged: bool = False) -> list[tuple]:
    ys = base - amp * fbm_1d(w, cells, np.random.default_rng(seed), ridged=ridged)
    return [(float(x), float(y)) for x, y in zip(range(0, w + 1, 4), ys[::4])] + [(float(w), float(ys[-1]))]


def _below(d: ImageDraw.ImageDraw, w: int, h: int, edge: list[tuple], col: tuple) -> None:
    d.polygon(edge + [(w, h), (0, h)], fill=col)


def _snow(d, ridge: list[tuple], snowline: list[tuple], col: tuple = SNOW) -> None:
    """Snow between the ridge and a wobbly snow line, only where the ridge rises above it."""
    lower = [(x, max(y, sy)) for (x, y), (_, sy) in zip(ridge, snowline)]
    d.polygon(ridge + lower[::-1], fill=col)


def lake(w: int = 256, h: int = 256) -> Image.Image:
    """Mountains with snow over a lake, a far tree line, a grassy shore."""
    img = Image.new("RGB", (w, h), SKY)
    d = ImageDraw.Draw(img)
    d.rectangle([0, int(h * 0.28), w, h], fill=SKY_LOW)
    hz = h * 0.5
    ridge = _edge(w, hz - h * 0.2, h * 0.25, 3, 1, ridged=True)
    _below(d, w, h, ridge, MOUNTAIN)
    _snow(d, ridge, _edge(w, hz - h * 0.25, h * 0.04, 6, 21))
    _below(d, w, h, _edge(w, hz - h * 0.02, h * 0.015, 8, 2), TREES)
    d.rectangle([0, int(hz), w, h], fill=WATER)
    shore = _edge(w, h * 0.8, h * 0.05, 2, 3)
    _below(d, w, h, shore, GRASS)
    return img


def mountains(w: int = 256, h: int = 256) -> Image.Image:
    """Layered ridges over a meadow with a band of trees."""
    img = Image.new("RGB", (w, h), SKY)
    d = ImageDraw.Draw(img)
    d.rectangle([0, int(h * 0.35), w, h], fill=SKY_LOW)
    far = _edge(w, h * 0.38, h * 0.25, 2.5, 4, ridged=True)
    _below(d, w, h, far, MOUNTAIN_FAR)
    _snow(d, far, _edge(w, h * 0.3, h * 0.04, 6, 22))
    _below(d, w, h, _edge(w, h * 0.52, h * 0.1, 2, 5, ridged=True), MOUNTAIN)
    _below(d, w, h, _edge(w, h * 0.6, h * 0.02, 2, 6), GRASS_FAR)
    _below(d, w, h, _edge(w, h * 0.68, h * 0.03, 10, 7), TREES)
    _below(d, w, h, _edge(w, h * 0.76, h * 0.02, 2, 8), GRASS)
    return img


def sunset_sea(w: int = 256, h: int = 256) -> Image.Image:
    """Sunset sky over the sea with a beach in front."""
    img = Image.new("RGB", (w, h), (70, 60, 120))
    d = ImageDraw.Draw(img)
    d.rectangle([0, int(h * 0.2), w, h], fill=(200, 110, 110))
    d.rectangle([0, int(h * 0.38), w, h], fill=(250, 160, 80))
    d.ellipse([w * 0.55, h * 0.4, w * 0.63, h * 0.48], fill=(255, 225, 150))
    _below(d, w, h, _edge(w, h * 0.5, h * 0.02, 3, 9), (100, 70, 90))
    d.rectangle([0, int(h * 0.52), w, h], fill=(60, 50, 90))
    d.rectangle([int(w * 0.55), int(h * 0.52), int(w * 0.63), int(h * 0.75)], fill=(200, 120, 90))
    _below(d, w, h, _edge(w, h * 0.8, h * 0.04, 2, 10), (190, 150, 120))
    return img


def valley(w: int = 512, h: int = 512) -> Image.Image:
    """A 512x512 valley: snowy peaks, forested slopes, a meadow and a river."""
    img = Image.new("RGB", (w, h), SKY)
    d = ImageDraw.Draw(img)
    d.rectangle([0, int(h * 0.3), w, h], fill=SKY_LOW)
    d.ellipse([w * 0.1, h * 0.1, w * 0.3, h * 0.16], fill=(240, 242, 248))
    d.ellipse([w * 0.6, h * 0.06, w * 0.85, h * 0.12], fill=(240, 242, 248))
    peaks = _edge(w, h * 0.36, h * 0.3, 3, 11, ridged=True)
    _below(d, w, h, peaks, MOUNTAIN)
    _snow(d, peaks, _edge(w, h * 0.28, h * 0.05, 6, 23))
    _below(d, w, h, _edge(w, h * 0.55, h * 0.06, 6, 12), TREES)
    _below(d, w, h, _edge(w, h * 0.62, h * 0.02, 2, 13), GRASS)
    d.polygon([(w * 0.46, h * 0.62), (w * 0.5, h * 0.62), (w * 0.62, h), (w * 0.38, h)], fill=WATER)
    return img


EXAMPLES = {"lake.png": lake, "mountains.png": mountains, "sunset_sea.png": sunset_sea, "valley_512.png": valley}


def main(argv: list[str] | None = None) -> None:
    out = Path((argv or sys.argv[1:] or ["examples"])[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, fn in EXAMPLES.items():
        fn().save(out / name, optimize=True)
        print(out / name)


if __name__ == "__main__":
    main()
