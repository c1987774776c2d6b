"""JSON shapes of the HTTP API (docs/design.md §3); FastAPI turns them into the OpenAPI schema."""
from __future__ import annotations

from enum import Enum
from typing import Any, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..engine import MAX_SAMPLES, MAX_STEPS, SAMPLERS
from ..params import MAX_GUIDANCE, MAX_PROMPT_CHARS, MAX_SEED, MIN_GUIDANCE, T0_MAX, T0_MIN_EXCLUSIVE

#: Samplers the server accepts: whatever the engine offers ("vp", "ve", ...; docs/design.md §4).
SdeName = Literal[tuple(SAMPLERS)]  # type: ignore[valid-type]


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.done, JobState.failed, JobState.cancelled)


class LoraRef(BaseModel):
    """One LoRA of a job: an id from GET /v1/loras and its scale (0 = off)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200, description="A LoRA id from GET /v1/loras.")
    scale: float = Field(1.0, ge=-4.0, le=4.0, allow_inf_nan=False, description="Strength; 1 = as trained, 0 = off.")


class JobRequest(BaseModel):
    """POST /v1/jobs body. Unknown fields are ignored so older servers accept newer clients."""

    model_config = ConfigDict(extra="ignore")

    image: str = Field(min_length=1, description="The guide image: base64 PNG, JPEG or WebP (a data: URL is accepted).")
    mask: Optional[str] = Field(
        None, description="Optional base64 mask of the image's size: white = edit, black = keep, grey = blend."
    )
    t0: float = Field(0.5, gt=T0_MIN_EXCLUSIVE, le=T0_MAX, allow_inf_nan=False, description="Noise level to start from, in (0, 1].")
    sde: SdeName = Field("vp", description="The sampler: " + ", ".join(repr(s) for s in SAMPLERS)
                         + " ('vp' = DDPM, 've' = NCSN); left out = the model's default_sde (GET /v1/models).")
    steps: Optional[int] = Field(
        None, ge=0, le=MAX_STEPS, description="Sampler steps; null or 0 = the model's default."
    )
    samples: int = Field(1, ge=1, le=MAX_SAMPLES, description="How many results (K), each with its own noise.")
    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED, description="Seed of the first sample; null = random.")
    model: Optional[str] = Field(None, max_length=512, description="A model id from GET /v1/models; null = default.")
    prompt: Optional[str] = Field(None, max_length=MAX_PROMPT_CHARS,
                                  description="Text models only (GET /v1/models 'text'): what the picture shows.")
    negative_prompt: Optional[str] = Field(None, max_length=MAX_PROMPT_CHARS,
                                           description="Text models only: what the picture should not show.")
    guidance: Optional[float] = Field(None, ge=MIN_GUIDANCE, le=MAX_GUIDANCE, allow_inf_nan=False,
                                      description="Text models only: classifier-free guidance scale; null = the model's.")
    loras: Optional[List[LoraRef]] = Field(None, max_length=8,
                                           description="Stable Diffusion models only: LoRAs to apply, each once.")
    grow: bool = Field(
        False, description="Grow and feather a hard-edged mask (a selection) outward by a band that scales with "
                           "its size and t0, so the edit fades into its surroundings (what the editor plugins "
                           "send). The result's 'mask' is then the grown one; pixels beyond it are kept. "
                           "false (default): black mask pixels come back byte for byte.")
    session: Optional[str] = Field(
        None, min_length=1, max_length=128,
        description="Live mode: a key of the client's choosing (random, per canvas). A new job with the same key "
                    "supersedes the session's queued or running job, which ends 'cancelled' (error 'superseded'): "
                    "at most one job per session is queued or running, and the newest wins.")


    @field_validator("t0", "steps", "samples", "seed", "guidance", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        """JSON true is not the number 1: a client bug must not silently edit at full noise."""
        if isinstance(value, bool):
            raise ValueError("must be a number, not true or false")
        return value


class JobCreated(BaseModel):
    id: str
    state: JobState


class JobStatus(BaseModel):
    id: str
    state: JobState
    progress: float = Field(ge=0.0, le=1.0, description="Fraction of sampler steps done.")
    error: Optional[str] = Field(None, description="Why the job failed (state 'failed'), or 'superseded: ...' "
                                                   "for a cancelled live-mode job that a newer one replaced.")
    queue_position: Optional[int] = Field(None, description="Jobs ahead of this one while it is queued.")
    seconds: Optional[float] = Field(None, description="Time spent running so far (total once finished).")
    superseded_by: Optional[str] = Field(None, description="Live mode: the id of the newer job of the same "
                                                           "session that replaced this one.")


class JobResult(BaseModel):
    images: List[str] = Field(description="Base64 PNGs of the input's full size, one per sample.")
    seeds: List[int] = Field(description="The seed of each sample; resubmit one with samples=1 to repeat it.")
    steps: Optional[int] = Field(None, description="The sampler steps that ran (the model's default when the job "
                                                   "named none).")
    sde: Optional[str] = Field(None, description="The sampler that ran (the model's default_sde when the job "
                                                 "named none).")
    mask: Optional[str] = Field(None, description="When the job had a mask: base64 PNG (8-bit grey, the input's "
                                "size) of the mask the edit used. A hard selection is grown and feathered "
                                "outward; pixels where it is 0 are the input's, byte for byte.")


class LiveEntry(BaseModel):
    """A model's live-mode defaults: what a re-edit-as-you-paint preview should ask for."""

    sde: str = Field(description="The sampler for live previews.")
    steps: int = Field(description="Sampler steps for live previews.")
    size: int = Field(description="Longest side, in pixels, of the region a live preview sends.")
    guidance: Optional[float] = Field(None, description="Text models: the guidance for live previews.")


class ModelEntry(BaseModel):
    id: str
    resolution: Optional[int] = Field(description="A fixed square working size in pixels, or null: the model takes "
                                                  "any size (fully convolutional).")
    sde: str = Field(description="The SDE the model was trained with: 'vp' (DDPM, an epsilon/v model) or 've' "
                                 "(NCSN++). Not the sampler a job gets: that is default_sde. Any model drives every "
                                 "sampler (docs/design.md §4).")
    default: bool = Field(description="Whether this model is used when a job names none.")
    kind: str = Field("pixel", description="'pixel' or 'latent' (Stable Diffusion: a VAE's latent space).")
    text: bool = Field(False, description="Whether the model takes prompt, negative_prompt and guidance.")
    default_sde: str = Field("vp", description="The sampler a job gets when it sends no 'sde': the one this "
                                               "model's benchmark shows best ('ode' for the embedded model and "
                                               "Stable Diffusion). Clients offering a 'model default' choice use "
                                               "this field.")
    live: Optional[LiveEntry] = Field(None, description="Live mode's defaults for this model (sampler, steps, "
                                                        "size, guidance).")
    prediction: Optional[str] = Field(None, description="Latent models: what the UNet predicts, 'epsilon' or "
                                      "'v_prediction' (an SD 2.x file's is told from its weights when it is loaded).")


class LoraEntry(BaseModel):
    id: str


class PublishedLimits(BaseModel):
    """What this server accepts, for clients to read instead of keeping a copy (sdedit/params.py)."""

    t0_min_exclusive: float = Field(description="t0 must be above this ...")
    t0_max: float = Field(description="... and at most this.")
    max_samples: int
    max_steps: int = Field(description="steps from 1 to this; 0 or none = the model's default")
    max_seed: int
    min_guidance: float
    max_guidance: float
    max_prompt_chars: int = Field(description="for prompt and negative_prompt each")
    samplers: List[str] = Field(description="the values of sde")
    max_pixels: int = Field(description="width x height of the image (and mask)")
    max_body_bytes: int
    max_work: Optional[int] = Field(None, description="pixel-steps (working pixels x samples x steps of all "
                                    "stages) one job of the default model may ask for; null: no limit")
    max_work_why: Optional[str] = Field(None, description="how max_work was set, in words")


class Health(BaseModel):
    status: str
    device: str
    models: List[str]
    limits: Optional[PublishedLimits] = None


class HandoffProof(BaseModel):
    """GET /v1/handoff: proof that this is the user's own sdedit (sdedit_client.handoff_key)."""

    proof: str = Field(description="HMAC-SHA256(user secret, nonce, host, port) as hex.")
    host: str = Field(description="The server address the request reached.")
    port: int


class ErrorMessage(BaseModel):
    """Every 4xx/5xx body: `detail` is one sentence that names the problem."""

    detail: str


class FieldProblem(BaseModel):
    loc: List[Union[str, int]]
    msg: str
    type: str


class ValidationProblem(ErrorMessage):
    """422: `detail` names every bad field in words; `errors` lists them for programs."""

    errors: List[FieldProblem] = Field(default_factory=list)
