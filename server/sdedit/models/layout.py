"""Reading a diffusers-layout model folder's configs (not its weights): no torch, no diffusers.

Lets the command line list models and check a model id in milliseconds; loading is diffusers_folder's job.
"""
from __future__ import annotations

import json
from pathlib import Path

from sdedit.errors import InputError
from sdedit.models.info import ModelInfo
from sdedit.models.live import pixel_live

UNET_CONFIG = "config.json"
SCHEDULER_CONFIG = "scheduler_config.json"
SDEDIT_CONFIG = "sdedit.json"


def unet_dir(folder: Path) -> Path:
    """The folder holding the UNet's config.json and weights."""
    return folder / "unet" if (folder / "unet" / UNET_CONFIG).is_file() else folder


def is_model_folder(folder: Path) -> bool:
    return (unet_dir(folder) / UNET_CONFIG).is_file()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"The model file {path} could not be read ({exc}).") from exc


def scheduler_config(folder: Path) -> dict:
    """The scheduler's config from `scheduler/`, the folder itself, or a DDPM default when missing."""
    for candidate in (folder / "scheduler" / SCHEDULER_CONFIG, folder / SCHEDULER_CONFIG):
        if candidate.is_file():
            return _read_json(candidate)
    return {"_class_name": "DDPMScheduler"}


def sdedit_config(folder: Path) -> dict:
    path = folder / SDEDIT_CONFIG
    return _read_json(path) if path.is_file() else {}


def sde_of(sched: dict) -> str:
    return "ve" if "ScoreSdeVe" in sched.get("_class_name", "") else "vp"


def describe_folder(folder: Path, model_id: str) -> ModelInfo:
    """Read a folder's configs (not its weights) to list it."""
    extra = sdedit_config(folder)
    sched = scheduler_config(folder)
    unet_cfg = _read_json(unet_dir(folder) / UNET_CONFIG)
    resolution = None if extra else _sample_size(unet_cfg)
    native_size = native_size_of(extra, resolution)
    return ModelInfo(model_id, resolution, sde_of(sched), path=str(folder), description=extra.get("description", ""),
                     default_sde=default_sde_of(extra, folder), native_size=native_size,
                     live=pixel_live(extra, native_size, str(folder / SDEDIT_CONFIG)))


def default_sde_of(extra: dict, folder: Path) -> str:
    """sdedit.json "default_sde" (the sampler the model's benchmark shows best), else the paper's `vp`."""
    from sdedit.params import SDE_NAMES

    sde = extra.get("default_sde", "vp")
    if sde not in SDE_NAMES:
        raise InputError(f"The model at {folder} declares default_sde '{sde}'; use one of {', '.join(SDE_NAMES)}.")
    return sde


def native_size_of(extra: dict, resolution: int | None) -> int | None:
    """sdedit.json "native_size", else a fixed-size checkpoint's own resolution (None: no native-scale stage)."""
    size = extra.get("native_size", resolution)
    return int(size) if size else None


def _sample_size(unet_cfg: dict) -> int | None:
    size = unet_cfg.get("sample_size")
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size) if size else None
