"""Convert the original DDPM / SDEdit PyTorch checkpoints (`.ckpt`) into diffusers' UNet2DModel.

The original network (Ho et al.'s DDPM as ported to PyTorch, used by SDEdit) names its parts `temb.dense`,
`down.{i}.block.{j}`, `down.{i}.attn.{j}`, `down.{i}.downsample.conv`, `mid.block_1`, `up.{i}...`. Its
architecture is recovered from the tensor shapes, then the keys are mapped one by one; nothing is guessed
from the file name.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from sdedit.errors import InputError

RESNET_PARTS = {"norm1": "norm1", "conv1": "conv1", "temb_proj": "time_emb_proj", "norm2": "norm2",
                "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
ATTN_PARTS = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def extract_state_dict(obj: object) -> dict[str, torch.Tensor]:
    """Find the network's state dict in the shapes these checkpoints come in (plain, nested, EMA list)."""
    candidates = obj if isinstance(obj, (list, tuple)) else [obj]
    for cand in reversed(candidates):  # SDEdit's lists put the EMA weights last
        if isinstance(cand, dict):
            for key in ("ema", "state_dict", "model", None):
                sd = cand.get(key) if key else cand
                if isinstance(sd, dict) and any(k.endswith("conv_in.weight") for k in sd):
                    return {re.sub(r"^(module\.)", "", k): v for k, v in sd.items()}
    raise InputError("This checkpoint holds no DDPM network weights (no 'conv_in.weight' key found).")


ATTENTION_SIDE = 16  # the original DDPM configs attend at 16x16 only (attn_resolutions = (16,))
MIN_BOTTOM_SIDE = 4  # their lowest level is 4x4 (CIFAR-10 32^2, CelebA 64^2) or 8x8 (256^2 models)


def sidecar_path(path: Path) -> Path:
    """NAME.json beside NAME.ckpt: {"resolution": N} for checkpoints whose structure does not tell N."""
    return path.with_suffix(".json")


def infer_resolution(sd: dict[str, torch.Tensor], path: Path) -> int:
    """The image side an original DDPM network was trained at, read off its structure.

    The official configs put self-attention at the 16x16 level only: CIFAR-10 32^2 has ch_mult (1,2,2,2) with
    attention on level 1, CelebA 64^2 (DDIM) (1,2,2,2,4) on level 2, the 256^2 LSUN / CelebA-HQ models of DDPM
    and SDEdit (1,1,2,2,4,4) on level 4; so one attention level i means 16 * 2^i. Anything else (no attention,
    several levels, an implausibly small bottom level) does not tell, and the user is asked for the sidecar.
    """
    levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"down\.(\d+)\.", k))})
    attn = sorted({int(m.group(1)) for k in sd if (m := re.match(r"down\.(\d+)\.attn\.", k))})
    if len(attn) == 1 and levels:
        side = ATTENTION_SIDE * 2 ** attn[0]
        if side // 2 ** (len(levels) - 1) >= MIN_BOTTOM_SIDE:
            return side
    raise InputError(f"The checkpoint {path.name} does not show the image size it was trained at; write "
                     f"{sidecar_path(path).name} beside it containing {{\"resolution\": N}} with that size "
                     "(e.g. 256).")


def read_state_dict(path: Path, mmap: bool = False) -> dict[str, torch.Tensor]:
    """The network's tensors in a .ckpt (weights-only unpickling; mmap=True to read only the structure)."""
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:
        if mmap:  # old (non-zip) files cannot be memory-mapped
            return read_state_dict(path)
        # torch's own text is pages long, names the full path and advises unsafe loading
        raise InputError(f"The checkpoint {Path(path).name} could not be read as PyTorch weights: it is damaged, "
                         "not a checkpoint, or holds Python objects besides tensors, which are never loaded "
                         "(for safety).") from exc
    return extract_state_dict(raw)


def infer_config(sd: dict[str, torch.Tensor], resolution: int = 256) -> dict:
    """The UNet2DModel config of an original DDPM state dict, read off its tensor shapes."""
    ch = sd["conv_in.weight"].shape[0]
    levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"down\.(\d+)\.", k))})
    blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"down\.0\.block\.(\d+)\.", k))})
    channels = [sd[f"down.{i}.block.0.conv1.weight"].shape[0] for i in levels]
    attn = [any(k.startswith(f"down.{i}.attn.") for k in sd) for i in levels]
    return {
        "sample_size": resolution,
        "in_channels": sd["conv_in.weight"].shape[1],
        "out_channels": sd["conv_out.weight"].shape[0],
        "block_out_channels": channels,
        "layers_per_block": len(blocks),
        "down_block_types": ["AttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "up_block_types": ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        "attention_head_dim": None,
        "downsample_padding": 0,
        "flip_sin_to_cos": False,
        "freq_shift": 1,
        "norm_eps": 1e-6,
        "act_fn": "silu",
        "time_embedding_type": "positional",
        "add_attention": True,
        "norm_num_groups": 32 if ch % 32 == 0 else ch,
        "resnet_time_scale_shift": "default",
        "_ch": ch,
    }


def map_key(key: str, levels: int) -> str | None:
    """The diffusers key of one original key, or None for buffers diffusers does not keep."""
    simple = {"temb.dense.0": "time_embedding.linear_1", "temb.dense.1": "time_embedding.linear_2",
              "norm_out": "conv_norm_out", "conv_in": "conv_in", "conv_out": "conv_out"}
    head, _, leaf = key.rpartition(".")
    if head in simple:
        return f"{simple[head]}.{leaf}"
    if m := re.fullmatch(r"down\.(\d+)\.block\.(\d+)\.(\w+)", head):
        return f"down_blocks.{m[1]}.resnets.{m[2]}.{RESNET_PARTS[m[3]]}.{leaf}"
    if m := re.fullmatch(r"down\.(\d+)\.attn\.(\d+)\.(\w+)", head):
        return f"down_blocks.{m[1]}.attentions.{m[2]}.{ATTN_PARTS[m[3]]}.{leaf}"
    if m := re.fullmatch(r"down\.(\d+)\.downsample\.conv", head):
        return f"down_blocks.{m[1]}.downsamplers.0.conv.{leaf}"
    if m := re.fullmatch(r"mid\.block_(\d)\.(\w+)", head):
        return f"mid_block.resnets.{int(m[1]) - 1}.{RESNET_PARTS[m[2]]}.{leaf}"
    if m := re.fullmatch(r"mid\.attn_1\.(\w+)", head):
        return f"mid_block.attentions.0.{ATTN_PARTS[m[1]]}.{leaf}"
    if m := re.fullmatch(r"up\.(\d+)\.block\.(\d+)\.(\w+)", head):
        return f"up_blocks.{levels - 1 - int(m[1])}.resnets.{m[2]}.{RESNET_PARTS[m[3]]}.{leaf}"
    if m := re.fullmatch(r"up\.(\d+)\.attn\.(\d+)\.(\w+)", head):
        return f"up_blocks.{levels - 1 - int(m[1])}.attentions.{m[2]}.{ATTN_PARTS[m[3]]}.{leaf}"
    if m := re.fullmatch(r"up\.(\d+)\.upsample\.conv", head):
        return f"up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.conv.{leaf}"
    return None


def convert_state_dict(sd: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """Rename every tensor; 1x1 attention convolutions become the linear layers diffusers uses."""
    out = {}
    for key, value in sd.items():
        new = map_key(key, levels)
        if new is None:
            continue
        if re.search(r"attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$", new) and value.dim() == 4:
            value = value[:, :, 0, 0]
        out[new] = value
    return out


def load_ckpt_unet(path: Path, resolution: int | None = None) -> "torch.nn.Module":
    """A diffusers UNet2DModel holding the weights of an original DDPM/SDEdit checkpoint.

    resolution None: inferred from the network's structure (infer_resolution), or a one-sentence refusal.
    """
    from diffusers import UNet2DModel

    sd = read_state_dict(path)
    config = infer_config(sd, resolution or infer_resolution(sd, path))
    config.pop("_ch")
    unet = UNet2DModel(**config)
    converted = convert_state_dict(sd, len(config["block_out_channels"]))
    missing, unexpected = unet.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise InputError(f"The checkpoint {path} does not match the DDPM architecture "
                         f"({len(missing)} missing, {len(unexpected)} unexpected tensors, e.g. "
                         f"{(missing or unexpected)[0]}).")
    return unet
