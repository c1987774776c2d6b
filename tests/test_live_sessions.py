"""Live mode's jobs that supersede each other (`"session"` on POST /v1/jobs; docs/design.md "Live mode").

The queue's rules in-process with a plain runner standing for one edit, then the whole thing on a real server
(tests/test_server_support.py) with the tiny model: a painter's burst of jobs in one session costs less than
two jobs' time, only the newest finishes, and no superseded result is ever served.
"""
from __future__ import annotations

import shutil
import threading
import time

import pytest

from sdedit.api.jobs import SUPERSEDED, JobOutput, JobQueue, QueueFull
from sdedit.api.limits import Limits
from sdedit.api.schemas import JobState
from sdedit.errors import Cancelled
from test_server_support import ServerProcess, b64, image_bytes, random_image, server_env, wait_final

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def stepping_runner(steps: int = 20, step_s: float = 0.02, finish_anyway: bool = False):
    """One 'sampler step' every step_s seconds, cancel checked between steps (finish_anyway: a runner that
    ignores cancel and returns its output, as a step that was already past its last check would)."""
    ran: list = []

    def run(job, progress, cancel):
        ran.append(job.params["n"])
        for i in range(steps):
            time.sleep(step_s)
            progress(i + 1, steps)
            if cancel() and not finish_anyway:
                raise Cancelled()
        return JobOutput(pngs=[b"png%d" % job.params["n"]], seeds=[job.params["n"]])

    return run, ran


def make(runner, **limits) -> JobQueue:
    queue = JobQueue(runner, Limits(**limits))
    queue.start()
    return queue


def wait_state(job, state: JobState, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while job.state is not state:
        assert time.monotonic() < deadline, f"job never became {state.value} (is {job.state.value})"
        time.sleep(0.005)


def test_a_new_job_supersedes_the_sessions_running_and_queued_jobs():
    runner, ran = stepping_runner()
    queue = make(runner)
    try:
        first = queue.submit({"n": 1}, {}, session="canvas-a")
        wait_state(first, JobState.running)
        second = queue.submit({"n": 2}, {}, session="canvas-a")
        # the running one is reported cancelled at once, and says by whom
        assert first.state is JobState.cancelled and first.error == SUPERSEDED and first.superseded_by == second.id
        third = queue.submit({"n": 3}, {}, session="canvas-a")
        assert second.state is JobState.cancelled and second.superseded_by == third.id
        counts = queue.counts()
        assert counts["queued"] + counts["running"] <= 2 and counts["sessions"] == 1
        assert third.settled.wait(5) and third.state is JobState.done
        assert third.output.seeds == [3] and first.output is None and second.output is None
        assert 2 not in ran, "a superseded queued job must never start"
        assert queue.counts()["superseded"] == 2
    finally:
        queue.stop()


def test_a_superseded_jobs_late_result_is_dropped():
    """Even when the runner finishes the old job (cancel seen too late), its output is never kept."""
    runner, _ = stepping_runner(steps=5, step_s=0.05, finish_anyway=True)
    queue = make(runner)
    try:
        old = queue.submit({"n": 1}, {}, session="s")
        wait_state(old, JobState.running)
        new = queue.submit({"n": 2}, {}, session="s")
        assert new.settled.wait(5) and new.state is JobState.done
        assert old.state is JobState.cancelled and old.output is None and old.progress < 1.0
        assert queue.counts()["superseded_running_s"] > 0
    finally:
        queue.stop()


def test_sessions_are_independent_and_a_superseding_job_keeps_its_place_in_line():
    gate = threading.Event()

    def run(job, progress, cancel):
        gate.wait(5)
        return JobOutput(pngs=[b"x"], seeds=[job.params["n"]])

    queue = make(run, max_queue=3)
    try:
        blocker = queue.submit({"n": 0}, {})
        wait_state(blocker, JobState.running)
        live_a = queue.submit({"n": 1}, {}, session="a")
        other = queue.submit({"n": 2}, {})
        live_b = queue.submit({"n": 3}, {}, session="b")
        with pytest.raises(QueueFull):  # the queue is full for anyone without a queued session job...
            queue.submit({"n": 4}, {})
        newer_a = queue.submit({"n": 5}, {}, session="a")  # ...but a session replaces its own queued job
        assert live_a.state is JobState.cancelled and live_b.state is JobState.queued
        assert queue.position(newer_a) == 0 and queue.position(other) == 1, "the newest takes the old one's place"
        gate.set()
        for job in (blocker, newer_a, other, live_b):
            assert job.settled.wait(5) and job.state is JobState.done
    finally:
        gate.set()
        queue.stop()


def test_full_queue_refuses_a_session_job_without_cancelling_the_running_one():
    gate = threading.Event()

    def run(job, progress, cancel):
        while not gate.wait(0.01):
            if cancel():
                raise Cancelled()
        return JobOutput(pngs=[b"x"], seeds=[job.params["n"]])

    queue = make(run, max_queue=1)
    try:
        live = queue.submit({"n": 1}, {}, session="a")
        wait_state(live, JobState.running)
        queue.submit({"n": 2}, {})
        with pytest.raises(QueueFull):
            queue.submit({"n": 3}, {}, session="a")
        assert live.state is JobState.running, "a refused job must not cancel the session's running one"
    finally:
        gate.set()
        queue.stop()


# -- on a real server ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tiny_vp_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("live_models")
    shutil.copytree(tiny_vp_dir, root / "tiny-vp")
    proc = ServerProcess(server_env(root, root / "tiny-vp"), tmp_path_factory.mktemp("logs") / "live.log")
    try:
        yield proc.wait_ready()
    finally:
        assert proc.stop() == 0, proc.log()[-2000:]


def _timed_job(http, body: dict) -> float:
    started = time.monotonic()
    job_id = http.post("/v1/jobs", json=body).json()["id"]
    assert wait_final(http, job_id, 300, poll=0.02)["state"] == "done"
    return time.monotonic() - started


def test_five_quick_jobs_in_one_session_cost_less_than_two(server):
    """A burst of five strokes: four end cancelled ("superseded"), the last one done, in < 2 jobs' time."""
    image = b64(image_bytes(random_image(32, 32, 1)))  # the tiny model's own size: one stage
    body = {"image": image, "t0": 0.6, "sde": "vp", "steps": 40, "seed": 3}
    with server.client() as http:
        _timed_job(http, body)  # warm up (model load, first-call costs)
        one_job = min(_timed_job(http, body) for _ in range(2))
        started = time.monotonic()
        ids = []
        for stroke in range(5):
            answer = http.post("/v1/jobs", json={**body, "seed": 10 + stroke, "session": "canvas-1"})
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
            time.sleep(one_job / 10)  # strokes come faster than results
        last = wait_final(http, ids[-1], 300, poll=0.02)
        took = time.monotonic() - started
        assert last["state"] == "done", last
        for old, newer in zip(ids, ids[1:]):
            status = http.get(f"/v1/jobs/{old}").json()
            assert status["state"] == "cancelled" and status["error"].startswith("superseded"), status
            assert status["superseded_by"] == newer
            refused = http.get(f"/v1/jobs/{old}/result")
            assert refused.status_code == 409 and "superseded" in refused.json()["detail"]
        assert took < 2 * one_job, f"five jobs in one session took {took:.2f} s, one job {one_job:.2f} s"
        result = http.get(f"/v1/jobs/{ids[-1]}/result").json()
        assert result["seeds"] == [14]


def test_session_key_is_checked(server):
    image = b64(image_bytes(random_image(16, 16, 1)))
    with server.client() as http:
        for bad in ("", "x" * 129, 7):
            answer = http.post("/v1/jobs", json={"image": image, "steps": 2, "session": bad})
            assert answer.status_code == 422 and "session" in answer.json()["detail"], answer.text


def test_the_stdlib_client_sends_the_session(server):
    from sdedit_client import Client

    client = Client(server.url)
    png = image_bytes(random_image(64, 64, 2))
    first = client.submit(png, t0=0.6, sde="vp", steps=400, seed=1, session="krita-doc-1")
    second = client.submit(png, t0=0.6, sde="vp", steps=2, seed=2, session="krita-doc-1")
    status = client.status(first)
    assert status["state"] == "cancelled" and status["superseded_by"] == second
    with server.client() as http:
        assert wait_final(http, second)["state"] == "done"
    images, seeds = client.result(second)
    assert seeds == [2] and images[0].startswith(b"\x89PNG")


def test_client_supersedes_only_cheap_jobs_and_once_in_a_row():
    """The live client's rule (sdedit_client.live): a queued or young job is replaced by a newer canvas,
    once in a row; a job past half way, or the replacement itself, is waited for so previews keep coming."""
    from sdedit_client.live import send_now

    assert send_now(None, 0.0, 0) and send_now("done", 1.0, 3) and send_now("cancelled", 0.2, 1)
    assert send_now("queued", 0.0, 5)  # nothing spent on it yet
    assert send_now("running", 0.2, 0)
    assert not send_now("running", 0.2, 1), "a second replacement in a row would starve the previews"
    assert not send_now("running", 0.7, 0), "a job past half way finishes first"
