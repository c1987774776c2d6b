"""A labelled grid of pictures for the benchmarks' PNGs: one row per case, a label on the left, a title on top."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def labelled_grid(rows: list[tuple[str, list[np.ndarray]]], title: str, height: int = 160,
                  label_w: int = 150, pad: int = 4) -> Image.Image:
    """Each row's pictures scaled to `height`, side by side after its label."""
    thumbs = [[Image.fromarray(im).resize((max(1, round(im.shape[1] * height / im.shape[0])), height), Image.LANCZOS)
               for im in ims] for _, ims in rows]
    width = label_w + max(sum(t.width + pad for t in ts) for ts in thumbs)
    grid = Image.new("RGB", (width, 18 + len(rows) * (height + pad)), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((label_w, 3), title, fill="black")
    for r, ((label, _), ts) in enumerate(zip(rows, thumbs)):
        y = 18 + r * (height + pad)
        draw.text((4, y + height // 2 - 6), label, fill="black")
        x = label_w
        for t in ts:
            grid.paste(t, (x, y))
            x += t.width + pad
    return grid


def save_labelled_grid(rows: list[tuple[str, list[np.ndarray]]], path: Path, title: str, **kwargs) -> None:
    labelled_grid(rows, title, **kwargs).save(path, optimize=True)
