"""One replica of the pool: loads the default model once, then runs one edit at a time as a stream of events.

A job's events are ("started", pid, node), ("progress", done, total) and ("preview", rgb) as they come, then
one of ("done", JobOutput), ("cancelled",) or ("failed", sentence). The front cancels a job by cancelling its stream: the replica then
stops the edit at its next sampler step (the engine checks `cancel` between steps) and frees itself only once
the edit has really stopped, so the next job never shares the CPU/GPU with a dying one.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import sys
import threading
from types import SimpleNamespace
from typing import Any, AsyncIterator, List, Optional

from ..api.errortext import public_error
from ..errors import Cancelled, InputError
from ..models.facts import facts_of

log = logging.getLogger("sdedit.cluster.replica")


class EditReplica:
    """The Serve deployment's class (wrapped by serve.deployment in sdedit.cluster.backend)."""

    def __init__(self, device: str = "auto", threads: int = 1) -> None:
        import torch

        from ..api.backend import EngineBackend

        torch.set_num_threads(max(1, int(threads)))
        self._backend = EngineBackend(device)
        self._backend.budget = self._budget = BudgetRelay(self._backend.device)
        self._runner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sdedit-edit")
        self.pid, self.node = os.getpid(), socket.gethostname()
        try:
            self._backend.warm_up()  # load the default model once, before the first job
        except Exception as err:  # noqa: BLE001 - jobs will report it; the replica still serves other models
            _say(f"could not load the default model: {err}")
        _say(f"ready on {self._backend.device}")

    def lessons(self) -> List[tuple]:
        """What this replica's budget learned so far (at start-up: the default model's facts and speed)."""
        return self._budget.take()

    async def edit(self, job_id: str, params: Any) -> AsyncIterator[tuple]:
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        latest: list = [0, 0]
        changed = asyncio.Event()

        def progress(done: int, total: int) -> None:
            latest[:] = [done, total]
            loop.call_soon_threadsafe(changed.set)

        # What EngineBackend.run touches of a Job: its params, and `preview` where it keeps the newest preview
        job = SimpleNamespace(id=job_id, params=params, preview=None, preview_png=None)
        future = loop.run_in_executor(self._runner, self._backend.run, job, progress, stop.is_set)
        yield ("started", self.pid, self.node)
        sent_preview = 0
        try:
            while not future.done():
                waiter = asyncio.ensure_future(changed.wait())
                await asyncio.wait({waiter, future}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if changed.is_set():
                    changed.clear()
                    yield ("progress", latest[0], latest[1])
                snapshot = job.preview  # (version, small RGB array), renewed every few steps
                if snapshot is not None and snapshot[0] != sent_preview:
                    sent_preview = snapshot[0]
                    yield ("preview", snapshot[1])
            outcome = _outcome(future)
            learned = self._budget.take()
            if learned:
                yield ("learned", learned)
        finally:
            if not future.done():  # the front cancelled the job (or went away): stop at the next step
                stop.set()
                _say(f"job {job_id} stopped at step {latest[0]} of {latest[1]} (cancelled by the front)")
                await _settle(future)
        yield outcome


class BudgetRelay:
    """The replica's job budget (api/budget.py): learns as the plain server's does, and keeps each lesson for
    the front, whose Budget refuses too-big requests before they are queued: the model's sizes and default steps,
    and its speed on this replica's device."""

    def __init__(self, device: str) -> None:
        from ..api.budget import Budget

        self._budget = Budget(device)
        self._lessons: List[tuple] = []
        self._lock = threading.Lock()

    def learn_model(self, model: Any) -> None:
        self._budget.learn_model(model)
        self._keep(("model", facts_of(model)))  # the declared facts, without the weights

    def learn_speed(self, model_id: str, work: Any, seconds: float) -> None:
        self._budget.learn_speed(model_id, work, seconds)
        self._keep(("speed", model_id, work, seconds))

    def calibrate(self, model: Any) -> Optional[float]:
        rate = self._budget.calibrate(model)
        if rate:
            self._keep(("rate", model.id, rate))
        return rate

    def take(self) -> List[tuple]:
        with self._lock:
            lessons, self._lessons = self._lessons, []
        return lessons

    def _keep(self, lesson: tuple) -> None:
        with self._lock:
            self._lessons.append(lesson)


def _outcome(future: "asyncio.Future") -> tuple:
    try:
        return ("done", future.result())
    except Cancelled:
        return ("cancelled",)
    except InputError as err:
        return ("failed", public_error(err, expected=True))
    except Exception as err:  # noqa: BLE001 - the job fails, the replica goes on
        log.exception("edit failed")
        return ("failed", public_error(err, expected=False))


async def _settle(future: "asyncio.Future") -> None:
    """Wait for a stopped edit's thread to return (one sampler step), whatever it raises."""
    try:
        await asyncio.shield(future)
    except BaseException:  # noqa: BLE001 - Cancelled, or a second cancellation of this task
        if not future.done():
            await asyncio.wait({future})


def _say(message: str, stream: Optional[Any] = None) -> None:
    """One line on the replica's stderr (Ray forwards it to the server's log with the replica's pid)."""
    print(f"sdedit replica pid={os.getpid()}: {message}", file=stream or sys.stderr, flush=True)
