"""Whether a single-file checkpoint's tensors fit the configs it would be built from, on shapes alone.

A file that is not a standard SD 1.x/2.x/XL checkpoint (another width, depth or text encoder) would otherwise
fail deep in diffusers or transformers with one size mismatch per tensor. Here the file's tensors, as
shape-only "meta" tensors, go through diffusers' own key conversion and are compared with networks built on
the meta device from the configs: no memory, no weights read, and the first misfit becomes one sentence.
"""
from __future__ import annotations

from pathlib import Path

import torch

from sdedit.errors import InputError
from sdedit.models.sd_family import CONFIG_ROOT, Family

TEXT_PREFIX_SDXL_2 = "conditioner.embedders.1.model."
TEXT_PREFIX_SD2 = "cond_stage_model.model."


def check_fit(path: Path, state: dict, family: Family, encoder_classes: list) -> None:
    """Raise one sentence when the checkpoint's UNet, VAE or text encoders do not fit the family's configs."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    meta = {k: torch.empty(tuple(v.shape), device="meta") for k, v in state.items() if hasattr(v, "shape")}
    parts = [("UNet", UNet2DConditionModel, "unet", lambda m, cfg: convert_ldm_unet_checkpoint(meta, cfg)),
             ("VAE", AutoencoderKL, "vae", lambda m, cfg: convert_ldm_vae_checkpoint(meta, cfg))]
    for i, cls in enumerate(encoder_classes):
        name = "text encoder" if len(encoder_classes) == 1 else ("first", "second")[i] + " text encoder"
        parts.append((name, cls, ("text_encoder", "text_encoder_2")[i],
                      lambda m, cfg, i=i: _text_state(meta, m, i)))
    for name, cls, sub, convert in parts:
        model, config = _meta_model(cls, family.config / sub)
        try:
            converted = convert(model, config)
        except Exception as exc:  # a missing block or a tensor of another rank: the conversion itself fails
            first_line = (str(exc).splitlines() or [""])[0][:160]
            problem = f"diffusers' conversion fails with {type(exc).__name__}: {first_line}"
        else:
            problem = _first_misfit(converted, model)
        if problem:
            raise InputError(_sentence(path, family, name, problem))


def _meta_model(cls, folder: Path):
    """The network a config folder describes, on the meta device (shapes only), and the config as a dict."""
    if hasattr(cls, "config_class"):  # transformers
        config = cls.config_class.from_pretrained(str(folder), local_files_only=True)
        with torch.device("meta"):
            return cls(config), config
    config = cls.load_config(str(folder), local_files_only=True)
    with torch.device("meta"):
        return cls.from_config(config), dict(config)


def _text_state(meta: dict, model, index: int) -> dict:
    """The text encoder's tensors in transformers' names, converted the way diffusers' loader does."""
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint

    if index == 1:
        state = convert_open_clip_checkpoint(model, meta, prefix=TEXT_PREFIX_SDXL_2)
    elif TEXT_PREFIX_SD2 + "token_embedding.weight" in meta:
        state = convert_open_clip_checkpoint(model, meta, prefix=TEXT_PREFIX_SD2)
    else:
        state = convert_ldm_clip_checkpoint(meta)
    if not hasattr(model, "text_model"):  # transformers >= 5.6 flattened CLIPTextModel
        state = {k.removeprefix("text_model."): v for k, v in state.items()}
    return state


def _first_misfit(converted: dict, model: torch.nn.Module) -> str | None:
    for key, expected in model.state_dict().items():
        got = converted.get(key)
        if got is None:
            return f"it has no {key}"
        if tuple(got.shape) != tuple(expected.shape):
            return f"{key} is {list(got.shape)}, the config wants {list(expected.shape)}"
    return None


def _sentence(path: Path, family: Family, part: str, problem: str) -> str:
    sidecar = path.with_suffix(".json").name
    if Path(family.config).resolve().parent == CONFIG_ROOT.resolve():
        return (f"{path.name} is not a standard Stable Diffusion 1.x, 2.x or XL checkpoint: its {part} does not fit "
                f"{family.title} ({problem}); write a sidecar {sidecar} beside it whose \"config\" names a folder "
                "of diffusers configs (unet/, vae/, text_encoder/) that fit it, see docs/stable_diffusion.md.")
    return (f"{path.name} does not fit the configs its sidecar {sidecar} names ({family.config}): its {part} "
            f"differs ({problem}); point \"config\" at a folder whose configs fit it.")
