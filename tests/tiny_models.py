"""Tiny random-weight models saved in exactly the layouts real checkpoints use (fast enough for tests)."""
from __future__ import annotations

from pathlib import Path

import torch


def tiny_unet(sample_size: int = 32, fourier: bool = False, seed: int = 0):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    kwargs = dict(
        sample_size=sample_size, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
    )
    if fourier:
        kwargs.update(time_embedding_type="fourier", flip_sin_to_cos=True, center_input_sample=True)
    return UNet2DModel(**kwargs)


def make_vp_folder(path: Path, subfolders: bool = True, sample_size: int = 32) -> Path:
    """A diffusers DDPM pipeline folder: unet/ + scheduler/ (or both configs flat in one folder)."""
    from diffusers import DDPMScheduler

    path.mkdir(parents=True, exist_ok=True)
    unet_path = path / "unet" if subfolders else path
    sched_path = path / "scheduler" if subfolders else path
    tiny_unet(sample_size).save_pretrained(unet_path, safe_serialization=True)
    DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02, num_train_timesteps=1000).save_pretrained(sched_path)
    return path


def make_ve_folder(path: Path, sample_size: int = 32, sigma_max: float = 348.0) -> Path:
    """A diffusers ScoreSdeVe (NCSN++-like) folder: a fourier-embedded UNet conditioned on sigma ([0, 1] scale)."""
    from diffusers import ScoreSdeVeScheduler

    path.mkdir(parents=True, exist_ok=True)
    tiny_unet(sample_size, fourier=True).save_pretrained(path / "unet", safe_serialization=True)
    ScoreSdeVeScheduler(sigma_min=0.01, sigma_max=sigma_max, num_train_timesteps=2000).save_pretrained(path / "scheduler")
    return path


def ddpm_original_state_dict(seed: int = 0, channels: tuple[int, ...] = (32, 32, 64), attn_levels: frozenset = frozenset({1}),
                             blocks: int = 2, sample_size: int = 32) -> tuple[dict, torch.nn.Module]:
    """A tiny network in the original DDPM/SDEdit key layout, plus the diffusers UNet it was made from.

    Built by renaming a diffusers DDPM-architecture UNet's tensors to the original names (the inverse of
    the converter), with attention projections as 1x1 convolutions as in the original code. `channels` is
    ch * ch_mult and `attn_levels` the levels with attention, as in the original configs.
    """
    from diffusers import UNet2DModel

    from sdedit.models.ckpt_convert import map_key

    torch.manual_seed(seed)
    levels = len(channels)
    down = tuple("AttnDownBlock2D" if i in attn_levels else "DownBlock2D" for i in range(levels))
    up = tuple("AttnUpBlock2D" if i in attn_levels else "UpBlock2D" for i in reversed(range(levels)))
    unet = UNet2DModel(
        sample_size=sample_size, in_channels=3, out_channels=3, layers_per_block=blocks,
        block_out_channels=channels, down_block_types=down, up_block_types=up, attention_head_dim=None,
        downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6, norm_num_groups=32,
    )
    names = _original_names(levels, blocks=blocks, attn_levels=set(attn_levels))
    inverse = {map_key(k, levels): k for k in names}
    sd = {}
    for key, value in unet.state_dict().items():
        orig = inverse[key]
        if value.dim() == 2 and any(p in key for p in ("to_q", "to_k", "to_v", "to_out.0")):
            value = value[:, :, None, None]
        sd[orig] = value.clone()
    return sd, unet


def _original_names(levels: int, blocks: int, attn_levels: set[int]) -> list[str]:
    res = ["norm1", "conv1", "temb_proj", "norm2", "conv2", "nin_shortcut"]
    att = ["norm", "q", "k", "v", "proj_out"]
    names = ["temb.dense.0", "temb.dense.1", "conv_in", "norm_out", "conv_out"]
    for i in range(levels):
        names += [f"down.{i}.block.{j}.{p}" for j in range(blocks) for p in res]
        names += [f"up.{i}.block.{j}.{p}" for j in range(blocks + 1) for p in res]
        if i in attn_levels:
            names += [f"down.{i}.attn.{j}.{p}" for j in range(blocks) for p in att]
            names += [f"up.{i}.attn.{j}.{p}" for j in range(blocks + 1) for p in att]
        if i < levels - 1:
            names.append(f"down.{i}.downsample.conv")
        if i > 0:
            names.append(f"up.{i}.upsample.conv")
    names += [f"mid.block_{b}.{p}" for b in (1, 2) for p in res] + [f"mid.attn_1.{p}" for p in att]
    return [f"{n}.{leaf}" for n in names for leaf in ("weight", "bias")]


def make_unshuffle_folder(path: Path) -> Path:
    """A tiny model in the embedded (pixel-unshuffled, fully convolutional) format."""
    from sdedit.models.unshuffle_unet import UnshuffleEpsNet

    torch.manual_seed(0)
    net = UnshuffleEpsNet.new(block_out_channels=(32, 32), down_block_types=("DownBlock2D", "DownBlock2D"),
                              up_block_types=("UpBlock2D", "UpBlock2D"), layers_per_block=1, norm_num_groups=8)
    net.save_folder(path, extra={"id": path.name, "default_steps": {"vp": 6, "ve": 6}})
    return path
