"""Issue 22, items 4-7: memory budgeted like work, cancel inside a long network call, a local Ray on loopback with
private files, the other-family port check for every host."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap

import httpx
import numpy as np
import pytest
from PIL import Image

from test_server_support import ROOT, ServerProcess, b64, image_bytes, server_env

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# -- item 4: memory ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_huge_flat_png_is_refused_for_memory(tmp_path, tiny_vp_dir):
    models = tmp_path / "models"
    shutil.copytree(tiny_vp_dir, models / "tiny-vp")
    env = server_env(models, models / "tiny-vp", SDEDIT_MAX_JOB_MEMORY_MB="2000", SDEDIT_MAX_WORK=str(10**15))
    server = ServerProcess(env, tmp_path / "s.log").wait_ready()
    try:
        flat = image_bytes(Image.new("RGB", (4096, 4096), (90, 120, 200)))
        assert len(flat) < 200_000  # a cheap request ...
        with server.client() as client:
            # the embedded model runs at any size: its detail pass would run the network at 4096x4096
            answer = client.post("/v1/jobs", json={"image": b64(flat), "steps": 2, "model": "landscape"})
            assert answer.status_code == 422, answer.text  # ... for an expensive job
            detail = answer.json()["detail"]
            assert "memory" in detail and "SDEDIT_MAX_JOB_MEMORY_MB" in detail and "on cpu" in detail, detail
            small = client.post("/v1/jobs", json={"image": b64(image_bytes(Image.new("RGB", (64, 64)))), "steps": 2,
                                                  "model": "landscape"})
            assert small.status_code == 202, small.text
    finally:
        server.stop()


def test_the_default_memory_limit_is_a_share_of_the_device(monkeypatch):
    from sdedit.api import memory

    monkeypatch.delenv(memory.LIMIT_ENV, raising=False)
    allowed, why = memory.device_limit("cpu")
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert allowed == int(ram * memory.CPU_SHARE) and "memory" in why
    need = memory.estimate("pixel", (4096, 4096), (4096, 4096), 1)
    assert 4 * 2**30 < need.bytes < 8 * 2**30  # the model card measured 6.2 GB peak at 4096x4096


# -- item 5: cancel inside a step ------------------------------------------------------------------------------
def test_cancel_lands_inside_a_network_call(tiny_vp):
    """The third cancel check must come from inside the first step's network call (old code: after step 2)."""
    from sdedit.engine import edit
    from sdedit.errors import Cancelled

    guide = Image.fromarray(np.random.RandomState(0).randint(0, 256, (64, 64, 3), np.uint8))
    checks, steps_done = [], []

    def cancel() -> bool:
        checks.append(1)
        return len(checks) >= 3

    with pytest.raises(Cancelled):
        edit(tiny_vp, guide, t0=0.5, sde="vp", steps=5, seed=1, cancel=cancel,
             progress=lambda done, total: steps_done.append(done))
    assert steps_done == [], steps_done


def test_outputs_are_unchanged_by_the_cancel_checks(tiny_vp):
    from sdedit.engine import edit

    guide = Image.fromarray(np.random.RandomState(1).randint(0, 256, (48, 40, 3), np.uint8))
    plain = edit(tiny_vp, guide, t0=0.4, sde="vp", steps=4, seed=3, samples=2)
    watched = edit(tiny_vp, guide, t0=0.4, sde="vp", steps=4, seed=3, samples=2, cancel=lambda: False)
    for a, b in zip(plain.images, watched.images):
        assert a.tobytes() == b.tobytes()
    assert all(not m._forward_pre_hooks for m in tiny_vp.net.modules())  # the hooks are gone afterwards


# -- item 6: a local Ray --------------------------------------------------------------------------------------------
RAY_SCRIPT = textwrap.dedent("""
    import os, psutil
    from sdedit.cluster.local_ray import keep_on_loopback, private_files
    keep_on_loopback()
    import ray
    with private_files():
        ray.init(address="local", include_dashboard=False, num_cpus=1, configure_logging=False, log_to_driver=False)
    try:
        kids = psutil.Process().children(recursive=True)
        pids = {p.pid for p in kids} | {os.getpid()}
        bound = sorted({c.laddr.ip for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.pid in pids})
        print("BOUND", bound)
    finally:
        ray.shutdown()
""")


@pytest.mark.slow
def test_a_local_ray_listens_on_loopback_only_and_keeps_its_token_private(tmp_path):
    pytest.importorskip("ray")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray").chmod(0o755)
    env = dict(os.environ, HOME=str(home), PYTHONPATH=f"{ROOT / 'server'}{os.pathsep}{ROOT / 'shared'}",
               OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_AUTH_MODE", None)
    run = subprocess.run([sys.executable, "-c", RAY_SCRIPT], capture_output=True, text=True, env=env, timeout=400,
                         cwd=str(tmp_path))
    line = next((l for l in run.stdout.splitlines() if l.startswith("BOUND")), None)
    assert line is not None, run.stdout[-2000:] + run.stderr[-3000:]
    bound = eval(line[len("BOUND "):])  # noqa: S307 - our own print of a list of strings
    assert bound and all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in bound), bound
    token = home / ".ray" / "auth_token"
    if token.exists():
        assert token.stat().st_mode & 0o777 == 0o600
    assert (home / ".ray").stat().st_mode & 0o777 == 0o700


# -- item 7: every family for every host ----------------------------------------------------------------------------
def _listening(family: int, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, 0))
    sock.listen()
    return sock


def test_a_wildcard_host_is_checked_against_the_other_family():
    from sdedit.api.server import _check_port_free
    from sdedit.errors import InputError

    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with _listening(socket.AF_INET, "127.0.0.1") as v4:
        port = v4.getsockname()[1]
        with pytest.raises(InputError, match="already in use"):
            _check_port_free("::", port)  # the issue: `--host ::` started beside a server on 127.0.0.1
    try:
        v6 = _listening(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no ::1 here")
    with v6:
        with pytest.raises(InputError, match="already in use"):
            _check_port_free("0.0.0.0", v6.getsockname()[1])
