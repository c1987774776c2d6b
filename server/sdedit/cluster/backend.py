"""The front's door into the pool: a Ray Serve deployment of EditReplica, used like sdedit.api's EngineBackend.

The HTTP front (sdedit.api.app, unchanged) keeps the job queue with one worker thread per replica; each worker
hands its job to the deployment as a stream and turns the stream's events into progress and a result. What a
pool does to jobs is handled here: a cancel cancels the stream (and so the edit on its replica); a replica lost
mid-job costs that job one retry on another replica, and a second loss fails it with one sentence.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Dict, Optional

from ..api.backend import EngineBackend
from ..api.budget import Budget, Work
from ..api.jobs import Job, JobOutput
from ..api.limits import Limits
from ..api.preview import store_preview
from ..errors import Cancelled, InputError, JobFailed
from .local_ray import keep_on_loopback

log = logging.getLogger("sdedit.cluster")

APP_NAME = "sdedit"
DEPLOYMENT_NAME = "sdedit-editor"
CANCEL_POLL_S = 0.02
START_TIMEOUT_S = float(os.environ.get("SDEDIT_CLUSTER_START_TIMEOUT_S", "120"))  # no replica takes a job: fail it
RETRY_PAUSE_S = 0.5
# Passed on to the replicas (which may run on other machines than the front).
FORWARDED_ENV = ("SDEDIT_MODELS_DIR", "SDEDIT_DEFAULT_MODEL", "SDEDIT_COMPILE", "SDEDIT_PRECISION", "SDEDIT_DEBUG")


class ReplicaLost(RuntimeError):
    """The replica running a job died or became unreachable."""


class RayBackend(EngineBackend):
    """Runs jobs on `replicas` Ray Serve replicas (one GPU each, or `cpus_per_replica` CPU cores each)."""

    def __init__(self, address: Optional[str], replicas: Optional[int] = None, device: str = "auto",
                 cpus_per_replica: float = 1.0) -> None:
        super().__init__("cpu")  # the front runs no edits; it lists and checks models like the plain server
        import ray
        from ray import serve

        self._ray, self._local = ray, not address
        try:
            # No address: a new Ray of this server's own ("local": never one that `ray start` left on this
            # machine, which plain ray.init() would join).
            if address:
                ray.init(address=address, include_dashboard=False, namespace=APP_NAME, log_to_driver=True,
                         configure_logging=False)
            else:  # this server's own Ray: on loopback only, its files (token, session folder) private
                from .local_ray import private_files

                keep_on_loopback()
                with private_files():
                    ray.init(address="local", include_dashboard=False, namespace=APP_NAME, log_to_driver=True,
                             configure_logging=False)
        except (ConnectionError, RuntimeError) as err:
            if _mentions(err, "InvalidAuthToken"):
                raise InputError(f"The Ray cluster at {address} refused this server's token: set RAY_AUTH_MODE=token "
                                 "and give it the cluster's token (~/.ray/auth_token or $RAY_AUTH_TOKEN; "
                                 "`ray get-auth-token` on the head prints it).") from None
            raise InputError(f"Cannot reach the Ray cluster at {address} ({str(err).splitlines()[0]}); start it "
                             "with `ray start --head` or pass --ray without an address for a local one.") from None
        gpus = int(ray.cluster_resources().get("GPU", 0))
        use_gpu = device in ("auto", "cuda") and gpus > 0
        if device == "cuda" and not gpus:
            raise InputError("--device cuda was asked for but the Ray cluster has no GPU; use --device cpu.")
        self.workers = int(replicas or (gpus if use_gpu else 1))
        if self.workers < 1:
            raise InputError(f"--replicas must be at least 1, not {replicas}.")
        replica_device = "cuda" if use_gpu else "cpu"
        resources: Dict[str, Any] = {"num_gpus": 1, "num_cpus": 1} if use_gpu else {"num_cpus": cpus_per_replica}
        _check_room(ray.cluster_resources(), self.workers, resources)
        resources["runtime_env"] = {"env_vars": {name: os.environ[name] for name in FORWARDED_ENV
                                                 if name in os.environ}}
        from .replica import EditReplica

        deployment = serve.deployment(EditReplica).options(
            name=DEPLOYMENT_NAME, num_replicas=self.workers, max_ongoing_requests=1, ray_actor_options=resources,
            health_check_period_s=2, health_check_timeout_s=30, graceful_shutdown_timeout_s=5)
        serve.start(proxy_location="Disabled")  # no Serve HTTP port: the front is the only door
        log.info("starting %d %s replica(s) on the Ray cluster (each loads its model once)",
                 self.workers, replica_device)
        started = time.monotonic()
        threads = 1 if use_gpu else max(1, int(cpus_per_replica))
        self._handle = serve.run(deployment.bind(replica_device, threads), name=APP_NAME, route_prefix=None)
        # The job budget is checked here, before the queue, with what the replicas learn (see BudgetRelay)
        limits = Limits.from_env()
        self.budget = Budget(replica_device, limits.max_work, limits.max_job_s)
        self._learn(self._handle.lessons.remote().result())
        self.device = f"ray: {self.workers} {replica_device} replica{'s' if self.workers > 1 else ''}"
        log.info("pool ready in %.1f s: %s", time.monotonic() - started, self.device)

    def warm_up(self) -> None:
        """The replicas loaded their model when the deployment started."""

    def close(self) -> None:
        """Take our deployment down and leave the cluster; a local Ray (no address) stops with Serve in it.
        A shared cluster's Serve itself is left running: other applications may use it."""
        from ray import serve

        try:
            serve.delete(APP_NAME)
            if self._local:
                serve.shutdown()
        finally:
            self._ray.shutdown()

    # -- one job ----------------------------------------------------------------------------------------
    def run(self, job: Job, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> JobOutput:
        lost: Optional[ReplicaLost] = None
        for attempt in (1, 2):
            try:
                return self._run_once(job, progress, cancel)
            except ReplicaLost as err:
                lost = err
                log.warning("job %s: %s; %s", job.id, err,
                            "running it again on another replica" if attempt == 1 else "giving up")
                progress(0, 1)
                time.sleep(RETRY_PAUSE_S)
        raise JobFailed(f"The job's replica was lost twice ({lost}); submit the edit again.")

    def _learn(self, lessons: list) -> None:
        """Replay on the front's Budget what a replica's BudgetRelay learned."""
        for lesson in lessons:
            if lesson[0] == "model":
                self.budget.learn_model(lesson[1])
            elif lesson[0] == "speed":
                self.budget.learn_speed(lesson[1], lesson[2], lesson[3])
            elif lesson[0] == "rate":  # seconds per pixel-step, from the replica's start-up timing
                self.budget.learn_speed(lesson[1], Work(1, 1, 1, 1), lesson[2])

    def _run_once(self, job: Job, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> JobOutput:
        from ray import exceptions as ray_errors
        from ray.serve.exceptions import RequestCancelledError

        stream = self._handle.options(stream=True).edit.remote(job.id, job.params)
        started, finished, timed_out = threading.Event(), threading.Event(), threading.Event()
        threading.Thread(target=_watch, args=(stream, cancel, started, finished, timed_out), daemon=True,
                         name=f"sdedit-watch-{job.id[:8]}").start()
        replica = "an unknown replica"
        try:
            for event in stream:
                kind = event[0]
                if kind == "started":
                    started.set()
                    replica = f"replica pid={event[1]} on {event[2]}"
                    job.describe["replica"] = f"{event[1]}@{event[2]}"
                    log.info("job %s running on %s", job.id, replica)
                elif kind == "progress":
                    progress(event[1], event[2])
                elif kind == "learned":
                    self._learn(event[1])
                elif kind == "preview":
                    store_preview(job, event[1])  # GET /v1/jobs/{id}/preview answers it from here
                elif kind == "done":
                    return event[1]
                elif kind == "cancelled":
                    raise Cancelled()
                elif kind == "failed":
                    raise JobFailed(event[1])
            raise ReplicaLost(f"{replica} ended the job without a result")
        except (ray_errors.TaskCancelledError, RequestCancelledError):
            if timed_out.is_set():
                raise JobFailed(f"No replica of the pool took the job within {START_TIMEOUT_S:g} s (are the Ray "
                                "cluster's machines up?); submit the edit again.") from None
            raise Cancelled() from None
        except (ray_errors.RayActorError, ray_errors.ActorUnavailableError, ray_errors.WorkerCrashedError,
                ray_errors.ObjectLostError) as err:
            if cancel():
                raise Cancelled() from None
            raise ReplicaLost(f"{replica} was lost mid-job ({type(err).__name__})") from None
        finally:
            finished.set()


def _check_room(cluster: Dict[str, float], replicas: int, each: Dict[str, Any]) -> None:
    """Refuse a pool the cluster cannot hold now: Serve would wait for it forever, and so would the server."""
    for key, unit, what in (("num_gpus", "GPU", "GPU"), ("num_cpus", "CPU", "CPU core")):
        need, have = replicas * float(each.get(key, 0)), float(cluster.get(unit, 0))
        if need > have:
            raise InputError(f"{replicas} replicas need {need:g} {what}s but the Ray cluster has {have:g}; pass a "
                             "smaller --replicas (or --cpus-per-replica), or add machines with `ray start --address`.")


def _mentions(err: BaseException, words: str) -> bool:
    """Whether `words` appear in the error or in what caused it (Ray wraps its RPC errors)."""
    seen = 0
    while err is not None and seen < 8:
        if words in str(err):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def _watch(stream: Any, cancel: Callable[[], bool], started: threading.Event, finished: threading.Event,
           timed_out: threading.Event) -> None:
    """Cancel the job's stream (so its replica stops the edit) once the job's cancel is asked for, or when no
    replica has taken the job after START_TIMEOUT_S: a job must never stay 'running' with nobody running it."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not finished.wait(CANCEL_POLL_S):
        if not started.is_set() and time.monotonic() > deadline:
            timed_out.set()
        if cancel() or timed_out.is_set():
            stream.cancel()
            return
