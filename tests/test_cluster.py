"""`sdedit serve --ray ADDRESS`: the same HTTP API over a Ray Serve pool of 2 CPU replicas (issue 15).

The test starts a local Ray head (`ray start --head --block --num-cpus 2`, on loopback, as a studio starts its
cluster), then one real `sdedit serve --ray 127.0.0.1:PORT --replicas 2` process on a free port, with a token,
which serves every test here; jobs use the session's tiny random model. Results are compared pixel for pixel
with the same edit run in this process. Replicas are real Ray worker processes: the kill test sends SIGKILL to
the one running a job (its pid as the server's log names it). (`--ray` without an address, a local Ray of the
server's own, is what the GIMP pool e2e case and benchmarks/cluster.py run.)
Needs the extra: pip install "sdedit[cluster]" (CI installs it); skipped with that reason otherwise.
"""
from __future__ import annotations

import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_server_support import ServerProcess, b64, free_port, image_bytes, random_image, run_job, server_env, wait_final

pytest.importorskip("ray.serve", reason='the Ray pool needs the extra: pip install "sdedit[cluster]"')

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

TOKEN = "pool-token"
MAX_QUEUE = 18  # 2 running + 18 queued = the 20 concurrent clients, and the bound the queue test probes
MAX_WORK = 1_100_000  # pixel-steps per job: a 32x32 edit of 1000 steps (1,024,000) fits, 2 samples do not


def quiet_port() -> int:
    """A free port between Ray's worker ports (10002-19999) and the ephemeral ones (32768-): a pool server binds
    its port only after Ray is up, a minute later, and in the meantime another process may take an ephemeral
    port (Ray itself, or another test's server on a shared machine)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


class RayHead:
    """`ray start --head --block` on loopback with 2 CPUs; stopping that command stops its cluster."""

    def __init__(self, env: dict, log_path: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        ray_cli = Path(sys.executable).with_name("ray")
        cmd = [str(ray_cli), "start", "--head", "--block", "--port", str(self.port), "--node-ip-address",
               "127.0.0.1", "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard", "false",
               "--disable-usage-stats"]
        self._log = open(log_path, "wb")
        # no 30 s drain on SIGTERM (that is for Serve proxies under Kubernetes; this head has none)
        self.proc = subprocess.Popen(cmd, env=dict(env, RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0", RAY_AUTH_MODE="token"),
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120.0) -> "RayHead":
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ray start failed:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class PoolServer(ServerProcess):
    """`python -m sdedit serve --ray ADDRESS --replicas 2`."""

    def __init__(self, env: dict, log_path: Path, address: str) -> None:  # noqa: D107 - ServerProcess's fields
        self.host, self.token, self.env, self.log_path = "127.0.0.1", TOKEN, env, log_path
        self.port = quiet_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "sdedit", "serve", "--ray", address, "--replicas", "2", "--device", "cpu",
               "--port", str(self.port)]
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=dict(env, SDEDIT_TOKEN=TOKEN), stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 240.0) -> "PoolServer":
        super().wait_ready(timeout)
        with self.client(token=None) as client:  # ours, not another process on the same port
            assert client.get("/v1/health").json()["device"] == "ray: 2 cpu replicas", self.log()[-3000:]
        return self

    def replica_of(self, job_id: str, timeout: float = 30.0) -> int:
        """The pid of the replica the server says runs `job_id` (the latest, after a retry)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.findall(rf"job {job_id} running on replica pid=(\d+)", self.log())
            if found:
                return int(found[-1])
            time.sleep(0.05)
        raise AssertionError(f"no replica named for job {job_id}:\n{self.log()[-3000:]}")


@pytest.fixture(scope="module")
def pool_env(tiny_vp_dir) -> dict:
    # The head runs with Ray's token auth, as a studio's cluster should, and its token is this test's own:
    # Ray 2.60 no longer turns token auth on by itself (nor writes ~/.ray/auth_token) on `ray start`.
    return server_env(tiny_vp_dir.parent, tiny_vp_dir, SDEDIT_MAX_QUEUE=str(MAX_QUEUE), SDEDIT_MAX_WORK=str(MAX_WORK),
                      RAY_AUTH_TOKEN=secrets.token_hex(32))


@pytest.fixture(scope="module")
def ray_head(pool_env, tmp_path_factory):
    head = RayHead(pool_env, tmp_path_factory.mktemp("ray") / "ray-head.log").wait_ready()
    yield head
    head.stop()


@pytest.fixture(scope="module")
def pool(pool_env, ray_head, tmp_path_factory):
    # the head has token auth on (pool_env's RAY_AUTH_TOKEN); a client must opt in
    server = PoolServer(dict(pool_env, RAY_AUTH_MODE="token"), tmp_path_factory.mktemp("pool") / "server.log",
                        ray_head.address)
    try:
        yield server.wait_ready(timeout=240)
    finally:
        code = server.stop()
        assert code == 0, server.log()[-3000:]


@pytest.fixture(scope="module")
def http(pool):
    with pool.client() as client:
        yield client


@pytest.fixture(scope="module")
def reference(tiny_vp_dir):
    """The same edit in this process (one thread, like each replica)."""
    import torch

    from sdedit.engine import edit
    from sdedit.models import load_model

    model = load_model(str(tiny_vp_dir), device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield lambda image, mask=None, **params: edit(model, image, mask, **params)
    torch.set_num_threads(threads)


def decode(b64_png: str) -> Image.Image:
    import base64
    import io

    img = Image.open(io.BytesIO(base64.b64decode(b64_png, validate=True)))
    img.load()
    return img


def decode_bytes(data: bytes) -> Image.Image:
    import io

    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def keep_left(image: Image.Image) -> Image.Image:
    """Mask: black (keep) on the left third, white (edit) elsewhere."""
    mask = Image.new("L", image.size, 255)
    mask.paste(0, (0, 0, image.width // 3, image.height))
    return mask


def check_result(result: dict, image: Image.Image, mask, seed: int, samples: int, expected) -> None:
    assert result["seeds"] == [seed + k for k in range(samples)]
    for got_b64, want in zip(result["images"], expected, strict=True):
        got = np.asarray(decode(got_b64).convert("RGB"))
        assert got.shape[:2] == (image.height, image.width)
        if mask is not None:
            kept = np.asarray(mask) == 0
            assert np.array_equal(got[kept], np.asarray(image.convert("RGB"))[kept]), "kept pixels changed"
        assert np.array_equal(got, np.asarray(want.convert("RGB"))), "someone else's result (or a wrong one)"


# -- the API is the same, token rules included --------------------------------------------------------------
def test_health_names_the_pool_and_the_token_rules_hold(pool):
    with pool.client(token=None) as anonymous:
        health = anonymous.get("/v1/health").json()
        assert health["status"] == "ok" and health["device"] == "ray: 2 cpu replicas"
        assert anonymous.get("/v1/models").status_code == 401
        assert anonymous.post("/v1/jobs", json={"image": b64(image_bytes(random_image(8, 8, 0)))}).status_code == 401
    with pool.client(token="wrong") as wrong:
        assert wrong.get("/v1/jobs/x").status_code == 401
    with pool.client() as client:
        assert client.get("/v1/models").status_code == 200
        bad = client.post("/v1/jobs", json={"image": b64(image_bytes(random_image(8, 8, 0))), "model": "nope"})
        assert bad.status_code == 422 and "Unknown model 'nope'" in bad.json()["detail"]


def test_the_job_budget_holds_for_the_pool(http):
    image = b64(image_bytes(random_image(32, 32, 1)))
    refused = http.post("/v1/jobs", json={"image": image, "t0": 1.0, "steps": 1000, "samples": 2})
    assert refused.status_code == 422, refused.text
    assert "too much work for one job" in refused.json()["detail"] and "1,100,000" in refused.json()["detail"]


def test_twenty_concurrent_clients_get_their_own_results(pool, reference):
    """20 threads, each its own connection, size, seed, and (every other one) a mask: nothing lost or swapped."""
    n = 20
    barrier = threading.Barrier(n)

    def client_job(i: int):
        image = random_image(24 + i, 40 - i, seed=200 + i)
        mask = keep_left(image) if i % 2 else None
        body = {"image": b64(image_bytes(image)), "t0": 0.5, "steps": 3, "samples": 1 + i % 2, "seed": 3000 + i}
        if mask is not None:
            body["mask"] = b64(image_bytes(mask))
        with pool.client() as client:
            barrier.wait(30)
            status, result = run_job(client, body, timeout=300)
        return i, image, mask, status, result

    with ThreadPoolExecutor(n) as threads:
        outcomes = list(threads.map(client_job, range(n)))

    assert len({status["id"] for *_, status, _ in outcomes}) == n
    for i, image, mask, status, result in outcomes:
        assert status["state"] == "done", status
        expected = reference(image, mask, t0=0.5, steps=3, samples=1 + i % 2, seed=3000 + i).images
        check_result(result, image, mask, 3000 + i, 1 + i % 2, expected)
    replicas = {pool.replica_of(status["id"]) for *_, status, _ in outcomes}
    assert len(replicas) == 2, f"the jobs did not spread over both replicas: {replicas}"


def test_cancel_stops_the_job_on_its_replica_and_the_queue_bound_holds(pool, http):
    """Two long jobs run (one per replica), MAX_QUEUE wait, the next is 503. DELETE of a running job: the
    replica itself logs that it stopped that job mid-way, and the pool goes on with the queue."""
    image = b64(image_bytes(random_image(32, 32, 7)))
    long_ids = [http.post("/v1/jobs", json={"image": image, "t0": 1.0, "steps": 1000, "seed": s}).json()["id"]
                for s in (1, 2)]
    deadline = time.monotonic() + 60
    while not all(http.get(f"/v1/jobs/{j}").json()["progress"] > 0.005 for j in long_ids):
        assert time.monotonic() < deadline, "the two long jobs did not both start (one per replica)"
        time.sleep(0.05)
    queued = [http.post("/v1/jobs", json={"image": image, "steps": 2, "seed": 100 + k}) for k in range(MAX_QUEUE)]
    assert [r.status_code for r in queued] == [202] * MAX_QUEUE
    full = http.post("/v1/jobs", json={"image": image, "steps": 2, "seed": 99})
    assert full.status_code == 503 and "queue is full" in full.json()["detail"] and full.headers["Retry-After"]
    for response in queued[2:]:  # keep two queued jobs to see the replicas go on after the cancels
        assert http.delete(f"/v1/jobs/{response.json()['id']}").json()["state"] == "cancelled"

    victim = long_ids[0]
    replica = pool.replica_of(victim)
    while (preview := http.get(f"/v1/jobs/{victim}/preview")).status_code == 404:  # live preview, via the front
        assert time.monotonic() < deadline, preview.text
        time.sleep(0.1)
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    assert decode_bytes(preview.content).size == (32, 32)
    asked = time.monotonic()
    cancelled = http.delete(f"/v1/jobs/{victim}").json()
    assert cancelled["state"] == "cancelled" and cancelled["progress"] < 1.0, cancelled
    assert time.monotonic() - asked < 3.0
    pattern = rf"sdedit replica pid={replica}: job {victim} stopped at step (\d+) of (\d+) \(cancelled by the front\)"
    while not re.search(pattern, pool.log()):
        assert time.monotonic() - asked < 15, f"replica {replica} never said it stopped:\n{pool.log()[-3000:]}"
        time.sleep(0.05)
    step, total = map(int, re.search(pattern, pool.log()).groups())
    assert 0 < step < total == 1000
    progress = http.get(f"/v1/jobs/{victim}").json()
    time.sleep(0.5)
    assert http.get(f"/v1/jobs/{victim}").json() == progress  # nothing runs it any more

    http.delete(f"/v1/jobs/{long_ids[1]}")
    for response in queued[:2]:
        assert wait_final(http, response.json()["id"], 60)["state"] == "done"


def test_a_live_session_supersedes_its_job_on_the_replica(pool, http):
    """Live mode through the pool: a newer job of the same session cancels the running one (reported
    'superseded' at once), whose replica stops it mid-way; only the newest is done."""
    image = b64(image_bytes(random_image(32, 32, 8)))
    old = http.post("/v1/jobs", json={"image": image, "t0": 1.0, "steps": 1000, "seed": 1, "session": "pool-live"})
    assert old.status_code == 202, old.text
    old_id = old.json()["id"]
    deadline = time.monotonic() + 60
    while http.get(f"/v1/jobs/{old_id}").json()["progress"] < 0.005:
        assert time.monotonic() < deadline, "the long job never started"
        time.sleep(0.05)
    replica = pool.replica_of(old_id)
    new_id = http.post("/v1/jobs", json={"image": image, "steps": 2, "seed": 2, "session": "pool-live"}).json()["id"]
    status = http.get(f"/v1/jobs/{old_id}").json()
    assert status["state"] == "cancelled" and status["error"].startswith("superseded"), status
    assert status["superseded_by"] == new_id
    assert wait_final(http, new_id, 60)["state"] == "done"
    # the front logs the old job once its replica has given it up (the replica's own line may be folded into
    # another by Ray's log deduplication, or never written when the cancel came before its first step)
    pattern = rf"id={old_id} .*replica={replica}@\S+ seconds=\S+ state=cancelled error=\"superseded"
    deadline = time.monotonic() + 60
    while not re.search(pattern, pool.log()):
        assert time.monotonic() < deadline, f"replica {replica} never gave up the superseded job:\n{pool.log()[-3000:]}"
        time.sleep(0.05)
    assert http.get(f"/v1/jobs/{old_id}/result").status_code == 409


def test_a_replica_killed_mid_job_loses_nothing(pool, http, reference):
    """SIGKILL the replica running a job: that job is run again on the other replica, every job ends done
    with its own pixels, and the log says what happened."""
    images = [random_image(32, 32, 40 + k) for k in range(3)]
    bodies = [{"image": b64(image_bytes(img)), "t0": 1.0, "steps": 80, "seed": 500 + k}
              for k, img in enumerate(images)]
    ids = [http.post("/v1/jobs", json=body).json()["id"] for body in bodies]
    deadline = time.monotonic() + 60
    while http.get(f"/v1/jobs/{ids[0]}").json()["progress"] < 0.05:
        assert time.monotonic() < deadline, "the first job never got going"
        time.sleep(0.02)
    victim = pool.replica_of(ids[0])
    os.kill(victim, signal.SIGKILL)

    finals = [wait_final(http, job_id, 180) for job_id in ids]
    assert [f["state"] for f in finals] == ["done"] * 3, finals
    assert pool.replica_of(ids[0]) != victim
    assert re.search(rf"job {ids[0]}: replica pid={victim} on \S+ was lost mid-job \(\w+\); running it again",
                     pool.log()), pool.log()[-3000:]
    for k, job_id in enumerate(ids):
        result = http.get(f"/v1/jobs/{job_id}/result").json()
        expected = reference(images[k], t0=1.0, steps=80, seed=500 + k).images
        check_result(result, images[k], None, 500 + k, 1, expected)
    # the pool is whole again: two jobs at once run on two different, living replicas
    both = [http.post("/v1/jobs", json={"image": bodies[0]["image"], "steps": 40, "t0": 1.0, "seed": s}).json()["id"]
            for s in (1, 2)]
    assert [wait_final(http, j, 120)["state"] for j in both] == ["done", "done"]
    assert victim not in {pool.replica_of(j) for j in both}


def test_a_job_whose_replica_is_lost_twice_fails_with_one_sentence(pool, http):
    """Never stuck 'running': the retry's replica killed too, the job fails and says what to do."""
    job_id = http.post("/v1/jobs", json={"image": b64(image_bytes(random_image(32, 32, 9))), "t0": 1.0,
                                         "steps": 1000, "seed": 9}).json()["id"]
    first = pool.replica_of(job_id)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while pool.replica_of(job_id) == first:
        assert time.monotonic() < deadline, "the job was not run again"
        time.sleep(0.05)
    os.kill(pool.replica_of(job_id), signal.SIGKILL)
    final = wait_final(http, job_id, 60)
    assert final["state"] == "failed"
    assert re.fullmatch(r"The job's replica was lost twice \(replica pid=\d+ on \S+ was lost mid-job \(\w+\)\); "
                        r"submit the edit again\.", final["error"]), final["error"]
    assert http.get(f"/v1/jobs/{job_id}/result").status_code == 409


def test_a_cluster_that_refuses_the_token_is_one_sentence(pool_env, ray_head):
    env = dict(pool_env, RAY_AUTH_MODE="disabled", RAY_gcs_server_port_wait_time_s="3")  # Ray retries 20 s else
    done = subprocess.run([sys.executable, "-m", "sdedit", "serve", "--ray", ray_head.address, "--port",
                           str(free_port())], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"sdedit serve: The Ray cluster at {ray_head.address} refused this server's token: set RAY_AUTH_MODE=token "
        "and give it the cluster's token (~/.ray/auth_token or $RAY_AUTH_TOKEN; `ray get-auth-token` on the head "
        "prints it).")


def test_a_pool_bigger_than_the_cluster_is_refused_up_front(pool_env, ray_head):
    """3 one-core replicas on the 2-CPU head would wait forever for room: one sentence instead."""
    done = subprocess.run([sys.executable, "-m", "sdedit", "serve", "--ray", ray_head.address, "--replicas", "3",
                           "--device", "cpu", "--port", str(free_port())], env=dict(pool_env, RAY_AUTH_MODE="token"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        "sdedit serve: 3 replicas need 3 CPU cores but the Ray cluster has 2; pass a smaller --replicas (or "
        "--cpus-per-replica), or add machines with `ray start --address`.")


def test_cli_refuses_a_bad_replica_count():
    done = subprocess.run([sys.executable, "-m", "sdedit", "serve", "--ray", "--replicas", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "sdedit serve: --replicas must be at least 1, not 0."


def test_ray_is_imported_only_with_ray():
    """The plain server and CLI never import Ray (it is an optional extra and slow to import)."""
    code = ("import sys; import sdedit.cli, sdedit.api, sdedit.api.app; sdedit.cli.build_parser(); "
            "sdedit.api.app.create_app; print('ray' in sys.modules, 'sdedit.cluster' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr[-2000:]
