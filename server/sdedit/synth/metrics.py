"""Offline quality measures: faithfulness (L2 to the guide) and realism (KID on fixed texture features).

No pretrained network can be downloaded here (so no Inception for FID/KID), so realism uses a fixed,
weight-free representation in the spirit of a wavelet scattering transform: Gabor (Morlet-like) filter
moduli at 4 scales x 6 orientations on luminance, a second modulus layer across scales, and opponent-colour
means/spreads, each log-compressed and pooled globally and over a 2x2 grid. It is sensitive to what a
diffusion prior should fix in a stroke painting: missing fine texture, flat regions, unnatural edges and
colour statistics, while keeping coarse layout (2x2 pooling). KID = unbiased MMD^2 with the cubic
polynomial kernel of Binkowski et al. (2018), averaged over random subsets.
"""
from __future__ import annotations

import math

import numpy as np
import torch

SCALES = 4
ORIENTATIONS = 6


def faithfulness_l2(results: np.ndarray, guides: np.ndarray) -> np.ndarray:
    """Per-image root-mean-square difference on the 0-255 scale (uint8 arrays N,H,W,3 -> N floats)."""
    d = results.astype(np.float64) - guides.astype(np.float64)
    return np.sqrt((d ** 2).reshape(len(d), -1).mean(axis=1))


def _gabor_bank(h: int, w: int) -> torch.Tensor:
    """(SCALES*ORIENTATIONS, h, w) zero-mean Gabor filters defined in the Fourier domain."""
    fy = torch.fft.fftfreq(h).view(-1, 1) * 2 * math.pi
    fx = torch.fft.fftfreq(w).view(1, -1) * 2 * math.pi
    bank = []
    for j in range(SCALES):
        xi = 3 * math.pi / 4 / 2**j
        sigma = 0.4 * xi
        for k in range(ORIENTATIONS):
            th = math.pi * k / ORIENTATIONS
            g = torch.exp(-((fx - xi * math.cos(th)) ** 2 + (fy - xi * math.sin(th)) ** 2) / (2 * sigma**2))
            g[0, 0] = 0.0
            bank.append(g)
    return torch.stack(bank)


def _pool(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C*5): global mean and the 2x2 grid means."""
    g = x.mean(dim=(2, 3))
    q = torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)
    return torch.cat([g, q], dim=1)


@torch.no_grad()
def texture_features(images: np.ndarray, batch: int = 16) -> np.ndarray:
    """Fixed multi-scale texture/colour features of uint8 images (N, H, W, 3) -> (N, D) float64."""
    n, h, w, _ = images.shape
    bank = _gabor_bank(h, w)
    out = []
    for i in range(0, n, batch):
        x = torch.from_numpy(images[i:i + batch]).float().permute(0, 3, 1, 2) / 255.0
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        lum = (r + g + b) / 3
        o1, o2 = r - g, (r + g) / 2 - b
        colour = torch.stack([lum, o1, o2], 1)
        local_mean = torch.nn.functional.avg_pool2d(colour, 9, 1, 4, count_include_pad=False)
        local_dev = (colour - local_mean).abs()
        f_lum = torch.fft.fft2(lum)
        u1 = torch.fft.ifft2(f_lum[:, None] * bank[None]).abs()  # (B, S*O, H, W)
        u1_scale = u1.view(len(x), SCALES, ORIENTATIONS, h, w).mean(2)  # orientation-averaged per scale
        f_u1 = torch.fft.fft2(u1_scale)
        second = []
        for j1 in range(SCALES):
            for j2 in range(j1 + 1, SCALES):
                filt = bank[j2 * ORIENTATIONS:(j2 + 1) * ORIENTATIONS]
                second.append(torch.fft.ifft2(f_u1[:, j1, None] * filt[None]).abs().mean(1))
        u2 = torch.stack(second, 1)
        feats = [_pool(colour), _pool(local_dev), _pool(torch.log(u1 + 1e-3)), _pool(torch.log(u2 + 1e-3))]
        out.append(torch.cat(feats, 1).double().numpy())
    return np.concatenate(out)


def half_scale(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W, 3) downscaled 2x (Lanczos).

    The texture features at full scale are dominated by pixel-scale energy: a 1-pixel blur of real scenes
    costs as much KID as a lot of pixel noise on a flat painting gains (benchmarks/metric_check.py). Features
    of the half-scale images ("KID at half scale") weigh structure and mid-scale texture instead.
    """
    from PIL import Image

    n, h, w, _ = images.shape
    return np.stack([np.asarray(Image.fromarray(im).resize((w // 2, h // 2), Image.LANCZOS)) for im in images])


class RealismKID:
    """KID of image sets against one set of real images, all sharing one feature scaling (real + guides).

    half=True scores the images downscaled 2x (see half_scale). Calling it returns (mean, std) over subsets.
    """

    def __init__(self, real: np.ndarray, guides: np.ndarray, half: bool = False, subset_size: int = 50):
        self.prepare = half_scale if half else (lambda images: images)
        self.f_real = texture_features(self.prepare(real))
        self.ref = np.concatenate([self.f_real, texture_features(self.prepare(guides))])
        self.subset_size = subset_size

    def __call__(self, images: np.ndarray) -> tuple[float, float]:
        return kid(texture_features(self.prepare(images)), self.f_real, subset_size=self.subset_size, ref=self.ref)


def kid(feat_a: np.ndarray, feat_b: np.ndarray, subsets: int = 50, subset_size: int = 50,
        seed: int = 0, ref: np.ndarray | None = None) -> tuple[float, float]:
    """Kernel Inception Distance on given features: mean and std of unbiased MMD^2 over random subsets.

    Features are standardised with the mean/std of `ref` (default: `feat_b`, the real set); pass the same
    `ref` for every comparison so that all KIDs of one table share one kernel scale.
    """
    ref = feat_b if ref is None else ref
    mu, sd = ref.mean(0), ref.std(0)
    sd = np.maximum(sd, 0.05 * np.median(sd) + 1e-8)  # near-constant features must not dominate
    a, b = (feat_a - mu) / sd, (feat_b - mu) / sd
    d = a.shape[1]
    m = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
               - 2 * kxy.mean())
        vals.append(mmd)
    return float(np.mean(vals)), float(np.std(vals))
