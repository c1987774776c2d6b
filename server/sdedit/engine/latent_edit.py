"""SDEdit in a VAE's latent space (docs/design.md §4 "Latent models"): Stable Diffusion img2img, done the paper's way.

Encode the guide, run the same samplers on the latent (the model's own beta schedule, epsilon or v), decode,
composite in pixels. The pixel mask becomes a latent mask that covers every latent touching an edited pixel;
the kept latents follow the guide noised to the next level, and the final pixel composite keeps mask-0 pixels
byte-identical.

A working region larger than the checkpoint's native size (512 px for SD 1.x) is edited in two stages like
a pixel model's (engine/native_scale.py, the "hires fix"): at about native_size² pixels at the request's t0,
then decoded, scaled up, encoded again and refined at the working size with t0 min(t0, 0.2).
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from sdedit.engine import native_scale
from sdedit.engine.canvas import EditResult, finish, prepare
from sdedit.engine.noise import NoiseSource
from sdedit.engine.preview import EstimateWatcher, latent_rgb_map, preview_image, preview_interval
from sdedit.engine.samplers import SAMPLERS, SamplerInput, check_cancel
from sdedit.models.facts import facts_of
from sdedit.models.latent import VAE_FACTOR, LatentModel
from sdedit.params import MAX_GUIDANCE, MAX_PROMPT_CHARS, validate_text  # noqa: F401  (re-exported: they lived here)

CPU_BATCH_LATENTS = 4 * 64 * 64  # samples per UNet batch: at most this many latent pixels (x2 with guidance)
GPU_BATCH_LATENTS = 16 * 128 * 128


def latent_mask(mask_work: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) soft pixel mask -> (1, 1, H/8, W/8): each latent takes the largest value of its 8x8 pixels,
    so every latent that touches an edited pixel is edited."""
    return F.max_pool2d(mask_work, VAE_FACTOR, VAE_FACTOR)


def run_latent(model: LatentModel, guide: torch.Tensor, mask_t: torch.Tensor | None, seeds: list[int], *, t0: float,
               sde: str, steps: int, condition, per_batch: int, after_step, on_estimate=None,
               every: int = 1) -> list[torch.Tensor]:
    """The sampling part: guide (1 or len(seeds), 3, H, W) in [-1, 1] -> one decoded (3, H, W) image per seed.

    `on_estimate(rgb)`, when given, gets the RGB estimate (B, 3, h, w) every `every` steps (live preview)."""
    z_guide = torch.cat([model.encode_image(guide[k:k + 1]) for k in range(guide.shape[0])])
    z_mask = None if mask_t is None else latent_mask(mask_t).to(z_guide.device)
    view = model.conditioned(condition)
    if on_estimate is not None:
        view = EstimateWatcher(view, to_rgb=latent_rgb_map(z_guide[:1], guide[:1]))
        after_step = _with_previews(after_step, view, on_estimate, every, steps * -(-len(seeds) // per_batch))
    outputs: list[torch.Tensor] = []
    for i in range(0, len(seeds), per_batch):
        chunk = seeds[i:i + per_batch]
        noise = NoiseSource(chunk, tuple(z_guide.shape[1:]), model.device)
        z_here = z_guide if z_guide.shape[0] == 1 else z_guide[i:i + per_batch]
        z = SAMPLERS[sde](view, SamplerInput(z_here, z_mask, noise, float(t0), steps), after_step)
        for k in range(z.shape[0]):
            outputs.append(model.decode_latent(z[k:k + 1])[0].cpu())
    return outputs


def _with_previews(after_step, watcher: EstimateWatcher, on_estimate, every: int, total: int):
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if done % every == 0 and done < total:
            on_estimate(watcher.estimate(first=1))
        after_step()

    return step


def latent_edit(model: LatentModel, image, mask, *, t0: float, sde: str, steps: int, seeds: list[int],
                prompt: str | None, negative_prompt: str | None, guidance: float | None, progress=None, cancel=None,
                max_batch: int | None = None, preview=None, preview_every: int | None = None,
                grow: bool = False) -> EditResult:
    """The whole-picture latent edit; called by engine.edit for latent models (same inputs, same result type)."""
    started = time.perf_counter()
    params = {"t0": float(t0), "sde": sde, "steps": steps, "samples": len(seeds), "model": model.id,
              "prompt": prompt or "", "negative_prompt": negative_prompt or "",
              "guidance": model.default_guidance if guidance is None else float(guidance)}
    canvas = prepare(image, mask, facts_of(model), float(t0), steps, grow)
    if canvas.plan is None:
        return finish(canvas, [], seeds, steps, 0, started, params)
    size, staged, region = canvas.size, canvas.staged, canvas.region
    if staged is not None:
        params["stages"] = staged.describe(float(t0), steps)
    guide = canvas.guide(fill_transparent=False)
    mask_t = canvas.mask_tensor()
    text = (prompt or "", negative_prompt or "", guidance)

    budget = GPU_BATCH_LATENTS if model.device.type == "cuda" else CPU_BATCH_LATENTS

    def batch_at(wh: tuple[int, int]) -> int:
        return max_batch or max(1, budget // ((wh[0] // VAE_FACTOR) * (wh[1] // VAE_FACTOR)))

    def chunks_at(wh: tuple[int, int]) -> int:
        return -(-len(seeds) // batch_at(wh))

    per_batch = batch_at(size)
    if staged is None:
        steps_per_sample, total = steps, steps * chunks_at(size)
    else:
        steps_per_sample = steps + staged.refine_steps
        total = steps * chunks_at(staged.low_padded) + staged.refine_steps * chunks_at(size)
    done = 0

    def after_step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)
        check_cancel(cancel)

    every = preview_interval(total, preview_every)
    show = None if preview is None else lambda est: preview(preview_image(est, guide, mask_t, region, image.size))
    check_cancel(cancel)
    with torch.inference_mode():
        if staged is None:
            outputs = run_latent(model, guide, mask_t, seeds, t0=t0, sde=sde, steps=steps,
                                 condition=model.encode_text(*text, size), per_batch=per_batch, after_step=after_step,
                                 every=every, on_estimate=show)
        else:
            outputs = _two_stage(model, guide, mask_t, seeds, staged, t0=t0, sde=sde, steps=steps, text=text,
                                 batch_at=batch_at, after_step=after_step, every=every, show=show)
    return finish(canvas, outputs, seeds, steps_per_sample, total, started, params)


def _two_stage(model: LatentModel, guide: torch.Tensor, mask_t: torch.Tensor | None, seeds: list[int],
               staged: native_scale.TwoStagePlan, *, t0: float, sde: str, steps: int, text: tuple, batch_at,
               after_step, every: int, show) -> list[torch.Tensor]:
    """Stage 1 at about native_size² pixels, then each sample decoded, scaled up, put back over the guide where
    the mask keeps it, encoded again and refined at the working size (its own seeds, derived from the sample's)."""
    low_guide = native_scale.to_low(guide, staged)
    low_mask = None if mask_t is None else native_scale.to_low(mask_t, staged).clamp(0.0, 1.0)
    low_w, low_h = staged.low_padded

    def show_low(est: torch.Tensor) -> None:  # the latent-grid estimate -> stage-1 pixels -> the working size
        est = F.interpolate(est.float(), size=(low_h, low_w), mode="bilinear", align_corners=False)
        show(native_scale.to_full(est, staged, guide.shape[-2:]))

    low = run_latent(model, low_guide, low_mask, seeds, t0=t0, sde=sde, steps=steps,
                     condition=model.encode_text(*text, staged.low_padded), per_batch=batch_at(staged.low_padded),
                     after_step=after_step, every=every, on_estimate=None if show is None else show_low)
    x = native_scale.from_low(torch.stack(low).to(guide.device), staged, guide.shape[-2:])
    if mask_t is not None:
        x = mask_t * x + (1.0 - mask_t) * guide
    return run_latent(model, x, mask_t, native_scale.refine_seeds(seeds), t0=staged.refine_t0, sde=sde,
                      steps=staged.refine_steps, condition=model.encode_text(*text, staged.full_size),
                      per_batch=batch_at(staged.full_size), after_step=after_step, every=every, on_estimate=show)
