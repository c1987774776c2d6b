"""Each model's live-mode defaults: the sampler, steps, guidance and size a re-edit-as-you-paint preview uses
(docs/design.md "Live mode"). Declared like `default_sde`: read from the model's configs, never by loading it.

Where they come from, later entries overriding earlier ones key by key:
- the kind of model: a pixel model edits at most 256 px with `ode` in 3 steps (the embedded model's
  measurement: 3 steps land within 6/255 of its 20-step result at 256 px, 2 steps 14/255, benchmarks/live.py);
  a Stable Diffusion checkpoint `ode` in 8 steps at its native size with its family's guidance;
  a Turbo checkpoint (SD-Turbo, SDXL-Turbo) `euler_a` in 2 steps at 512 px without classifier-free guidance;
  an LCM checkpoint (LCMScheduler, or an LCM-LoRA fused in) `lcm` in 4 steps, guidance 1; a guidance-distilled
  one (a full LCM such as LCM_Dreamshaper_v7, whose UNet has `time_cond_proj_dim`) guidance 8.5, which it takes
  as an embedding in its one call (diffusers' LCM pipelines' default);
- `"live": {"sde", "steps", "guidance", "size"}` in the model's sdedit.json or single-file sidecar JSON.

Guidance follows this server's meaning (1 = the conditional prediction alone, one network call; 0 = the
unconditional one): diffusers' "guidance_scale 0" for Turbo is our 1.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

from sdedit.errors import InputError

PIXEL_LIVE_SIZE = 256
NO_GUIDANCE = 1.0  # one conditional call: what few-step distilled models are trained for
DISTILLED_GUIDANCE = 8.5  # a guidance-distilled LCM's embedded scale (diffusers' LCM pipelines' default)


@dataclass(frozen=True)
class LiveDefaults:
    """What a live preview of this model should ask for (GET /v1/models "live")."""

    sde: str
    steps: int
    size: int  # longest side of the region sent for a live preview, in pixels
    guidance: Optional[float] = None  # text models only

    def as_dict(self) -> dict:
        return asdict(self)


PIXEL = LiveDefaults(sde="ode", steps=3, size=PIXEL_LIVE_SIZE)


def with_overrides(base: LiveDefaults, declared: object, where: str) -> LiveDefaults:
    """`base` with the keys a model's config declares under "live"; a bad value is one sentence."""
    if declared is None:
        return base
    if not isinstance(declared, dict):
        raise InputError(f'{where}: "live" must be an object like {{"sde": "ode", "steps": 3, "size": 256}}.')
    from sdedit.params import SDE_NAMES

    changes: dict = {}
    for key, value in declared.items():
        if key == "sde":
            if value not in SDE_NAMES:
                raise InputError(f'{where}: live "sde" must be one of {", ".join(SDE_NAMES)}, not {value!r}.')
            changes["sde"] = value
        elif key in ("steps", "size"):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= (1000 if key == "steps" else 4096):
                raise InputError(f'{where}: live "{key}" must be a whole number, not {value!r}.')
            changes[key] = value
        elif key == "guidance":
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 50):
                raise InputError(f'{where}: live "guidance" must be a number from 0 to 50, not {value!r}.')
            changes["guidance"] = None if value is None else float(value)
    return replace(base, **changes)


def pixel_live(extra: dict, native_size: Optional[int], where: str) -> LiveDefaults:
    """A pixel model's: at most 256 px (less for a model trained smaller), then its sdedit.json's."""
    size = min(PIXEL_LIVE_SIZE, native_size) if native_size else PIXEL_LIVE_SIZE
    return with_overrides(replace(PIXEL, size=size), extra.get("live"), where)


def few_step_kind(path: Path, scheduler: dict) -> Optional[str]:
    """'turbo', 'lcm' or None, from the scheduler config (LCMScheduler; Euler with trailing timesteps) or,
    for single files that carry no scheduler, the name artists download them under (sd_turbo, lcm-...)."""
    name = scheduler.get("_class_name", "")
    if name == "LCMScheduler":
        return "lcm"
    if scheduler.get("timestep_spacing") == "trailing" and "Euler" in name:
        return "turbo"
    stem = path.stem.lower() if path.is_file() else path.name.lower()
    if "turbo" in stem:
        return "turbo"
    if "lcm" in stem.replace("_", "-").split("-") or stem.startswith("lcm"):
        return "lcm"
    return None


def latent_live(path: Path, resolution: int, guidance: float, scheduler: dict, side: dict) -> LiveDefaults:
    """A Stable Diffusion checkpoint's: by what it was distilled for, then its sidecar's "live"."""
    kind = side.get("few_step") or few_step_kind(path, scheduler)
    if kind == "turbo":
        base = LiveDefaults(sde="euler_a", steps=2, size=min(512, resolution), guidance=NO_GUIDANCE)
    elif kind == "lcm":
        guidance = DISTILLED_GUIDANCE if guidance_distilled(path) else NO_GUIDANCE
        base = LiveDefaults(sde="lcm", steps=4, size=resolution, guidance=guidance)
    else:
        base = LiveDefaults(sde="ode", steps=8, size=resolution, guidance=guidance)
    return with_overrides(base, side.get("live"), str(path))


def guidance_distilled(path: Path) -> bool:
    """Whether a pipeline folder's UNet takes its guidance scale as an embedding (`time_cond_proj_dim`)."""
    config = path / "unet" / "config.json"
    try:
        return path.is_dir() and bool(json.loads(config.read_text()).get("time_cond_proj_dim"))
    except (OSError, ValueError, AttributeError):
        return False


def read_scheduler(path: Path) -> dict:
    """A pipeline folder's scheduler config ({} for a single file or when missing)."""
    config = path / "scheduler" / "scheduler_config.json"
    if not (path.is_dir() and config.is_file()):
        return {}
    try:
        return json.loads(config.read_text())
    except (OSError, ValueError):
        return {}
