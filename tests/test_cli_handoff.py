"""`sdedit edit` hands its job to a running local server (issue 16, item 6): same files, byte for byte,
as a local run; --no-server, model paths and a silent port keep it local."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_server_support import ServerProcess, free_port, server_env

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_vp_dir):
    from tiny_sd import make_sd_folder

    root = tmp_path_factory.mktemp("handoff_models")
    shutil.copytree(tiny_vp_dir, root / "tiny-vp")
    make_sd_folder(root / "tiny-sd1", "sd1")  # a text model (Stable Diffusion 1.x layout, random weights)
    return root


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    logs = tmp_path_factory.mktemp("handoff_logs")
    proc = ServerProcess(server_env(models_dir, models_dir / "tiny-vp"), logs / "server.log")
    try:
        yield proc.wait_ready()
    finally:
        assert proc.stop() == 0, proc.log()[-2000:]


def sdedit_edit(*args: str, url: str, models_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'server'}{os.pathsep}{ROOT / 'shared'}", SDEDIT_SERVER_URL=url,
               SDEDIT_MODELS_DIR=str(models_dir), OMP_NUM_THREADS="1")
    env.pop("SDEDIT_DEFAULT_MODEL", None)
    return subprocess.run([sys.executable, "-m", "sdedit", "edit", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def jobs_done(server: ServerProcess) -> int:
    return len(re.findall(r"state=done", server.log()))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("handoff_inputs")
    rng = np.random.RandomState(4)
    rgba = rng.randint(0, 256, (40, 52, 4), np.uint8)
    rgba[..., 3] = np.linspace(40, 255, 52, dtype=np.uint8)[None, :]
    Image.fromarray(rgba, "RGBA").save(folder / "guide.png")
    mask = np.zeros((40, 52), np.uint8)
    mask[8:30, 10:44] = 255
    mask[8:30, 10:14] = 128  # a soft edge
    Image.fromarray(mask).save(folder / "mask.png")
    return {"guide": folder / "guide.png", "mask": folder / "mask.png"}


@pytest.mark.slow
def test_handoff_writes_the_same_bytes_as_a_local_run(tmp_path, server, models_dir, inputs):
    common = [str(inputs["guide"]), "--mask", str(inputs["mask"]), "--model", "tiny-vp", "--steps", "5",
              "--samples", "2", "--seed", "21", "--t0", "0.5", "--sde", "vp"]
    before = jobs_done(server)
    handed = sdedit_edit(*common, "-o", str(tmp_path / "srv.png"), url=server.url, models_dir=models_dir)
    assert handed.returncode == 0, handed.stderr
    assert "via the server at " + server.url in handed.stderr
    assert jobs_done(server) == before + 1  # the server really ran it
    local = sdedit_edit(*common, "-o", str(tmp_path / "loc.png"), "--no-server", url=server.url, models_dir=models_dir)
    assert local.returncode == 0, local.stderr
    assert "via the server" not in local.stderr and jobs_done(server) == before + 1
    for k in range(2):
        assert (tmp_path / f"srv-{k}.png").read_bytes() == (tmp_path / f"loc-{k}.png").read_bytes()
    assert (tmp_path / "srv-0.png").read_bytes() != (tmp_path / "srv-1.png").read_bytes()


@pytest.mark.slow
def test_handoff_jpeg_output_and_default_model_id(tmp_path, server, models_dir, inputs):
    """The default model named by id ($SDEDIT_DEFAULT_MODEL=tiny-vp) and its default sampler are handed over;
    JPEG files match too."""
    common = [str(inputs["guide"]), "--steps", "3", "--seed", "5", "--quiet"]  # no --sde: the model's own
    before = jobs_done(server)
    env_default = {"SDEDIT_DEFAULT_MODEL": "tiny-vp"}
    os.environ.update(env_default)
    try:
        handed = sdedit_edit(*common, "-o", str(tmp_path / "srv.jpg"), url=server.url, models_dir=models_dir)
        local = sdedit_edit(*common, "-o", str(tmp_path / "loc.jpg"), url="off", models_dir=models_dir)
    finally:
        os.environ.pop("SDEDIT_DEFAULT_MODEL")
    assert handed.returncode == 0 and local.returncode == 0, handed.stderr + local.stderr
    assert jobs_done(server) == before + 1 and handed.stderr == ""  # --quiet: nothing on stderr
    assert (tmp_path / "srv.jpg").read_bytes() == (tmp_path / "loc.jpg").read_bytes()


@pytest.mark.slow
def test_model_path_and_bad_input_stay_local(tmp_path, server, models_dir, inputs):
    before = jobs_done(server)
    by_path = sdedit_edit(str(inputs["guide"]), "--model", str(models_dir / "tiny-vp"), "--steps", "2", "--seed", "1",
                          "-o", str(tmp_path / "p.png"), url=server.url, models_dir=models_dir)
    assert by_path.returncode == 0 and "via the server" not in by_path.stderr, by_path.stderr
    bad = sdedit_edit(str(inputs["guide"]), "--model", "tiny-vp", "--t0", "1.5", "-o", str(tmp_path / "b.png"),
                      url=server.url, models_dir=models_dir)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["sdedit edit: t0 must be a number in (0, 1], "
                                                                        "got 1.5."]
    wrong_mask = sdedit_edit(str(inputs["guide"]), "--mask", str(inputs["guide"].with_name("nope.png")), "--model",
                             "tiny-vp", "-o", str(tmp_path / "m.png"), url=server.url, models_dir=models_dir)
    assert wrong_mask.returncode == 2 and "could not be opened" in wrong_mask.stderr
    assert jobs_done(server) == before


def test_client_leaves_the_sampler_to_the_server_when_none_is_named():
    """A command without --sde (the model's default sampler) sends no 'sde' field rather than failing."""
    from sdedit_client import validate_params

    assert validate_params(sde=None)["sde"] is None and validate_params(sde="ODE")["sde"] == "ode"


def test_no_server_answering_edits_locally(tmp_path, models_dir, inputs):
    url = f"http://127.0.0.1:{free_port()}"
    res = sdedit_edit(str(inputs["guide"]), "--model", "tiny-vp", "--steps", "2", "--seed", "1",
                      "-o", str(tmp_path / "o.png"), url=url, models_dir=models_dir)
    assert res.returncode == 0 and "wrote" in res.stderr and "via the server" not in res.stderr, res.stderr


@pytest.mark.slow
def test_handoff_to_a_server_with_a_token(tmp_path, models_dir, inputs):
    logs = tmp_path / "logs"
    logs.mkdir()
    proc = ServerProcess(server_env(models_dir, models_dir / "tiny-vp"), logs / "token.log", token="tok-123")
    try:
        proc.wait_ready()
        args = [str(inputs["guide"]), "--model", "tiny-vp", "--steps", "2", "--seed", "3"]
        os.environ["SDEDIT_TOKEN"] = "tok-123"
        try:
            res = sdedit_edit(*args, "-o", str(tmp_path / "t.png"), url=proc.url, models_dir=models_dir)
        finally:
            os.environ.pop("SDEDIT_TOKEN")
        assert res.returncode == 0 and "via the server" in res.stderr, res.stderr
        assert jobs_done(proc) == 1
    finally:
        assert proc.stop() == 0


@pytest.mark.slow
def test_prompted_edit_of_a_latent_model_is_handed_over(tmp_path, server, models_dir, inputs):
    """Text options go with the job (same bytes as local); a prompt the client would reflow onto one line stays
    local; a prompt for a model without text is refused with the local one-line message."""
    common = [str(inputs["guide"]), "--model", "tiny-sd1", "--prompt", "a lake at dawn", "--negative-prompt", "fog",
              "--guidance", "5", "--steps", "2", "--seed", "4"]
    before = jobs_done(server)
    handed = sdedit_edit(*common, "-o", str(tmp_path / "srv.png"), url=server.url, models_dir=models_dir)
    local = sdedit_edit(*common, "-o", str(tmp_path / "loc.png"), "--no-server", url=server.url, models_dir=models_dir)
    assert handed.returncode == 0 and local.returncode == 0, handed.stderr + local.stderr
    assert "via the server" in handed.stderr and jobs_done(server) == before + 1
    assert (tmp_path / "srv.png").read_bytes() == (tmp_path / "loc.png").read_bytes()
    spaced = sdedit_edit(str(inputs["guide"]), "--model", "tiny-sd1", "--prompt", "a lake\n  at dawn", "--steps", "1",
                         "--seed", "4", "-o", str(tmp_path / "s.png"), url=server.url, models_dir=models_dir)
    assert spaced.returncode == 0 and "via the server" not in spaced.stderr, spaced.stderr
    no_text = sdedit_edit(str(inputs["guide"]), "--model", "tiny-vp", "--prompt", "a lake", "-o",
                          str(tmp_path / "n.png"), url=server.url, models_dir=models_dir)
    assert no_text.returncode == 2 and "takes no text" in no_text.stderr and len(no_text.stderr.splitlines()) == 1
    assert jobs_done(server) == before + 1
