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
from typing import TYPE_CHECKING

from sdedit.errors import InputError
from sdedit.models.facts import facts_of
from sdedit.models.info import ModelInfo
from sdedit.models.layout import describe_folder, is_model_folder
from sdedit.models.live import pixel_live
from sdedit.models.sd_lookup import describe_sd, is_sd_checkpoint, is_sd_model

if TYPE_CHECKING:  # torch and the loaders are imported when a model is loaded, not to look one up
    import torch

    from sdedit.models.base import DiffusionModel

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
            if entry.name.startswith("."):  # .downloads/: unfinished downloads are never models
                continue
            if entry.is_dir() and is_model_folder(entry):
                found.setdefault(entry.name, entry)
            elif entry.is_file() and entry.suffix == ".safetensors" and is_sd_checkpoint(entry):
                found.setdefault(entry.stem, entry)  # A1111/ComfyUI "models/Stable-diffusion" files
            elif entry.is_file() and entry.suffix in CKPT_SUFFIXES:
                found.setdefault(entry.stem, entry)
    return found


def default_model_ref() -> str:
    return os.environ.get("SDEDIT_DEFAULT_MODEL") or DEFAULT_MODEL_ID


def resolve(ref: str | None, paths: bool = True) -> tuple[str, Path]:
    """(id, path) of a model named by id or path; None means the default.

    Known ids come first, so a stray file in the working folder named like a model (`landscape`) cannot
    shadow it. A path is tried only when no id matches and `paths` allows it (the CLI; the HTTP API passes
    paths=False: a client names models by id only). The default may be a path: the operator set it.
    """
    if ref is None:
        ref = default_model_ref()
        paths = True
    known = discover()
    if ref in known:
        return ref, known[ref]
    if paths:
        path = Path(ref).expanduser()
        if path.exists():
            return (path.stem if path.is_file() else path.name), path.resolve()
    elif ref != default_model_ref():  # the default may be a folder outside the model dirs, listed by its id
        try:
            default_id, default_path = resolve(None)
        except InputError:
            default_id, default_path = None, None
        if ref == default_id and default_path is not None:
            return default_id, default_path
    if ref == DEFAULT_MODEL_ID:
        raise InputError("The embedded default model's weights are missing from this installation; reinstall "
                         "sdedit, or pass --model with a model folder.")
    choices = ", ".join(sorted(known)) or "none installed"
    where = ", or give the path of a model folder or .ckpt file" if paths else ""
    raise InputError(f"Unknown model '{ref}': choose one of {choices}{where}.")


def describe(model_id: str, path: Path) -> ModelInfo:
    if is_sd_model(path):
        return describe_sd(model_id, path)
    if path.is_file():
        resolution = ckpt_resolution(path)
        return ModelInfo(model_id, resolution, "vp", path=str(path), native_size=resolution,
                         live=pixel_live(_ckpt_sidecar(path), resolution, str(path.with_suffix(".json"))))
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
        is_default = model_id == default_id and Path(path).resolve() == Path(default_path).resolve()  # symlinks
        infos.append(dataclasses.replace(info, default=is_default))
    return infos


def pick_device(device: str = "auto") -> torch.device:
    """'auto' takes CUDA when there is a GPU; asking for CUDA without one is a user error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device cpu or auto.")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"Unknown device '{device}': use auto, cpu or cuda.")
    return torch.device(device)


def load_model(ref: str | None = None, device: str = "auto", precision: str | None = None,
               paths: bool = True) -> DiffusionModel:
    """Load (or take from a small LRU cache) the model named by id or path onto a device.

    precision: auto (fp32 on CPU, bf16/fp16 on CUDA), fp32, bf16 or fp16; default $SDEDIT_PRECISION or auto.
    paths=False: ids only (what the HTTP API asks for).
    """
    from sdedit.models.speed import default_precision, pick_dtype

    model_id, path = resolve(ref, paths)
    dev = pick_device(device)
    dtype = pick_dtype(dev, precision or default_precision())
    key = (str(path), str(dev), str(dtype))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    if dev.type == "cuda" and is_sd_model(path):
        _evict_latent_models()
    model = _load(model_id, path, dev, dtype)
    with _cache_lock:
        _cache[key] = model
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return model


def _evict_latent_models() -> None:
    """One big (Stable Diffusion) model resident on the GPU at a time: drop the others before loading."""
    with _cache_lock:
        for key in [k for k, m in _cache.items() if facts_of(m).kind == "latent" and m.device.type == "cuda"]:
            del _cache[key]
    import torch

    torch.cuda.empty_cache()


def _ckpt_sidecar(path: Path) -> dict:
    side = path.with_suffix(".json")
    try:
        return json.loads(side.read_text()) if side.is_file() else {}
    except (OSError, ValueError) as exc:
        raise InputError(f"{side.name} beside the checkpoint could not be read ({exc}); it should hold "
                         '{"resolution": N}.') from exc


def _sidecar_resolution(path: Path) -> int | None:
    value = _ckpt_sidecar(path).get("resolution")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 8:
        raise InputError(f'{path.with_suffix(".json").name}: "resolution" must be a whole number of pixels, got {value!r}.')
    return value


def ckpt_resolution(path: Path) -> int:
    """The side of an original DDPM .ckpt: its NAME.json sidecar, else read off the network's structure."""
    from sdedit.models.ckpt_convert import infer_resolution, read_state_dict

    return _sidecar_resolution(path) or infer_resolution(read_state_dict(path, mmap=True), path)


def _load(model_id: str, path: Path, device: torch.device, dtype: torch.dtype) -> DiffusionModel:
    from sdedit.models.diffusers_folder import load_folder

    if is_sd_model(path):
        from sdedit.models.sd_loader import load_sd

        return load_sd(model_id, path, device, dtype)
    if path.is_file():
        from sdedit.models.base import VPEpsilonModel
        from sdedit.models.ckpt_convert import load_ckpt_unet
        from sdedit.models.speed import prepare_network
        from sdedit.schedules import linear_alphas_cumprod

        unet = prepare_network(load_ckpt_unet(path, _sidecar_resolution(path)), device, dtype)
        resolution = int(unet.config.sample_size)
        abar = linear_alphas_cumprod()
        sigmas = ((1 - abar) / abar).sqrt()
        model = VPEpsilonModel(unet, id=model_id, native_sde="vp", resolution=resolution,
                               size_multiple=2 ** (len(unet.config.block_out_channels) - 1),
                               default_steps={"vp": None, "ve": None}, sigma_min=float(sigmas[0]),
                               sigma_max=float(sigmas[-1]), device=device, dtype=dtype, alphas_cumprod=abar,
                               native_size=resolution)
        model.live = pixel_live(_ckpt_sidecar(path), resolution, str(path.with_suffix(".json")))
        return model
    if not is_model_folder(path):
        raise InputError(f"{path} is not a model: expected a diffusers folder (unet/config.json) or a .ckpt file.")
    return load_folder(path, model_id, device, dtype)
