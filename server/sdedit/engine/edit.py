"""SDEdit on a whole picture: validate, then the pixel pipeline here or the latent one (engine/latent_edit.py);
both prepare the canvas and paste the result back with engine/canvas.py."""
from __future__ import annotations

import secrets
import time
from typing import Callable

import torch
from PIL import Image

from sdedit.engine import native_scale
from sdedit.engine.canvas import EditResult, finish, prepare
from sdedit.engine.latent_edit import latent_edit
from sdedit.engine.noise import NoiseSource
from sdedit.engine.cancel_inside import cancel_inside
from sdedit.engine.fewstep import DEFAULT_FEW_STEPS, FEW_STEP_SAMPLERS
from sdedit.engine.preview import EstimateWatcher, Preview, preview_image, preview_interval
from sdedit.engine.samplers import DEFAULT_FAST_STEPS, DETERMINISTIC, SAMPLERS, SamplerInput, check_cancel, vp_plan
from sdedit.models.base import DiffusionModel
from sdedit.models.facts import ModelFacts, facts_of
from sdedit.params import MAX_SAMPLES, MAX_SEED, MAX_STEPS, validate, validate_text  # noqa: F401  (re-exported)

__all__ = ["EditResult", "edit", "make_seeds", "resolve_steps"]

CPU_BATCH_PIXELS = 4 * 256 * 256  # samples per batch on the CPU: at most this many pixels
GPU_BATCH_PIXELS = 32 * 256 * 256

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


def resolve_steps(model: DiffusionModel | ModelFacts, sde: str, t0: float, steps: int | None) -> int:
    """Sampler steps for this edit: the request's, else the model's default, else the paper's (t0 x 1000).

    VP cannot take more steps than the DDPM steps below t0.
    """
    facts = facts_of(model)
    chosen = steps or facts.default_steps.get(sde)
    paper = max(1, round(t0 * facts.schedule_length))
    if sde == "vp":
        return len(vp_plan(t0, chosen, facts.schedule_length))
    if sde in DETERMINISTIC:  # not in the paper: few steps is their point
        return int(chosen or facts.default_steps.get("ode") or DEFAULT_FAST_STEPS)
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
    grow: bool = False,
) -> EditResult:
    """Run SDEdit: K realistic versions of `image` guided by it, edited only where `mask` is non-zero.

    grow: a hard selection is first grown and feathered outward (engine/seam.edit_mask), so that the edit
    fades into its surroundings; the result's `mask` is then the grown one, and pixels beyond it are kept.

    `preview`, when given, is called every `preview_every` steps (default: about ten times per job) with a
    small uint8 RGB picture of the current clean estimate (engine/preview.py).
    prompt / negative_prompt / guidance: text-conditioned (latent) models only (docs/design.md §3).
    sde None: the model's declared default sampler (its facts' default_sde, models/facts.py)."""
    facts = facts_of(model)
    sde = sde or facts.default_sde
    validate(t0, sde, steps, samples, seed)
    validate_text(facts, prompt, negative_prompt, guidance)
    seeds = make_seeds(seed, samples)
    n_steps = resolve_steps(facts, sde, float(t0), steps or None)
    if facts.kind == "latent":
        return latent_edit(model, image, mask, t0=float(t0), sde=sde, seeds=seeds, steps=n_steps, prompt=prompt,
                           negative_prompt=negative_prompt, guidance=guidance, progress=progress, cancel=cancel,
                           max_batch=max_batch, preview=preview, preview_every=preview_every, grow=grow)
    return pixel_edit(model, image, mask, t0=float(t0), sde=sde, seeds=seeds, steps=n_steps, progress=progress,
                      cancel=cancel, max_batch=max_batch, preview=preview, preview_every=preview_every, grow=grow)


def pixel_edit(model: DiffusionModel, image: Image.Image, mask: Image.Image | None, *, t0: float, sde: str,
               steps: int, seeds: list[int], progress: Progress | None = None, cancel: CancelCheck | None = None,
               max_batch: int | None = None, preview: Preview | None = None,
               preview_every: int | None = None, grow: bool = False) -> EditResult:
    """The whole-picture edit of a pixel-space model (checked parameters, resolved steps)."""
    started = time.perf_counter()
    params = {"t0": t0, "sde": sde, "steps": steps, "samples": len(seeds), "model": model.id}
    canvas = prepare(image, mask, facts_of(model), t0, steps, grow)
    if canvas.plan is None:  # empty mask: nothing to edit
        return finish(canvas, [], seeds, steps, 0, started, params)
    size, two_stage, region = canvas.size, canvas.staged, canvas.region
    if two_stage is not None:  # stage 1 runs at native scale inside run_two_stage
        params["stages"] = two_stage.describe(t0, steps)
    guide = canvas.guide().to(model.device)
    mask_t = canvas.mask_tensor()
    mask_t = None if mask_t is None else mask_t.to(model.device)

    per_batch = max_batch or _auto_batch(model.device, size)
    chunks = [seeds[i:i + per_batch] for i in range(0, len(seeds), per_batch)]
    steps_per_sample = canvas.plan.steps_per_sample(steps)
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
                x = stage(guide, mask_t, chunk, t0, steps)
            else:
                x = native_scale.run_two_stage(stage, guide, mask_t, chunk, t0, steps, two_stage, refine)
            outputs.extend(x.float().cpu())
    return finish(canvas, outputs, seeds, steps_per_sample, total, started, params)


def _auto_batch(device: torch.device, size: tuple[int, int]) -> int:
    budget = GPU_BATCH_PIXELS if device.type == "cuda" else CPU_BATCH_PIXELS
    return max(1, budget // (size[0] * size[1]))
