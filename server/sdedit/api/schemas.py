"""JSON shapes of the HTTP API (DESIGN.md §3); FastAPI turns them into the OpenAPI schema."""
from __future__ import annotations

from enum import Enum
from typing import Any, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..engine import MAX_SAMPLES, MAX_STEPS, SAMPLERS
from ..engine.edit import MAX_SEED
from ..engine.latent_edit import MAX_GUIDANCE, MAX_PROMPT_CHARS

#: Samplers the server accepts: whatever the engine offers ("vp", "ve", ...; DESIGN §4).
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


class JobRequest(BaseModel):
    """POST /v1/jobs body. Unknown fields are ignored so older servers accept newer clients."""

    model_config = ConfigDict(extra="ignore")

    image: str = Field(min_length=1, description="The guide image: base64 PNG, JPEG or WebP (a data: URL is accepted).")
    mask: Optional[str] = Field(
        None, description="Optional base64 mask of the image's size: white = edit, black = keep, grey = blend."
    )
    t0: float = Field(0.5, gt=0.0, le=1.0, allow_inf_nan=False, description="Noise level to start from, in (0, 1].")
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
    guidance: Optional[float] = Field(None, ge=0.0, le=MAX_GUIDANCE, allow_inf_nan=False,
                                      description="Text models only: classifier-free guidance scale; null = the model's.")


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
    error: Optional[str] = Field(None, description="Why the job failed (state 'failed' only).")
    queue_position: Optional[int] = Field(None, description="Jobs ahead of this one while it is queued.")
    seconds: Optional[float] = Field(None, description="Time spent running so far (total once finished).")


class JobResult(BaseModel):
    images: List[str] = Field(description="Base64 PNGs of the input's full size, one per sample.")
    seeds: List[int] = Field(description="The seed of each sample; resubmit one with samples=1 to repeat it.")


class ModelEntry(BaseModel):
    id: str
    resolution: Optional[int]
    sde: str
    default: bool
    kind: str = Field("pixel", description="'pixel' or 'latent' (Stable Diffusion: a VAE's latent space).")
    text: bool = Field(False, description="Whether the model takes prompt, negative_prompt and guidance.")
    default_sde: str = Field("vp", description="The sampler used when a job names none.")


class Health(BaseModel):
    status: str
    device: str
    models: List[str]


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
