"""Very thin canvases (4x1000, 8x2000, 1x4096, 40x4096) are edited, in the engine, the CLI and a real server.

They used to crash in native_scale.plan (ZeroDivisionError: scaled to the model's max side, the strip had less
picture than edge margin left), exit 1 in the CLI and a 500 in the server. A strip with fewer pixels than the
model's native size squared now runs in one stage, at its own size when it has no more pixels than max_side².
"""
from __future__ import annotations

import base64
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from sdedit.engine import native_scale
from test_cli import run_cli
from test_server_support import ServerProcess, b64, image_bytes, run_job, server_env

THIN = [(4, 1000), (8, 2000), (1, 4096), (40, 4096)]
# the embedded model's facts (weights/landscape/sdedit.json; tiny_models' unshuffle folder declares the same)
LANDSCAPE = dict(native_size=256, resolution=None, multiple=32, max_side=1024, edge_margin=16)


def strip(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.zeros((height, width, 3), np.uint8)
    arr[: height // 2] = (120, 170, 230)
    arr[height // 2:] = (60, 130, 60)
    return Image.fromarray(np.clip(arr + rng.integers(-8, 8, arr.shape), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def conv_dir(tmp_path_factory):
    """A tiny model in the embedded format, with the embedded model's native size and edge margin."""
    from tiny_models import make_unshuffle_folder

    return make_unshuffle_folder(tmp_path_factory.mktemp("thin") / "tiny-conv")


@pytest.mark.parametrize("width, height", THIN + [(1000, 4), (50, 1000)])
def test_plan_for_a_thin_strip_never_enlarges_stage_one(width, height):
    region = (width + 32, height + 32)  # the working region with the 16 px edge margin on each side
    size, staged = native_scale.working_plan(region, t0=0.5, steps=20, **LANDSCAPE)
    assert staged is None or all(lo < full for lo, full in zip(staged.low_padded, staged.full_size))
    assert size[0] * size[1] <= 1024 ** 2 and all(v % 32 == 0 and v > 0 for v in size)


@pytest.mark.parametrize("width, height", THIN)
def test_engine_edits_a_thin_canvas_and_keeps_unselected_pixels(conv_dir, width, height):
    from sdedit.engine import edit
    from sdedit.models import load_model

    model = load_model(str(conv_dir), "cpu")
    image = strip(width, height)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4: height // 2] = 255
    res = edit(model, image, Image.fromarray(mask), t0=0.4, sde="ode", steps=2, seed=3)
    out = np.asarray(res.images[0])
    assert res.images[0].size == (width, height)
    kept = res.mask == 0  # beyond the selection's grown band (engine/seam.py)
    assert kept.any() and np.array_equal(out[kept], np.asarray(image)[kept])


@pytest.mark.parametrize("width, height", [(4, 1000), (40, 4096)])
def test_cli_edits_a_thin_canvas(tmp_path, conv_dir, width, height):
    src, out = tmp_path / "thin.png", tmp_path / "out.png"
    strip(width, height).save(src)
    res = run_cli("edit", str(src), "-o", str(out), "--model", str(conv_dir), "--steps", "2", "--seed", "1",
                  "--no-server", "--quiet")
    assert res.returncode == 0, res.stderr
    assert Image.open(out).size == (width, height)


def test_server_edits_thin_canvases(tmp_path_factory, conv_dir):
    root = tmp_path_factory.mktemp("thin_models")
    shutil.copytree(conv_dir, root / "tiny-conv")
    server = ServerProcess(server_env(root, root / "tiny-conv"), tmp_path_factory.mktemp("logs") / "thin.log")
    try:
        server.wait_ready()
        with server.client() as http:
            for width, height in [(8, 2000), (1, 4096)]:
                body = {"image": b64(image_bytes(strip(width, height))), "steps": 2, "seed": 5, "sde": "ode"}
                status, result = run_job(http, body)
                assert status["state"] == "done", (width, height, status, server.log()[-2000:])
                img = Image.open(io.BytesIO(base64.b64decode(result["images"][0])))
                assert img.size == (width, height)
    finally:
        assert server.stop() == 0, server.log()[-2000:]
