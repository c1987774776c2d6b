"""Shared fixtures: tiny models in real checkpoint layouts, written once per test session.

Nothing here imports torch: the client and plugin tests (stdlib, Pillow) run in an environment without it
(`python -m pytest tests/test_client.py ...` in a venv with only pytest and Pillow); tests that need a model
are skipped there, with the reason.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# One thread per process: tests run a server and a client (and CI runs beside other work) on 2 cores, and
# OpenMP threads that spin-wait on an oversubscribed CPU make every network call several times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# `sdedit edit` in tests edits in its own process unless a test points it at a server: a server someone runs on
# the default port of this machine must not decide what the CLI tests measure.
os.environ.setdefault("SDEDIT_SERVER_URL", "off")

ROOT = Path(__file__).resolve().parent.parent
for sub in ("server", "shared", "tests"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))



def _torch():
    """torch, one thread per process (OMP_NUM_THREADS above); the test is skipped where it is not installed."""
    torch = pytest.importorskip("torch", reason="needs torch (a server-side test)")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    return torch


@pytest.fixture(scope="session")
def tiny_vp_dir(tmp_path_factory) -> Path:
    """A tiny random DDPM model folder (unet/ + scheduler/), 32x32."""
    _torch()
    from tiny_models import make_vp_folder

    return make_vp_folder(tmp_path_factory.mktemp("models") / "tiny-vp")


@pytest.fixture(scope="session")
def tiny_ve_dir(tmp_path_factory) -> Path:
    """A tiny random ScoreSdeVe model folder, 32x32, sigma_max 348."""
    _torch()
    from tiny_models import make_ve_folder

    return make_ve_folder(tmp_path_factory.mktemp("models") / "tiny-ve")


@pytest.fixture(scope="session")
def tiny_vp(tiny_vp_dir):
    from sdedit.models import load_model

    return load_model(str(tiny_vp_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_ve(tiny_ve_dir):
    from sdedit.models import load_model

    return load_model(str(tiny_ve_dir), device="cpu")
