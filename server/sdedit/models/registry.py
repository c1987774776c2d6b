"""Which models exist and how to get one loaded: the embedded default, model folders, `.ckpt` files.

Sources, in order: the weights shipped inside the package (`sdedit/weights/*`), the folders named by the
environment variable SDEDIT_MODELS_DIR (os.pathsep-separated), and ~/.local/share/sdedit/models. A model is
a diffusers-layout folder (id = folder name) or an original DDPM `.ckpt` file (id = file stem). Any path can
also be given directly. SDEDIT_DEFAULT_MODEL (an id or a path) overrides the default.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from sdedit.errors import InputError
from sdedit.models.base import DiffusionModel, ModelInfo, VPEpsilonModel
from sdedit.models.diffusers_folder import describe_folder, is_model_folder, load_folder
from sdedit.models.speed import default_precision, pick_dtype, prepare_network

DEFAULT_MODEL_ID = "landscape"
EMBEDDED_DIR = Path(__file__).resolve().parent.parent / "weights"
USER_MODELS_DIR = Path.home() / ".local" / "share" / "sdedit" / "models"
CKPT_SUFFIXES = (".ckpt", ".pt", ".pth")
CACHE_SIZE = 3

_cache: OrderedDict[tuple[str, str, str], DiffusionModel] = OrderedDict()
_cache_lock = threading.Lock()


def model_dirs() -> list[Path]:
    extra = [Path(p).expanduser() for p in os.environ.get("SDEDIT_MODELS_DIR", "").split(os.pathsep) if p]
    return [EMBEDDED_DIR, *extra, USER_MODELS_DIR]


def discover() -> dict[str, Path]:
    """Every model id found in the model directories, mapped to its path (first one wins)."""
    found: dict[str, Path] = {}
    for directory in model_dirs():
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            if entry.is_dir() and is_model_folder(entry):
                found.setdefault(entry.name, entry)
            elif entry.is_file() and entry.suffix in CKPT_SUFFIXES:
                found.setdefault(entry.stem, entry)
    return found


def default_model_ref() -> str:
    return os.environ.get("SDEDIT_DEFAULT_MODEL") or DEFAULT_MODEL_ID


def resolve(ref: str | None) -> tuple[str, Path]:
    """(id, path) of a model named by id or path; None means the default."""
    ref = ref or default_model_ref()
    path = Path(ref).expanduser()
    if path.exists():
        return (path.stem if path.is_file() else path.name), path.resolve()
    known = discover()
    if ref in known:
        return ref, known[ref]
    if ref == DEFAULT_MODEL_ID:
        raise InputError("The embedded default model's weights are missing from this installation; reinstall "
                         "sdedit, or pass --model with a model folder.")
    choices = ", ".join(sorted(known)) or "none installed"
    raise InputError(f"Unknown model '{ref}': choose one of {choices}, or give the path of a model folder or .ckpt file.")


def describe(model_id: str, path: Path) -> ModelInfo:
    if path.is_file():
        resolution = int(_ckpt_sidecar(path).get("resolution", 256))
        return ModelInfo(model_id, resolution, "vp", path=str(path), native_size=resolution)
    return describe_folder(path, model_id)


def list_models() -> list[ModelInfo]:
    """All known models with the default flagged; models whose configs are broken are left out."""
    try:
        default_id, default_path = resolve(None)
    except InputError:
        default_id, default_path = None, None
    infos = []
    entries = discover()
    if default_path is not None and default_id not in entries:
        entries[default_id] = default_path
    for model_id, path in entries.items():
        try:
            info = describe(model_id, path)
        except InputError:
            continue
        infos.append(dataclasses.replace(info, default=model_id == default_id and path == default_path))
    return infos


def pick_device(device: str = "auto") -> torch.device:
    """'auto' takes CUDA when there is a GPU; asking for CUDA without one is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device cpu or auto.")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"Unknown device '{device}': use auto, cpu or cuda.")
    return torch.device(device)


def load_model(ref: str | None = None, device: str = "auto", precision: str | None = None) -> DiffusionModel:
    """Load (or take from a small LRU cache) the model named by id or path onto a device.

    precision: auto (fp32 on CPU, bf16/fp16 on CUDA), fp32, bf16 or fp16; default $SDEDIT_PRECISION or auto.
    """
    model_id, path = resolve(ref)
    dev = pick_device(device)
    dtype = pick_dtype(dev, precision or default_precision())
    key = (str(path), str(dev), str(dtype))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    model = _load(model_id, path, dev, dtype)
    with _cache_lock:
        _cache[key] = model
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return model


def _ckpt_sidecar(path: Path) -> dict:
    side = path.with_suffix(".json")
    return json.loads(side.read_text()) if side.is_file() else {}


def _load(model_id: str, path: Path, device: torch.device, dtype: torch.dtype) -> DiffusionModel:
    if path.is_file():
        from sdedit.schedules import linear_alphas_cumprod
        from sdedit.models.ckpt_convert import load_ckpt_unet

        resolution = int(_ckpt_sidecar(path).get("resolution", 256))
        unet = prepare_network(load_ckpt_unet(path, resolution), device, dtype)
        abar = linear_alphas_cumprod()
        sigmas = ((1 - abar) / abar).sqrt()
        return VPEpsilonModel(unet, id=model_id, native_sde="vp", resolution=resolution,
                              size_multiple=2 ** (len(unet.config.block_out_channels) - 1),
                              default_steps={"vp": None, "ve": None}, sigma_min=float(sigmas[0]),
                              sigma_max=float(sigmas[-1]), device=device, dtype=dtype, alphas_cumprod=abar,
                              native_size=resolution)
    if not is_model_folder(path):
        raise InputError(f"{path} is not a model: expected a diffusers folder (unet/config.json) or a .ckpt file.")
    return load_folder(path, model_id, device, dtype)
