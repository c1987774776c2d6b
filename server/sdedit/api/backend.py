"""The server's only door into the engine: list models, validate a request, run one job.

Kept thin on purpose (no second engine): model loading and its LRU cache live in sdedit.models, sampling in
sdedit.engine, image decoding/encoding in sdedit.imaging. This module adds what HTTP needs: model ids
only (never file paths from a client), a short-lived cache of the model list, and PNG bytes out.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

from PIL import Image

from ..errors import Cancelled, InputError
from .jobs import Job, JobOutput
from .preview import store_preview

MODEL_LIST_TTL_S = 10.0


@dataclass
class EditParams:
    """A validated request, images already decoded."""

    image: Image.Image
    mask: Optional[Image.Image]
    t0: float
    sde: Optional[str]  # None: the model's default_sde
    steps: Optional[int]
    samples: int
    seed: Optional[int]
    model: Optional[str]
    prompt: Optional[str] = None
    negative_prompt: Optional[str] = None
    guidance: Optional[float] = None
    loras: Optional[list] = None  # [LoraChoice] (sdedit.models.lora), ids only
    grow: bool = False  # grow and feather a hard selection outward (engine/seam.edit_mask)


class EngineBackend:
    """Runs jobs on one device with the engine's models."""

    def __init__(self, device: str = "auto") -> None:
        from ..models import pick_device

        self.device_request = device
        self.device = str(pick_device(device))  # a bad device is an InputError before the server starts
        self._models_lock = threading.Lock()
        self._models: list = []
        self._models_at = -1e9
        self.budget = None  # a budget.Budget, set by create_app: learns each model's speed from its jobs

    # -- models -----------------------------------------------------------------------------------------
    def models(self) -> list:
        """sdedit.models.list_models(), refreshed at most every MODEL_LIST_TTL_S seconds."""
        with self._models_lock:
            if time.monotonic() - self._models_at > MODEL_LIST_TTL_S:
                from ..models import list_models

                self._models = list_models()
                self._models_at = time.monotonic()
            return list(self._models)

    def refresh_models(self) -> None:
        """Read the model folders again at the next models() call (a model was just installed or removed)."""
        with self._models_lock:
            self._models_at = -1e9

    def check_model(self, model: Optional[str]) -> None:
        """None (the default) must exist; anything else must be a listed id."""
        if model is None:
            if not any(info.default for info in self.models()):
                raise InputError("The server has no default model; name one of GET /v1/models in 'model'.")
            return
        ids = [info.id for info in self.models()]
        if model not in ids:
            with self._models_lock:
                self._models_at = -1e9  # maybe it was just installed: look again
            ids = [info.id for info in self.models()]
        if model not in ids:
            raise InputError(f"Unknown model '{model}': choose one of {', '.join(ids) or 'none installed'}.")

    def check_text(self, model: Optional[str], prompt: Optional[str], negative_prompt: Optional[str],
                   guidance: Optional[float]) -> str:
        """Text options only for a model that takes text; returns the model's default sampler."""
        info = next((i for i in self.models() if (i.id == model if model else i.default)), None)
        if info is None:
            return "vp"
        given = [n for n, v in (("prompt", prompt), ("negative_prompt", negative_prompt), ("guidance", guidance))
                 if v not in (None, "")]
        if given and not info.text:
            raise InputError(f"The model '{info.id}' takes no text, so {' and '.join(given)} cannot be used; "
                             "choose a model whose GET /v1/models entry has text: true, or leave them out.")
        return info.default_sde

    def loras(self) -> list:
        """The LoRA ids in the models folders' loras/ (a directory listing: no torch)."""
        from ..models.lora import list_loras

        return sorted(list_loras())

    def check_loras(self, model: Optional[str], loras: Optional[list]) -> list:
        """Known LoRA ids, each once, for a Stable Diffusion model; returns [LoraChoice]."""
        from ..models.lora import LoraChoice, check_choices, resolve_lora

        if not loras:
            return []
        choices = check_choices([LoraChoice(item.id, float(item.scale)) for item in loras])
        info = next((i for i in self.models() if (i.id == model if model else i.default)), None)
        if info is not None and info.kind != "latent":
            raise InputError(f"The model '{info.id}' is not a Stable Diffusion model, so LoRAs cannot be used with "
                             "it; leave 'loras' out or choose a model whose kind is 'latent'.")
        for choice in choices:
            resolve_lora(choice.ref, paths=False)  # ids only: never a path from a client
        return choices

    # -- images -----------------------------------------------------------------------------------------
    @staticmethod
    def decode(data: bytes, what: str = "image") -> Image.Image:
        from ..imaging import decode_image

        return decode_image(data, what)

    def warm_up(self) -> None:
        """Load the default model before the first job (called on the worker thread).

        With SDEDIT_COMPILE=1 it also makes one network call at 256x256 (or the model's fixed size), so the
        tens of seconds of compilation happen at start-up rather than in the first artist's job.
        """
        from ..models import load_model
        from ..models.speed import compile_requested
        from ..models.timing import warm_call

        model = load_model(None, device=self.device)
        if self.budget is not None:
            self.budget.learn_model(model)
            self.budget.calibrate(model)
        if compile_requested():
            side = model.resolution or 256
            side = -(-side // model.size_multiple) * model.size_multiple
            warm_call(model, (side, side))  # a latent model: its 4-channel latent, 1/8 the side

    # -- one job ----------------------------------------------------------------------------------------
    def run(self, job: Job, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> JobOutput:
        from ..engine import edit
        from ..imaging import encode_png
        from ..models import load_model
        from ..models.facts import facts_of

        p: EditParams = job.params
        model = load_model(p.model, device=self.device, paths=False)  # ids only, never the cwd
        prompt, negative_prompt = p.prompt, p.negative_prompt
        if facts_of(model).kind == "latent":
            from ..models.lora import apply_loras

            apply_loras(model, p.loras or [], paths=False)  # switching adapters: the checkpoint stays loaded
            from ..models.embeddings import use_embeddings

            prompt, negative_prompt = use_embeddings(model, prompt), use_embeddings(model, negative_prompt)
        if cancel():  # loading can take a while: honour a cancel that came meanwhile
            raise Cancelled()
        result = edit(model, p.image, p.mask, t0=p.t0, sde=p.sde, steps=p.steps, samples=p.samples,
                      seed=p.seed, progress=progress, cancel=cancel, prompt=prompt,
                      negative_prompt=negative_prompt, guidance=p.guidance, grow=bool(getattr(p, "grow", False)),
                      preview=lambda rgb: store_preview(job, rgb))
        if self.budget is not None and result.working_size:
            from .budget import Work

            self.budget.learn_model(model)
            self.budget.learn_speed(model.id, Work(*result.working_size, p.samples, result.steps), result.seconds)
        pngs: List[bytes] = [encode_png(image) for image in result.images]
        ran = result.params or {}
        mask = None if result.mask is None else encode_png(Image.fromarray(result.mask, "L"))
        return JobOutput(pngs=pngs, seeds=[int(s) for s in result.seeds], steps=int(ran.get("steps") or result.steps),
                         sde=ran.get("sde") or p.sde, mask=mask)
