"""Whether a path is a Stable Diffusion checkpoint, and its listing: names and configs only, no torch.

Split from sd_loader so that looking up or listing models (the command line's checks before an edit, the
server's model list) never imports torch or diffusers.
"""
from __future__ import annotations

from pathlib import Path

from sdedit.errors import InputError
from sdedit.models.info import ModelInfo
from sdedit.models.sd_family import (
    DEFAULT_SDE, SINGLE_FILE_SUFFIXES, Family, family_for_file, family_for_folder, is_sd_folder, sidecar,
    tensor_shapes,
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


def describe_sd(model_id: str, path: Path) -> ModelInfo:
    """The listing of a checkpoint, from its configs or tensor names only."""
    family = family_of(path)
    description = (sidecar(path).get("description") if path.is_file() else None) or family.title
    return ModelInfo(model_id, family.resolution, "vp", path=str(path), description=description, kind="latent",
                     text=True, default_sde=DEFAULT_SDE, native_size=family.resolution)
