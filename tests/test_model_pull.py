"""`sdedit models pull | remove | catalogue` against a fake Hub (HF_ENDPOINT, through huggingface_hub) and a
plain static server on loopback: folder and single-file pulls, a connection dropped half-way and resumed, a
wrong hash, a full disk, an unreachable host, and the pulled model editing."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_hub import FakeHub
from tiny_sd import make_sd_folder, write_single_file

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory) -> Path:
    return make_sd_folder(tmp_path_factory.mktemp("hubsrc") / "tiny-sd1", "sd1")


@pytest.fixture(scope="module")
def sd_single(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("hubsrc") / "tiny.safetensors"
    write_single_file(path, "sd1", config_folder=None)
    return path.read_bytes()


@pytest.fixture
def hub(sd_folder, sd_single):
    h = FakeHub()
    h.add_repo_folder("tiny-org/tiny-sd1", sd_folder)
    h.repos["tiny-org/single"] = {"tiny-model.safetensors": sd_single, "README.md": b"# tiny\n"}
    h.files["tiny-model.safetensors"] = sd_single
    h.start()
    yield h
    h.stop()


@pytest.fixture
def models(tmp_path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


def env_for(hub_url: str, models: Path, tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub_url, SDEDIT_MODELS_DIR=str(models), HF_HOME=str(tmp / "hf-home"),
               PYTHONPATH=os.pathsep.join([str(ROOT / "server"), str(ROOT / "shared")]), SDEDIT_SERVER_URL="off")
    return env


def sdedit(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdedit", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=str(ROOT))


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def no_partial_listed(models: Path, env: dict) -> None:
    listing = sdedit(env, "models")
    assert listing.returncode == 0, listing.stderr
    assert ".downloads" not in listing.stdout.split("Models folder:")[0]


# -- pulls -------------------------------------------------------------------------------------------------
def test_pull_a_pipeline_folder_from_the_hub_is_listed_and_identical(hub, models, tmp_path, sd_folder):
    env = env_for(hub.url, models, tmp_path)
    out = sdedit(env, "models", "pull", "tiny-org/tiny-sd1", "--quiet")
    assert out.returncode == 0, out.stderr
    target = models / "tiny-sd1"
    for src in sd_folder.rglob("*"):
        if src.is_file():
            assert (target / src.relative_to(sd_folder)).read_bytes() == src.read_bytes(), src
    assert not any((models / ".downloads").rglob("*.part"))
    listing = sdedit(env, "models")
    assert "tiny-sd1" in listing.stdout and "latent" in listing.stdout
    # the Hub's metadata call and every file went to HF_ENDPOINT
    assert any(p.startswith("/api/models/tiny-org/tiny-sd1") for _, p, _ in hub.requests)


@pytest.mark.slow
def test_the_pulled_model_edits(hub, models, tmp_path):
    from PIL import Image

    env = env_for(hub.url, models, tmp_path)
    assert sdedit(env, "models", "pull", "tiny-org/tiny-sd1", "--quiet").returncode == 0
    Image.new("RGB", (64, 64), (40, 90, 160)).save(tmp_path / "in.png")
    out = sdedit(env, "edit", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", "tiny-sd1",
                 "--prompt", "a lake", "--steps", "2", "--seed", "1", "--quiet", "--no-server", timeout=300)
    assert out.returncode == 0, out.stderr
    assert Image.open(tmp_path / "out.png").size == (64, 64)


def test_pull_one_file_of_a_repository(hub, models, tmp_path, sd_single):
    env = env_for(hub.url, models, tmp_path)
    out = sdedit(env, "models", "pull", "tiny-org/single/tiny-model.safetensors", "--quiet")
    assert out.returncode == 0, out.stderr
    assert (models / "tiny-model.safetensors").read_bytes() == sd_single
    assert "tiny-model" in sdedit(env, "models").stdout


def test_a_connection_dropped_half_way_is_resumed_in_the_same_run(hub, models, tmp_path, sd_single):
    hub.drops = [len(sd_single) // 2]
    env = env_for(hub.url, models, tmp_path)
    out = sdedit(env, "models", "pull", hub.url + "/files/tiny-model.safetensors", "--quiet")
    assert out.returncode == 0, out.stderr
    assert (models / "tiny-model.safetensors").read_bytes() == sd_single
    first, resumed = hub.ranges("/files/tiny-model")
    assert first is None
    kept = int(resumed.removeprefix("bytes=").removesuffix("-"))  # what arrived before the cut, in whole reads
    assert len(sd_single) // 4 < kept <= len(sd_single) // 2


def test_an_interrupted_download_resumes_on_the_next_run(hub, models, tmp_path, sd_single):
    hub.drops = [len(sd_single) // 3] + [0] * 10  # a third arrives, then the connection breaks every time
    env = env_for(hub.url, models, tmp_path)
    first = sdedit(env, "models", "pull", "tiny-org/single/tiny-model.safetensors", "--quiet")
    assert first.returncode == 2
    assert "run the same command again to resume" in one_line(first.stderr)
    assert not (models / "tiny-model.safetensors").exists()
    part = models / ".downloads" / "tiny-model.safetensors.part"
    kept = part.stat().st_size
    assert 0 < kept <= len(sd_single) // 3  # what arrived before the cut, in whole reads
    no_partial_listed(models, env)
    hub.drops = []
    hub.requests.clear()
    second = sdedit(env, "models", "pull", "tiny-org/single/tiny-model.safetensors", "--quiet")
    assert second.returncode == 0, second.stderr
    assert (models / "tiny-model.safetensors").read_bytes() == sd_single
    assert hub.ranges("/resolve/") == [f"bytes={kept}-"]
    assert not part.exists()


def test_a_wrong_hash_leaves_nothing_in_the_models_folder(hub, models, tmp_path):
    hub.lie_sha256["tiny-model.safetensors"] = "0" * 64
    env = env_for(hub.url, models, tmp_path)
    out = sdedit(env, "models", "pull", "tiny-org/single/tiny-model.safetensors", "--quiet")
    assert out.returncode == 2
    assert "does not match" in one_line(out.stderr)
    assert [p for p in models.rglob("*") if p.is_file()] == []


def test_a_wrong_sha256_option_on_a_url_leaves_nothing(hub, models, tmp_path):
    env = env_for(hub.url, models, tmp_path)
    out = sdedit(env, "models", "pull", hub.url + "/files/tiny-model.safetensors", "--sha256", "ab" * 32, "--quiet")
    assert out.returncode == 2
    assert "does not match" in one_line(out.stderr)
    assert [p for p in models.rglob("*") if p.is_file()] == []


def test_the_digest_a_plain_server_publishes_is_checked(hub, models, tmp_path, sd_single):
    hub.digest_files.add("tiny-model.safetensors")
    env = env_for(hub.url, models, tmp_path)
    out = sdedit(env, "models", "pull", hub.url + "/files/tiny-model.safetensors", "--name", "mine", "--quiet")
    assert out.returncode == 0, out.stderr
    assert hashlib.sha256((models / "mine.safetensors").read_bytes()).digest() == hashlib.sha256(sd_single).digest()


def test_a_full_disk_is_refused_before_downloading(hub, models, monkeypatch):
    import shutil
    from collections import namedtuple

    from sdedit.errors import InputError
    from sdedit.models import pull

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(pull.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    plan = pull.plan_pull(hub.url + "/files/tiny-model.safetensors", dest=models)
    with pytest.raises(InputError, match="Not enough free disk space"):
        pull.run_pull(plan)
    assert hub.ranges("/files/") == []  # a HEAD for the size, no GET
    assert shutil.disk_usage is not pull.shutil.disk_usage or True
    assert [p for p in models.rglob("*") if p.is_file()] == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["hub", "url"])
def test_unreachable_is_one_sentence_and_exit_2_quickly(models, tmp_path, kind):
    dead = f"http://127.0.0.1:{free_port()}"
    env = env_for(dead, models, tmp_path)
    source = "tiny-org/tiny-sd1" if kind == "hub" else dead + "/files/x.safetensors"
    started = time.monotonic()
    out = sdedit(env, "models", "pull", source)
    assert out.returncode == 2
    assert "Cannot reach" in one_line(out.stderr)
    assert time.monotonic() - started < 15


def test_hf_hub_offline_is_one_sentence(models, tmp_path):
    env = env_for("http://127.0.0.1:9", models, tmp_path)
    env["HF_HUB_OFFLINE"] = "1"
    out = sdedit(env, "models", "pull", "tiny-org/tiny-sd1")
    assert out.returncode == 2
    assert "HF_HUB_OFFLINE" in one_line(out.stderr)


def test_plain_http_is_refused_except_to_loopback(models, tmp_path):
    env = env_for("http://127.0.0.1:9", models, tmp_path)
    out = sdedit(env, "models", "pull", "http://example.com/model.safetensors")
    assert out.returncode == 2
    assert "https://" in one_line(out.stderr)


def test_unknown_repository_and_file_are_one_sentence(hub, models, tmp_path):
    env = env_for(hub.url, models, tmp_path)
    out = sdedit(env, "models", "pull", "tiny-org/nothing-here")
    assert out.returncode == 2 and "no repository" in one_line(out.stderr)
    out = sdedit(env, "models", "pull", "tiny-org/single/other.safetensors")
    assert out.returncode == 2 and "tiny-model.safetensors" in one_line(out.stderr)


# -- catalogue, LoRA placement, remove ---------------------------------------------------------------------
def tiny_lora_bytes() -> bytes:
    import torch
    from safetensors.torch import save

    return save({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32),
                 "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(32, 4)})


def test_catalogue_lists_the_models_with_source_size_and_licence(tmp_path, models):
    out = sdedit(env_for("http://127.0.0.1:9", models, tmp_path), "models", "catalogue")
    assert out.returncode == 0, out.stderr
    for name in ("sd15", "sd21", "sdxl-base", "sd-turbo", "sdxl-turbo", "lcm-lora-sd15", "lcm-lora-sdxl"):
        assert name in out.stdout
    assert "stabilityai/stable-diffusion-xl-base-1.0/sd_xl_base_1.0.safetensors" in out.stdout
    assert "openrail++" in out.stdout and "GB" in out.stdout


def test_a_catalogue_lora_goes_to_the_loras_folder_and_is_removed(hub, models, tmp_path):
    hub.repos["latent-consistency/lcm-lora-sdv1-5"] = {"pytorch_lora_weights.safetensors": tiny_lora_bytes()}
    env = env_for(hub.url, models, tmp_path)
    out = sdedit(env, "models", "pull", "lcm-lora-sd15", "--quiet")
    assert out.returncode == 0, out.stderr
    assert (models / "loras" / "lcm-lora-sd15.safetensors").is_file()
    assert "lcm-lora-sd15" in sdedit(env, "models").stdout.split("LoRAs")[1]
    out = sdedit(env, "models", "remove", "lcm-lora-sd15")
    assert out.returncode == 0, out.stderr
    assert not (models / "loras" / "lcm-lora-sd15.safetensors").exists()


def test_a_lora_file_from_a_repository_is_put_in_loras_under_the_repo_name(hub, models, tmp_path):
    hub.repos["someone/paper-cut"] = {"pytorch_lora_weights.safetensors": tiny_lora_bytes()}
    env = env_for(hub.url, models, tmp_path)
    out = sdedit(env, "models", "pull", "someone/paper-cut", "--quiet")
    assert out.returncode == 0, out.stderr
    assert (models / "loras" / "paper-cut.safetensors").is_file()
    hub.requests.clear()
    again = sdedit(env, "models", "pull", "someone/paper-cut")
    assert again.returncode == 0 and "already installed" in again.stderr, again.stderr
    assert hub.ranges("/resolve/") == []  # nothing fetched twice


def test_remove_deletes_a_model_folder_and_refuses_what_is_not_there(hub, models, tmp_path):
    env = env_for(hub.url, models, tmp_path)
    assert sdedit(env, "models", "pull", "tiny-org/tiny-sd1", "--quiet").returncode == 0
    assert sdedit(env, "models", "remove", "tiny-sd1").returncode == 0
    assert not (models / "tiny-sd1").exists()
    out = sdedit(env, "models", "remove", "tiny-sd1")
    assert out.returncode == 2 and "no model" in one_line(out.stderr)
    out = sdedit(env, "models", "remove", "../etc")
    assert out.returncode == 2


def test_progress_json_reports_bytes(hub, models, tmp_path, sd_single):
    import json

    env = env_for(hub.url, models, tmp_path)
    out = sdedit(env, "models", "pull", "tiny-org/single/tiny-model.safetensors", "--progress-json", "--quiet")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[-1]["state"] == "done" and events[-1]["name"] == "tiny-model"
    running = [e for e in events if e["state"] == "running"]
    assert running[-1]["done"] == running[-1]["total"] == len(sd_single)


def test_a_url_download_that_is_no_model_is_stored_and_listed_as_not_loadable(hub, models, tmp_path):
    import torch
    from safetensors.torch import save

    hub.files["vae-thing.safetensors"] = save({"decoder.conv_in.weight": torch.zeros(4, 4)})
    env = env_for(hub.url, models, tmp_path)
    out = sdedit(env, "models", "pull", hub.url + "/files/vae-thing.safetensors", "--quiet")
    assert out.returncode == 0, out.stderr
    assert (models / "vae-thing.safetensors").is_file()  # stored as it is
    listing = sdedit(env, "models").stdout
    assert "not loadable" in listing and "vae-thing" in listing.split("not loadable")[1]
