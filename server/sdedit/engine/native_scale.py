"""Canvases larger than the model's native size: edit at native scale, then refine at full size (docs/design.md §4).

A network run far above the size it was trained at keeps its own pixel scale: on a 1024 px canvas a model
trained on 256 px scenes paints 256 px-scene structures, so it repeats small features and drifts in
colour. Two stages fix that (the "hires fix" of SD front-ends):

1. the working region, scaled down to about native_size² pixels, is edited at the request's t0 (layout and
   colour come from here, at the scale the model knows);
2. that result, scaled back up and put back over the guide where the mask keeps it, is edited again at full
   size with a small t0 (the network only adds full-resolution detail to an already coherent picture); of
   that edit only the part above SPLIT_SIGMA is kept, the rest is stage 1's (colour does not drift);
3. above the model's max_side (1024 px) stage 2 runs at max_side, the result is scaled up, and a last pass
   at the canvas' own size (t0 0.1, 4 steps, split the same way) puts back the fine detail.

Both stages use the request's sampler and mask (kept pixels follow the guide in both), report progress on
one bar and honour cancel between any two steps. Stage 2 draws its own noise from seeds derived from the
sample's seed, so the same seed gives the same bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from sdedit import imaging

#: Regions up to this factor above native size (longer side) are edited in one stage at full size.
THRESHOLD = 1.25
#: Stage 2's t0 (capped by the request's): enough noise to re-grow 1-2 px detail on the upscaled stage-1
#: picture, little enough that the network at full size cannot re-lay it out (benchmarks/canvas.py).
REFINE_T0 = 0.2
#: The same for pixel models that take any size (the embedded model): at 0.2 its refine at 4x native scale
#: turned flat stroke areas into crisp vertical streaks (composed paintings, 1024x768, t0 0.5: streak measure
#: 1.50, detail 11.3); at 0.1 the streak measure is 1.05, detail 6.5 (target >= 5), blur-RMSE the same 10.7,
#: and it takes 4 steps instead of 8 (benchmarks/streaks.py, docs/model_card.md).
PIXEL_REFINE_T0 = 0.1
MIN_REFINE_STEPS = 4
#: Each refine stage enlarges the picture at most this much (longer side): on a 2048 px canvas the 256 px
#: stage-1 picture is refined at half size first, then at full size; one 8x jump lets the network at full
#: size repaint the blurry upscale with its own small structures and colours (benchmarks/canvas.py).
MAX_STEP_UP = 4.0
#: Canvases larger than the refine stages may run at (the model's max_side) were scaled up from there, which
#: halves their 1-2 px detail at 2048 px. A last pass at the full size with this little noise re-grows it
#: without moving colour or layout (benchmarks/canvas.py); up to DETAIL_MAX_SIDE, above which the picture is
#: scaled up as before (a 4096 px network call takes minutes on a CPU).
DETAIL_T0 = 0.1
DETAIL_STEPS = 4
DETAIL_MAX_SIDE = 4096
#: Refine stages and the detail pass keep only what they add above this scale (Gaussian σ in px): run at 4-8x
#: its native size the network also shifts whole regions' colours (1024x768, t0 0.5: blur-RMSE 8.7 -> 11.9,
#: stroke-region colour error 9.0 -> 15.2; a 2048 px sunset lake went redder in the detail pass: 11.2 -> 16.7),
#: so colour and layout come from the stage before (the one at native scale) and detail from the stage itself
#: (benchmarks/canvas.py; the 2-px detail measure keeps 99 % of its value at σ 4).
SPLIT_SIGMA = 4.0
#: Refine stages and the detail pass run this deterministic sampler whatever stage 1 used. Their few large
#: stochastic steps (vp, ve) re-inject fresh noise at 4-8x the model's native scale, and the network turns it
#: into its training scenes' texture at the wrong scale: vertical streaks (composed paintings, 1024x768,
#: t0 0.5, vp: streak measure 1.19 on the refine's input, 1.62 on its output; benchmarks/streaks.py).
#: None: the request's sampler everywhere (as before).
REFINE_SDE: str | None = "ode"
STOCHASTIC = ("vp", "ve")
_SEED_MIX = 0x9E3779B97F4A7C15  # stage 2's seeds: a fixed odd multiplier mixes the sample's seed


@dataclass(frozen=True)
class TwoStagePlan:
    """Sizes and schedules of the two stages for one working region."""

    low_size: tuple[int, int]  # stage 1: the picture's size at native scale (width, height), before padding
    low_pad: int  # stage 1: replicated edge added on every side (the network's border falls outside)
    low_padded: tuple[int, int]  # stage 1: what the network sees (multiples of the model's size multiple)
    full_size: tuple[int, int]  # the last stage: the working size
    refine_t0: float
    refine_steps: int  # per refine stage
    middle: tuple[tuple[int, int], ...] = ()  # refine stages between stage 1 and full size (smallest first)
    detail_size: tuple[int, int] | None = None  # a last low-noise pass at this size (the canvas' own, > full_size)
    detail_t0: float = DETAIL_T0
    detail_steps: int = DETAIL_STEPS

    @property
    def working_size(self) -> tuple[int, int]:
        """The size of the edit's result (and of its guide): the detail pass's, else the last refine's."""
        return self.detail_size or self.full_size

    @property
    def refine_sizes(self) -> tuple[tuple[int, int], ...]:
        return (*self.middle, self.full_size)

    @property
    def extra_steps(self) -> int:
        """Steps per sample the refine stages add to stage 1's."""
        return self.refine_steps * len(self.refine_sizes) + (self.detail_steps if self.detail_size else 0)

    def describe(self, t0: float, steps: int) -> list[dict]:
        """Every stage's network input size, t0 and steps (EditResult.params["stages"])."""
        return [{"size": list(self.low_padded), "t0": float(t0), "steps": steps}] + [
            {"size": list(size), "t0": self.refine_t0, "steps": self.refine_steps} for size in self.refine_sizes] + (
            [{"size": list(self.detail_size), "t0": self.detail_t0, "steps": self.detail_steps}]
            if self.detail_size else [])


def plan(native_size: int | None, full_size: tuple[int, int], multiple: int, edge_margin: int, t0: float,
         steps: int, square: bool = False, detail_size: tuple[int, int] | None = None,
         refine_t0: float = REFINE_T0) -> TwoStagePlan | None:
    """The two-stage plan for a region edited at `full_size`, or None when one stage at full size is right.

    edge_margin: the padding `full_size` includes on every side (stage 1 adds the same at its own scale).

    square: the model only takes native_size² (a fixed-size checkpoint): stage 1 is that square.

    detail_size: the canvas' own working size when it is larger than `full_size` (the largest a refine stage
    runs at): a last pass there at t0 min(t0, DETAIL_T0) re-grows the detail the upscale loses.
    """
    width, height = full_size
    # the picture without the margin; a canvas a few pixels thin, scaled to max_side, can have less picture
    # than margin left at the working size: count it as one pixel
    inner_w, inner_h = max(1, width - 2 * edge_margin), max(1, height - 2 * edge_margin)
    if not native_size or max(inner_w, inner_h) <= native_size * THRESHOLD:
        return None
    if square:
        low, pad, padded = (native_size, native_size), 0, (native_size, native_size)
    else:
        scale = native_size / math.sqrt(inner_w * inner_h)  # about native_size² pixels, the region's aspect
        if scale * THRESHOLD > 1.0:  # a thin strip holds fewer pixels than native_size²: stage 1 would not be
            return None              # smaller than the picture itself, so one stage at full size is the edit
        pad = edge_margin
        # the picture keeps the region's aspect (to a pixel); the network's multiple is reached by replicating
        # the edge on the right and bottom. (Rounding the picture itself to the multiple squeezed one axis by
        # up to 8 %: scaled back up, stage 1's structures came out stretched vertically, the streak measure
        # of benchmarks/streaks.py rose from 0.87 to 1.07 at 1024x768, t0 0.5.)
        low = tuple(max(8, int(round(v * scale))) for v in (width, height))
        padded = tuple(max(multiple, int(math.ceil((v + 2 * pad) / multiple)) * multiple) for v in low)
    refine_t0 = min(float(t0), refine_t0)
    # the share of the steps that range would get at the paper's t0 0.5 (or at t0, when larger): 8 of 20
    refine_steps = max(MIN_REFINE_STEPS, math.ceil(steps * refine_t0 / max(float(t0), 0.5)))
    middle = []
    size = (width, height)
    while max(size) / max(padded) > MAX_STEP_UP:
        size = tuple(max(multiple, _round_to(v / 2, multiple)) for v in size)
        middle.insert(0, size)
    # a canvas just over max_side (1024 px plus its edge margin) is scaled up a little: no pass for that
    detail = detail_size if detail_size and max(detail_size) > THRESHOLD * max(width, height) else None
    return TwoStagePlan(low, pad, padded, (width, height), refine_t0, refine_steps, tuple(middle), detail,
                        min(float(t0), DETAIL_T0), DETAIL_STEPS)


def working_plan(region_size: tuple[int, int], *, native_size: int | None, resolution: int | None, multiple: int,
                 max_side: int, edge_margin: int, t0: float, steps: int,
                 detail: bool = True) -> tuple[tuple[int, int], TwoStagePlan | None]:
    """(the size the edit's result is computed at, the stage plan or None for one stage) for a working region
    of `region_size` (edge margin included): one rule for the engine and for the server's job budget.

    detail: canvases above max_side get the last full-size pass, and refine stages run at PIXEL_REFINE_T0
    (pixel models; not latent ones)."""
    region = imaging.Region(0, 0, *region_size)
    size = imaging.working_size(region, resolution, multiple, max_side)
    canvas = None if resolution or not detail else imaging.working_size(region, None, multiple, DETAIL_MAX_SIDE)
    staged = plan(native_size, imaging.working_size(region, None, multiple, refine_max_side(resolution, max_side)),
                  multiple, 0 if resolution else edge_margin, t0, steps, square=resolution is not None,
                  detail_size=canvas, refine_t0=PIXEL_REFINE_T0 if detail and not resolution else REFINE_T0)
    if staged is None and canvas is not None and canvas[0] * canvas[1] <= max_side ** 2:
        size = canvas  # a long thin strip (40x4096): no more pixels than max_side², edited at its own size
    return (size if staged is None else staged.working_size), staged


def refine_max_side(resolution: int | None, max_side: int) -> int:
    """The longest side a refine stage runs at. A fixed-size checkpoint's attention layers grow with the
    square of the pixel count (a 32 px CIFAR-10 network attends at 16x16; refined at 1024 px that is 512x512
    tokens), so it is refined at most MAX_STEP_UP times its size and the result is scaled up from there."""
    return max_side if not resolution else min(max_side, int(MAX_STEP_UP * resolution))


def _round_to(value: float, multiple: int) -> int:
    return int(round(value / multiple)) * multiple


def refine_seeds(seeds: list[int], stage: int = 1) -> list[int]:
    """A refine stage's noise seeds, one per sample, derived from the sample's own seed (same seed, same
    bytes) and the stage's number."""
    return [(int(s) * _SEED_MIX + stage) % 2**63 for s in seeds]


Stage = Callable[[torch.Tensor, "torch.Tensor | None", list[int], float, int], torch.Tensor]
"""Run one SDEdit stage: (guide (1 or B,3,H,W), mask (1,1,H,W) or None, seeds, t0, steps) -> (B,3,H,W)."""


def refine_sde(sde: str) -> str:
    """The sampler of the refine stages and the detail pass for a request with sampler `sde`."""
    return REFINE_SDE if REFINE_SDE and sde in STOCHASTIC else sde


def run_two_stage(stage: Stage, guide: torch.Tensor, mask: torch.Tensor | None, seeds: list[int], t0: float,
                  steps: int, p: TwoStagePlan, refine: Stage | None = None) -> torch.Tensor:
    """Stage 1 at native scale, then the refine stages up to full size; `stage` runs the sampler (and
    reports its steps), `refine` (default: `stage`) the refine stages' and the detail pass's."""
    refine = refine or stage
    low_guide = to_low(guide, p)
    low_mask = None if mask is None else to_low(mask, p).clamp(0.0, 1.0)
    x = stage(low_guide, low_mask, seeds, t0, steps)
    first_w, first_h = p.refine_sizes[0]
    x = from_low(x, p, (first_h, first_w))
    last = [(p.detail_size, p.detail_t0, p.detail_steps)] if p.detail_size else []
    for k, ((w, h), t, n) in enumerate([(s, p.refine_t0, p.refine_steps) for s in p.refine_sizes] + last, start=1):
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(-1.0, 1.0)
        here_guide, here_mask = _resized(guide, (w, h)), None if mask is None else _resized(mask, (w, h))
        refined_guide = x if mask is None else here_mask * x + (1.0 - here_mask) * here_guide
        x = refine(refined_guide, here_mask, refine_seeds(seeds, k), t, n)
        x = (gaussian_blur(refined_guide, SPLIT_SIGMA) + x - gaussian_blur(x, SPLIT_SIGMA)).clamp(-1.0, 1.0)
    return x


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B,C,H,W) with replicated edges (the low band of a refine stage's split)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    c = x.shape[1]
    y = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    y = F.conv2d(y, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(y, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _resized(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A full-size guide (1,3,H,W) or mask (1,1,H,W) at a refine stage's size (the mask stays in [0, 1])."""
    w, h = size
    if x.shape[-2:] == (h, w):
        return x
    low, high = (0.0, 1.0) if x.shape[1] == 1 else (-1.0, 1.0)
    return F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp(low, high)


def to_low(x: torch.Tensor, p: TwoStagePlan) -> torch.Tensor:
    """Full-size (1,C,H,W) -> stage-1 size with Lanczos-quality antialiasing, then the replicated edge."""
    w, h = p.low_size
    low = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    if p.low_pad:
        low = F.pad(low, (p.low_pad,) * 4, mode="replicate")
    pw, ph = p.low_padded
    return F.pad(low, (0, pw - low.shape[-1], 0, ph - low.shape[-2]), mode="replicate")


def to_full(x: torch.Tensor, p: TwoStagePlan, full_hw: torch.Size) -> torch.Tensor:
    """Any stage's picture (B,3,h,w) at full size, for previews."""
    if tuple(x.shape[-2:]) == (p.low_padded[1], p.low_padded[0]):
        return from_low(x, p, full_hw)
    return F.interpolate(x, size=tuple(full_hw), mode="bicubic", align_corners=False).clamp(-1.0, 1.0)


def from_low(x: torch.Tensor, p: TwoStagePlan, full_hw) -> torch.Tensor:
    """Stage-1 picture (B,3,h,w) -> the inner picture scaled to full_hw (bicubic)."""
    w, h = p.low_size
    inner = x[..., p.low_pad:p.low_pad + h, p.low_pad:p.low_pad + w]
    return F.interpolate(inner, size=tuple(full_hw), mode="bicubic", align_corners=False).clamp(-1.0, 1.0)
