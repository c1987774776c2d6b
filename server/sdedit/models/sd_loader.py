"""Load Stable Diffusion checkpoints as artists keep them, with no network access at all.

Two layouts: a diffusers pipeline folder (`model_index.json`, `unet/`, `vae/`, `text_encoder/`...) and a
single-file checkpoint in the original (LDM/A1111/ComfyUI) key layout, `.safetensors` or a `.ckpt` pickle
read with `weights_only=True`. Single files are converted by diffusers' own single-file utilities, given the
configs shipped in `sd_configs/` (or a sidecar's config folder) and the tokenizer built from the shipped
CLIP vocabulary, so nothing is fetched from the hub.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from sdedit.errors import InputError
from sdedit.models import sd_prediction, vae_tiling
from sdedit.models.clip_tokenizer import clip_tokenizer
from sdedit.models.sd_family import DEFAULT_SDE, Family, family_for_file, unwrap_state_dict, with_text_model_level
from sdedit.models.sd_lookup import (  # noqa: F401 (re-exported)
    describe_family, describe_sd, family_of, is_sd_checkpoint, is_sd_model,
)
from sdedit.models.sd_lookup import NO_GUIDANCE, default_sde_of, live_defaults_of

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never a hub request from here, even by a library's default

DEFAULT_STEPS = {"vp": 50, "ve": 50, "ode": 20, "ddim": 20}


def load_sd(model_id: str, path: Path, device: torch.device, dtype: torch.dtype):
    """A LatentModel for a pipeline folder or single-file checkpoint, on `device` in `dtype`."""
    from diffusers.utils import logging as diffusers_logging

    from sdedit.models.latent import LatentModel
    from sdedit.models.speed import prepare_network

    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()  # keep library install hints and progress bars off the terminal
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    family = family_of(path)
    try:
        parts = _load_folder(path, family) if path.is_dir() else _load_single_file(path, family)
    except InputError:
        raise
    except Exception as exc:  # diffusers and transformers raise many kinds for a broken checkpoint
        raise InputError(f"The checkpoint {path.name} could not be loaded as {family.title}: "
                         f"{type(exc).__name__}: {exc}".rstrip(".") + ".") from exc
    unet = prepare_network(parts["unet"], device, dtype)
    vae = parts["vae"].to(device=device, dtype=_vae_dtype(device, dtype)).eval().requires_grad_(False)
    vae_tiling.configure(vae, device)  # in one piece unless the picture is too large for the device's memory
    encoders = [e.to(device=device, dtype=dtype).eval().requires_grad_(False) for e in parts["text_encoders"]]
    abar = _alphas_cumprod(parts["scheduler"])
    sigmas = ((1 - abar) / abar).sqrt()
    multiple = 8 * 2 ** (len(unet.config.block_out_channels) - 1)

    def build(family: Family) -> LatentModel:
        model = LatentModel(
            unet, vae, encoders, parts["tokenizers"], family, id=model_id, native_sde="vp", resolution=None,
            size_multiple=multiple, default_steps=dict(DEFAULT_STEPS), sigma_min=float(sigmas[0]),
            sigma_max=float(sigmas[-1]), device=device, dtype=dtype, alphas_cumprod=abar,
            max_side=2 * family.resolution, description=describe_family(family),
        )
        model.steps_offset = int(parts["scheduler"].get("steps_offset", 1))
        model.default_sde = default_sde_of(path)  # Turbo: euler_a, LCM: lcm, others DPM-Solver++ (sd_lookup)
        model.live = live_defaults_of(path, family)
        if model.default_sde != DEFAULT_SDE:  # distilled for few steps without classifier-free guidance
            model.default_guidance = NO_GUIDANCE
        return model

    model = build(family)
    if family.prediction_source == "undecided":  # SD 2.x, epsilon or v: one UNet call tells (sd_prediction.py)
        prediction, errors = sd_prediction.probe(model)
        sd_prediction.remember(path, prediction, errors)
        model = build(family_for_file(path, told={"prediction": prediction}))
    return model


def _vae_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """fp16 VAEs overflow (SDXL's famously): keep the VAE in fp32 unless bf16 was chosen."""
    return dtype if dtype == torch.bfloat16 and device.type == "cuda" else torch.float32


def _alphas_cumprod(sched: dict) -> torch.Tensor:
    from sdedit.models.diffusers_folder import alphas_cumprod_from

    return alphas_cumprod_from({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, **sched})


def _read_scheduler(folder: Path) -> dict:
    import json

    path = folder / "scheduler" / "scheduler_config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


TOKENIZER_FILES = ("tokenizer.json", "vocab.json")  # transformers 5 saves only the first, 4.x both or the second


def _tokenizers(folder: Path | None, family: Family) -> list:
    """The folder's own tokenizers when it has them (either format), else the shipped CLIP vocabulary with the
    family's padding."""
    from transformers import CLIPTokenizer

    out = []
    for i, pad in enumerate(family.pad_tokens):
        sub = None if folder is None else folder / ("tokenizer" if i == 0 else "tokenizer_2")
        if sub is not None and any((sub / name).is_file() for name in TOKENIZER_FILES):
            out.append(CLIPTokenizer.from_pretrained(str(sub), local_files_only=True))
        else:
            out.append(clip_tokenizer(pad))
    return out


def _encoder_classes(family: Family) -> list:
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    return [CLIPTextModel, CLIPTextModelWithProjection] if family.is_xl else [CLIPTextModel]


def _load_folder(folder: Path, family: Family) -> dict:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    names = ["text_encoder", "text_encoder_2"][: len(family.pad_tokens)]
    missing = [n for n in ["unet", "vae", *names] if not (folder / n / "config.json").is_file()]
    if missing:
        raise InputError(f"The model folder {folder} lacks {', '.join(missing)}; a Stable Diffusion pipeline "
                         "folder needs unet/, vae/ and its text encoder(s).")
    def load(cls, sub: str):
        return cls.from_pretrained(str(folder / sub), local_files_only=True, variant=_variant(folder / sub))

    return {
        "unet": load(UNet2DConditionModel, "unet"),
        "vae": load(AutoencoderKL, "vae"),
        "text_encoders": [load(cls, n) for cls, n in zip(_encoder_classes(family), names)],
        "tokenizers": _tokenizers(folder, family),
        "scheduler": _read_scheduler(folder),
    }


def _variant(sub: Path) -> str | None:
    """'fp16' when a component folder only has the half-precision variant (`*.fp16.safetensors`)."""
    weights = [p.name for p in sub.iterdir() if p.suffix in (".safetensors", ".bin")]
    plain = [n for n in weights if n.count(".") == 1]
    return "fp16" if not plain and any(".fp16." in n for n in weights) else None


def read_state_dict(path: Path) -> dict:
    """All tensors of a single-file checkpoint; pickles only with weights_only=True (no code runs)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            from sdedit.models.sd_family import _load_pickle

            state = _load_pickle(path)
    except Exception as exc:
        raise InputError(f"The checkpoint {path.name} could not be read ({type(exc).__name__}: {exc}).") from exc
    return with_text_model_level(unwrap_state_dict(state))


def _load_single_file(path: Path, family: Family) -> dict:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    from sdedit.models.sd_fit import check_fit

    state = read_state_dict(path)
    check_fit(path, state, family, _encoder_classes(family))  # one sentence, not a size mismatch per tensor
    config = str(family.config)
    common = dict(config=config, local_files_only=True)
    names = ["text_encoder", "text_encoder_2"][: len(family.pad_tokens)]
    encoders = [create_diffusers_clip_model_from_ldm(cls, state, subfolder=n, **common)
                for cls, n in zip(_encoder_classes(family), names)]
    parts = {
        "unet": UNet2DConditionModel.from_single_file(state, subfolder="unet", **common),
        "vae": AutoencoderKL.from_single_file(state, subfolder="vae", **common),
        "text_encoders": encoders,
        "tokenizers": _tokenizers(None, family),
        "scheduler": {**_read_scheduler(family.config), "prediction_type": family.prediction},
    }
    return parts
