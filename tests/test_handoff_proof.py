"""`sdedit edit` hands its job only to a server that proves it is this user's sdedit, and writes only results
that match the input (issue 22, item 1): a real impostor on loopback (tests/fake_sdedit_server.py) and a real
`sdedit serve`."""
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

from fake_sdedit_server import FakeServer, red_png, relay_to
from test_server_support import ServerProcess, server_env

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_vp_dir):
    root = tmp_path_factory.mktemp("proof_models")
    shutil.copytree(tiny_vp_dir, root / "tiny-vp")
    return root


@pytest.fixture()
def key_file(tmp_path, monkeypatch) -> Path:
    """A private per-test key ($SDEDIT_HANDOFF_KEY), as a server would have written it."""
    path = tmp_path / "state" / "handoff.key"
    monkeypatch.setenv("SDEDIT_HANDOFF_KEY", str(path))
    try:
        from sdedit_client.handoff_key import load_key
    except ImportError:  # the code before the proof: the test then shows what the impostor receives
        return path
    load_key(str(path), create=True)
    return path


@pytest.fixture()
def guide(tmp_path) -> Path:
    rgb = np.random.RandomState(3).randint(0, 256, (64, 64, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    return tmp_path / "in.png"


def sdedit_edit(*args: str, url: str, models_dir: Path, **env_extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'server'}{os.pathsep}{ROOT / 'shared'}", SDEDIT_SERVER_URL=url,
               SDEDIT_MODELS_DIR=str(models_dir), OMP_NUM_THREADS="1", SDEDIT_TOKEN="secret-token-42", **env_extra)
    env.pop("SDEDIT_DEFAULT_MODEL", None)
    return subprocess.run([sys.executable, "-m", "sdedit", "edit", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def edit_args(guide: Path, out: Path, samples: int = 2) -> list:
    return [str(guide), "--model", "tiny-vp", "--steps", "2", "--seed", "7", "--samples", str(samples),
            "-o", str(out)]


def assert_local_outputs(out: Path, samples: int, size=(64, 64)) -> None:
    names = [out] if samples == 1 else [out.with_name(f"{out.stem}-{k}{out.suffix}") for k in range(samples)]
    for name in names:
        with Image.open(name) as img:
            assert img.size == size and img.mode == "RGB"


def test_an_impostor_gets_neither_the_picture_nor_the_token(tmp_path, models_dir, guide, key_file):
    """The fake of the issue: answers health like ours, would return a 300x20 red PNG for two samples."""
    with FakeServer() as fake:
        res = sdedit_edit(*edit_args(guide, tmp_path / "out.png"), url=fake.url, models_dir=models_dir)
    assert res.returncode == 0, res.stderr
    assert not fake.got_token() and not fake.got_picture(), fake.requests
    assert [r["path"].split("?")[0] for r in fake.requests] == ["/v1/handoff"]
    lines = [line for line in res.stderr.splitlines() if "did not prove" in line]
    assert len(lines) == 1 and "editing here instead" in lines[0], res.stderr
    assert "via the server" not in res.stderr
    assert_local_outputs(tmp_path / "out.png", 2)


@pytest.mark.slow
def test_a_made_up_or_relayed_proof_is_refused(tmp_path, models_dir, guide, key_file):
    """A fake that invents a proof, and one that relays the nonce to the real server (whose proof names the real
    server's port), both fail; nothing but the nonce leaves the client."""
    env = server_env(models_dir, models_dir / "tiny-vp", SDEDIT_HANDOFF_KEY=str(key_file))
    real = ServerProcess(env, tmp_path / "real.log")
    try:
        real.wait_ready()
        invented = lambda nonce: {"proof": "00" * 32, "host": "127.0.0.1", "port": 1}  # noqa: E731
        for handoff in (invented, relay_to(real.url)):
            with FakeServer(handoff=handoff) as fake:
                res = sdedit_edit(*edit_args(guide, tmp_path / "out.png", 1), url=fake.url, models_dir=models_dir)
            assert res.returncode == 0, res.stderr
            assert "did not prove" in res.stderr and "via the server" not in res.stderr, res.stderr
            assert not fake.got_token() and not fake.got_picture(), fake.requests
            assert_local_outputs(tmp_path / "out.png", 1)
        assert "state=done" not in real.log()  # the real server ran nothing either
    finally:
        assert real.stop() == 0


@pytest.mark.slow
def test_wrong_results_are_never_written(tmp_path, models_dir, guide, key_file):
    """Even a server that proves itself (it has the key: a buggy sdedit) gets its results checked: a 300x20
    picture, or one image for two samples, is not written; the edit runs here."""
    from sdedit_client.handoff_key import load_key, proof

    key = load_key(str(key_file))
    cases = [dict(images=[red_png()], seeds=[7]),  # one image for two samples (the out-1.png)
             dict(images=[red_png(), red_png()], seeds=[7, 8]),  # 300x20 for a 64x64 input
             dict(images=[red_png(64, 64), red_png(64, 64)], seeds=[1, 2])]  # seeds that are not 7, 8
    for case in cases:
        with FakeServer(**case) as fake:
            fake.handoff = lambda nonce, port=fake.port: {"proof": proof(key, nonce, "127.0.0.1", port),
                                                          "host": "127.0.0.1", "port": port}
            res = sdedit_edit(*edit_args(guide, tmp_path / "out.png"), url=fake.url, models_dir=models_dir)
        assert res.returncode == 0, res.stderr
        assert fake.got_picture()  # it proved itself, so it got the job ...
        assert "sent " in res.stderr and "editing here instead" in res.stderr, res.stderr  # ... but not the say
        assert_local_outputs(tmp_path / "out.png", 2)


@pytest.mark.slow
def test_a_key_file_others_can_read_is_not_trusted(tmp_path, models_dir, guide, key_file):
    key_file.chmod(0o644)
    with FakeServer() as fake:
        from sdedit_client.handoff_key import load_key, proof

        key_file.chmod(0o600)
        key = load_key(str(key_file))
        key_file.chmod(0o644)
        fake.handoff = lambda nonce: {"proof": proof(key, nonce, "127.0.0.1", fake.port), "host": "127.0.0.1",
                                      "port": fake.port}
        res = sdedit_edit(*edit_args(guide, tmp_path / "out.png", 1), url=fake.url, models_dir=models_dir)
    assert res.returncode == 0 and "can be read by other users" in res.stderr, res.stderr
    assert not fake.got_token() and not fake.got_picture()


@pytest.mark.slow
def test_a_real_server_proves_itself_over_localhost(tmp_path, models_dir, guide, key_file):
    """The genuine server passes, also when the client's URL says `localhost`; the token goes with the job."""
    env = server_env(models_dir, models_dir / "tiny-vp", SDEDIT_HANDOFF_KEY=str(key_file), SDEDIT_TOKEN="secret-token-42")
    real = ServerProcess(env, tmp_path / "real.log", token="secret-token-42")
    try:
        real.wait_ready()
        url = f"http://localhost:{real.port}"
        res = sdedit_edit(*edit_args(guide, tmp_path / "out.png"), url=url, models_dir=models_dir)
        assert res.returncode == 0 and "via the server at http://127.0.0.1:" in res.stderr, res.stderr
        assert real.log().count("state=done") == 1
        assert_local_outputs(tmp_path / "out.png", 2)
    finally:
        assert real.stop() == 0


def test_the_server_creates_a_private_key(tmp_path, monkeypatch):
    from sdedit_client.handoff_key import KeyProblem, load_key, new_nonce, proof, proof_matches

    path = tmp_path / "fresh" / "handoff.key"
    key = load_key(str(path), create=True)
    assert (path.stat().st_mode & 0o777) == 0o600 and (path.parent.stat().st_mode & 0o777) == 0o700
    assert load_key(str(path), create=True) == key  # created once, then read
    nonce = new_nonce()
    assert proof_matches(key, nonce, "127.0.0.1", 8765, proof(key, nonce, "127.0.0.1", 8765))
    assert not proof_matches(key, nonce, "127.0.0.1", 8766, proof(key, nonce, "127.0.0.1", 8765))
    with pytest.raises(KeyProblem):
        load_key(str(tmp_path / "none.key"))


def test_the_plugins_client_checks_results(guide):
    """The shared client (Krita, GIMP) refuses a result with the wrong count or size, in one sentence."""
    from sdedit_client import Client, SDEditError

    png = guide.read_bytes()
    for images, seeds, what in (([red_png()], [0], "300x20"), ([png], [0], "1 image(s)")):
        with FakeServer(images=images, seeds=seeds) as fake:
            with pytest.raises(SDEditError, match=re.escape(what)) as caught:
                Client(fake.url).run(png, samples=1 if what == "300x20" else 2, poll_interval=0.01)
        assert "\n" not in str(caught.value)
    with FakeServer(images=[png], seeds=[0]) as fake:
        images, _ = Client(fake.url).run(png, poll_interval=0.01)
    assert images == [png]
