"""The work one job may ask for: working pixels x samples x sampler steps, refused up front when too much.

One worker runs the jobs in turn, so a job that runs for days blocks everyone. The limit is either fixed
(SDEDIT_MAX_WORK, in pixel-steps) or sized to SDEDIT_MAX_JOB_S seconds (default one hour) on the server's
device: the seconds per pixel-step come from the model's own finished jobs, else from a timed call of the
default model when the server starts, else from a cautious guess for the device type (a model never run).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Dict, Optional

from ..errors import InputError

GUESS_SECONDS_PER_PIXEL_STEP = {"cpu": 1e-6, "cuda": 5e-8, "mps": 2e-7}  # before anything was measured
DEFAULT_MAX_SIDE = 1024


@dataclass(frozen=True)
class Work:
    """What one job asks of the worker."""

    width: int  # working size: what the network sees, not the canvas
    height: int
    samples: int
    steps: int

    @property
    def pixel_steps(self) -> int:
        return self.width * self.height * self.samples * self.steps


class Budget:
    """Estimates a job's work and refuses it when over the limit; learns each model's speed from its jobs."""

    def __init__(self, device: str, max_work: Optional[int] = None, max_job_s: float = 3600.0) -> None:
        self.device_type = device.split(":")[0]
        self.max_work, self.max_job_s = max_work, max_job_s
        self._lock = threading.Lock()
        self._facts: Dict[str, SimpleNamespace] = {}  # model id -> what resolve_steps and sizing need
        self._rates: Dict[str, float] = {}  # model id -> seconds per pixel-step

    # -- learning ---------------------------------------------------------------------------------------
    def learn_model(self, model) -> None:
        """Keep the facts of a loaded model (sizes, default steps, schedule length), not the model."""
        facts = SimpleNamespace(resolution=model.resolution, max_side=getattr(model, "max_side", DEFAULT_MAX_SIDE),
                                native_size=getattr(model, "native_size", None)
                                or getattr(model, "native_resolution", None),
                                detail_pass=getattr(model, "kind", "pixel") == "pixel",  # latent: refine only
                                edge_margin=getattr(model, "edge_margin", 0) or 0,
                                size_multiple=model.size_multiple, default_steps=dict(model.default_steps),
                                alphas_cumprod=model.alphas_cumprod.detach().cpu())
        with self._lock:
            self._facts[model.id] = facts

    def learn_speed(self, model_id: str, work: Work, seconds: float) -> None:
        if work.pixel_steps > 0 and seconds > 0:
            with self._lock:
                self._rates[model_id] = seconds / work.pixel_steps

    def calibrate(self, model) -> Optional[float]:
        """Time the default model once at start-up; seconds per pixel-step, None if it cannot be timed so."""
        if getattr(model, "kind", "pixel") != "pixel":
            return None  # a latent model's network takes latents: its first job measures it
        try:
            return self._calibrate(model)
        except Exception:  # noqa: BLE001 - e.g. a latent model takes latents, not pixels: its first job teaches us
            return None

    def _calibrate(self, model) -> float:
        import torch

        side = model.resolution or 128
        side = -(-side // model.size_multiple) * model.size_multiple
        x = torch.zeros(1, 3, side, side, device=model.device)
        with torch.inference_mode():
            model.eps_vp(x, 500)  # first call: allocations, kernel choice
            started = time.perf_counter()
            for _ in range(2):
                model.eps_vp(x, 500)
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            rate = (time.perf_counter() - started) / 2 / (side * side)
        with self._lock:
            self._rates.setdefault(model.id, rate)
        return rate

    # -- the check --------------------------------------------------------------------------------------
    def estimate(self, model_id: str, resolution: Optional[int], width: int, height: int, t0: float, sde: str,
                 steps: Optional[int], samples: int) -> Work:
        """The job's work; without the model's facts (never loaded) the paper's step count is assumed."""
        from ..engine import resolve_steps
        from ..engine.fewstep import DEFAULT_FEW_STEPS, FEW_STEP_SAMPLERS
        from ..engine.samplers import DEFAULT_FAST_STEPS, DETERMINISTIC

        with self._lock:
            facts = self._facts.get(model_id)
        if facts is not None:
            n_steps = resolve_steps(facts, sde, t0, steps or None)
            resolution, max_side = facts.resolution, facts.max_side
        else:
            n_steps = steps or (DEFAULT_FAST_STEPS if sde in DETERMINISTIC else
                                DEFAULT_FEW_STEPS if sde in FEW_STEP_SAMPLERS else max(1, round(t0 * 1000)))
            max_side = DEFAULT_MAX_SIDE
        if resolution:
            return Work(resolution, resolution, samples, n_steps)
        if facts is not None:
            return _engine_work(facts, width, height, t0, n_steps, samples)
        scale = min(1.0, max_side / max(width, height))
        return Work(max(1, round(width * scale)), max(1, round(height * scale)), samples, n_steps)

    def limit(self, model_id: str) -> tuple[int, str]:
        """(pixel-steps allowed, how the limit was set, in words)."""
        if self.max_work is not None:
            return self.max_work, "SDEDIT_MAX_WORK"
        with self._lock:
            rate = self._rates.get(model_id)
        rate = rate or GUESS_SECONDS_PER_PIXEL_STEP.get(self.device_type, 1e-6)
        return int(self.max_job_s / rate), f"about {_duration(self.max_job_s)} of work on {self.device_type}"

    def check(self, model_id: str, work: Work) -> None:
        allowed, why = self.limit(model_id)
        if work.pixel_steps > allowed:
            raise InputError(
                f"This edit is too much work for one job: {work.width}x{work.height} working pixels x "
                f"{work.samples} sample(s) x {work.steps} steps = {work.pixel_steps:,} pixel-steps, over this "
                f"server's limit of {allowed:,} ({why}); use fewer steps or samples, a lower t0 or a smaller "
                "selection.")


def _engine_work(facts: SimpleNamespace, width: int, height: int, t0: float, n_steps: int, samples: int) -> Work:
    """A loaded model's job as the engine will run it (engine/native_scale.working_plan): the working size x all
    stages' steps, the same measure learn_speed() is taught with."""
    from ..engine import native_scale

    m, margin = facts.size_multiple, facts.edge_margin
    region = (width + 2 * margin, height + 2 * margin)
    if max(region) <= facts.max_side:  # the engine grows a small region to the size multiple (edit.py)
        region = tuple(-(-v // m) * m for v in region)
    size, staged = native_scale.working_plan(region, native_size=facts.native_size, resolution=None, multiple=m,
                                             max_side=facts.max_side, edge_margin=margin, t0=t0, steps=n_steps,
                                             detail=facts.detail_pass)
    return Work(*size, samples, n_steps + (staged.extra_steps if staged else 0))


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} hour" + ("" if seconds == 3600 else "s")
    if seconds >= 60:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} s"


def check_request(backend, request, sde: str, width: int, height: int) -> None:
    """Refuse (InputError) a request over the budget; backends without one (none set) accept everything."""
    budget: Optional[Budget] = getattr(backend, "budget", None)
    if budget is None:
        return
    infos = backend.models()
    info = next((i for i in infos if (i.id == request.model if request.model else i.default)), None)
    if info is None:
        return  # the model check names the problem
    work = budget.estimate(info.id, info.resolution, width, height, request.t0, sde or "vp", request.steps,
                           request.samples)
    budget.check(info.id, work)
    from . import memory  # memory as well as work (api/memory.py)

    memory.check_job(info, work, (width, height), request.samples, budget.device_type)
