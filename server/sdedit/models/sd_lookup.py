"""Whether a path is a Stable Diffusion checkpoint, and its listing: names and configs only, no torch.

Split from sd_loader so that looking up or listing models (the command line's checks before an edit, the
server's model list) never imports torch or diffusers.
"""
from __future__ import annotations

from pathlib import Path

from sdedit.errors import InputError
from sdedit.models.info import ModelInfo
from sdedit.models.live import LiveDefaults, NO_GUIDANCE, few_step_kind, latent_live, read_scheduler  # noqa: F401
from sdedit.models.sd_family import (
    DEFAULT_SDE, SINGLE_FILE_SUFFIXES, Family, family_for_file, family_for_folder, is_sd_folder, prediction_note,
    sidecar, tensor_shapes,
)


def is_sd_checkpoint(path: Path) -> bool:
    """Whether a file is a single-file Stable Diffusion checkpoint (reads names, not tensors)."""
    if path.suffix not in SINGLE_FILE_SUFFIXES or not path.is_file():
        return False
    try:
        return any(k.startswith("model.diffusion_model.") for k in tensor_shapes(path))
    except InputError:
        return False


def is_sd_model(path: Path) -> bool:
    return is_sd_folder(path) if path.is_dir() else is_sd_checkpoint(path)


def family_of(path: Path) -> Family:
    return family_for_folder(path) if path.is_dir() else family_for_file(path)


def describe_family(family: Family) -> str:
    """The family's title, and how its prediction was settled when it was not declared
    ("Stable Diffusion 2.x (512, epsilon); prediction told from its weights")."""
    note = prediction_note(family)
    return f"{family.title}; prediction {note}" if note else family.title


def describe_sd(model_id: str, path: Path) -> ModelInfo:
    """The listing of a checkpoint, from its configs or tensor names only (and a remembered SD 2.x decision)."""
    family = family_of(path)
    side = sidecar(path) if path.is_file() else {}
    description = side.get("description") or describe_family(family)
    live = live_defaults_of(path, family, side)
    return ModelInfo(model_id, family.resolution, "vp", path=str(path), description=description, kind="latent",
                     text=True, default_sde=default_sde_of(path, side), live=live, prediction=family.prediction,
                     prediction_note=prediction_note(family), native_size=family.resolution)


def live_defaults_of(path: Path, family: Family, side: dict | None = None) -> LiveDefaults:
    """The checkpoint's live-mode defaults (models/live.py): Turbo, LCM or a plain SD model's."""
    side = sidecar(path) if side is None and path.is_file() else (side or {})
    return latent_live(path, family.resolution, family.guidance, read_scheduler(path), side)


def default_sde_of(path: Path, side: dict | None = None) -> str:
    """A few-step (Turbo, LCM) checkpoint's own sampler; DPM-Solver++ for the others."""
    side = sidecar(path) if side is None and path.is_file() else (side or {})
    kind = side.get("few_step") or few_step_kind(path, read_scheduler(path))
    return {"turbo": "euler_a", "lcm": "lcm"}.get(kind, DEFAULT_SDE)
