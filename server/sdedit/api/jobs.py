"""The job queue: one worker thread runs jobs in order on the server's device (or `workers` threads, one per
replica of a pool such as sdedit.cluster's, each handing its job to the pool).

A job moves queued -> running -> done | failed | cancelled. Progress is updated after every sampler step,
cancel is checked between steps. Finished jobs are kept for `result_ttl_s` seconds, at most
`max_results` of them holding at most `max_result_bytes` of PNGs, then dropped (oldest first) so memory stays
bounded. The queue itself is bounded: `submit` raises
QueueFull, which the app answers with 503 and a Retry-After.

Live mode (docs/design.md "Live mode"): a job submitted with a `session` key supersedes the queued or running
job of that key. A queued one is cancelled and the new job takes its place in the line; a running one is
marked cancelled at once (its result, should it still come, is dropped) and stopped at its next sampler step.
So at most one job per session is queued or running, the newest wins, and a painter's stream of strokes never
grows the queue.
"""
from __future__ import annotations

import collections
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional

from ..errors import Cancelled, InputError, JobFailed
from .errortext import public_error
from .limits import Limits
from .schemas import JobState

log = logging.getLogger("sdedit.api.jobs")

SUPERSEDED = "superseded: a newer job of the same session replaced it"


class QueueFull(RuntimeError):
    """No room for another job; `retry_after` is a guess in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the job queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class JobOutput:
    """What a finished edit hands back: encoded PNG bytes per sample, their seeds, and what ran (the
    sampler steps and sampler the engine chose when the request left them to the model)."""

    pngs: List[bytes]
    seeds: List[int]
    steps: Optional[int] = None
    sde: Optional[str] = None
    mask: Optional[bytes] = None  # PNG of the mask the edit used (a selection grown and feathered), if one was sent

    @property
    def nbytes(self) -> int:
        return sum(len(png) for png in self.pngs) + len(self.mask or b"")


@dataclass
class Job:
    id: str
    params: Any  # whatever the runner needs; dropped once the job is finished
    describe: Dict[str, Any]  # small, loggable facts (size, t0, sde, steps, samples, model)
    state: JobState = JobState.queued
    progress: float = 0.0
    error: Optional[str] = None
    output: Optional[JobOutput] = None
    created: float = field(default_factory=time.monotonic)
    started: Optional[float] = None
    finished: Optional[float] = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    settled: threading.Event = field(default_factory=threading.Event)
    on_settled: List[Callable[[], None]] = field(default_factory=list)  # see JobQueue.when_settled
    preview: Optional[tuple] = None  # (version, small uint8 RGB array): the live preview, see api/preview.py
    preview_png: Optional[tuple] = None  # (version, PNG bytes) of the last preview served
    session: Optional[str] = None  # live mode: a newer job with the same key supersedes this one
    superseded_by: Optional[str] = None  # the id of the job that replaced it
    queue_place: Optional[int] = None  # where it stood in the queue when it was superseded while queued


Runner = Callable[[Job, Callable[[int, int], None], Callable[[], bool]], JobOutput]


class JobQueue:
    """Bounded FIFO of jobs plus the worker thread that runs them with `runner`."""

    def __init__(self, runner: Runner, limits: Limits, clock: Callable[[], float] = time.monotonic,
                 warm_up: Optional[Callable[[], None]] = None, workers: int = 1) -> None:
        self._runner = runner
        self._workers = max(1, int(workers))
        self._warm_up = warm_up
        self._limits = limits
        self._clock = clock
        self._lock = threading.Condition()
        self._pending: Deque[Job] = collections.deque()
        self._jobs: Dict[str, Job] = {}
        self._finished_order: Deque[str] = collections.deque()
        self._result_bytes = 0
        self._durations: Deque[float] = collections.deque(maxlen=8)
        self._stopping = False
        self._threads: List[threading.Thread] = []
        self._sessions: Dict[str, Job] = {}  # session key -> its queued or running job
        self._wasted_s = 0.0  # seconds of running work thrown away by supersession
        self._superseded = 0

    # -- life cycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        if not self._threads:
            for index in range(self._workers):  # only the first warms the backend up
                thread = threading.Thread(target=self._work, args=(index == 0,), name=f"sdedit-worker-{index}",
                                          daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel everything and wait for the worker to finish its current step."""
        with self._lock:
            self._stopping = True
            dropped = list(self._pending)
            for job in dropped:
                job.describe = dict(job.describe, stopped_by="server shutdown")
                self._settle(job, JobState.cancelled)
            self._pending.clear()
            for job in self._jobs.values():
                if job.state is JobState.running:
                    job.describe = dict(job.describe, stopped_by="server shutdown")
                job.cancel_requested.set()
            self._lock.notify_all()
        for job in dropped:  # every job gets its line, the queued ones too
            log.info("%s", _job_line(job, 0.0))
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    # -- API used by the endpoints ----------------------------------------------------------------------
    def submit(self, params: Any, describe: Dict[str, Any], session: Optional[str] = None) -> Job:
        """Queue a job. With `session`, the session's queued or running job is superseded first (the new job
        takes a queued one's place in the line, so a live session never waits behind its own old strokes)."""
        with self._lock:
            self._prune()
            if not self._has_room(session):  # refused before anything is superseded
                raise QueueFull(self._retry_after())
            old = self._supersede(session) if session is not None else None
            place = old.queue_place if old is not None else None
            job = Job(id=uuid.uuid4().hex, params=params, describe=describe, created=self._clock(), session=session)
            self._jobs[job.id] = job
            if place is None:
                self._pending.append(job)
            else:
                self._pending.insert(place, job)
            if session is not None:
                self._sessions[session] = job
            if old is not None:
                old.superseded_by = job.id
            self._lock.notify_all()
            return job

    def has_room(self, session: Optional[str] = None) -> bool:
        """Whether a job (of `session`) would be accepted now: a session's queued job gives up its place."""
        with self._lock:
            return self._has_room(session)

    def _has_room(self, session: Optional[str]) -> bool:
        old = self._sessions.get(session) if session is not None else None
        if old is not None and old.state is JobState.queued:
            return True
        return len(self._pending) < self._limits.max_queue

    def _supersede(self, session: str) -> Optional[Job]:
        """Cancel the session's current job (None: it has none); a queued one's place is kept in queue_place."""
        old = self._sessions.pop(session, None)
        if old is None or old.state.finished:
            return None
        if old.state is JobState.queued:
            old.queue_place = self._pending.index(old)
            del self._pending[old.queue_place]
        else:  # running: stopped at its next step; reported cancelled now, its output never kept
            old.cancel_requested.set()
            self._wasted_s += self._clock() - (old.started or self._clock())
        old.error = SUPERSEDED
        self._superseded += 1
        self._settle(old, JobState.cancelled, keep_params=old.state is JobState.running)
        log.info("%s", _job_line(old, 0.0 if old.started is None else (old.finished or 0.0) - old.started))
        return old

    def get(self, job_id: str) -> Optional[Job]:
        with self._lock:
            self._prune()
            return self._jobs.get(job_id)

    def position(self, job: Job) -> Optional[int]:
        with self._lock:
            if job.state is not JobState.queued:
                return None
            for index, queued in enumerate(self._pending):
                if queued is job:
                    return index
            return None

    def when_settled(self, job: Job, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from any thread, must be quick) once the job is finished; returns an undo."""
        with self._lock:
            if job.state.finished:
                callback()
            else:
                job.on_settled.append(callback)

        def undo() -> None:
            with self._lock:
                if callback in job.on_settled:
                    job.on_settled.remove(callback)

        return undo

    def elapsed(self, job: Job) -> Optional[float]:
        """Seconds the job has been (or was) running; None before it starts."""
        if job.started is None:
            return None
        return (job.finished if job.finished is not None else self._clock()) - job.started

    def cancel(self, job_id: str) -> Optional[Job]:
        """Queued: cancelled at once. Running: the worker stops it at the next sampler step."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.state is JobState.queued:
                self._pending.remove(job)
                self._settle(job, JobState.cancelled)
                log.info("%s", _job_line(job, 0.0))
            elif job.state is JobState.running:
                job.cancel_requested.set()
            return job

    def counts(self) -> Dict[str, int]:
        with self._lock:
            running = sum(1 for j in self._jobs.values() if j.state is JobState.running)
            return {"queued": len(self._pending), "running": running, "kept": len(self._jobs),
                    "result_bytes": self._result_bytes, "sessions": len(self._sessions),
                    "superseded": self._superseded, "superseded_running_s": round(self._wasted_s, 3)}

    # -- the worker -------------------------------------------------------------------------------------
    def _work(self, warm_up: bool = True) -> None:
        if warm_up and self._warm_up is not None:
            started = time.monotonic()
            try:
                self._warm_up()
                log.info("default model loaded in %.1f s", time.monotonic() - started)
            except Exception as err:  # noqa: BLE001 - jobs will report it; the server still serves
                log.warning("could not load the default model: %s", err)
        while True:
            with self._lock:
                while not self._pending and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._pending.popleft()
                job.state = JobState.running
                job.started = self._clock()
            self._run(job)

    def _run(self, job: Job) -> None:
        def progress(done: int, total: int) -> None:
            if total > 0 and not job.state.finished:  # a superseded job's progress stays where it stopped
                job.progress = min(1.0, max(0.0, done / total))

        def cancel() -> bool:
            return job.cancel_requested.is_set()

        state, error, output = JobState.failed, None, None
        try:
            output = self._runner(job, progress, cancel)
            state = JobState.done
        except Cancelled:
            state = JobState.cancelled
        except (InputError, JobFailed) as err:
            error = public_error(err, expected=True)
        except BaseException as err:  # noqa: BLE001 - a failing job must never take the server down
            error = public_error(err, expected=False)  # the log below keeps the whole text
            log.exception("job %s failed", job.id)
            _free_accelerator_memory()
        with self._lock:
            if job.state.finished:  # superseded while it ran: already reported cancelled; drop what it made
                job.params = None
                self._wasted_s += self._clock() - (job.finished or self._clock())
                self._durations.append(self._clock() - (job.started or self._clock()))
                return
            job.output = output
            job.error = error
            if state is JobState.done:
                job.progress = 1.0
            self._settle(job, state)
            seconds = (job.finished or 0.0) - (job.started or 0.0)
            self._durations.append(seconds)
        log.info("%s", _job_line(job, seconds))

    # -- bookkeeping (call with the lock held) ----------------------------------------------------------
    def _settle(self, job: Job, state: JobState, keep_params: bool = False) -> None:
        job.state = state
        job.finished = self._clock()
        if not keep_params:  # a superseded running job's runner may still read them until its next step
            job.params = None  # the input images are no longer needed
        if job.session is not None and self._sessions.get(job.session) is job:
            del self._sessions[job.session]
        self._result_bytes += job.output.nbytes if job.output else 0
        self._finished_order.append(job.id)
        job.settled.set()
        callbacks, job.on_settled = job.on_settled, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a waiter gone away (closed event loop) must not hurt the queue
                log.debug("settle callback failed", exc_info=True)
        self._prune()

    def _prune(self) -> None:
        now = self._clock()
        order = self._finished_order
        while order:
            oldest = self._jobs.get(order[0])
            too_many = len(order) > self._limits.max_results or self._result_bytes > self._limits.max_result_bytes
            expired = oldest is None or now - (oldest.finished or now) > self._limits.result_ttl_s
            if not (too_many or expired):
                break
            order.popleft()
            if oldest is not None:
                del self._jobs[oldest.id]
                self._result_bytes -= oldest.output.nbytes if oldest.output else 0

    @property
    def limits(self) -> Limits:
        return self._limits

    def retry_after(self) -> int:
        """A guess, in whole seconds, of when a place in the queue frees up (the recent job length)."""
        with self._lock:
            return self._retry_after()

    def _retry_after(self) -> int:
        per_job = sum(self._durations) / len(self._durations) if self._durations else 5.0
        per_job /= self._workers  # that many jobs finish side by side
        return int(min(300, max(1, math.ceil(per_job))))


def _job_line(job: Job, seconds: float) -> str:
    """One structured (key=value) line per finished job."""
    facts = dict(id=job.id, **job.describe, seconds=f"{seconds:.3f}", state=job.state.value)
    if job.output is not None:
        facts["seeds"] = ",".join(str(s) for s in job.output.seeds)
    if job.error:
        facts["error"] = job.error
    return " ".join(f"{k}={_quote(v)}" for k, v in facts.items())


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def _free_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort
        pass
