"""The work one job may ask for: working pixels x samples x sampler steps, refused up front when too much.

One worker runs the jobs in turn, so a job that runs for days blocks everyone. The limit is either fixed
(SDEDIT_MAX_WORK, in pixel-steps) or sized to SDEDIT_MAX_JOB_S seconds (default one hour) on the server's
device: the seconds per pixel-step come from the model's own finished jobs, else from a timed call of the
default model when the server starts, else from a cautious guess for the device type (a model never run).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Dict, Optional

from ..errors import InputError
from ..models.facts import DEFAULT_MAX_SIDE, ModelFacts, facts_of

GUESS_SECONDS_PER_PIXEL_STEP = {"cpu": 1e-6, "cuda": 5e-8, "mps": 2e-7}  # before anything was measured


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
        self._facts: Dict[str, ModelFacts] = {}  # model id -> its declared facts (models/facts.py)
        self._rates: Dict[str, float] = {}  # model id -> seconds per pixel-step

    # -- learning ---------------------------------------------------------------------------------------
    def learn_model(self, model) -> None:
        """Keep the facts of a loaded model (or the facts themselves, sent by a cluster replica), not the model."""
        facts = facts_of(model)
        with self._lock:
            self._facts[facts.id] = facts

    def learn_speed(self, model_id: str, work: Work, seconds: float) -> None:
        if work.pixel_steps > 0 and seconds > 0:
            with self._lock:
                self._rates[model_id] = seconds / work.pixel_steps

    def calibrate(self, model) -> Optional[float]:
        """Time the default model once at start-up; seconds per pixel-step, None if it cannot be timed so."""
        if facts_of(model).kind != "pixel":
            return None  # a latent model's network takes latents: its first job measures it
        try:
            return self._calibrate(model)
        except Exception:  # noqa: BLE001 - e.g. a latent model takes latents, not pixels: its first job teaches us
            return None

    def _calibrate(self, model) -> float:
        from ..models.timing import time_call

        side = model.resolution or 128
        side = -(-side // model.size_multiple) * model.size_multiple
        rate = time_call(model, (side, side), repeats=2, step=500, random=False).median / (side * side)
        with self._lock:
            self._rates.setdefault(model.id, rate)
        return rate

    # -- the check --------------------------------------------------------------------------------------
    def estimate(self, model_id: str, resolution: Optional[int], width: int, height: int, t0: float,
                 sde: Optional[str], steps: Optional[int], samples: int) -> Work:
        """The job's work (sde None: the model's default sampler); for a loaded model exactly as the engine will
        run it (engine/canvas.py: the working size x all stages' steps, the measure learn_speed() is taught
        with). A model never loaded is assumed to take the paper's step count at its fixed or max size."""
        from ..engine import resolve_steps
        from ..engine.canvas import plan_canvas

        with self._lock:
            facts = self._facts.get(model_id)
        if facts is not None:
            n_steps = resolve_steps(facts, sde or facts.default_sde, t0, steps or None)
            plan = plan_canvas(facts, width, height, t0, n_steps)
            return Work(*plan.size, samples, plan.steps_per_sample(n_steps))
        unknown = ModelFacts(model_id)  # never loaded: the paper's steps (20 for ode), a model's default facts
        n_steps = resolve_steps(unknown, sde or unknown.default_sde, t0, steps or None)
        if resolution:
            return Work(resolution, resolution, samples, n_steps)
        scale = min(1.0, DEFAULT_MAX_SIDE / max(width, height))
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
    work = budget.estimate(info.id, info.resolution, width, height, request.t0, sde, request.steps,
                           request.samples)
    budget.check(info.id, work)
    from . import memory  # memory as well as work (api/memory.py)

    memory.check_job(info, work, (width, height), request.samples, budget.device_type)
