"""The server's model manager and LoRAs over HTTP, on a real socket: the catalogue, a download as a job with
progress (from a fake Hub on loopback), cancel, the size bound, removal, token required, sources refused, and
`"loras"` in a job."""
from __future__ import annotations

import shutil
import time

import pytest

from fake_hub import FakeHub
from test_server_support import ServerProcess, b64, image_bytes, random_image, run_job, server_env
from tiny_lora import write_diffusers_lora
from tiny_sd import write_single_file

TOKEN = "pull-token"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_vp_dir):
    root = tmp_path_factory.mktemp("pullserver")
    models = root / "models"
    models.mkdir()
    shutil.copytree(tiny_vp_dir, models / "tiny-vp")
    write_single_file(models / "tiny-sd1.safetensors", "sd1", config_folder="config-sd1")
    lora = write_diffusers_lora(root / "lora-src", "sd1").read_bytes()
    hub = FakeHub()
    hub.repos["latent-consistency/lcm-lora-sdv1-5"] = {"pytorch_lora_weights.safetensors": lora}
    hub.repos["someone/slow-lora"] = {"pytorch_lora_weights.safetensors": lora}
    hub.repos["someone/big"] = {"big.safetensors": b"\0" * 300_000}
    hub.start()
    env = server_env(models, models / "tiny-vp", HF_ENDPOINT=hub.url, HF_HOME=str(root / "hf"),
                     SDEDIT_MAX_PULL_BYTES="200000", SDEDIT_TOKEN=TOKEN)
    server = ServerProcess(env, root / "server.log", token=TOKEN).wait_ready()
    try:
        yield server, hub, models
    finally:
        server.stop()
        hub.stop()


def wait_pull(client, pull_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/v1/models/pull/{pull_id}").json()
        if status["state"] != "running":
            return status
        time.sleep(0.1)
    raise AssertionError(f"pull {pull_id} still running")


def test_catalogue_and_a_pull_job_install_a_lora_usable_in_a_job(setup):
    server, hub, models = setup
    with server.client() as client:
        catalogue = client.get("/v1/models/catalogue").json()
        assert {"sd15", "sdxl-base", "lcm-lora-sd15"} <= {e["name"] for e in catalogue}
        assert not next(e for e in catalogue if e["name"] == "lcm-lora-sd15")["installed"]
        started = client.post("/v1/models/pull", json={"source": "lcm-lora-sd15"})
        assert started.status_code == 202, started.text
        final = wait_pull(client, started.json()["id"])
        assert final["state"] == "done", final
        assert final["progress"] == 1.0 and final["done"] == final["total"] > 0 and final["name"] == "lcm-lora-sd15"
        assert (models / "loras" / "lcm-lora-sd15.safetensors").is_file()
        assert "lcm-lora-sd15" in [e["id"] for e in client.get("/v1/loras").json()]
        assert next(e for e in client.get("/v1/models/catalogue").json() if e["name"] == "lcm-lora-sd15")["installed"]

        image = b64(image_bytes(random_image(64, 64, 3)))
        body = dict(image=image, model="tiny-sd1", prompt="ink", steps=2, seed=5, sde="ddim")
        results = []
        for loras in ([], [{"id": "lcm-lora-sd15", "scale": 0.8}], [{"id": "lcm-lora-sd15", "scale": 0.0}]):
            status, result = run_job(client, {**body, "loras": loras})
            assert status["state"] == "done", (status, server.log()[-2000:])
            results.append(result)
        plain, with_lora, zero = results
        assert with_lora["images"] != plain["images"]
        assert zero["images"] == plain["images"]
        bad = client.post("/v1/jobs", json={**body, "loras": [{"id": "nothing"}]})
        assert bad.status_code == 422 and "Unknown LoRA 'nothing'" in bad.json()["detail"]
        pixel = client.post("/v1/jobs", json={"image": image, "loras": [{"id": "lcm-lora-sd15"}]})
        assert pixel.status_code == 422 and "not a Stable Diffusion model" in pixel.json()["detail"]

        removed = client.delete("/v1/models/lcm-lora-sd15")
        assert removed.status_code == 200, removed.text
        assert not (models / "loras" / "lcm-lora-sd15.safetensors").exists()
        assert client.delete("/v1/models/lcm-lora-sd15").status_code == 404


def test_a_pull_job_can_be_cancelled_and_keeps_its_partial_file(setup):
    server, hub, models = setup
    hub.throttle = 0.2
    try:
        with server.client() as client:
            pull_id = client.post("/v1/models/pull", json={"source": "someone/slow-lora"}).json()["id"]
            deadline = time.monotonic() + 30
            while client.get(f"/v1/models/pull/{pull_id}").json()["done"] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            status = client.delete(f"/v1/models/pull/{pull_id}").json()
            assert status["state"] == "cancelled", status
            assert 0 < status["done"] < status["total"]
            assert not (models / "slow-lora.safetensors").exists() and not (models / "loras" / "slow-lora.safetensors").exists()
            assert (models / ".downloads" / "slow-lora.safetensors.part").is_file()
            assert "slow-lora" not in [m["id"] for m in client.get("/v1/models").json()]
    finally:
        hub.throttle = 0.0


def test_sizes_are_bounded_and_sources_checked_and_the_token_needed(setup):
    server, hub, models = setup
    with server.client() as client:
        big = wait_pull(client, client.post("/v1/models/pull", json={"source": "someone/big/big.safetensors"}).json()["id"])
        assert big["state"] == "failed" and "limit" in big["error"], big
        assert not any((models / ".downloads").glob("big*"))
        for source in ("http://example.com/x.safetensors", "file:///etc/passwd", "../../etc", "ftp://a/b"):
            answer = client.post("/v1/models/pull", json={"source": source})
            assert answer.status_code == 422, (source, answer.text)
    with server.client(token=None) as anonymous:
        assert anonymous.post("/v1/models/pull", json={"source": "sd15"}).status_code == 401
        assert anonymous.get("/v1/models/catalogue").status_code == 401
        assert anonymous.delete("/v1/models/tiny-vp").status_code == 401
