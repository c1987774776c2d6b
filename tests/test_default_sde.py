"""A model's declared default sampler (sdedit.json "default_sde") is what a request without `sde` gets."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_cli import run_cli
from test_server_support import ServerProcess, b64, image_bytes, random_image, run_job, server_env

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def ode_model(tmp_path_factory) -> Path:
    """A tiny embedded-format model that declares `ode` as its default sampler."""
    from tiny_models import make_unshuffle_folder

    folder = make_unshuffle_folder(tmp_path_factory.mktemp("sde_models") / "tiny-ode")
    config = json.loads((folder / "sdedit.json").read_text())
    (folder / "sdedit.json").write_text(json.dumps({**config, "default_sde": "ode"}))
    return folder


def test_engine_uses_the_declared_default(ode_model):
    from sdedit.engine import edit
    from sdedit.models import load_model

    model = load_model(str(ode_model), "cpu")
    img = random_image(40, 32, seed=1)
    plain = edit(model, img, t0=0.5, steps=3, seed=4)
    assert model.default_sde == "ode" and plain.params["sde"] == "ode"
    assert plain.images[0].tobytes() == edit(model, img, t0=0.5, sde="ode", steps=3, seed=4).images[0].tobytes()
    assert plain.images[0].tobytes() != edit(model, img, t0=0.5, sde="vp", steps=3, seed=4).images[0].tobytes()


def test_embedded_model_declares_ode_and_its_native_size():
    from sdedit.models import list_models

    info = next(i for i in list_models() if i.id == "landscape")
    assert info.default_sde == "ode" and info.native_size == 256 and info.kind == "pixel" and info.text is False


def test_cli_without_sde_uses_the_models_default(tmp_path, ode_model):
    guide = tmp_path / "g.png"
    random_image(40, 32, seed=2).save(guide)
    runs, messages = {}, {}
    for name, extra in (("none", []), ("ode", ["--sde", "ode"]), ("vp", ["--sde", "vp"])):
        res = run_cli("edit", str(guide), "-o", str(tmp_path / f"{name}.png"), "--model", str(ode_model),
                      "--steps", "2", "--seed", "5", *extra)
        assert res.returncode == 0, res.stderr
        runs[name], messages[name] = (tmp_path / f"{name}.png").read_bytes(), res.stderr
    assert runs["none"] == runs["ode"] != runs["vp"]
    assert " ode steps" in messages["none"]  # the closing line names the sampler that ran
    listing = run_cli("models", env_extra={"SDEDIT_MODELS_DIR": str(ode_model.parent)})
    row = next(line for line in listing.stdout.splitlines() if line.startswith("tiny-ode"))
    assert " ode " in f" {row} "


def test_api_without_sde_uses_the_models_default(tmp_path, ode_model):
    proc = ServerProcess(server_env(ode_model.parent, ode_model), tmp_path / "server.log").wait_ready()
    try:
        with proc.client() as http:
            entry = {m["id"]: m for m in http.get("/v1/models").json()}["tiny-ode"]
            assert entry["default_sde"] == "ode" and entry["kind"] == "pixel" and entry["text"] is False
            image = b64(image_bytes(random_image(40, 32, seed=3)))
            images = {}
            for name, extra in (("none", {}), ("ode", {"sde": "ode"}), ("vp", {"sde": "vp"})):
                status, result = run_job(http, {"image": image, "t0": 0.5, "steps": 3, "seed": 6, **extra})
                assert status["state"] == "done", status
                images[name] = result["images"][0]
    finally:
        assert proc.stop() == 0, proc.log()[-2000:]
    assert images["none"] == images["ode"] != images["vp"]
