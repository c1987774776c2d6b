"""The HTTP server against a real `run_server` process on a free loopback port (docs/design.md §3).

Every job uses the session's tiny random model (tests/tiny_models.py) and few steps, so the whole module
runs in well under a minute on a busy CPU. Results are compared pixel for pixel with the same edit run
in-process: the engine is deterministic per seed on the CPU, so any mix-up between jobs shows.
"""
from __future__ import annotations

import io
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from test_server_support import (
    ServerProcess,
    b64,
    image_bytes,
    png_header_only,
    random_image,
    run_job,
    server_env,
    wait_final,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# -- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_vp_dir):
    """tiny-vp (the default) and 'broken', whose configs list fine but whose weights are garbage."""
    root = tmp_path_factory.mktemp("server_models")
    shutil.copytree(tiny_vp_dir, root / "tiny-vp")
    shutil.copytree(tiny_vp_dir, root / "broken")
    for weights in (root / "broken").rglob("*.safetensors"):
        weights.write_bytes(b"this is not a safetensors file")
    return root


@pytest.fixture(scope="module")
def servers(models_dir, tmp_path_factory):
    """Two real servers, started together to save time:
    'open'  - run_server() on loopback without a token (the default), small body and pixel limits;
    'token' - `python -m sdedit serve --token ...` (as it must be run off loopback), room for one queued job,
              results kept 3 s."""
    logs = tmp_path_factory.mktemp("logs")
    default = models_dir / "tiny-vp"
    started = {
        "open": ServerProcess(server_env(models_dir, default, SDEDIT_MAX_BODY_MB="2", SDEDIT_MAX_PIXELS="4000000"),
                              logs / "open.log"),
        "token": ServerProcess(server_env(models_dir, default, SDEDIT_MAX_QUEUE="1", SDEDIT_RESULT_TTL_S="3"),
                               logs / "token.log",
                               token="s3cret-token", via_cli=True),
    }
    try:
        yield {name: proc.wait_ready() for name, proc in started.items()}
    finally:
        codes = {name: proc.stop() for name, proc in started.items()}
    assert codes == {"open": 0, "token": 0}, started["open"].log()[-2000:]


@pytest.fixture(scope="module")
def server(servers):
    return servers["open"]


@pytest.fixture(scope="module")
def token_server(servers):
    return servers["token"]


@pytest.fixture(scope="module")
def http(server):
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def reference(models_dir):
    """The same edit in-process, on one CPU thread like the server (the result does not depend on it)."""
    import torch

    from sdedit.engine import edit
    from sdedit.models import load_model

    model = load_model(str(models_dir / "tiny-vp"), device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def run(image: Image.Image, mask=None, **params):
        return edit(model, image, mask, **params)

    yield run
    torch.set_num_threads(threads)


def decode(b64_png: str) -> Image.Image:
    import base64

    data = base64.b64decode(b64_png, validate=True)
    assert data.startswith(b"\x89PNG"), "results must be PNG"
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# -- the endpoints ---------------------------------------------------------------------------------------------
def test_health_and_models(http):
    health = http.get("/v1/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["device"] == "cpu"
    assert "tiny-vp" in body["models"]

    models = http.get("/v1/models").json()
    by_id = {m["id"]: m for m in models}
    assert set(by_id["tiny-vp"]) == {"id", "resolution", "sde", "default", "kind", "text", "default_sde", "live",
                                  "prediction"}  # docs/design.md §3
    assert by_id["tiny-vp"]["live"] == {"sde": "ode", "steps": 3, "size": 32, "guidance": None}  # live mode
    assert by_id["tiny-vp"]["default"] is True and by_id["tiny-vp"]["sde"] == "vp"
    assert (by_id["tiny-vp"]["kind"], by_id["tiny-vp"]["text"], by_id["tiny-vp"]["default_sde"]) == ("pixel", False, "vp")
    assert by_id["tiny-vp"]["resolution"] == 32
    # "sde" (the SDE it was trained with) and "default_sde" (the sampler a job without "sde" gets) both stay, for
    # old clients and new; the schema says which is which
    fields = http.get("/openapi.json").json()["components"]["schemas"]["ModelEntry"]["properties"]
    assert "trained with" in fields["sde"]["description"] and "default_sde" in fields["sde"]["description"]
    assert "sends no 'sde'" in fields["default_sde"]["description"]


def test_job_life_cycle(http, reference):
    """queued/running -> 409 on result -> done -> full-size PNGs equal to the in-process edit; kept pixels exact."""
    image = random_image(70, 50, seed=1, mode="RGBA")
    mask = Image.new("L", image.size, 0)
    mask.paste(255, (10, 10, 40, 30))
    body = {"image": b64(image_bytes(image)), "mask": b64(image_bytes(mask)), "t0": 0.6, "sde": "vp",
            "steps": 6, "samples": 2, "seed": 77, "grow": True}

    # a long job first, so that the edit is still queued when its result is asked for
    long = http.post("/v1/jobs", json={"image": body["image"], "t0": 1.0, "steps": 1000, "seed": 1})
    created = http.post("/v1/jobs", json=body)
    assert created.status_code == 202
    job = created.json()
    assert set(job) == {"id", "state"} and job["state"] == "queued"
    early = http.get(f"/v1/jobs/{job['id']}/result")
    assert early.status_code == 409 and "queued" in early.json()["detail"]
    queued = http.get(f"/v1/jobs/{job['id']}").json()
    assert queued["state"] == "queued" and queued["progress"] == 0.0 and queued["queue_position"] in (0, 1)
    assert http.delete(f"/v1/jobs/{long.json()['id']}").json()["state"] == "cancelled"

    status = wait_final(http, job["id"])
    seconds = status.pop("seconds")
    assert status == {"id": job["id"], "state": "done", "progress": 1.0, "error": None, "queue_position": None,
                      "superseded_by": None}
    assert 0 < seconds < 120
    result = http.get(f"/v1/jobs/{job['id']}/result").json()
    assert result["seeds"] == [77, 78]
    expected = reference(image, mask, t0=0.6, sde="vp", steps=6, samples=2, seed=77, grow=True)
    used = np.asarray(decode(result["mask"]))  # asked to grow: the hard selection grown by its feathered band
    assert np.array_equal(used, expected.mask) and np.count_nonzero(used) > np.count_nonzero(np.asarray(mask))
    kept = used == 0
    for got_b64, want in zip(result["images"], expected.images, strict=True):
        got = decode(got_b64)
        assert got.size == image.size and got.mode == "RGBA"
        assert np.array_equal(np.asarray(got), np.asarray(want))
        assert np.array_equal(np.asarray(got)[kept], np.asarray(image)[kept])
        assert not np.array_equal(np.asarray(got), np.asarray(image))

    # without "grow" the mask is the contract (docs/design.md §3): every black pixel comes back exactly
    plain = http.post("/v1/jobs", json=dict(body, grow=False, samples=1)).json()
    assert wait_final(http, plain["id"])["state"] == "done"
    plain_result = http.get(f"/v1/jobs/{plain['id']}/result").json()
    assert np.array_equal(np.asarray(decode(plain_result["mask"])), np.asarray(mask))
    outside = np.asarray(mask) == 0
    assert np.array_equal(np.asarray(decode(plain_result["images"][0]))[outside], np.asarray(image)[outside])

    assert http.get("/v1/jobs/0123456789abcdef/result").status_code == 404
    assert http.get("/v1/jobs/0123456789abcdef").status_code == 404
    assert http.delete("/v1/jobs/0123456789abcdef").status_code == 404


def test_result_says_which_steps_and_sampler_ran(http, server):
    """Issue 20, item 7: with steps and sampler left to the model, the result says what ran, so the plugins'
    history shows the steps instead of 0; the plugins' client keeps it in ``last_ran``."""
    from sdedit_client import Client

    image = random_image(40, 32, seed=3)
    _, result = run_job(http, {"image": b64(image_bytes(image)), "t0": 0.5, "seed": 4, "sde": "ddim"})
    assert result["steps"] == 20 and result["sde"] == "ddim"  # the fast samplers' default: 20 steps
    _, asked = run_job(http, {"image": b64(image_bytes(image)), "t0": 0.5, "seed": 4, "steps": 3})
    assert asked["steps"] == 3 and asked["sde"] == "vp"  # the model's declared default sampler
    client = Client(server.url, token=server.token)
    client.run(image_bytes(image), t0=0.5, seed=4, sde="ode")
    assert client.last_ran == {"steps": 20, "sde": "ode"}


def test_every_sampler_and_jpeg_webp_input(http, reference):
    """Each sampler the engine offers (vp, ve, ode, ...) is reachable, from PNG, JPEG and WebP alike."""
    from sdedit.engine import SAMPLERS
    from sdedit.imaging import decode_image

    schema_sde = http.get("/openapi.json").json()["components"]["schemas"]["JobRequest"]["properties"]["sde"]
    schema_sdes = next(option for option in schema_sde.get("anyOf", [schema_sde]) if "enum" in option)
    assert schema_sdes["enum"] == list(SAMPLERS)  # or null: the model's default_sde
    formats = ["PNG", "JPEG", "WEBP"]
    for i, sde in enumerate(SAMPLERS):
        data = image_bytes(random_image(33, 21, seed=5 + i), formats[i % 3])
        status, result = run_job(http, {"image": b64(data), "sde": sde, "t0": 0.45, "steps": 3, "seed": 9})
        assert status["state"] == "done", status
        assert "mask" not in result  # no mask sent, none returned
        got = decode(result["images"][0])
        want = reference(decode_image(data), sde=sde, t0=0.45, steps=3, seed=9).images[0]
        assert got.size == (33, 21) and np.array_equal(np.asarray(got), np.asarray(want)), sde


def test_long_poll_answers_when_the_job_finishes(http):
    """GET /v1/jobs/{id}?wait=S holds the answer until the job is finished, or S seconds."""
    image = b64(image_bytes(random_image(32, 32, 4)))
    long_id = http.post("/v1/jobs", json={"image": image, "t0": 1.0, "steps": 1000}).json()["id"]
    started = time.monotonic()
    held = http.get(f"/v1/jobs/{long_id}", params={"wait": 1.0}).json()
    assert held["state"] in ("queued", "running") and 0.9 < time.monotonic() - started < 10
    http.delete(f"/v1/jobs/{long_id}")

    job_id = http.post("/v1/jobs", json={"image": image, "steps": 2, "seed": 2}).json()["id"]
    started = time.monotonic()
    done = http.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert done["state"] == "done" and time.monotonic() - started < 25
    assert http.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()["state"] == "done"  # at once when finished
    assert http.get(f"/v1/jobs/{job_id}", params={"wait": 31}).status_code == 422


def test_cancel_mid_run_stops_within_a_step(http):
    """A 1000-step job is cancelled while running: DELETE answers 'cancelled' and progress stops there."""
    job_id = http.post("/v1/jobs", json={"image": b64(image_bytes(random_image(32, 32, 2))), "t0": 1.0,
                                         "steps": 1000, "seed": 5}).json()["id"]
    deadline = time.monotonic() + 60
    while http.get(f"/v1/jobs/{job_id}").json()["progress"] < 0.01:
        assert time.monotonic() < deadline, "the long job never started"
        time.sleep(0.02)
    before = http.get(f"/v1/jobs/{job_id}").json()
    assert before["state"] == "running"
    started = time.monotonic()
    cancelled = http.delete(f"/v1/jobs/{job_id}")
    took = time.monotonic() - started
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["state"] == "cancelled" and body["progress"] < 1.0, body
    assert took < 2.0, f"cancel took {took:.2f} s"
    time.sleep(0.3)
    after = http.get(f"/v1/jobs/{job_id}").json()
    assert after["state"] == "cancelled" and after["progress"] == body["progress"]
    assert http.get(f"/v1/jobs/{job_id}/result").status_code == 409
    # cancelling again is harmless, and the worker goes on with the next job
    assert http.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    status, _ = run_job(http, {"image": b64(image_bytes(random_image(16, 16, 3))), "steps": 2, "seed": 1})
    assert status["state"] == "done"


@pytest.mark.slow
def test_twenty_concurrent_clients_get_their_own_results(server, reference):
    """20 threads, each its own connection, image size and seed: nothing lost, nothing swapped."""
    n = 20

    def client_job(i: int):
        image = random_image(24 + i, 40 - i, seed=100 + i)
        with server.client() as client:
            status, result = run_job(client, {"image": b64(image_bytes(image)), "t0": 0.5, "steps": 3,
                                              "samples": 1 + i % 2, "seed": 1000 + i}, timeout=300)
        return i, image, status, result

    barrier = threading.Barrier(n)

    def synchronized(i: int):
        barrier.wait(30)
        return client_job(i)

    with ThreadPoolExecutor(n) as pool:
        outcomes = list(pool.map(synchronized, range(n)))

    ids = {status["id"] for _, _, status, _ in outcomes}
    assert len(ids) == n
    for i, image, status, result in outcomes:
        assert status["state"] == "done", status
        assert result["seeds"] == [1000 + i + k for k in range(1 + i % 2)]
        want = reference(image, t0=0.5, steps=3, samples=1 + i % 2, seed=1000 + i).images
        for got_b64, expected in zip(result["images"], want, strict=True):
            got = decode(got_b64)
            assert got.size == image.size
            assert np.array_equal(np.asarray(got), np.asarray(expected)), f"client {i} got someone else's result"


def test_the_plugins_client_runs_edits_and_shows_server_messages(server, token_server, reference):
    """shared/sdedit_client (what Krita and GIMP use) against the real server: results, progress, errors."""
    from sdedit_client import Client, RequestRejected

    image = random_image(40, 28, seed=42)
    seen = []
    images, seeds = Client(server.url).run(image_bytes(image), t0=0.5, steps=3, samples=2, seed=11,
                                           on_progress=seen.append, poll_interval=0.05)
    assert seeds == [11, 12] and seen and all(0.0 <= p <= 1.0 for p in seen)
    want = reference(image, t0=0.5, steps=3, samples=2, seed=11).images
    for png, expected in zip(images, want, strict=True):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), np.asarray(expected))

    with pytest.raises(RequestRejected, match="Unknown model 'nope'"):
        Client(server.url).run(image_bytes(image), model="nope")
    with pytest.raises(RequestRejected, match="access token"):
        Client(token_server.url).run(image_bytes(image), steps=1)
    assert len(Client(token_server.url, token="s3cret-token").run(image_bytes(image), steps=1)[0]) == 1


# -- bad input -------------------------------------------------------------------------------------------------
GOOD = b64(image_bytes(random_image(20, 20, seed=0)))


def _bad_requests():
    gif = image_bytes(random_image(20, 20, 0), "GIF")
    bmp = image_bytes(random_image(20, 20, 0), "BMP")
    png = image_bytes(random_image(20, 20, 0))
    mask = image_bytes(Image.new("L", (21, 20), 255))
    return [
        ("not base64", {"image": "not base64 at all!"}, 422, "base64"),
        ("gif", {"image": b64(gif)}, 422, "PNG, JPEG or WebP"),
        ("bmp", {"image": b64(bmp)}, 422, "PNG, JPEG or WebP"),
        ("truncated png", {"image": b64(png[:60])}, 422, "image"),
        ("empty image", {"image": ""}, 422, "image"),
        ("mask size", {"image": GOOD, "mask": b64(mask)}, 422, "mask is 21x20"),
        ("mask format", {"image": GOOD, "mask": b64(gif)}, 422, "mask"),
        ("t0 zero", {"image": GOOD, "t0": 0}, 422, "t0"),
        ("t0 above one", {"image": GOOD, "t0": 1.5}, 422, "t0"),
        ("t0 text", {"image": GOOD, "t0": "half"}, 422, "t0"),
        ("steps too many", {"image": GOOD, "steps": 1001}, 422, "steps"),
        ("steps negative", {"image": GOOD, "steps": -1}, 422, "steps"),
        ("samples zero", {"image": GOOD, "samples": 0}, 422, "samples"),
        ("samples too many", {"image": GOOD, "samples": 17}, 422, "samples"),
        ("seed negative", {"image": GOOD, "seed": -1}, 422, "seed"),
        ("unknown sde", {"image": GOOD, "sde": "xyz"}, 422, "sde"),
        ("unknown model", {"image": GOOD, "model": "no-such-model"}, 422, "no-such-model"),
        ("model path", {"image": GOOD, "model": "/etc"}, 422, "Unknown model"),
        ("no image", {"t0": 0.5}, 422, "image"),
        ("pixel bomb", {"image": b64(png_header_only(30000, 30000))}, 413, "pixels"),
        ("mask bomb", {"image": GOOD, "mask": b64(png_header_only(3000, 3000))}, 413, "pixels"),
        ("body too large", {"image": "A" * (3 * 2**20)}, 413, "MiB"),
    ]


@pytest.mark.parametrize("name,body,status,words", _bad_requests(), ids=[r[0] for r in _bad_requests()])
def test_bad_input_is_4xx_with_a_message(http, name, body, status, words):
    answer = http.post("/v1/jobs", json=body)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and words in detail, detail
    assert "Traceback" not in detail


@pytest.mark.parametrize("raw,status,words", [
    (b"{not json", 422, "JSON"), (b'{"image": "x", "t0": NaN}', 422, "t0"), (b"[1, 2]", 422, "JSON object"),
    (b"", 422, "JSON object"), (b"\xff\x0f", 400, "UTF-8 JSON")])
def test_malformed_bodies_are_4xx(http, raw, status, words):
    answer = http.post("/v1/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]


def test_chunked_body_over_the_limit_is_413(http):
    """No Content-Length (chunked upload): the limit still holds while the body streams in."""
    def chunks():
        yield b'{"image": "'
        for _ in range(40):
            yield b"A" * 2**16  # 2.5 MiB in all, over the 2 MiB limit
        yield b'"}'

    answer = http.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "MiB" in answer.json()["detail"]
    assert http.get("/v1/health").status_code == 200


def test_failing_job_is_failed_and_server_keeps_serving(http, server):
    status, _ = run_job(http, {"image": GOOD, "model": "broken", "steps": 2})
    assert status["state"] == "failed" and "broken" in status["error"], status
    assert http.get(f"/v1/jobs/{status['id']}/result").status_code == 409
    status, result = run_job(http, {"image": GOOD, "steps": 2, "seed": 3})
    assert status["state"] == "done" and len(result["images"]) == 1


def test_one_structured_log_line_per_job(http, server):
    status, _ = run_job(http, {"image": GOOD, "t0": 0.25, "sde": "ve", "steps": 3, "samples": 2, "seed": 8})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in server.log().splitlines() if f"id={status['id']}" in line]
        if lines:
            break
        time.sleep(0.05)
    assert len(lines) == 1, server.log()[-2000:]
    fields = dict(part.split("=", 1) for part in lines[0].split() if "=" in part)
    assert fields["width"] == "20" and fields["height"] == "20" and fields["t0"] == "0.25"
    assert fields["sde"] == "ve" and fields["steps"] == "3" and fields["samples"] == "2"
    assert fields["state"] == "done" and float(fields["seconds"]) > 0


# -- token rule, queue bound, start-up refusals -------------------------------------------------------------------
def test_token_required_on_every_endpoint_but_health(token_server):
    job_body = {"image": GOOD, "steps": 2}
    calls = [("GET", "/v1/models", None), ("POST", "/v1/jobs", job_body), ("GET", "/v1/jobs/abc", None),
             ("GET", "/v1/jobs/abc/result", None), ("DELETE", "/v1/jobs/abc", None)]
    for token in (None, "wrong-token", "s3cret-tokenX", "s3cret-toke"):
        with token_server.client(token=token) as client:
            assert client.get("/v1/health").status_code == 200
            for method, path, body in calls:
                answer = client.request(method, path, json=body)
                assert answer.status_code == 401, (token, method, path, answer.text)
                assert "token" in answer.json()["detail"] and answer.headers["www-authenticate"] == "Bearer"
    with token_server.client() as client:
        assert client.get("/v1/models").status_code == 200
        status, result = run_job(client, job_body)
        assert status["state"] == "done"
        assert client.get("/v1/jobs/abc").status_code == 404


def test_full_queue_answers_503_with_retry_after(token_server):
    long = {"image": GOOD, "t0": 1.0, "steps": 1000}
    with token_server.client() as client:
        running = client.post("/v1/jobs", json=long).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{running}").json()["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        queued = client.post("/v1/jobs", json=long)
        assert queued.status_code == 202
        full = client.post("/v1/jobs", json=long)
        assert full.status_code == 503
        assert int(full.headers["retry-after"]) >= 1 and "queue is full" in full.json()["detail"]
        for job_id in (queued.json()["id"], running):
            assert client.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
        assert client.post("/v1/jobs", json={"image": GOOD, "steps": 1}).status_code == 202


def test_results_are_dropped_after_their_time(token_server):
    with token_server.client() as client:
        status, result = run_job(client, {"image": GOOD, "steps": 1})
        assert status["state"] == "done" and result["images"]
        time.sleep(3.5)
        gone = client.get(f"/v1/jobs/{status['id']}/result")
        assert gone.status_code == 404 and "kept for 3 s" in gone.json()["detail"]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.invalid"])
def test_refuses_non_loopback_without_token(host, monkeypatch):
    from sdedit.api import run_server
    from sdedit.errors import InputError

    monkeypatch.delenv("SDEDIT_TOKEN", raising=False)
    with pytest.raises(InputError, match="needs an access token"):
        run_server(host=host, port=8765, device="cpu")
    monkeypatch.setenv("SDEDIT_TOKEN", "   ")  # blank is no token
    with pytest.raises(InputError, match="needs an access token"):
        run_server(host=host, port=8765, device="cpu")


def test_cli_refuses_non_loopback_without_token(models_dir):
    """`sdedit serve --host 0.0.0.0` with no token: exit code 2 and one line that says what to do."""
    import subprocess
    import sys

    env = server_env(models_dir, models_dir / "tiny-vp")
    done = subprocess.run([sys.executable, "-m", "sdedit", "serve", "--host", "0.0.0.0", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs an access token" in lines[0] and "--token" in lines[0], done.stderr


def test_loopback_rule():
    from sdedit.api.auth import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "10.0.0.1", "example.org", ""))


def test_refuses_a_port_in_use(server):
    from sdedit.api import run_server
    from sdedit.errors import InputError

    with pytest.raises(InputError, match="already in use"):
        run_server(host="127.0.0.1", port=server.port, device="cpu")
