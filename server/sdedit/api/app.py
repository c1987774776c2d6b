"""The FastAPI application: docs/design.md §3 endpoints over a JobQueue and the engine backend."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, List, Optional, Sequence

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sdedit_client.handoff_key import normal_host, proof
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import InputError
from .auth import BearerAuth, TokenGate
from .backend import EditParams, EngineBackend
from .bodylimit import BodyLimit
from .crashes import CrashGuard
from .budget import Budget, check_request
from .errortext import body_parse_problem, shown_value
from .hostguard import HostGuard
from .images import TooLarge, b64_to_bytes, check_image_bytes
from .jobs import Job, JobQueue, QueueFull
from .limits import Limits
from .preview import preview_png
from .stream import result_response
from .schemas import (
    ErrorMessage,
    HandoffProof,
    Health,
    JobCreated,
    JobRequest,
    JobResult,
    JobState,
    JobStatus,
    LoraEntry,
    ModelEntry,
    PublishedLimits,
    ValidationProblem,
)

log = logging.getLogger("sdedit.api")

CANCEL_WAIT_S = 5.0  # DELETE waits this long for a running job to reach its next sampler step
MAX_WAIT_S = 30.0

_ERRORS = {code: {"model": ErrorMessage} for code in (400, 401, 404, 409, 413, 503)}
_ERRORS[422] = {"model": ValidationProblem}
_FASTAPI_BODY_ERROR = "There was an error parsing the body"  # FastAPI's 400 for undecodable bodies


class ApiError(Exception):
    """An answer other than 2xx with one sentence in `detail`."""

    def __init__(self, status: int, detail: str, headers: Optional[dict] = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def create_app(
    token: Optional[str] = None,
    device: str = "auto",
    limits: Optional[Limits] = None,
    backend: Optional[EngineBackend] = None,
    bind_host: Optional[str] = None,
    allow_hosts: Sequence[str] = (),
    handoff_key: Any = "auto",
) -> FastAPI:
    """Build the app. `token` None = no auth (loopback only; run_server enforces that). Requests must be
    addressed to loopback, `bind_host` or one of `allow_hosts` (DNS rebinding, see hostguard.py).
    `handoff_key`: the per-user secret that GET /v1/handoff proves ("auto": read, or created, from the user's
    key file; None: no proof, `sdedit edit` then edits in its own process)."""
    limits = limits or Limits.from_env()
    backend = backend or EngineBackend(device)
    if getattr(backend, "budget", False) is None:
        backend.budget = Budget(backend.device, limits.max_work, limits.max_job_s)
    proof_key = _handoff_key() if handoff_key == "auto" else handoff_key
    queue = JobQueue(backend.run, limits, warm_up=getattr(backend, "warm_up", None),
                     workers=getattr(backend, "workers", 1))  # a pool backend (sdedit.cluster) runs several

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        queue.start()
        log.info("serving on device=%s models=%s", backend.device, ",".join(i.id for i in backend.models()))
        try:
            yield
        finally:
            queue.stop()
            if getattr(app.state, "pulls", None) is not None:
                app.state.pulls.stop()  # end download processes; their partial files stay for the next try

    app = FastAPI(
        title="SDEdit server",
        version=__version__,
        description="Stochastic differential editing for the Krita and GIMP plugins (docs/design.md §3).",
        lifespan=lifespan,
    )
    app.state.queue = queue
    app.state.backend = backend
    app.state.limits = limits
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, max_large=limits.max_large_bodies)
    app.add_middleware(TokenGate, token=token)  # before any body is read
    app.add_middleware(HostGuard, bind_host=bind_host, allow_hosts=tuple(allow_hosts))  # runs first
    app.add_middleware(CrashGuard)  # outermost: an unexpected error is one 500 and a rate-limited log
    _install_error_handlers(app)

    public = APIRouter(prefix="/v1")
    private = APIRouter(prefix="/v1", dependencies=[Depends(BearerAuth(token))],
                        responses={401: _ERRORS[401], 422: _ERRORS[422]})

    @public.get("/health", response_model=Health)
    async def health() -> Health:
        infos = backend.models()
        return Health(status="ok", device=backend.device, models=[info.id for info in infos],
                      limits=published_limits(backend, limits, infos))

    @public.get("/handoff", response_model=HandoffProof, responses={404: _ERRORS[404], 422: _ERRORS[422]})
    async def handoff(request: Request, nonce: str = Query(..., min_length=32, max_length=128, pattern="^[0-9a-f]+$",
                                                           description="A fresh random hex string from the client.")
                      ) -> HandoffProof:
        """Proves this is the user's own sdedit (see sdedit_client.handoff_key): HMAC of the nonce and the address
        the request reached, with the per-user secret. No token needed: the token is sent only after this."""
        if proof_key is None:
            raise ApiError(404, "This server has no hand-off key (its key file is missing or not private); "
                                "clients edit in their own process.")
        host, port = (request.scope.get("server") or ("", 0))[:2]
        return HandoffProof(proof=proof(proof_key, nonce, str(host), int(port)), host=normal_host(str(host)),
                            port=int(port))

    @private.get("/models", response_model=List[ModelEntry])
    async def models() -> List[ModelEntry]:
        return [ModelEntry(id=i.id, resolution=i.resolution, sde=i.sde, default=i.default, kind=i.kind, text=i.text,
                           default_sde=i.default_sde, live=None if i.live is None else i.live.as_dict(),
                           prediction=i.prediction)
                for i in backend.models()]

    @private.get("/loras", response_model=List[LoraEntry])
    async def loras() -> List[LoraEntry]:
        return [LoraEntry(id=name) for name in backend.loras()] if hasattr(backend, "loras") else []

    @private.post("/jobs", status_code=202, response_model=JobCreated,
                  responses={c: _ERRORS[c] for c in (400, 413, 503)})
    def submit(request: JobRequest) -> JobCreated:
        _refuse_if_full(queue, request.session)
        params, describe = _validated(request, backend, limits)
        try:
            job = queue.submit(params, describe, session=request.session)
        except QueueFull as full:
            raise _queue_full(full.retry_after) from None
        return JobCreated(id=job.id, state=job.state)

    @private.get("/jobs/{job_id}", response_model=JobStatus, responses={404: _ERRORS[404]})
    async def status(
        job_id: str,
        wait: float = Query(0.0, ge=0.0, le=MAX_WAIT_S, allow_inf_nan=False,
                            description="Hold the answer up to this many seconds, until the job has finished "
                                        "(long poll: a finished job is reported at once, with fewer requests)."),
    ) -> JobStatus:
        job = _job(queue, job_id)
        await _until_settled(queue, job, wait)
        return _status(queue, job)

    @private.get("/jobs/{job_id}/result", response_model=JobResult, responses={c: _ERRORS[c] for c in (404, 409)})
    def result(job_id: str) -> Any:  # the generator's pieces are encoded in a thread, not on the event loop
        job = _job(queue, job_id)
        if job.state is not JobState.done or job.output is None:
            raise ApiError(409, _not_ready(job))
        output = job.output
        return result_response(output.pngs, output.seeds, steps=output.steps, sde=output.sde,
                               mask=output.mask)  # JobResult, streamed

    @private.get("/jobs/{job_id}/preview", response_class=Response,
                 responses={200: {"content": {"image/png": {}},
                                  "description": "A PNG (at most 256 px a side) of the running job's current "
                                                 "estimate of its result, renewed every few sampler steps."},
                            404: _ERRORS[404]})
    def preview(job_id: str) -> Response:  # a thread: PNG encoding is not for the event loop
        job = _job(queue, job_id)
        png = preview_png(job)
        if png is None:
            raise ApiError(404, _no_preview(job))
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @private.delete("/jobs/{job_id}", response_model=JobStatus, responses={404: _ERRORS[404]})
    async def cancel(job_id: str) -> JobStatus:
        job = queue.cancel(job_id)
        if job is None:
            raise _unknown_job(job_id, limits)
        await _until_settled(queue, job, CANCEL_WAIT_S)
        return _status(queue, job)

    from .pulls import pull_router  # the model manager's downloads (`sdedit models pull` as a job)

    pulls = pull_router(token, limits, backend)
    app.state.pulls = pulls.manager
    app.include_router(public)
    app.include_router(private)
    app.include_router(pulls)
    return app


def published_limits(backend: EngineBackend, limits: Limits, infos: list) -> PublishedLimits:
    """The edit's parameter ranges (sdedit/params.py), the request limits and the default model's job budget."""
    from ..params import edit_limits

    work = why = None
    budget = getattr(backend, "budget", None)
    default = next((i for i in infos if i.default), None)
    if budget is not None and default is not None:
        work, why = budget.limit(default.id)
    return PublishedLimits(**edit_limits(), max_pixels=limits.max_pixels, max_body_bytes=limits.max_body_bytes,
                           max_work=work, max_work_why=why)


def _handoff_key() -> Optional[bytes]:
    from sdedit_client.handoff_key import KeyProblem, load_key

    try:
        return load_key(create=True)
    except (KeyProblem, OSError) as problem:
        log.warning("no hand-off proof: %s; `sdedit edit` will edit in its own process", problem)
        return None


# -- request handling --------------------------------------------------------------------------------------
def _validated(request: JobRequest, backend: EngineBackend, limits: Limits) -> tuple[EditParams, dict]:
    """Decode and check everything a job needs, so that bad input is a 4xx now and not a failed job later."""
    try:
        backend.check_model(request.model)
        model_sde = backend.check_text(request.model, request.prompt, request.negative_prompt, request.guidance)
        loras = backend.check_loras(request.model, request.loras) if hasattr(backend, "check_loras") else []
        sde = request.sde if "sde" in request.model_fields_set else model_sde
        image_bytes = b64_to_bytes(request.image, "image")
        width, height = check_image_bytes(image_bytes, "image", limits.max_pixels)
        mask_bytes = None
        if request.mask is not None:
            mask_bytes = b64_to_bytes(request.mask, "mask")
            mask_size = check_image_bytes(mask_bytes, "mask", limits.max_pixels)
            if mask_size != (width, height):
                raise InputError(f"The mask is {mask_size[0]}x{mask_size[1]} but the image is {width}x{height}; "
                                 "send a mask of the image's size.")
        check_request(backend, request, sde, width, height)  # the job budget, before any pixel is decoded
        image = backend.decode(image_bytes)
        mask = backend.decode(mask_bytes, "mask") if mask_bytes is not None else None
    except TooLarge as err:
        raise ApiError(413, str(err)) from None
    except InputError as err:
        raise ApiError(422, str(err)) from None
    params = EditParams(image=image, mask=mask, t0=request.t0, sde=sde, steps=request.steps,
                        samples=request.samples, seed=request.seed, model=request.model, prompt=request.prompt,
                        negative_prompt=request.negative_prompt, guidance=request.guidance, loras=loras,
                        grow=bool(request.grow))
    describe = dict(width=width, height=height, mask=mask is not None, t0=request.t0, sde=sde,
                    steps=request.steps or "default", samples=request.samples,
                    seed=request.seed if request.seed is not None else "random", model=request.model or "default")
    return params, describe


async def _until_settled(queue: JobQueue, job: Job, timeout: float) -> None:
    """Wait (without holding a thread) until the job is finished or `timeout` seconds have passed."""
    if timeout <= 0 or job.state.finished:
        return
    loop = asyncio.get_running_loop()
    settled = asyncio.Event()
    undo = queue.when_settled(job, lambda: loop.call_soon_threadsafe(settled.set))
    try:
        await asyncio.wait_for(settled.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    finally:
        undo()


def _refuse_if_full(queue: JobQueue, session: Optional[str]) -> None:
    if not queue.has_room(session):
        raise _queue_full(queue.retry_after())


def _queue_full(retry_after: int) -> ApiError:
    return ApiError(503, f"The server's job queue is full; try again in {retry_after} s.",
                    headers={"Retry-After": str(retry_after)})


def _job(queue: JobQueue, job_id: str) -> Job:
    job = queue.get(job_id)
    if job is None:
        raise _unknown_job(job_id, queue.limits)
    return job


def _unknown_job(job_id: str, limits: Limits) -> ApiError:
    shown = job_id if len(job_id) <= 64 else job_id[:61] + "..."
    return ApiError(404, f"There is no job '{shown}'; finished jobs are kept for {limits.result_ttl_s:g} s, "
                         "so submit the edit again.")


def _status(queue: JobQueue, job: Job) -> JobStatus:
    seconds = queue.elapsed(job)
    return JobStatus(id=job.id, state=job.state, progress=job.progress, error=job.error,
                     queue_position=queue.position(job), seconds=None if seconds is None else round(seconds, 4),
                     superseded_by=job.superseded_by)


def _no_preview(job: Job) -> str:
    if job.state is JobState.queued:
        return "The job is still queued and has no preview yet; ask again once it is running."
    if job.state is JobState.running:
        return "The job has no preview yet; the first one comes after a few sampler steps."
    return f"The job is {job.state.value} and never made a preview; ask for its status or result instead."


def _not_ready(job: Job) -> str:
    if job.state is JobState.failed:
        return f"The job failed and has no result: {job.error}"
    if job.state is JobState.cancelled and job.superseded_by:
        return (f"The job was superseded by job {job.superseded_by} of the same session and has no result; "
                "ask for that one.")
    if job.state is JobState.cancelled:
        return "The job was cancelled and has no result."
    return f"The job is {job.state.value} ({job.progress:.0%} done); ask again when its state is 'done'."


# -- errors as JSON with one readable `detail` ---------------------------------------------------------------
def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        problems = [_describe_problem(e) for e in err.errors()]
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in err.errors()]
        return JSONResponse({"detail": "Invalid request: " + "; ".join(problems) + ".", "errors": errors},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        detail = err.detail if isinstance(err.detail, str) else str(err.detail)
        if detail == _FASTAPI_BODY_ERROR:
            detail = body_parse_problem(err.__cause__)
        return JSONResponse({"detail": detail}, status_code=err.status_code, headers=getattr(err, "headers", None))


def _describe_problem(error: dict) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    kind = error.get("type", "")
    msg = error.get("msg", "invalid value")
    if kind == "json_invalid":
        return "the body is not valid JSON"
    if not loc:
        if kind == "missing":
            return "the body must be a JSON object with at least an 'image' field"
        return "the body must be a JSON object (Content-Type: application/json) with at least an 'image' field"
    field = ".".join(loc)
    return f"{field}: {msg}{shown_value(error.get('input'))}"
