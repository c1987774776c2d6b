"""Pre-rendered scene datasets (uint8 .npy) and random training crops from them."""
from __future__ import annotations

import argparse
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch

from ..synth.scenes import HELD_OUT_SEED_BASE, render_scene  # noqa: F401  (HELD_OUT_SEED_BASE re-exported)



def _render(args: tuple[int, int]) -> np.ndarray:
    return render_scene(*args)


def generate(out: Path, start: int, count: int, size: int = 256, workers: int = 1) -> None:
    """Render scenes with seeds start..start+count-1 into `out` (N, size, size, 3) uint8.

    workers > 1 renders in that many processes (a GPU machine's idle cores make the data in a minute).
    """
    arr = np.lib.format.open_memmap(str(out) + ".part", mode="w+", dtype=np.uint8, shape=(count, size, size, 3))
    t = time.time()
    jobs = [(start + i, size) for i in range(count)]
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    scenes = pool.imap(_render, jobs, chunksize=8) if pool else map(_render, jobs)
    for i, im in enumerate(scenes):
        arr[i] = im
        if (i + 1) % 200 == 0:
            print(f"{out.name}: {i + 1}/{count} scenes, {time.time() - t:.0f}s", flush=True)
    if pool:
        pool.close()
        pool.join()
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


class DeviceCropSampler:
    """CropSampler's crops made on the training device from scenes held there (uint8), in a few kernels.

    On a GPU the per-crop numpy loop of CropSampler would starve the network; this gathers all crops of a
    batch with one indexing operation. Same distribution: random scene, 25 % whole-scene views at half
    scale, random position, random horizontal flip.
    """

    def __init__(self, scenes: np.ndarray, crop: int, device: torch.device, seed: int = 0):
        self.scenes = torch.from_numpy(np.ascontiguousarray(scenes)).to(device)  # (N, H, W, 3) uint8
        self.crop, self.device = crop, device
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def _rand(self, n: int) -> torch.Tensor:
        return torch.rand(n, device=self.device, generator=self.gen)

    def batch(self, n: int) -> torch.Tensor:
        n_sc, h, w, _ = self.scenes.shape
        c = self.crop
        idx = (self._rand(n) * n_sc).long().clamp(max=n_sc - 1)
        half = (self._rand(n) < 0.25) if h >= 2 * c else torch.zeros(n, dtype=torch.bool, device=self.device)
        span_h = torch.where(half, h // 2, h) - c + 1  # valid top-left positions in the (possibly halved) scene
        span_w = torch.where(half, w // 2, w) - c + 1
        y = (self._rand(n) * span_h).long()
        x = (self._rand(n) * span_w).long()
        ar = torch.arange(c, device=self.device)
        step = torch.where(half, 2, 1)
        rows = (y[:, None] + ar[None]) * step[:, None]  # (n, c) source rows (top-left pixel of a 2x2 block)
        cols = (x[:, None] + ar[None]) * step[:, None]
        flip = self._rand(n) < 0.5
        cols = torch.where(flip[:, None], cols.flip(1), cols)
        sc = self.scenes[idx]  # (n, H, W, 3)
        b = torch.arange(n, device=self.device)[:, None, None]
        r, q = rows[:, :, None], cols[:, None, :]
        # half-scale views average the 2x2 block; full-scale ones read the same pixel four times
        d = (step - 1)[:, None, None]
        acc = (sc[b, r, q].float() + sc[b, r + d, q].float() + sc[b, r, q + d].float()
               + sc[b, r + d, q + d].float()) / 4
        acc = torch.floor(acc)  # as CropSampler's uint8 cast of the mean
        return acc.permute(0, 3, 1, 2).contiguous() / 127.5 - 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description="Render procedural landscape scenes to a .npy shard.")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=1, help="render in this many processes")
    a = ap.parse_args()
    if a.start + a.count > HELD_OUT_SEED_BASE:
        ap.error(f"training seeds must stay below {HELD_OUT_SEED_BASE}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    generate(a.out, a.start, a.count, a.size, a.workers)


if __name__ == "__main__":
    main()
