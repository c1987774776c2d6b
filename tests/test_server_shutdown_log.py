"""What a real server writes to its log (issue 22, items 9 and 10): every job on SIGTERM, one traceback for a
repeated crash, and `"t0": true` refused rather than read as 1.0."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from test_server_support import ROOT, ServerProcess, b64, free_port, image_bytes, random_image, server_env

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_vp_dir):
    root = tmp_path_factory.mktemp("shutdown_models")
    shutil.copytree(tiny_vp_dir, root / "tiny-vp")
    return root


@pytest.mark.slow
def test_sigterm_logs_the_running_and_the_queued_jobs(tmp_path, models_dir):
    server = ServerProcess(server_env(models_dir, models_dir / "tiny-vp"), tmp_path / "s.log").wait_ready()
    try:
        with server.client() as client:
            long = {"image": b64(image_bytes(random_image(192, 192, 1))), "t0": 1.0, "sde": "vp", "steps": 1000,
                    "samples": 4}
            ids = [client.post("/v1/jobs", json=long).json()["id"] for _ in range(3)]
            deadline = time.monotonic() + 60
            while client.get(f"/v1/jobs/{ids[0]}").json()["state"] == "queued" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [client.get(f"/v1/jobs/{i}").json()["state"] for i in ids] == ["running", "queued", "queued"]
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(60)
    finally:
        server.stop()
    log = server.log()
    for job_id in ids:
        lines = [line for line in log.splitlines() if f"id={job_id}" in line]
        assert len(lines) == 1 and "state=cancelled" in lines[0] and "stopped_by=\"server shutdown\"" in lines[0], \
            (job_id, lines)


BROKEN_SERVER = """
from sdedit.api import run_server
from sdedit.api.backend import EngineBackend

class Broken(EngineBackend):
    def check_model(self, model):
        raise RuntimeError("the model check broke")

run_server(host="127.0.0.1", port={port}, device="cpu", backend_factory=lambda: Broken("cpu"))
"""


@pytest.mark.slow
def test_a_repeated_crash_writes_one_traceback(tmp_path, models_dir):
    port = free_port()
    log_path = tmp_path / "crash.log"
    env = server_env(models_dir, models_dir / "tiny-vp")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", BROKEN_SERVER.format(port=port)], env=env, stdout=log,
                                stderr=subprocess.STDOUT, cwd=str(ROOT))
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/v1/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        before = len(log_path.read_text().splitlines())
        body = {"image": b64(image_bytes(random_image(16, 16, 1)))}
        for _ in range(5):
            answer = httpx.post(url + "/v1/jobs", json=body, timeout=10, trust_env=False)
            assert answer.status_code == 500 and "internal error (RuntimeError)" in answer.json()["detail"]
        assert httpx.get(url + "/v1/health", timeout=5, trust_env=False).status_code == 200  # still serving
        time.sleep(0.5)
        text = log_path.read_text()
        added = text.splitlines()[before:]
        assert text.count("Traceback") == 1, text[-4000:]
        assert len(added) < 60, "\n".join(added)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_booleans_are_not_numbers():
    from fastapi.testclient import TestClient

    from sdedit.api import create_app

    app = create_app(handoff_key=None)
    with TestClient(app) as client:
        for field in ("t0", "steps", "samples", "seed", "guidance"):
            answer = client.post("/v1/jobs", json={"image": "AAAA", field: True})
            assert answer.status_code == 422 and field in answer.json()["detail"], (field, answer.text)
