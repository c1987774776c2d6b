"""The job queue's bookkeeping in-process: order, bounds, failures, cancel, how long results are kept.

The runner here is a plain function standing for one edit (the real engine runs in test_server.py); what is
under test is the queue itself: its worker thread, states, limits and clock-driven expiry.
"""
from __future__ import annotations

import threading
import time

import pytest

from sdedit.api.jobs import JobOutput, JobQueue, QueueFull
from sdedit.api.limits import Limits
from sdedit.api.schemas import JobState
from sdedit.errors import Cancelled, InputError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def steps_runner(log: list, steps: int = 3, step_s: float = 0.0, gate: threading.Event | None = None):
    """Runs `steps` 'sampler steps' per job, reporting progress and honouring cancel between steps."""
    active = []

    def run(job, progress, cancel):
        active.append(job.id)
        assert len(active) == 1, "two jobs ran at once"
        try:
            log.append(job.params)
            if gate is not None:
                gate.wait(10)
            for i in range(steps):
                time.sleep(step_s)
                progress(i + 1, steps)
                if cancel():
                    raise Cancelled()
            return JobOutput(pngs=[b"x" * 10] * job.params["samples"], seeds=[job.params["seed"]])
        finally:
            active.remove(job.id)

    return run


def wait_settled(*jobs, timeout: float = 10.0) -> None:
    for job in jobs:
        assert job.settled.wait(timeout), f"job {job.id} did not finish"


def make(runner, clock=None, **limits) -> JobQueue:
    queue = JobQueue(runner, Limits(**limits), clock=clock or time.monotonic)
    queue.start()
    return queue


def test_jobs_run_one_at_a_time_in_order():
    log: list = []
    queue = make(steps_runner(log))
    try:
        jobs = [queue.submit({"seed": i, "samples": 1}, {"n": i}) for i in range(10)]
        wait_settled(*jobs)
        assert [p["seed"] for p in log] == list(range(10))
        assert all(j.state is JobState.done and j.progress == 1.0 and j.params is None for j in jobs)
        assert [j.output.seeds for j in jobs] == [[i] for i in range(10)]
    finally:
        queue.stop()


def test_full_queue_raises_queue_full_and_recovers():
    gate = threading.Event()
    queue = make(steps_runner([], gate=gate), max_queue=2)
    try:
        running = queue.submit({"seed": 0, "samples": 1}, {})
        deadline = time.monotonic() + 5
        while running.state is not JobState.running:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        waiting = [queue.submit({"seed": i, "samples": 1}, {}) for i in (1, 2)]
        with pytest.raises(QueueFull) as full:
            queue.submit({"seed": 3, "samples": 1}, {})
        assert full.value.retry_after >= 1
        assert [queue.position(j) for j in waiting] == [0, 1]
        gate.set()
        wait_settled(running, *waiting)
        assert queue.submit({"seed": 4, "samples": 1}, {}).state is JobState.queued
    finally:
        gate.set()
        queue.stop()


@pytest.mark.parametrize("error,message", [
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "RuntimeError: CUDA out of memory"),
    (MemoryError(), "MemoryError"),
    (InputError("The model at x could not be loaded."), "The model at x could not be loaded."),
])
def test_a_failing_job_is_failed_and_the_worker_goes_on(error, message):
    calls = []

    def runner(job, progress, cancel):
        calls.append(job.id)
        if len(calls) == 1:
            raise error
        return JobOutput([b"png"], [1])

    queue = make(runner)
    try:
        bad, good = queue.submit({}, {}), queue.submit({}, {})
        wait_settled(bad, good)
        assert bad.state is JobState.failed and bad.error.startswith(message) and bad.output is None
        assert good.state is JobState.done
    finally:
        queue.stop()


def test_cancel_queued_and_running():
    gate = threading.Event()
    log: list = []
    queue = make(steps_runner(log, steps=1000, step_s=0.001, gate=gate))
    try:
        running = queue.submit({"seed": 0, "samples": 1}, {})
        queued = queue.submit({"seed": 1, "samples": 1}, {})
        assert queue.cancel(queued.id).state is JobState.cancelled  # at once, never runs
        gate.set()
        deadline = time.monotonic() + 5
        while running.progress == 0.0:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        queue.cancel(running.id)
        wait_settled(running)
        assert running.state is JobState.cancelled and 0 < running.progress < 1
        assert [p["seed"] for p in log] == [0]
        assert queue.cancel("nope") is None
    finally:
        queue.stop()


def test_results_expire_after_ttl_and_beyond_count_and_bytes():
    clock = Clock()
    queue = make(steps_runner([]), clock=clock, result_ttl_s=60, max_results=3, max_result_bytes=10**6)
    try:
        jobs = [queue.submit({"seed": i, "samples": 1}, {}) for i in range(5)]
        wait_settled(*jobs)
        kept = [queue.get(j.id) is not None for j in jobs]
        assert kept == [False, False, True, True, True]  # at most 3 finished jobs, oldest dropped first
        clock.now += 59
        assert queue.get(jobs[-1].id) is not None
        clock.now += 2
        assert all(queue.get(j.id) is None for j in jobs)  # past the TTL
        assert queue.counts()["kept"] == 0 and queue.counts()["result_bytes"] == 0
    finally:
        queue.stop()

    queue = make(steps_runner([]), clock=Clock(), max_result_bytes=250)
    try:
        jobs = [queue.submit({"seed": i, "samples": 10}, {}) for i in range(4)]  # 100 bytes each
        wait_settled(*jobs)
        assert [queue.get(j.id) is not None for j in jobs] == [False, False, True, True]
    finally:
        queue.stop()


def test_stop_cancels_what_is_waiting_and_what_runs():
    gate = threading.Event()
    queue = make(steps_runner([], gate=gate))
    first = queue.submit({"seed": 0, "samples": 1}, {})
    second = queue.submit({"seed": 1, "samples": 1}, {})
    deadline = time.monotonic() + 5
    while first.state is not JobState.running:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    threading.Timer(0.2, gate.set).start()  # the running job reaches its next step after stop() was called
    queue.stop()
    wait_settled(first, second)
    assert (first.state, second.state) == (JobState.cancelled, JobState.cancelled)


def test_limits_from_env():
    limits = Limits.from_env({"SDEDIT_MAX_BODY_MB": "2", "SDEDIT_MAX_QUEUE": "5", "SDEDIT_RESULT_TTL_S": "1.5"})
    assert (limits.max_body_bytes, limits.max_queue, limits.result_ttl_s) == (2 * 2**20, 5, 1.5)
    for bad in ("0", "-3", "lots", "inf"):
        with pytest.raises(InputError, match="SDEDIT_MAX_QUEUE must be a positive number"):
            Limits.from_env({"SDEDIT_MAX_QUEUE": bad})
