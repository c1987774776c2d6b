"""The facts about a loaded model that decide how an edit runs: what the engine, the job budget, the server's
model list and the cluster's replicas read, in one declared set (no torch: a replica sends it to the front).

Every model declares them as attributes (DiffusionModel's fields and class attributes; a loader sets those a
checkpoint or its sdedit.json names); `facts_of(model)` is the one place that reads them. A new fact is one
field here (with its default for models that do not declare it) and one attribute on DiffusionModel.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional

from sdedit.models.live import LiveDefaults

DEFAULT_MAX_SIDE = 1024  # fully convolutional models work at most at this size, then the result is scaled up


@dataclass(frozen=True)
class ModelFacts:
    """What an edit needs to know of a model, without its weights."""

    id: str
    kind: str = "pixel"  # "pixel", or "latent" (a VAE's latent space: Stable Diffusion)
    takes_text: bool = False  # takes a prompt (and negative prompt, guidance)
    native_sde: str = "vp"  # the SDE it was trained with
    default_sde: str = "vp"  # the sampler for requests that name none
    default_steps: Dict[str, Optional[int]] = field(default_factory=dict)  # per sampler; None: the paper's
    prediction: str = "epsilon"  # "epsilon" or "v_prediction" (what the network outputs)
    default_guidance: Optional[float] = None  # classifier-free guidance for text models
    resolution: Optional[int] = None  # a fixed square working size; None = any size (fully convolutional)
    native_size: Optional[int] = None  # the side it was trained at: larger regions are edited in two stages
    size_multiple: int = 1  # working sizes are multiples of this
    max_side: int = DEFAULT_MAX_SIDE  # the longest side a network call runs at (above: scaled up)
    edge_margin: int = 0  # pixels of replicated edge around the working region (the network's border)
    schedule_length: int = 1000  # DDPM steps of its noise schedule (len(alphas_cumprod))
    live: Optional[LiveDefaults] = None  # live mode's sampler, steps, size and guidance (models/live.py)

    @property
    def detail_pass(self) -> bool:
        """Canvases above max_side get the last full-size low-noise pass (pixel models; latent ones are only
        refined)."""
        return self.kind == "pixel"


def facts_of(model: Any) -> ModelFacts:
    """The model's declared facts (a ModelFacts is returned as it is)."""
    if isinstance(model, ModelFacts):
        return model
    read: Dict[str, Any] = {}
    for f in fields(ModelFacts):
        if f.name == "schedule_length":
            read[f.name] = len(model.alphas_cumprod)
        elif f.name == "default_steps":
            read[f.name] = dict(model.default_steps)
        elif hasattr(model, f.name):
            read[f.name] = getattr(model, f.name)
    return ModelFacts(**read)
