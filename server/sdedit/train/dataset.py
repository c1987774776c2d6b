"""Pre-rendered scene datasets (uint8 .npy) and random training crops from them."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from .scenes import render_scene

HELD_OUT_SEED_BASE = 1_000_000  # evaluation scenes use seeds from here on; training uses 0 .. < this


def generate(out: Path, start: int, count: int, size: int = 256) -> None:
    """Render scenes with seeds start..start+count-1 into `out` (N, size, size, 3) uint8."""
    arr = np.lib.format.open_memmap(str(out) + ".part", mode="w+", dtype=np.uint8, shape=(count, size, size, 3))
    t = time.time()
    for i in range(count):
        arr[i] = render_scene(start + i, size)
        if (i + 1) % 200 == 0:
            print(f"{out.name}: {i + 1}/{count} scenes, {time.time() - t:.0f}s", flush=True)
    arr.flush()
    del arr
    Path(str(out) + ".part").rename(out)


def load_scenes(folder: Path) -> np.ndarray:
    """All finished scenes_*.npy shards in `folder`, concatenated."""
    files = sorted(Path(folder).glob("scenes_*.npy"))
    if not files:
        raise FileNotFoundError(f"no scenes_*.npy in {folder}; render them first (python -m sdedit.train.dataset)")
    return np.concatenate([np.load(f) for f in files])


class CropSampler:
    """Random crops (with random flips and an occasional 2x downscale of the whole scene) as [-1,1] tensors."""

    def __init__(self, scenes: np.ndarray, crop: int, rng: np.random.Generator):
        self.scenes, self.crop, self.rng = scenes, crop, rng

    def batch(self, n: int) -> torch.Tensor:
        n_sc, h, w, _ = self.scenes.shape
        c = self.crop
        out = np.empty((n, c, c, 3), np.uint8)
        idx = self.rng.integers(0, n_sc, n)
        for k, i in enumerate(idx):
            im = self.scenes[i]
            if h >= 2 * c and self.rng.random() < 0.25:  # whole-scene view at half scale
                im = im.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3)).astype(np.uint8)
            hh, ww = im.shape[:2]
            y = self.rng.integers(0, hh - c + 1)
            x = self.rng.integers(0, ww - c + 1)
            patch = im[y:y + c, x:x + c]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            out[k] = patch
        t = torch.from_numpy(out).permute(0, 3, 1, 2).float()
        return t / 127.5 - 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description="Render procedural landscape scenes to a .npy shard.")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args()
    if a.start + a.count > HELD_OUT_SEED_BASE:
        ap.error(f"training seeds must stay below {HELD_OUT_SEED_BASE}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    generate(a.out, a.start, a.count, a.size)


if __name__ == "__main__":
    main()
