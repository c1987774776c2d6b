"""One view of every denoiser the engine can drive, whatever SDE it was trained with.

The samplers only ask two questions: "what is the noise in this VP-space image at DDPM step i?" and
"what is the noise in this VE-space image at noise level sigma?". A VP-trained epsilon network answers the
first natively and the second through the change of variables; a VE score network the other way round.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch

from sdedit.models.facts import DEFAULT_MAX_SIDE, ModelFacts, facts_of
from sdedit.models.info import ModelInfo  # noqa: F401  (re-exported: ModelInfo lived here)
from sdedit.models.live import LiveDefaults
from sdedit.schedules import linear_alphas_cumprod, sigmas_from_alphas_cumprod, timestep_for_sigma


@dataclass
class DiffusionModel:
    """A loaded network plus the facts the engine needs to sample with it.

    The facts (models/facts.py: kind, text, samplers and steps, sizes) are declared here, as fields a loader
    fills or class attributes a subclass overrides; `facts()` reads them. Subclasses implement `eps_vp` (VP-trained) or `eps_ve` (VE-trained); the base class derives the other.
    Images are (B, 3, H, W) float32 tensors, data range [-1, 1].
    """

    id: str
    native_sde: str
    resolution: int | None
    size_multiple: int
    default_steps: dict[str, int | None]
    sigma_min: float
    sigma_max: float
    device: torch.device
    dtype: torch.dtype = torch.float32
    alphas_cumprod: torch.Tensor = field(default_factory=linear_alphas_cumprod)
    max_side: int = DEFAULT_MAX_SIDE  # fully convolutional models work at most at this size, then upscale
    description: str = ""
    edge_margin: int = 0  # pixels of padding the engine adds around the canvas (artefacts at the network's
    #                       borders then fall outside the picture); sdedit.json "edge_margin"
    native_size: int | None = None  # side of the square it was trained at (its pixel scale): larger working
    #                                 regions are edited at this scale first, then refined at full size
    #                                 (engine/native_scale.py); None = never. sdedit.json "native_size",
    #                                 a fixed-size checkpoint's resolution, a latent model's pixel size.
    #: the sampler for requests that name none (sdedit.json "default_sde", set by the loader; a class may
    #: declare its own); not a dataclass field, so subclasses' class attributes are not overwritten
    default_sde: ClassVar[str] = "vp"
    #: live mode's defaults (models/live.py), set by the loader from the same configs as the model list's
    live: ClassVar[Optional[LiveDefaults]] = None
    kind: ClassVar[str] = "pixel"  # "latent": the samplers run in a VAE's latent space (models/latent.py)
    takes_text: ClassVar[bool] = False  # takes a prompt, negative prompt and guidance
    prediction: ClassVar[str] = "epsilon"  # what the network outputs ("epsilon" or "v_prediction")
    default_guidance: ClassVar[float | None] = None  # classifier-free guidance scale for text models
    sigma_scale: float = 1.0  # engine sigma ([-1, 1] data) per unit of sigma_min/sigma_max: 2 for networks
    #                           trained on [0, 1] data (NCSN++), whose sigma range is on that scale

    def __post_init__(self) -> None:
        self.table_sigmas = sigmas_from_alphas_cumprod(self.alphas_cumprod)

    # -- the two views -------------------------------------------------------------------------------
    def eps_vp(self, x_vp: torch.Tensor, step: int) -> torch.Tensor:
        """Predicted noise of x_vp = sqrt(abar_i) x0 + sqrt(1 - abar_i) z at DDPM step `step`."""
        abar = float(self.alphas_cumprod[step])
        sigma = ((1.0 - abar) / abar) ** 0.5
        return self.eps_ve(x_vp / abar**0.5, torch.full((x_vp.shape[0],), sigma, device=x_vp.device))

    def eps_ve(self, x_ve: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Predicted noise z of x_ve = x0 + sigma z (sigma: one value per batch item)."""
        abar = 1.0 / (1.0 + sigma.double() ** 2)
        steps = timestep_for_sigma(sigma.double(), self.table_sigmas)
        x_vp = x_ve * abar.sqrt().to(x_ve.dtype).view(-1, 1, 1, 1)
        return self._eps_at_timestep(x_vp, steps)

    def _eps_at_timestep(self, x_vp: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def ve_sigma_range(self) -> tuple[float, float]:
        """(sigma_min, sigma_max) of the VE sampler in the engine's [-1, 1] data units."""
        return self.sigma_scale * self.sigma_min, self.sigma_scale * self.sigma_max

    def _net_input(self, x: torch.Tensor) -> torch.Tensor:
        """The network's dtype, and channels_last on CUDA (the layout prepare_network gave the weights)."""
        x = x.to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cuda" else x

    def facts(self) -> ModelFacts:
        """The declared facts (models/facts.py), without the weights."""
        return facts_of(self)

    def info(self, default: bool = False, path: str = "") -> ModelInfo:
        f = self.facts()
        return ModelInfo(self.id, self.resolution, self.native_sde, default, path, self.description, kind=f.kind,
                         text=f.takes_text, default_sde=f.default_sde, native_size=f.native_size, live=f.live)


class VPEpsilonModel(DiffusionModel):
    """An epsilon-prediction network trained on the VP (DDPM) schedule, called as net(x_vp, t)."""

    def __init__(self, net: torch.nn.Module, **kwargs) -> None:
        super().__init__(**kwargs)
        self.net = net

    def eps_vp(self, x_vp: torch.Tensor, step: int) -> torch.Tensor:
        t = torch.full((x_vp.shape[0],), float(step), device=x_vp.device)
        return self._eps_at_timestep(x_vp, t)

    @torch.inference_mode()
    def _eps_at_timestep(self, x_vp: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        out = self.net(self._net_input(x_vp), timesteps.to(x_vp.device, torch.float32))
        out = out.sample if hasattr(out, "sample") else out
        return out[:, :3].float()  # learned-variance checkpoints put the variance in channels 3..5


class VEScoreModel(DiffusionModel):
    """A NCSN++-style score network on data in [0, 1], conditioned on sigma (diffusers' ScoreSdeVe layout).

    The factor of 2. score_sde and the folder's ScoreSdeVeScheduler state sigma_min/sigma_max (0.01 and
    348-1348) on the network's own [0, 1] data scale: y_t = y0 + s z with y = (x + 1) / 2. The engine works on
    x in [-1, 1], where the same noise is x_t = x0 + 2 s z. So this model keeps sigma_min/sigma_max as the
    folder gives them (the paper's values), `sigma_scale` = 2, and the VE sampler spans 2 sigma(t) in engine
    units; here engine sigma is halved back, so the network receives exactly the paper's
    s(t) = sigma_min (sigma_max / sigma_min)^t (t0 0.3, 0.01-348: 0.2304). z is the same in both scales.

    VP on this model: x_VE = x_VP / sqrt(abar) and sigma_VE = sqrt((1 - abar) / abar) hold in [-1, 1] units, so
    the network receives sigma_VE / 2. Levels outside the trained range are clamped to it (the smallest VP
    steps reach sigma_VE 0.01, i.e. 0.005 on [0, 1]); the noise estimate then comes from the network's
    denoised image at the clamped level, D = y + s_c^2 score(y, s_c), as eps = (y - D) / s.

    diffusers' UNet2DModel with fourier time embedding divides its output by sigma, so the network returns the
    score of the [0, 1] data.
    """

    def __init__(self, net: torch.nn.Module, **kwargs) -> None:
        kwargs.setdefault("sigma_scale", 2.0)
        super().__init__(**kwargs)
        self.net = net

    @torch.inference_mode()
    def eps_ve(self, x_ve: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma01 = (sigma.double() / self.sigma_scale).to(x_ve.device)
        called = sigma01.clamp(self.sigma_min, self.sigma_max)
        y = (x_ve + 1.0) / 2.0
        score = self.net(self._net_input(y), called.to(self.dtype)).sample.float()
        return -score * (called**2 / sigma01).float().view(-1, 1, 1, 1)

    def eps_vp(self, x_vp: torch.Tensor, step: int) -> torch.Tensor:
        abar = float(self.alphas_cumprod[step])
        sigma = ((1.0 - abar) / abar) ** 0.5
        return self.eps_ve(x_vp / abar**0.5, torch.full((x_vp.shape[0],), sigma, device=x_vp.device))
