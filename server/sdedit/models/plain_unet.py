"""The embedded model's UNet in plain torch: the same layers and weight names as diffusers' UNet2DModel, for
the configurations the embedded model uses (positional time embedding, DownBlock2D / UpBlock2D, a mid block
with or without self-attention at the lowest resolution, conv up/down sampling).

Why: importing diffusers costs about twice as long as importing torch (8 s against 3 s on a busy 2-core
machine) and the embedded default model needs none of it. Configurations outside that set are declined
(`supports` is False) and loaded through diffusers as before; tests check the outputs against diffusers'
UNet2DModel on the shipped weights.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS = "diffusion_pytorch_model.safetensors"

# Config values this module implements; any other value (or key missing from here with a non-default value)
# sends the folder to diffusers.
REQUIRED = {
    "act_fn": "silu", "center_input_sample": False, "class_embed_type": None,
    "downsample_type": "conv", "dropout": 0.0, "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2D",
    "num_class_embeds": None, "resnet_time_scale_shift": "default", "time_embedding_dim": None,
    "time_embedding_type": "positional", "upsample_type": "conv",
}
IGNORED = {"_class_name", "_diffusers_version", "_name_or_path", "num_train_timesteps", "sample_size"}
SIZES = {"block_out_channels", "down_block_types", "up_block_types", "downsample_padding", "flip_sin_to_cos",
         "freq_shift", "in_channels", "out_channels", "layers_per_block", "norm_eps", "norm_num_groups",
         "add_attention", "attention_head_dim", "attn_norm_num_groups"}


DEFAULTS = {"in_channels": 3, "out_channels": 3, "layers_per_block": 2, "norm_eps": 1e-5, "norm_num_groups": 32,
            "flip_sin_to_cos": True, "freq_shift": 0, "downsample_padding": 1, "add_attention": True,
            "attention_head_dim": 8, "attn_norm_num_groups": None}  # UNet2DModel's own defaults


def supports(config: dict) -> bool:
    """Whether this module builds exactly the network a UNet2DModel config describes."""
    config = {**DEFAULTS, **config}
    if any(k not in REQUIRED and k not in IGNORED and k not in SIZES for k in config):
        return False
    if any(config.get(k, v) != v for k, v in REQUIRED.items()):
        return False
    n = len(config.get("block_out_channels", ()))
    head = config.get("attention_head_dim") or config["block_out_channels"][-1] if n else 1
    if config.get("add_attention") and (not isinstance(head, int) or config["block_out_channels"][-1] % head):
        return False
    return (n > 0 and list(config.get("down_block_types", ())) == ["DownBlock2D"] * n
            and list(config.get("up_block_types", ())) == ["UpBlock2D"] * n
            and config.get("norm_num_groups") is not None and config.get("downsample_padding", 1) == 1)


def timestep_embedding(t: torch.Tensor, dim: int, flip_sin_to_cos: bool, shift: float) -> torch.Tensor:
    """Sinusoidal embedding of (fractional) timesteps, as diffusers' Timesteps layer computes it."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - shift)
    args = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class TimeEmbedding(nn.Module):
    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(channels, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class Resnet(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding added in between, a 1x1 shortcut when widths differ."""

    def __init__(self, cin: int, cout: int, temb: int, groups: int, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class MidAttention(nn.Module):
    """diffusers' Attention as UNetMidBlock2D builds it (GroupNorm, one-head-group self-attention over all
    positions, output projection, residual): the whole picture's layout in one step at the lowest resolution."""

    def __init__(self, channels: int, head_dim: int, groups: int, eps: float) -> None:
        super().__init__()
        self.heads = channels // head_dim
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = x.view(b, c, h * w).transpose(1, 2)
        seq = self.group_norm(seq.transpose(1, 2)).transpose(1, 2)
        q, k, v = (proj(seq).view(b, -1, self.heads, c // self.heads).transpose(1, 2)
                   for proj in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
        out = self.to_out[0](out.transpose(1, 2).reshape(b, -1, c).to(q.dtype))
        return out.transpose(-1, -2).reshape(b, c, h, w) + x


class Sampler(nn.Module):
    """Down: 3x3 conv with stride 2. Up: nearest 2x, then a 3x3 conv. (diffusers keeps the conv as `.conv`.)"""

    def __init__(self, channels: int, up: bool) -> None:
        super().__init__()
        self.up = up
        self.conv = nn.Conv2d(channels, channels, 3, stride=1 if up else 2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x.float() if x.dtype == torch.bfloat16 else x, scale_factor=2.0, mode="nearest")
        return self.conv(x.to(self.conv.weight.dtype))


class Block(nn.Module):
    def __init__(self, resnets: list[Resnet], sampler: Sampler | None) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        key = "upsamplers" if sampler is not None and sampler.up else "downsamplers"
        if sampler is not None:
            setattr(self, key, nn.ModuleList([sampler]))


class PlainUNet2D(nn.Module):
    """UNet2DModel(**config) for the configurations `supports` accepts; call it as net(x, t).sample."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        if not supports(config):
            raise ValueError("this UNet configuration needs diffusers")
        config = {**DEFAULTS, **config}
        self.config = SimpleNamespace(**config)
        chans = list(config["block_out_channels"])
        layers, groups, eps = config["layers_per_block"], config["norm_num_groups"], config["norm_eps"]
        temb = 4 * chans[0]
        self.conv_in = nn.Conv2d(config["in_channels"], chans[0], 3, padding=1)
        self.time_embedding = TimeEmbedding(chans[0], temb)
        self.down_blocks = nn.ModuleList()
        cin = chans[0]
        for i, cout in enumerate(chans):
            resnets = [Resnet(cin if j == 0 else cout, cout, temb, groups, eps) for j in range(layers)]
            self.down_blocks.append(Block(resnets, Sampler(cout, up=False) if i < len(chans) - 1 else None))
            cin = cout
        self.mid_block = Block([Resnet(chans[-1], chans[-1], temb, groups, eps) for _ in range(2)], None)
        if config["add_attention"]:
            head = config["attention_head_dim"] or chans[-1]
            self.mid_block.attentions = nn.ModuleList(
                [MidAttention(chans[-1], head, config["attn_norm_num_groups"] or groups, eps)])
        rev = chans[::-1]
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i, cout in enumerate(rev):
            skip_in = rev[min(i + 1, len(rev) - 1)]
            resnets = [Resnet((prev if j == 0 else cout) + (skip_in if j == layers else cout), cout, temb, groups, eps)
                       for j in range(layers + 1)]
            self.up_blocks.append(Block(resnets, Sampler(cout, up=True) if i < len(rev) - 1 else None))
            prev = cout
        self.conv_norm_out = nn.GroupNorm(groups, chans[0], eps=eps)
        self.conv_out = nn.Conv2d(chans[0], config["out_channels"], 3, padding=1)

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float) -> SimpleNamespace:
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.expand(sample.shape[0]) if t.ndim == 0 else t
        cfg = self.config
        emb = self.time_embedding(timestep_embedding(t, self.conv_in.out_channels, cfg.flip_sin_to_cos,
                                                     cfg.freq_shift).to(self.dtype))
        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks:
            for resnet in block.resnets:
                x = resnet(x, emb)
                skips.append(x)
            if hasattr(block, "downsamplers"):
                x = block.downsamplers[0](x)
                skips.append(x)
        x = self.mid_block.resnets[0](x, emb)
        if hasattr(self.mid_block, "attentions"):
            x = self.mid_block.attentions[0](x)
        x = self.mid_block.resnets[1](x, emb)
        for block in self.up_blocks:
            for resnet in block.resnets:
                x = resnet(torch.cat([x, skips.pop()], dim=1), emb)
            if hasattr(block, "upsamplers"):
                x = block.upsamplers[0](x)
        return SimpleNamespace(sample=self.conv_out(F.silu(self.conv_norm_out(x))))


def load_plain_unet(folder: Path, dtype: torch.dtype = torch.float32) -> PlainUNet2D | None:
    """The UNet saved in `folder` (config.json + safetensors) as a PlainUNet2D; None when diffusers is needed."""
    config_path, weights = folder / "config.json", folder / WEIGHTS
    if not (config_path.is_file() and weights.is_file()):
        return None
    config = json.loads(config_path.read_text())
    if not supports(config):
        return None
    from safetensors.torch import load_file

    net = PlainUNet2D(config)
    net.load_state_dict(load_file(str(weights)), strict=True)  # every name and shape must match
    return net.to(dtype).eval()
