"""What a client needs to know about a model before loading it (no torch: listing models stays cheap)."""
from __future__ import annotations

from dataclasses import dataclass

from sdedit.models.live import LiveDefaults


@dataclass(frozen=True)
class ModelInfo:
    """What a client needs to know about a model before loading it."""

    id: str
    resolution: int | None  # fixed square working size; None = fully convolutional, any size
    sde: str  # the SDE it was trained with: "vp" or "ve"
    default: bool = False
    path: str = ""
    description: str = ""
    kind: str = "pixel"  # "pixel" or "latent" (a VAE's latent space: Stable Diffusion)
    text: bool = False  # takes a prompt
    default_sde: str = "vp"  # the sampler used when a request names none
    native_size: int | None = None  # the side it was trained at (DiffusionModel.native_size)
    live: LiveDefaults | None = None  # what a live-mode preview asks for (models/live.py)
    prediction: str | None = None  # latent models: "epsilon" or "v_prediction"
    prediction_note: str = ""  # how that was settled when the model does not declare it (SD 2.x single files)

    def as_dict(self) -> dict:
        return {"id": self.id, "resolution": self.resolution, "sde": self.sde, "default": self.default,
                "description": self.description, "kind": self.kind, "text": self.text,
                "default_sde": self.default_sde, "native_size": self.native_size,
                "live": None if self.live is None else self.live.as_dict(), "prediction": self.prediction}
