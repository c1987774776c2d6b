"""Load models saved in diffusers' layout: UNet2DModel + DDPMScheduler or ScoreSdeVeScheduler.

Accepts the hub layout (`unet/` and `scheduler/` subfolders), a bare UNet folder with the scheduler
config beside it, and this project's own embedded format (the same plus `sdedit.json`, whose network
works on a pixel-unshuffled image).
"""
from __future__ import annotations

from pathlib import Path

import torch

from sdedit.schedules import cosine_alphas_cumprod, linear_alphas_cumprod, scaled_linear_alphas_cumprod
from sdedit.errors import InputError
from sdedit.models.base import DiffusionModel, VEScoreModel, VPEpsilonModel
from sdedit.models.layout import (  # noqa: F401  (re-exported: they lived here)
    SCHEDULER_CONFIG, SDEDIT_CONFIG, UNET_CONFIG, describe_folder, is_model_folder, scheduler_config, sde_of,
    sdedit_config, unet_dir, _read_json, _sample_size, default_sde_of, native_size_of,
)
from sdedit.models.live import pixel_live
from sdedit.models.speed import prepare_network


def alphas_cumprod_from(sched: dict) -> torch.Tensor:
    """The training schedule a DDPM-family scheduler config describes."""
    kind = sched.get("beta_schedule", "linear")
    steps = int(sched.get("num_train_timesteps", 1000))
    start, end = float(sched.get("beta_start", 1e-4)), float(sched.get("beta_end", 0.02))
    if kind == "linear":
        return linear_alphas_cumprod(start, end, steps)
    if kind == "scaled_linear":
        return scaled_linear_alphas_cumprod(start, end, steps)
    if kind == "squaredcos_cap_v2":
        return cosine_alphas_cumprod(steps)
    raise InputError(f"The model's beta schedule '{kind}' is not supported; use linear, scaled_linear or squaredcos_cap_v2.")


def load_folder(folder: Path, model_id: str, device: torch.device, dtype: torch.dtype = torch.float32) -> DiffusionModel:
    """Load a diffusers-layout folder (or the embedded format) onto `device`."""
    extra = sdedit_config(folder)
    sched = scheduler_config(folder)
    sde = sde_of(sched)
    if sched.get("prediction_type", "epsilon") != "epsilon":
        raise InputError(f"The model at {folder} predicts '{sched['prediction_type']}'; only epsilon-prediction "
                         "VP models and VE score models are supported.")
    try:
        if extra.get("unshuffle"):
            from sdedit.models.unshuffle_unet import UnshuffleEpsNet

            net = UnshuffleEpsNet.from_folder(folder)
            resolution, multiple = None, int(net.size_multiple)
        else:
            from diffusers import UNet2DModel
            from diffusers.utils import logging as diffusers_logging

            diffusers_logging.set_verbosity_error()  # keep its install hints out of the user's terminal
            net = UNet2DModel.from_pretrained(str(unet_dir(folder)))
            resolution = _sample_size(dict(net.config))
            multiple = 2 ** (len(net.config.block_out_channels) - 1)
    except InputError:
        raise
    except Exception as exc:  # diffusers raises many kinds for a broken folder
        raise InputError(f"The model at {folder} could not be loaded: {exc}".rstrip(".") + ".") from exc
    net = prepare_network(net, device, dtype)
    common = dict(
        id=model_id, native_sde=sde, resolution=resolution, size_multiple=multiple, device=device, dtype=dtype,
        description=extra.get("description", ""), edge_margin=int(extra.get("edge_margin", 0)),
        default_steps={k: v for k, v in extra.get("default_steps", {"vp": None, "ve": None}).items()},
        native_size=native_size_of(extra, resolution),
        **({"max_side": int(extra["max_side"])} if extra.get("max_side") else {}),
    )
    if sde == "ve":
        sigma_min, sigma_max = float(sched.get("sigma_min", 0.01)), float(sched.get("sigma_max", 1348.0))
        model = VEScoreModel(net, sigma_min=sigma_min, sigma_max=sigma_max, **common)
    else:
        abar = alphas_cumprod_from(sched)
        sigmas = ((1 - abar) / abar).sqrt()
        model = VPEpsilonModel(net, sigma_min=float(sigmas[0]), sigma_max=float(sigmas[-1]), alphas_cumprod=abar,
                               **common)
    model.default_sde = default_sde_of(extra, folder)
    model.live = pixel_live(extra, model.native_size, str(folder / SDEDIT_CONFIG))
    return model
