"""A Stable Diffusion checkpoint seen as one more DiffusionModel: SDEdit in a VAE's latent space.

The samplers stay the same (docs/design.md §4): they ask for the noise in a 4-channel latent at a VP step or a VE
noise level, and this class answers through the text-conditioned UNet, converting v-prediction to epsilon
and applying classifier-free guidance with the unconditional and conditional halves in one batched call.
The engine wraps the VAE around the sampling (`encode_image`, `decode_latent`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from sdedit.errors import InputError
from sdedit.models.base import DiffusionModel
from sdedit.models.sd_family import DEFAULT_SDE, Family  # noqa: F401  (DEFAULT_SDE re-exported)
from sdedit.schedules import timestep_for_sigma

VAE_FACTOR = 8  # pixels per latent along each side
SNAP = 1e-4  # a fractional timestep this close to a whole step is that step (VE levels that are table knots)


@dataclass
class TextCondition:
    """Encoded prompt(s) for one edit. `uncond` is None when a single (conditional) call suffices."""

    cond: torch.Tensor  # (1, 77, D)
    uncond: torch.Tensor | None
    guidance: float
    pooled: torch.Tensor | None = None  # SDXL: (1, 1280) pooled text embedding of the prompt
    uncond_pooled: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None  # SDXL: (1, 6) original size, crop, target size
    timestep_cond: torch.Tensor | None = None  # guidance-distilled UNets (full LCM): (1, D) embedding of w - 1


def guidance_embedding(w: float, dim: int) -> torch.Tensor:
    """The sinusoidal embedding of a guidance scale that guidance-distilled UNets (LCM, `time_cond_proj_dim`)
    take instead of classifier-free guidance (Meng et al. 2023, "On distillation of guided diffusion models";
    diffusers' get_guidance_scale_embedding): w x 1000 on the timestep embedding's frequencies, (1, dim)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
    angles = torch.tensor([float(w) * 1000.0])[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return torch.nn.functional.pad(emb, (0, 1)) if dim % 2 else emb


class LatentModel(DiffusionModel):
    """UNet2DConditionModel + AutoencoderKL + CLIP text encoder(s) of one Stable Diffusion checkpoint."""

    def __init__(self, unet, vae, text_encoders: list, tokenizers: list, family: Family, **kwargs) -> None:
        kwargs.setdefault("native_size", family.resolution)
        super().__init__(**kwargs)
        self.unet, self.vae = unet, vae
        self.text_encoders, self.tokenizers = text_encoders, tokenizers
        self.family = family
        self.prediction = family.prediction
        self.scaling_factor = float(vae.config.scaling_factor)
        self.default_guidance = family.guidance
        self.steps_offset = 1
        self.condition: TextCondition | None = None
        self.guidance_dim = getattr(unet.config, "time_cond_proj_dim", None)  # set: guidance-distilled (LCM)

    takes_text = True
    kind = "latent"
    default_sde = DEFAULT_SDE

    @property
    def native_resolution(self) -> int | None:
        """The old name of `native_size` (the family's training resolution, in pixels)."""
        return self.native_size

    @native_resolution.setter
    def native_resolution(self, side: int | None) -> None:
        self.native_size = side

    # -- text ----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_text(self, prompt: str = "", negative_prompt: str = "", guidance: float | None = None,
                    size: tuple[int, int] | None = None) -> TextCondition:
        """Embeddings for the prompt and the negative prompt; one UNet call per step when they coincide
        (no prompt: the paper's unconditional edit) or when guidance is 1 (the conditional prediction).
        A guidance-distilled UNet (full LCM) always takes one call, with w - 1 embedded beside the timestep."""
        w = self.default_guidance if guidance is None else float(guidance)
        cond, pooled = self._embed(prompt)
        uncond = uncond_pooled = timestep_cond = None
        if self.guidance_dim:
            timestep_cond = guidance_embedding(w - 1.0, int(self.guidance_dim)).to(self.device, self.dtype)
        elif w != 1.0 and prompt != negative_prompt:
            if self.family.is_xl and not negative_prompt:  # SDXL's force_zeros_for_empty_prompt
                uncond, uncond_pooled = torch.zeros_like(cond), torch.zeros_like(pooled)
            else:
                uncond, uncond_pooled = self._embed(negative_prompt)
        time_ids = None
        if self.family.is_xl:
            width, height = size or (self.native_size, self.native_size)
            time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=self.dtype, device=self.device)
        return TextCondition(cond, uncond, w, pooled, uncond_pooled, time_ids, timestep_cond)

    def _embed(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden, pooled = [], None
        for tok, enc in zip(self.tokenizers, self.text_encoders):
            ids = tok(text, padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids
            self._check_vocabulary(ids, enc)
            ids = ids.to(self.device)
            if self.family.is_xl:  # SDXL: penultimate layer of both encoders, pooled projection of the last
                out = enc(ids, output_hidden_states=True)
                hidden.append(out.hidden_states[-2])
                pooled = out[0]
            else:
                hidden.append(enc(ids)[0])
        return torch.cat(hidden, dim=-1).to(self.dtype), (None if pooled is None else pooled.to(self.dtype))

    def _check_vocabulary(self, ids: torch.Tensor, encoder) -> None:
        """A tokenizer that does not fit its text encoder would index past the embedding table (IndexError)."""
        size = encoder.get_input_embeddings().num_embeddings
        if int(ids.max()) >= size:
            raise InputError(f"The model '{self.id}' gives token id {int(ids.max())} to a text encoder whose "
                             f"vocabulary has {size} tokens: its tokenizer does not fit its text encoder.")

    def conditioned(self, condition: TextCondition) -> "LatentModel":
        """A view of this model (same networks) that samples with the given text condition."""
        view = copy.copy(self)
        view.condition = condition
        return view

    # -- the noise prediction the samplers ask for --------------------------------------------------
    def eps_vp(self, x_vp: torch.Tensor, step: int) -> torch.Tensor:
        abar = torch.full((x_vp.shape[0],), float(self.alphas_cumprod[step]), dtype=torch.float64)
        return self._eps(x_vp, torch.full((x_vp.shape[0],), float(step)), abar)

    def eps_ve(self, x_ve: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.double().cpu()
        abar = 1.0 / (1.0 + sigma**2)
        steps = timestep_for_sigma(sigma, self.table_sigmas)
        steps = torch.where((steps - steps.round()).abs() < SNAP, steps.round(), steps)
        x_vp = x_ve * abar.sqrt().to(x_ve.device, x_ve.dtype).view(-1, 1, 1, 1)
        return self._eps(x_vp, steps, abar)

    @torch.inference_mode()
    def _eps(self, x_vp: torch.Tensor, timesteps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        out = self.model_output(x_vp, timesteps)
        if self.prediction == "v_prediction":  # v = sqrt(abar) eps - sqrt(1-abar) x0  =>  eps = sqrt(abar) v + sqrt(1-abar) x
            a = abar.to(x_vp.device, torch.float32).view(-1, 1, 1, 1)
            out = a.sqrt() * out + (1.0 - a).sqrt() * x_vp.float()
        return out

    def model_output(self, x_vp: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The UNet's raw prediction (epsilon or v) with classifier-free guidance applied."""
        c = self.condition or self.encode_text()
        batch = x_vp.shape[0]
        t = timesteps.to(x_vp.device, torch.float32)
        if c.uncond is None:
            return self._unet(self._net_input(x_vp), t, c.cond, c.pooled, c.time_ids, batch,
                              c.timestep_cond).float()
        x2 = self._net_input(torch.cat([x_vp, x_vp]))
        emb = torch.cat([c.uncond.expand(batch, -1, -1), c.cond.expand(batch, -1, -1)])
        pooled = None if c.pooled is None else torch.cat([c.uncond_pooled.expand(batch, -1), c.pooled.expand(batch, -1)])
        out = self._unet(x2, torch.cat([t, t]), emb, pooled, c.time_ids, 2 * batch).float()
        uncond, cond = out.chunk(2)
        return uncond + c.guidance * (cond - uncond)

    def _unet(self, x, t, emb, pooled, time_ids, batch: int, timestep_cond=None) -> torch.Tensor:
        emb = emb.expand(batch, -1, -1) if emb.shape[0] == 1 else emb
        if timestep_cond is not None:
            timestep_cond = timestep_cond.expand(batch, -1)
        added = None
        if pooled is not None:
            pooled = pooled.expand(batch, -1) if pooled.shape[0] == 1 else pooled
            added = {"text_embeds": pooled, "time_ids": time_ids.expand(batch, -1)}
        extra = {} if timestep_cond is None else {"timestep_cond": timestep_cond}
        return self.unet(x, t, encoder_hidden_states=emb, added_cond_kwargs=added, **extra).sample

    # -- the deterministic sampler's plan ------------------------------------------------------------
    def ddim_sigmas(self, t0: float, steps: int) -> list[float]:
        """Noise levels of DDIM on this model, then 0: from SDEdit's start step round(t0 * T) - 1 (where the
        vp and ode samplers start) down in `steps` evenly spaced whole timesteps, the last one T0 / steps - 1.

        These are the timesteps diffusers' img2img visits with "trailing" spacing, strength = t0 and
        num_inference_steps = steps / t0 when that is a whole number dividing T (the parity test's setting);
        its default "leading" spacing starts lower (t about 0.5 at t0 = 0.6, 6 steps)."""
        train = len(self.alphas_cumprod)
        start = max(1, round(t0 * train))  # T0, as samplers.vp_plan and ode_plan
        stamps = [max(0, round(start * (steps - k) / steps) - 1) for k in range(steps)]
        return [float(self.table_sigmas[t]) for t in stamps] + [0.0]

    # -- the VAE around the sampling -------------------------------------------------------------------
    @torch.inference_mode()
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) in [-1, 1] -> scaled latent (1, 4, H/8, W/8): the posterior's mean (deterministic)."""
        x = image.to(self.device, self.vae.dtype)
        return self.vae.encode(x).latent_dist.mode().float() * self.scaling_factor

    @torch.inference_mode()
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Scaled latent (B, 4, h, w) -> (B, 3, 8h, 8w) in [-1, 1], float32."""
        z = (latent / self.scaling_factor).to(self.device, self.vae.dtype)
        return self.vae.decode(z).sample.float().clamp(-1.0, 1.0)
