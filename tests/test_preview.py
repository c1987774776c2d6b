"""Live previews (issue 16, item 2): the engine's clean estimate x̂₀ every few steps, and
GET /v1/jobs/{id}/preview on a real server (404 before, PNG of at most 256 px a side while running)."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch
from PIL import Image

from sdedit.engine import edit
from sdedit.engine.noise import NoiseSource
from sdedit.engine.preview import EstimateWatcher, preview_interval
from sdedit.engine.samplers import SAMPLERS, SamplerInput
from sdedit_client import Client
from test_server_support import ServerProcess, b64, image_bytes, server_env

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def sketch(width: int, height: int) -> Image.Image:
    """Sky over green hills with a dark stroke: a painter's guide, not noise."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[: height // 2] = (110, 160, 230)
    arr[height // 2:] = (60, 130, 60)
    arr[height // 3: height // 3 + 6, width // 4: 3 * width // 4] = (40, 40, 40)
    return Image.fromarray(arr)


def test_interval_gives_about_ten_previews():
    assert preview_interval(20) == 2 and preview_interval(5) == 1 and preview_interval(1000) == 100
    assert preview_interval(20, every=3) == 3


@pytest.mark.parametrize("sde", ["vp", "ode", "ddim"])
def test_estimate_after_the_last_step_is_the_result(tiny_vp, sde):
    """The closed-form x̂₀ of the last network call equals the sampler's output where the last step lands on
    the clean image (VP's last DDPM step, the ODE samplers' step to sigma 0): the formula is right."""
    guide = torch.rand(1, 3, 32, 32) * 2 - 1
    watched = EstimateWatcher(tiny_vp)
    with torch.inference_mode():
        out = SAMPLERS[sde](watched, SamplerInput(guide, None, NoiseSource([5], (3, 32, 32), tiny_vp.device), 0.4, 6),
                            lambda: None)
    assert torch.allclose(watched.estimate(), out, atol=1e-4)


def test_previews_do_not_change_the_result(tiny_vp):
    """Same seed with and without previews: identical pixels; the callback sees small uint8 RGB arrays of the
    visible picture (the masked-off part is the guide's), every 2 steps of a 20-step job."""
    image = sketch(40, 24)  # within the model's native size: one stage (two: tests/test_native_scale.py)
    mask = np.zeros((24, 40), np.uint8)
    mask[:, 20:] = 255
    mask_img = Image.fromarray(mask)
    seen = []
    plain = edit(tiny_vp, image, mask_img, t0=0.6, steps=20, seed=3)
    watched = edit(tiny_vp, image, mask_img, t0=0.6, steps=20, seed=3, preview=seen.append)
    assert np.array_equal(np.asarray(plain.images[0]), np.asarray(watched.images[0]))
    assert len(seen) == 9  # after steps 2, 4, ..., 18; the result itself follows step 20
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 and max(p.shape[:2]) <= 256 for p in seen)
    assert len({p.tobytes() for p in seen}) > 1


def test_preview_shows_the_visible_picture_only(tiny_vp):
    """A fixed-size model edits a square around a 2:1 canvas; the preview is the canvas's part, 2:1, at the
    model's working size (never larger than it, never over 256 px)."""
    seen = []
    edit(tiny_vp, sketch(40, 20), t0=0.5, steps=4, seed=1, preview=seen.append, preview_every=1)  # one stage
    assert len(seen) == 3 and all(p.shape == (16, 32, 3) for p in seen)


# -- the endpoint on a real server -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory):
    """A real server with the embedded landscape model (a 20-step job at 320x240 takes seconds on a CPU)."""
    logs = tmp_path_factory.mktemp("preview_logs")
    proc = ServerProcess(server_env(logs, "landscape"), logs / "server.log")
    try:
        yield proc.wait_ready()
    finally:
        assert proc.stop() == 0, proc.log()[-2000:]


@pytest.mark.slow
def test_preview_endpoint_404_then_changing_pngs(embedded_server):
    client = Client(embedded_server.url, timeout=30)
    with embedded_server.client() as http:
        body = {"image": b64(image_bytes(sketch(320, 240))), "t0": 0.6, "steps": 20, "seed": 7}
        first = http.post("/v1/jobs", json=body).json()["id"]
        second = http.post("/v1/jobs", json=dict(body, seed=8)).json()["id"]  # queued behind the first
        queued = http.get(f"/v1/jobs/{second}/preview")
        assert queued.status_code == 404 and "queued" in queued.json()["detail"]
        assert client.preview(second) is None
        unknown = http.get("/v1/jobs/nope/preview")
        assert unknown.status_code == 404 and "no job" in unknown.json()["detail"]

        previews, deadline = [], time.monotonic() + 240
        while time.monotonic() < deadline:
            state = http.get(f"/v1/jobs/{first}").json()["state"]
            answer = http.get(f"/v1/jobs/{first}/preview")
            if answer.status_code == 200:
                assert answer.headers["content-type"] == "image/png"
                if not previews or previews[-1] != answer.content:
                    previews.append(answer.content)
            else:
                assert answer.status_code == 404 and not previews  # no preview yet, never one lost
            if state in ("done", "failed", "cancelled"):
                break
            time.sleep(0.05)
        assert state == "done"
        assert len(previews) >= 3, f"the preview changed {len(previews) - 1} times"  # changes at least twice
        for png in previews:
            img = Image.open(io.BytesIO(png))
            assert img.format == "PNG" and img.size == (256, 192)
        assert client.preview(first) == previews[-1]  # the client hands the PNG bytes over as served
        http.delete(f"/v1/jobs/{second}")


def test_latent_model_previews_without_the_decoder(tmp_path):
    """A Stable Diffusion (latent) model: previews come from the latent estimate through the per-job linear
    latent-to-RGB fit, not the VAE decoder; the result is the same with or without them."""
    from tiny_sd import make_sd_folder
    from sdedit.models.sd_loader import load_sd

    folder = make_sd_folder(tmp_path / "tiny-sd1", "sd1")
    model = load_sd("tiny-sd1", folder, torch.device("cpu"), torch.float32)
    decodes = []
    decode = model.decode_latent
    model.decode_latent = lambda z: decodes.append(z.shape) or decode(z)
    image = sketch(96, 80)
    seen = []
    plain = edit(model, image, t0=0.6, sde="ddim", steps=10, seed=2)
    decodes.clear()
    watched = edit(model, image, t0=0.6, sde="ddim", steps=10, seed=2, preview=seen.append)
    assert np.array_equal(np.asarray(plain.images[0]), np.asarray(watched.images[0]))
    stages = len(watched.params.get("stages", [None]))  # 96x80 is above the tiny model's native 64 px: two
    assert len(decodes) == stages == 2  # the stages' own decodes only (stage 1's picture is refined in pixels)
    assert len(seen) >= 4 and all(p.shape == (80, 96, 3) and p.dtype == np.uint8 for p in seen)
    assert len({p.tobytes() for p in seen}) > 1


def test_latent_rgb_map_recovers_a_linear_encoding():
    """If the latent is an affine image of the colours, the fitted map inverts it exactly."""
    from sdedit.engine.preview import latent_rgb_map

    rgb = torch.rand(1, 3, 64, 64) * 2 - 1
    small = torch.nn.functional.interpolate(rgb, size=(8, 8), mode="area")
    mix = torch.tensor([[0.5, -0.2, 0.1], [0.3, 0.8, -0.4], [0.0, 0.1, 0.9], [0.2, 0.2, 0.2]])
    latent = torch.einsum("dc,bchw->bdhw", mix, small) + 0.3
    to_rgb = latent_rgb_map(latent, rgb)
    assert torch.allclose(to_rgb(latent), small, atol=1e-4)
