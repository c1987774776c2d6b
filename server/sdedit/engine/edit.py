"""SDEdit on a whole picture: validate, cut the working region, run K samples in batches, paste back."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from PIL import Image

from sdedit import imaging
from sdedit.engine import native_scale, seam
from sdedit.engine.latent_edit import latent_edit, validate_text
from sdedit.engine.noise import NoiseSource
from sdedit.engine.preview import EstimateWatcher, Preview, preview_image, preview_interval
from sdedit.engine.cancel_inside import cancel_inside
from sdedit.engine.fewstep import DEFAULT_FEW_STEPS, FEW_STEP_SAMPLERS
from sdedit.engine.samplers import DEFAULT_FAST_STEPS, DETERMINISTIC, SAMPLERS, SamplerInput, check_cancel, vp_plan
from sdedit.errors import InputError
from sdedit.models.base import DiffusionModel
from sdedit.params import MAX_SAMPLES, MAX_SEED, MAX_STEPS, validate  # noqa: F401  (re-exported)

CPU_BATCH_PIXELS = 4 * 256 * 256  # samples per batch on the CPU: at most this many pixels
GPU_BATCH_PIXELS = 32 * 256 * 256

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


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


def resolve_steps(model: DiffusionModel, sde: str, t0: float, steps: int | None) -> int:
    """Sampler steps for this edit: the request's, else the model's default, else the paper's (t0 x 1000).

    VP cannot take more steps than the DDPM steps below t0.
    """
    chosen = steps or model.default_steps.get(sde)
    paper = max(1, round(t0 * len(model.alphas_cumprod)))
    if sde == "vp":
        return len(vp_plan(t0, chosen, len(model.alphas_cumprod)))
    if sde in DETERMINISTIC:  # not in the paper: few steps is their point
        return int(chosen or model.default_steps.get("ode") or DEFAULT_FAST_STEPS)
    if sde in FEW_STEP_SAMPLERS:  # live mode's distilled-model samplers: a handful of network calls
        return int(chosen or DEFAULT_FEW_STEPS)
    return int(chosen) if chosen else paper


def make_seeds(seed: int | None, samples: int) -> list[int]:
    base = secrets.randbelow(2**31) if seed is None else seed
    return [(base + k) % (MAX_SEED + 1) for k in range(samples)]


def edit(model: DiffusionModel, image: Image.Image, mask: Image.Image | None = None, **options) -> EditResult:
    """Run SDEdit (see `_edit` for the options); a cancel is honoured inside long network calls too
    (engine/cancel_inside.py), not only between steps."""
    with cancel_inside(model, options.get("cancel")):
        return _edit(model, image, mask, **options)


def _edit(
    model: DiffusionModel,
    image: Image.Image,
    mask: Image.Image | None = None,
    *,
    t0: float = 0.5,
    sde: str | None = None,
    steps: int | None = None,
    samples: int = 1,
    seed: int | None = None,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    max_batch: int | None = None,
    preview: Preview | None = None,
    preview_every: int | None = None,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    guidance: float | None = None,
) -> EditResult:
    """Run SDEdit: K realistic versions of `image` guided by it, edited only where `mask` is non-zero.

    `preview`, when given, is called every `preview_every` steps (default: about ten times per job) with a
    small uint8 RGB picture of the current clean estimate (engine/preview.py).
    prompt / negative_prompt / guidance: text-conditioned (latent) models only (docs/design.md §3).
    sde None: the model's declared default sampler (model.default_sde)."""
    sde = sde or model.default_sde
    validate(t0, sde, steps, samples, seed)
    validate_text(model, prompt, negative_prompt, guidance)
    if getattr(model, "kind", "pixel") == "latent":
        return latent_edit(model, image, mask, t0=float(t0), sde=sde, seeds=make_seeds(seed, samples),
                           steps=resolve_steps(model, sde, float(t0), steps or None), prompt=prompt,
                           negative_prompt=negative_prompt, guidance=guidance, progress=progress, cancel=cancel,
                           max_batch=max_batch, preview=preview, preview_every=preview_every)
    started = time.perf_counter()
    rgb, alpha = imaging.split_alpha(image)
    mask_u8 = seam.edit_mask(imaging.mask_array(mask, image.size), float(t0))  # a hard selection grown
    seeds = make_seeds(seed, samples)
    n_steps = resolve_steps(model, sde, float(t0), steps or None)
    params = {"t0": float(t0), "sde": sde, "steps": n_steps, "samples": samples, "model": model.id}
    region = imaging.working_region(mask_u8, square=model.resolution is not None)
    if region is None:  # empty mask: nothing to edit
        images = [imaging.rebuild_image(rgb, alpha, image) for _ in seeds]
        return EditResult(images, seeds, n_steps, 0, time.perf_counter() - started, params=params,
                          mask=None if mask is None else mask_u8)

    if model.resolution is None and model.edge_margin:
        region = imaging.add_margin(region, model.edge_margin)  # the network's border stays off the picture
    if model.resolution is None and max(region.width, region.height) <= model.max_side:
        region = imaging.grow_to_multiple(region, model.size_multiple, image.size)  # pad, don't resample
    size, two_stage = native_scale.working_plan(
        (region.width, region.height), native_size=model.native_size, resolution=model.resolution,
        multiple=model.size_multiple, max_side=model.max_side, edge_margin=model.edge_margin, t0=float(t0),
        steps=n_steps)
    if two_stage is not None:  # stage 1 runs at native scale inside run_two_stage
        params["stages"] = two_stage.describe(float(t0), n_steps)
    crop = imaging.crop_padded(rgb, region)
    if alpha is not None:  # the hidden colour of transparent pixels is not paint: don't let it bleed in
        crop = imaging.fill_transparent(crop, imaging.crop_padded(alpha, region))
    guide = imaging.to_tensor(imaging.resize_array(crop, size)).to(model.device)
    mask_work = imaging.resize_array(imaging.crop_padded(mask_u8, region), size)
    mask_t = None if mask_u8.min() == 255 else imaging.mask_tensor(mask_work).to(model.device)

    per_batch = max_batch or _auto_batch(model.device, size)
    chunks = [seeds[i:i + per_batch] for i in range(0, len(seeds), per_batch)]
    steps_per_sample = n_steps + (two_stage.extra_steps if two_stage else 0)
    total = steps_per_sample * len(chunks)
    done = 0
    watched = EstimateWatcher(model) if preview is not None else model
    every = preview_interval(total, preview_every)

    def after_step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)
        if preview is not None and done % every == 0 and done < total:
            estimate = watched.estimate(first=1)
            if estimate.shape[-2:] != guide.shape[-2:]:  # during stage 1 of a two-stage edit
                estimate = native_scale.to_full(estimate, two_stage, guide.shape[-2:])
            preview(preview_image(estimate, guide, mask_t, region, image.size))
        check_cancel(cancel)

    check_cancel(cancel)
    outputs: list[torch.Tensor] = []
    sampler = SAMPLERS[sde]

    def stage(g: torch.Tensor, m: torch.Tensor | None, chunk: list[int], t: float, k: int,
              run=sampler) -> torch.Tensor:
        noise = NoiseSource(chunk, tuple(g.shape[1:]), model.device)
        return run(watched, SamplerInput(g, m, noise, t, k), after_step)

    def refine(g: torch.Tensor, m: torch.Tensor | None, chunk: list[int], t: float, k: int) -> torch.Tensor:
        return stage(g, m, chunk, t, k, SAMPLERS[native_scale.refine_sde(sde)])

    with torch.inference_mode():
        for chunk in chunks:
            if two_stage is None:
                x = stage(guide, mask_t, chunk, float(t0), n_steps)
            else:
                x = native_scale.run_two_stage(stage, guide, mask_t, chunk, float(t0), n_steps, two_stage, refine)
            outputs.extend(x.float().cpu())

    images = [_paste_back(out, rgb, alpha, mask_u8, region, image) for out in outputs]
    return EditResult(images, seeds, steps_per_sample, steps_per_sample * len(chunks), time.perf_counter() - started,
                      size, region, params, None if mask is None else mask_u8)


def _auto_batch(device: torch.device, size: tuple[int, int]) -> int:
    budget = GPU_BATCH_PIXELS if device.type == "cuda" else CPU_BATCH_PIXELS
    return max(1, budget // (size[0] * size[1]))


def _paste_back(out: torch.Tensor, rgb: np.ndarray, alpha: np.ndarray | None, mask_u8: np.ndarray,
                region: imaging.Region, like: Image.Image) -> Image.Image:
    """Model output at working size -> region size -> full canvas, blended by the mask (exact where 0;
    a hard selection's edge feathered and colour-matched inside it, engine/seam.py)."""
    edited = imaging.resize_float(imaging.from_tensor(out), (region.width, region.height))
    canvas = rgb.astype(np.float32)
    h, w = rgb.shape[:2]
    x0, y0 = max(0, region.x0), max(0, region.y0)
    x1, y1 = min(w, region.x1), min(h, region.y1)
    canvas[y0:y1, x0:x1] = edited[y0 - region.y0:y1 - region.y0, x0 - region.x0:x1 - region.x0]
    canvas, blend_mask = seam.blend(rgb, canvas, mask_u8)  # a hard selection's edge blends in (inside it)
    out = imaging.composite(rgb, canvas, blend_mask)
    if alpha is not None:  # fully transparent pixels come back exactly as they were (colour unseen)
        out = np.where((alpha == 0)[..., None], rgb, out)
    return imaging.rebuild_image(out, alpha, like)
