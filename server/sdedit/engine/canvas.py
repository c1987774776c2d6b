"""The edit's prepare step and its end, shared by the pixel and the latent pipelines and the job budget.

Prepare: split the alpha, read the mask, choose the working region (the mask's box plus context; the model's
edge margin; grown to its size multiple), and the size and stages it is edited at (engine/native_scale.py).
End: the model's output scaled back to the region and pasted over the canvas by the mask (engine/seam.py).
"At what size will my canvas be edited, and with how many steps?" is answered here, from the model's
declared facts (models/facts.py), for the engine and for the server's work estimate alike.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from sdedit import imaging
from sdedit.engine import native_scale, seam
from sdedit.models.facts import ModelFacts

if TYPE_CHECKING:
    import torch


@dataclass
class EditResult:
    """K edited images (input's size and mode), their seeds, and what it cost."""

    images: list[Image.Image]
    seeds: list[int]
    steps: int  # sampler steps per sample
    evaluations: int  # network calls made (one call evaluates a whole batch)
    seconds: float
    working_size: tuple[int, int] | None = None
    region: imaging.Region | None = None
    params: dict = field(default_factory=dict)
    mask: np.ndarray | None = None  # the mask the edit used (uint8, 255 = edit; a hard selection grown), if given


@dataclass(frozen=True)
class Plan:
    """Where and how a region is edited: the region (edge margin and padding included), the size the network
    output is computed at, and the stages (None: one stage at that size)."""

    region: imaging.Region
    size: tuple[int, int]
    staged: native_scale.TwoStagePlan | None

    def steps_per_sample(self, steps: int) -> int:
        """All stages' sampler steps for one sample, stage 1 running `steps`."""
        return steps + (self.staged.extra_steps if self.staged else 0)


def fit_region(box: imaging.Region, facts: ModelFacts, image_size: tuple[int, int]) -> imaging.Region:
    """The region the network sees for a box of the canvas: for a model of any size, the edge margin around it
    (the network's border falls outside the picture) and, when no larger than max_side, grown to the size
    multiple (padding, not resampling). A fixed-size model's box is used as it is (made square already)."""
    if facts.resolution is not None:
        return box
    if facts.edge_margin:
        box = imaging.add_margin(box, facts.edge_margin)
    if max(box.width, box.height) <= facts.max_side:
        box = imaging.grow_to_multiple(box, facts.size_multiple, image_size)
    return box


def plan_region(region: imaging.Region, facts: ModelFacts, t0: float, steps: int) -> Plan:
    """The working size and stages of a fitted region (native_scale.working_plan on the model's facts)."""
    size, staged = native_scale.working_plan(
        (region.width, region.height), native_size=facts.native_size, resolution=facts.resolution,
        multiple=facts.size_multiple, max_side=facts.max_side, edge_margin=facts.edge_margin, t0=float(t0),
        steps=steps, detail=facts.detail_pass)
    return Plan(region, size, staged)


def plan_canvas(facts: ModelFacts, width: int, height: int, t0: float, steps: int) -> Plan:
    """The plan for editing a whole width x height canvas (no selection): what the job budget estimates.
    Only the region's size matters here, not where it lies."""
    box = imaging.Region(0, 0, width, height)
    if facts.resolution is not None:  # made square, as working_region makes it for fixed-size models
        box = imaging.Region(0, 0, max(width, height), max(width, height))
    return plan_region(fit_region(box, facts, (width, height)), facts, t0, steps)


@dataclass
class Canvas:
    """The picture as the engine edits it: colour, alpha and mask arrays, and the plan (None: empty mask)."""

    image: Image.Image
    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None  # (H, W) uint8, None for opaque modes
    mask: np.ndarray  # (H, W) uint8, 255 = edit (a hard selection grown by its transition band, seam.py)
    plan: Plan | None
    mask_given: bool = False  # the request had a mask (the result reports the one used)

    @property
    def region(self) -> imaging.Region | None:
        return None if self.plan is None else self.plan.region

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self.plan is None else self.plan.size

    @property
    def staged(self) -> native_scale.TwoStagePlan | None:
        return None if self.plan is None else self.plan.staged

    @property
    def whole(self) -> bool:
        """Nothing kept: the mask is 255 everywhere (no mask tensor is needed)."""
        return bool(self.mask.min() == 255)

    def guide_array(self, fill_transparent: bool = True) -> np.ndarray:
        """The region's pixels at the working size, uint8 (h, w, 3). fill_transparent: the hidden colour of
        transparent pixels is not paint, so it is replaced by its neighbours' (engine/imaging.py)."""
        crop = imaging.crop_padded(self.rgb, self.region)
        if fill_transparent and self.alpha is not None:
            crop = imaging.fill_transparent(crop, imaging.crop_padded(self.alpha, self.region))
        return imaging.resize_array(crop, self.size)

    def guide(self, fill_transparent: bool = True) -> "torch.Tensor":
        """(1, 3, h, w) in [-1, 1] on the CPU."""
        return imaging.to_tensor(self.guide_array(fill_transparent))

    def mask_tensor(self) -> "torch.Tensor | None":
        """(1, 1, h, w) in [0, 1] on the CPU at the working size; None when the whole picture is edited."""
        if self.whole:
            return None
        return imaging.mask_tensor(imaging.resize_array(imaging.crop_padded(self.mask, self.region), self.size))

    def unchanged(self, seeds: list[int]) -> list[Image.Image]:
        """The input again, once per seed (an empty mask: nothing to edit)."""
        return [imaging.rebuild_image(self.rgb, self.alpha, self.image) for _ in seeds]

    def paste_back(self, out: "torch.Tensor") -> Image.Image:
        """Model output (3, h, w) at working size -> region size -> full canvas, blended by the mask (exact
        where 0; a hard selection's edge feathered and colour-matched inside it, engine/seam.py)."""
        region, rgb, alpha = self.region, self.rgb, self.alpha
        edited = imaging.resize_float(imaging.from_tensor(out), (region.width, region.height))
        canvas = rgb.astype(np.float32)
        h, w = rgb.shape[:2]
        x0, y0 = max(0, region.x0), max(0, region.y0)
        x1, y1 = min(w, region.x1), min(h, region.y1)
        canvas[y0:y1, x0:x1] = edited[y0 - region.y0:y1 - region.y0, x0 - region.x0:x1 - region.x0]
        canvas, blend_mask = seam.blend(rgb, canvas, self.mask)  # a hard selection's edge blends in (inside it)
        composed = imaging.composite(rgb, canvas, blend_mask)
        if alpha is not None:  # fully transparent pixels come back exactly as they were (colour unseen)
            composed = np.where((alpha == 0)[..., None], rgb, composed)
        return imaging.rebuild_image(composed, alpha, self.image)


def prepare(image: Image.Image, mask: Image.Image | None, facts: ModelFacts, t0: float, steps: int,
            grow: bool = False) -> Canvas:
    """Split the picture, read the mask and plan the edit (plan None when the mask is empty).

    grow: a hard selection is grown and feathered outward (engine/seam.py), as the editor plugins ask for;
    without it the mask is the contract's (docs/design.md §3): black pixels come back byte for byte."""
    rgb, alpha = imaging.split_alpha(image)
    mask_u8 = imaging.mask_array(mask, image.size)
    if grow:
        mask_u8 = seam.edit_mask(mask_u8, float(t0))
    box = imaging.working_region(mask_u8, square=facts.resolution is not None)
    plan = None if box is None else plan_region(fit_region(box, facts, image.size), facts, t0, steps)
    return Canvas(image, rgb, alpha, mask_u8, plan, mask_given=mask is not None)


def finish(canvas: Canvas, outputs: list, seeds: list[int], steps: int, evaluations: int, started: float,
           params: dict) -> EditResult:
    """The result: each output pasted back (the input unchanged when nothing was edited)."""
    used = canvas.mask if canvas.mask_given else None
    if canvas.plan is None:
        return EditResult(canvas.unchanged(seeds), seeds, steps, 0, time.perf_counter() - started, params=params,
                          mask=used)
    images = [canvas.paste_back(out) for out in outputs]
    return EditResult(images, seeds, steps, evaluations, time.perf_counter() - started, canvas.size, canvas.region,
                      params, used)
