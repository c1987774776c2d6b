"""Slow uploads against a real server on loopback sockets (issue 22, items 2, 3 and 8): a cancel never waits
behind them, a body must keep a minimum rate, health answers while the connection cap is hit, the token is
checked before a body is read, and the API docs need the token too. Every loop is bounded."""
from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import httpx
import pytest

from test_server_support import ServerProcess, b64, image_bytes, random_image, server_env

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_vp_dir):
    root = tmp_path_factory.mktemp("slow_models")
    shutil.copytree(tiny_vp_dir, root / "tiny-vp")
    return root


def open_upload(server: ServerProcess, declared: int, token: str = "", first: bytes = b"{") -> socket.socket:
    """A POST /v1/jobs that declares `declared` body bytes and sends only `first` of them."""
    sock = socket.create_connection((server.host, server.port), timeout=10)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall((f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
                  f"{auth}Content-Length: {declared}\r\n\r\n").encode() + first)
    return sock


def trickle(socks: list, seconds: float, every: float = 0.5) -> None:
    """One byte per connection every `every` s, for `seconds` s (stops early once all are closed)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and socks:
        for sock in list(socks):
            try:
                sock.sendall(b" ")
            except OSError:
                socks.remove(sock)
        time.sleep(every)


@pytest.mark.slow
def test_a_cancel_does_not_wait_behind_slow_uploads(tmp_path, models_dir):
    """Two 50 MiB uploads trickle and hold both large-body slots; DELETE without a body still answers at once."""
    server = ServerProcess(server_env(models_dir, models_dir / "tiny-vp"), tmp_path / "s.log").wait_ready()
    uploads = []
    try:
        with server.client(timeout=30) as client:
            body = {"image": b64(image_bytes(random_image(96, 96, 1))), "steps": 1000, "t0": 1.0, "samples": 4,
                    "sde": "vp"}
            uploads = [open_upload(server, 50 * 2**20) for _ in range(2)]
            trickle(list(uploads), 1.0)
            created = client.post("/v1/jobs", json=body)
            assert created.status_code == 202, created.text
            job = created.json()["id"]
            started = time.monotonic()
            # what sdedit_client's Client.cancel sends: DELETE, no Content-Length
            answer = httpx.request("DELETE", f"{server.url}/v1/jobs/{job}", timeout=8, trust_env=False)
            took = time.monotonic() - started
            assert answer.status_code == 200 and answer.json()["state"] in ("cancelled", "done"), answer.text
            assert took < 7.0, took  # the DELETE waits for the job to stop (<= 5 s), never for a body slot
    finally:
        for sock in uploads:
            sock.close()
        server.stop()


@pytest.mark.slow
def test_trickled_bodies_are_closed_and_health_answers_at_the_cap(tmp_path, models_dir):
    """A byte every 0.5 s never trips the 2 s gap timer; the minimum rate closes such bodies, and while they
    hold every allowed connection, /v1/health still answers."""
    env = server_env(models_dir, models_dir / "tiny-vp", SDEDIT_BODY_TIMEOUT_S="2", SDEDIT_MIN_BODY_RATE="100",
                     SDEDIT_MAX_CONNECTIONS="6")
    server = ServerProcess(env, tmp_path / "s.log").wait_ready()
    uploads = [open_upload(server, 4000) for _ in range(6)]
    try:
        trickle(list(uploads), 0.6)
        health = httpx.get(server.url + "/v1/health", timeout=5, trust_env=False)  # every allowed one is busy
        assert health.status_code == 200, health.text
        other = httpx.get(server.url + "/v1/models", timeout=5, trust_env=False)
        assert other.status_code == 503  # beyond the cap only health is answered (unless a slot frees up)
        live = list(uploads)
        trickle(live, 12.0)  # a bounded wait: the server must close them all well before this ends
        assert not live, "the server kept trickled bodies open"
        assert "slower than 100 bytes/s" in server.log()
        assert httpx.get(server.url + "/v1/models", timeout=5, trust_env=False).status_code == 200
    finally:
        for sock in uploads:
            sock.close()
        server.stop()


@pytest.mark.slow
def test_the_token_is_checked_before_the_body_is_read(tmp_path, models_dir):
    env = server_env(models_dir, models_dir / "tiny-vp")
    server = ServerProcess(env, tmp_path / "s.log", token="tok-77").wait_ready()
    try:
        sock = open_upload(server, 10 * 2**20)  # no token, headers only: the 401 must not wait for 10 MiB
        sock.settimeout(5)
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 401"), answer
        sock.close()
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert httpx.get(server.url + path, timeout=5, trust_env=False).status_code == 401, path
            with server.client() as client:
                assert client.get(path).status_code == 200, path
        assert httpx.get(server.url + "/v1/health", timeout=5, trust_env=False).status_code == 200
    finally:
        server.stop()


def test_a_world_readable_token_file_is_warned_about(tmp_path, capsys):
    from sdedit.api.auth import read_token_file

    path = tmp_path / "token"
    path.write_text("tok\n")
    path.chmod(0o644)
    assert read_token_file(str(path)) == "tok"
    assert "can be read by other users" in capsys.readouterr().err
    path.chmod(0o600)
    assert read_token_file(str(path)) == "tok" and capsys.readouterr().err == ""


def test_state_files_are_private(tmp_path, monkeypatch):
    """The start lock, state file, server log and server record: 0600 in a 0700 folder."""
    from sdedit_client import autostart
    from sdedit_client.server_record import write_record

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    record = write_record("/usr/bin/python3", path=str(tmp_path / "config" / "sdedit" / "server.json"))
    lock = autostart._StartLock(str(tmp_path / "cache" / "sdedit" / "server-1.lock"))
    assert lock.try_acquire()
    lock.release()
    autostart._write_json(autostart.server_state_path(1), {"pid": 1})
    with autostart.private_file(autostart.server_log_path(1), "ab") as log:
        log.write(b"x")
    for path in (record, lock.path, autostart.server_state_path(1), autostart.server_log_path(1)):
        assert Path(path).stat().st_mode & 0o777 == 0o600, path
        assert Path(path).parent.stat().st_mode & 0o777 == 0o700, path
