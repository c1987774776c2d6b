"""Fixtures of the GIMP end-to-end tests: the GIMP 3 root, a real server, an X display, a GIMP run."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gimproot  # noqa: E402
from gimprun import free_port  # noqa: E402

SERVER_START_S = 120


@pytest.fixture(scope="session")
def gimp_root() -> Path:
    try:
        return gimproot.ensure_root()
    except gimproot.RootUnavailable as why:
        print("GIMP e2e skipped: %s" % why)
        pytest.skip("GIMP 3 root unavailable: %s" % why)


@pytest.fixture(scope="session")
def server(gimp_root, tiny_vp_dir, tmp_path_factory):
    """`sdedit serve` on a free loopback port with the tiny random model as its default."""
    port = free_port()
    log = tmp_path_factory.mktemp("gimp-server") / "server.log"
    # beside the default tiny pixel model, a tiny Stable Diffusion 1.x folder: a model that takes a prompt
    from tiny_sd import make_sd_folder

    models = tmp_path_factory.mktemp("gimp-models")
    make_sd_folder(models / "tiny-sd1", "sd1")
    from tiny_lora import write_diffusers_lora  # a LoRA in the models folder's loras/ for the GIMP LoRA case

    (models / "loras").mkdir()
    write_diffusers_lora(models / ".lora-src", "sd1").rename(models / "loras" / "gimp-ink.safetensors")
    proc, url = start_server(port, log, tiny_vp_dir, models)
    try:
        yield url
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def doomed_server(gimp_root, tiny_vp_dir, tmp_path_factory):
    """A second server with the tiny model, for the case that kills it while the plug-in's job runs:
    (process, URL)."""
    log = tmp_path_factory.mktemp("gimp-doomed-server") / "server.log"
    proc, url = start_server(free_port(), log, tiny_vp_dir, tmp_path_factory.mktemp("gimp-doomed-models"))
    try:
        yield proc, url
    finally:
        stop_server(proc)


def start_server(port: int, log: Path, default_model: Path, models: Path):
    """`sdedit serve` on a loopback port, waited for until /v1/health answers: (process, URL)."""
    env = dict(os.environ, SDEDIT_DEFAULT_MODEL=str(default_model), SDEDIT_MODELS_DIR=str(models),
               PYTHONPATH=os.pathsep.join([str(gimproot.REPO / "server"), str(gimproot.REPO / "shared")]))
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sdedit", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--device", "cpu"], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=2) as answer:
                if answer.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            pytest.fail("the server did not start: %s" % log.read_text()[-2000:])
        time.sleep(0.3)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def xdisplay():
    """A private Xvfb display (host side; GIMP in the root reaches it through the shared abstract socket)."""
    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb is not installed here (apt-get install xvfb); the dialog test needs a display")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        pytest.skip("Xvfb did not start")
    try:
        yield ":" + number
    finally:
        proc.terminate()
        proc.wait(timeout=10)
