"""The embedded default network: a diffusers UNet2DModel working on a 4x pixel-unshuffled image.

Inference loads the UNet as plain_unet.PlainUNet2D (same layers and weights, no diffusers import); training
and saving use diffusers' UNet2DModel.

Space-to-depth (factor 4) turns a (B,3,H,W) image into (B,48,H/4,W/4), so the UNet does its work at a
sixteenth of the pixels: that is what makes 512x512 edits take seconds on a CPU. Fully convolutional, so
any H, W that are multiples of `size_multiple` work.

Folder layout (read by the engine's loader):
    unet/        UNet2DModel.save_pretrained (safetensors)
    scheduler/   DDPMScheduler (linear 1e-4..0.02, 1000 steps)
    sdedit.json  {"id", "unshuffle", "prediction", "default_steps", "description", "trained_on", "size_multiple",
                  "edge_margin"}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # inference runs on plain_unet; diffusers only for training and saving
    from diffusers import DDPMScheduler, UNet2DModel

UNSHUFFLE = 4

# The architecture trained for the embedded model (keep in sync with the exported config.json).
DEFAULT_UNET_CONFIG: dict[str, Any] = dict(
    in_channels=3 * UNSHUFFLE * UNSHUFFLE,
    out_channels=3 * UNSHUFFLE * UNSHUFFLE,
    block_out_channels=(64, 128, 160, 192),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
    norm_num_groups=32,
    sample_size=32,
    add_attention=False,
)


# The network's outermost pixels (worst in the bottom-right corner, where its stride-2 convolutions never
# see padding) come out speckled; the engine pads the canvas by this much and crops it off again.
EDGE_MARGIN = 16
#: what every export declares (docs/model_card.md): the sampler its benchmark shows best, and the scene size it
#: is trained on (engine/native_scale.py edits larger canvases at that scale first)
DEFAULT_SDE = "ode"
NATIVE_SIZE = 256
#: live mode (models/live.py): ode in 3 steps at 256 px lands within 6/255 of the 20-step edit (2 steps: 14/255)
LIVE_DEFAULTS = {"sde": "ode", "steps": 3, "size": 256}


def make_scheduler() -> DDPMScheduler:
    """The VP schedule the model is trained with (DDPM linear betas)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02, num_train_timesteps=1000)


def linear_alphas_cumprod_f32(beta_start: float = 1e-4, beta_end: float = 0.02, steps: int = 1000) -> torch.Tensor:
    """make_scheduler().alphas_cumprod computed as DDPMScheduler does (float32), without importing diffusers."""
    return torch.cumprod(1.0 - torch.linspace(beta_start, beta_end, steps, dtype=torch.float32), dim=0)


class UnshuffleEpsNet(torch.nn.Module):
    """x in [-1,1] (B,3,H,W), DDPM timestep index (0..999, fractional allowed) -> predicted epsilon.

    With `eps_skip` = sigma_data (sdedit.json "eps_skip_sigma_data"), the UNet only predicts a residual:
    eps = c_skip(t) x + c_out(t) F(x, t), where c_skip x is the best linear (Wiener) guess of the noise for
    data of std sigma_data and c_out the std of what is left. Without it a small UNet must learn an exact
    identity through GroupNorm/SiLU layers to predict noise at large t, which it learns slowly; with it,
    high noise levels are right from the start and training spends its steps on texture.
    """

    def __init__(self, unet: UNet2DModel, unshuffle: int = UNSHUFFLE, eps_skip: float | None = None):
        super().__init__()
        self.unet = unet
        self.unshuffle = unshuffle
        self.eps_skip = float(eps_skip) if eps_skip else None
        n_down = len(unet.config.block_out_channels) - 1
        self.size_multiple = unshuffle * 2**n_down
        self.register_buffer("alphas_cumprod", linear_alphas_cumprod_f32(), persistent=False)

    @classmethod
    def new(cls, eps_skip: float | None = None, **overrides: Any) -> "UnshuffleEpsNet":
        """A freshly initialised network (for training)."""
        from diffusers import UNet2DModel

        cfg = {**DEFAULT_UNET_CONFIG, **overrides}
        return cls(UNet2DModel(**cfg), eps_skip=eps_skip)

    def _abar(self, t: torch.Tensor) -> torch.Tensor:
        """alphas_cumprod at (fractional) DDPM indices, linearly interpolated."""
        table = self.alphas_cumprod.to(t.device)
        tc = t.clamp(0, len(table) - 1)
        lo = tc.floor().long()
        hi = (lo + 1).clamp(max=len(table) - 1)
        f = tc - lo.float()
        return table[lo] * (1 - f) + table[hi] * f

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | float) -> torch.Tensor:
        b, c, h, w = x.shape
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"image size {w}x{h} must be a multiple of {self.size_multiple}; pad it first")
        t = torch.as_tensor(timesteps, dtype=torch.float32, device=x.device)
        if t.ndim == 0:
            t = t.expand(b)
        dtype = next(self.unet.parameters()).dtype
        z = F.pixel_unshuffle(x, self.unshuffle).to(dtype)
        out = self.unet(z, t.to(dtype) if dtype != torch.float32 else t).sample
        res = F.pixel_shuffle(out.to(x.dtype), self.unshuffle)
        if self.eps_skip is None:
            return res
        ab = self._abar(t.float()).to(x.dtype).view(-1, 1, 1, 1)
        sd2 = self.eps_skip**2
        denom = ab * sd2 + (1 - ab)
        c_skip = (1 - ab).sqrt() / denom
        c_out = ab.sqrt() * self.eps_skip / denom.sqrt()
        return c_skip * x + c_out * res

    @classmethod
    def from_folder(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> "UnshuffleEpsNet":
        path = Path(path)
        from sdedit.models.plain_unet import load_plain_unet

        meta = read_meta(path)
        unet = load_plain_unet(path / "unet", dtype)  # plain torch: no diffusers import for the embedded model
        if unet is None:
            from diffusers import UNet2DModel

            unet = UNet2DModel.from_pretrained(path / "unet", torch_dtype=dtype)
        net = cls(unet, unshuffle=int(meta.get("unshuffle", UNSHUFFLE)), eps_skip=meta.get("eps_skip_sigma_data"))
        return net.eval()

    def save_folder(self, path: str | Path, extra: Optional[dict] = None, dtype: torch.dtype = torch.float16) -> None:
        """Write unet/ (safetensors, `dtype`), scheduler/ and sdedit.json."""
        from diffusers import UNet2DModel

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        unet = self.unet
        if dtype != next(unet.parameters()).dtype or not isinstance(unet, UNet2DModel):  # plain_unet: to diffusers
            config = unet.config if isinstance(unet, UNet2DModel) else dict(vars(unet.config))
            unet = UNet2DModel.from_config(config)
            unet.load_state_dict(self.unet.state_dict())
            for p in unet.parameters():  # plain cast (module.to() warns about keep-in-fp32 modules; none here)
                p.data = p.data.to(dtype)
        unet.save_pretrained(path / "unet", safe_serialization=True)
        make_scheduler().save_pretrained(path / "scheduler")
        meta = {"id": "landscape", "unshuffle": self.unshuffle, "prediction": "epsilon",
                "default_steps": {"vp": 25, "ve": 30}, "size_multiple": self.size_multiple,
                "edge_margin": EDGE_MARGIN, "default_sde": DEFAULT_SDE, "native_size": NATIVE_SIZE,
                "live": dict(LIVE_DEFAULTS)}
        if self.eps_skip is not None:
            meta["eps_skip_sigma_data"] = self.eps_skip
        meta.update(extra or {})
        (path / "sdedit.json").write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(path: str | Path) -> dict:
    p = Path(path) / "sdedit.json"
    return json.loads(p.read_text()) if p.exists() else {}
