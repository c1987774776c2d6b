"""Issue 12, security and load: a real `sdedit serve` on loopback attacked as a web page or a careless client would.

DNS rebinding (Host/Origin), UTF-8 tokens and --token-file, the port check on both address families,
dependency floors, slow clients, memory per request, the job budget and the error texts.
"""
from __future__ import annotations

import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from test_server_support import ROOT, ServerProcess, png_header_only, wait_final, b64, image_bytes, random_image, server_env

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

UTF8_TOKEN = "pässwörd-ключ-🎨"
GOOD = b64(image_bytes(random_image(20, 20, seed=0)))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_vp_dir):
    root = tmp_path_factory.mktemp("hardening_models")
    shutil.copytree(tiny_vp_dir, root / "tiny-vp")
    (root / "bad.ckpt").write_bytes(pickle.dumps({"state_dict": os.system}))  # code, not weights
    (root / "bad.json").write_text('{"resolution": 32}')
    return root


@pytest.fixture(scope="module")
def guarded(models_dir, tmp_path_factory):
    """`sdedit serve --token-file F --allow-host proxy.example`, the token UTF-8; jobs up to 300000 pixel-steps."""
    tmp = tmp_path_factory.mktemp("guarded")
    token_file = tmp / "token"
    token_file.write_text(UTF8_TOKEN + "\n", encoding="utf-8")
    env = server_env(models_dir, models_dir / "tiny-vp", SDEDIT_MAX_WORK="300000")
    proc = ServerProcess(env, tmp / "server.log", token=UTF8_TOKEN,
                         via_cli=True, cli_args=("--token-file", str(token_file), "--allow-host", "proxy.example"))
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def _auth(token: str = UTF8_TOKEN) -> dict:
    return {"Authorization": b"Bearer " + token.encode("utf-8")}


# -- 7: DNS rebinding ---------------------------------------------------------------------------------------------
PRIVATE_CALLS = [("GET", "/v1/models", None), ("POST", "/v1/jobs", {"image": GOOD, "steps": 1}),
                 ("GET", "/v1/jobs/abc", None), ("GET", "/v1/jobs/abc/result", None), ("DELETE", "/v1/jobs/abc", None),
                 ("GET", "/docs", None), ("GET", "/openapi.json", None)]


def test_a_rebound_host_name_is_refused_on_every_endpoint_but_health(guarded):
    with httpx.Client(base_url=guarded.url, trust_env=False, timeout=30) as client:
        for host in (f"evil.example:{guarded.port}", "evil.example", f"127.0.0.1.evil.example:{guarded.port}"):
            assert client.get("/v1/health", headers={"Host": host}).status_code == 200
            for method, path, body in PRIVATE_CALLS:
                answer = client.request(method, path, json=body, headers={"Host": host, **_auth()})
                assert answer.status_code == 403, (host, path, answer.text)
                detail = answer.json()["detail"]
                assert "evil.example" in detail and "--allow-host" in detail and "\n" not in detail, detail
        for host in (f"127.0.0.1:{guarded.port}", f"localhost:{guarded.port}", "LOCALHOST", f"[::1]:{guarded.port}",
                     "127.0.0.2", "app.localhost", f"proxy.example:{guarded.port}", "proxy.example"):
            answer = client.get("/v1/models", headers={"Host": host, **_auth()})
            assert answer.status_code == 200, (host, answer.text)


def test_a_cross_site_origin_is_refused(guarded):
    with httpx.Client(base_url=guarded.url, trust_env=False, timeout=30) as client:
        for origin in ("http://evil.example", "https://evil.example:8765", "null"):
            answer = client.post("/v1/jobs", json={"image": GOOD, "steps": 1}, headers={"Origin": origin, **_auth()})
            assert answer.status_code == 403 and "Origin" in answer.json()["detail"], (origin, answer.text)
        for origin in (f"http://127.0.0.1:{guarded.port}", "http://localhost:3000", "https://proxy.example"):
            assert client.get("/v1/models", headers={"Origin": origin, **_auth()}).status_code == 200, origin


# -- 12: tokens ---------------------------------------------------------------------------------------------------
def test_a_utf8_token_from_a_token_file_is_accepted_and_compared_as_utf8(guarded):
    with httpx.Client(base_url=guarded.url, trust_env=False, timeout=30) as client:
        assert client.get("/v1/models", headers=_auth()).status_code == 200
        near = UTF8_TOKEN.encode("utf-8").decode("latin-1")  # the same characters, latin-1 bytes on the wire
        for wrong in (_auth("pässwörd-ключ-🎨x"), {"Authorization": b"Bearer " + near.encode("utf-8")},
                      {"Authorization": "Bearer pässwörd".encode("latin-1")}):
            assert client.get("/v1/models", headers=wrong).status_code == 401


def test_the_stdlib_client_sends_a_non_ascii_token(guarded):
    from sdedit_client import Client, RequestRejected

    assert any(m["id"] == "tiny-vp" for m in Client(guarded.url, token=UTF8_TOKEN).models())
    with pytest.raises(RequestRejected, match="access token"):
        Client(guarded.url, token="пароль").models()


def test_token_flag_warns_and_token_file_problems_are_one_line(guarded, tmp_path, models_dir):
    env = server_env(models_dir, models_dir / "tiny-vp")
    serve = [sys.executable, "-m", "sdedit", "serve", "--port", str(guarded.port)]  # in use: exits at once
    done = subprocess.run(serve + ["--token", "abc"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "`ps`" in done.stderr and "SDEDIT_TOKEN" in done.stderr, done.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for args, words in ((["--token-file", str(tmp_path / "missing")], "Cannot read the token file"),
                        (["--token-file", str(empty)], "is empty"),
                        (["--token-file", str(empty), "--token", "x"], "not both")):
        done = subprocess.run(serve + args, env=env, capture_output=True, text=True, timeout=120)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr


# -- 13: the port check on both families --------------------------------------------------------------------------
def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no ::1")
def test_a_port_taken_on_the_other_loopback_family_is_refused(guarded):
    from sdedit.api import run_server
    from sdedit.errors import InputError

    with pytest.raises(InputError, match=r"already in use on 127\.0\.0\.1.*localhost"):
        run_server(host="::1", port=guarded.port, device="cpu")  # the real server holds 127.0.0.1
    with socket.socket(socket.AF_INET6) as other:  # vice versa: something listens on [::1]
        other.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        other.bind(("::1", 0))
        other.listen()
        port = other.getsockname()[1]
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(InputError, match=r"already in use"):
                run_server(host=host, port=port, device="cpu")


# -- 14: dependency floors ----------------------------------------------------------------------------------------
def _floor(name: str) -> tuple:
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(rf'"{name}>=([0-9.]+)"', text)
    assert found, f"no floor for {name}"
    return tuple(int(p) for p in found.group(1).split("."))


def test_dependency_floors_keep_json_strict_and_pickles_weights_only():
    assert _floor("fastapi") >= (0, 132)  # strict_content_type: no JSON without a JSON Content-Type
    assert _floor("diffusers") >= (0, 28)  # .bin weights through torch.load(weights_only=True)


def test_a_json_body_without_a_json_content_type_is_refused(guarded):
    body = ('{"image": "%s", "steps": 1}' % GOOD).encode()
    with httpx.Client(base_url=guarded.url, trust_env=False, timeout=30) as client:
        for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}, {}):
            answer = client.post("/v1/jobs", content=body, headers={**headers, **_auth()})
            assert answer.status_code == 422, (headers, answer.text)
            assert "Content-Type: application/json" in answer.json()["detail"]


# -- 11: error texts ----------------------------------------------------------------------------------------------
def _one_sentence(text: str) -> None:
    assert "\n" not in text and len(text) <= 300 and text.endswith("."), text
    assert "Traceback" not in text and "weights_only" not in text, text


def test_a_bad_checkpoint_fails_with_one_sentence_and_no_server_path(guarded, models_dir):
    with httpx.Client(base_url=guarded.url, trust_env=False, timeout=30, headers=_auth()) as client:
        created = client.post("/v1/jobs", json={"image": GOOD, "model": "bad", "steps": 1})
        assert created.status_code == 202, created.text
        status = wait_final(client, created.json()["id"])
    assert status["state"] == "failed"
    error = status["error"]
    _one_sentence(error)
    assert "bad.ckpt" in error and str(models_dir) not in error and "/" not in error, error


def test_huge_numbers_and_deep_json_get_a_readable_sentence(guarded):
    seed = "9" * 4300
    cases = [
        ('{"image": "%s", "seed": %s}' % (GOOD, seed), 422, "seed"),  # parses, out of range
        ('{"image": "%s", "seed": %s}' % (GOOD, "9" * 4302), 400, "4300 digits"),  # past Python's int limit
        ("[" * 100000 + "]" * 100000, 400, "nested too deeply"),
        ('{"image": ' + "[" * 100000 + "]" * 100000 + "}", 400, "nested too deeply"),
    ]
    with httpx.Client(base_url=guarded.url, trust_env=False, timeout=30, headers=_auth()) as client:
        for body, status, words in cases:
            answer = client.post("/v1/jobs", content=body.encode(), headers={"Content-Type": "application/json"})
            assert answer.status_code == status, answer.text[:300]
            detail = answer.json()["detail"]
            _one_sentence(detail)
            assert words in detail and "9999999999" not in detail, detail


# -- 8: slow clients ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_server(models_dir, tmp_path_factory):
    """A server with 128 open files at most and 2-second header and body deadlines."""
    tmp = tmp_path_factory.mktemp("small")
    env = server_env(models_dir, models_dir / "tiny-vp", SDEDIT_HEADER_TIMEOUT_S="2", SDEDIT_BODY_TIMEOUT_S="2")
    proc = ServerProcess(env, tmp / "server.log", nofile=128)
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def _stalled(port: int, count: int, payload: bytes) -> list:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(payload)
        socks.append(sock)
    return socks


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True
    except socket.timeout:
        return False
    except OSError:  # reset
        return True


def test_stalled_connections_are_closed_and_health_still_answers(small_server):
    log_before = len(small_server.log().splitlines())
    partial = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    socks = _stalled(small_server.port, 200, partial)
    try:
        started = time.monotonic()
        answer = httpx.get(small_server.url + "/v1/health", timeout=5, trust_env=False)
        took = time.monotonic() - started
        assert answer.status_code == 200 and took < 2.0, took
        time.sleep(3.0)  # past the 2-second header deadline
        closed = sum(_closed_by_server(sock) for sock in socks)
        assert closed == len(socks), f"{len(socks) - closed} stalled connections are still open"
    finally:
        for sock in socks:
            sock.close()
    # a body that stops half-way
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"image\": \"")
        time.sleep(3.0)
        assert _closed_by_server(sock), "a stalled body kept its connection"
    assert httpx.get(small_server.url + "/v1/health", timeout=5, trust_env=False).status_code == 200
    new_lines = small_server.log().splitlines()[log_before:]
    assert len(new_lines) <= 10, "\n".join(new_lines[:20])
    assert any("request headers within 2 s" in line for line in new_lines), new_lines
    assert any("body stalled" in line for line in new_lines), new_lines


def test_keep_alive_clients_and_long_polls_are_not_cut(small_server):
    """The deadlines are about the client's sending, not about how long the server takes to answer."""
    with httpx.Client(base_url=small_server.url, trust_env=False, timeout=30) as client:
        job = client.post("/v1/jobs", json={"image": GOOD, "t0": 1.0, "steps": 1000}).json()["id"]
        started = time.monotonic()
        held = client.get(f"/v1/jobs/{job}", params={"wait": 3.0})
        assert held.status_code == 200 and time.monotonic() - started > 2.5
        assert client.delete(f"/v1/jobs/{job}").json()["state"] == "cancelled"


# -- 10: the job budget -------------------------------------------------------------------------------------------
def test_a_job_over_the_configured_budget_is_refused_up_front(guarded):
    """tiny-vp works at 32x32: 1024 px x 2 samples x 150 steps = 307200 > 300000; one sample fits."""
    with httpx.Client(base_url=guarded.url, trust_env=False, timeout=30, headers=_auth()) as client:
        over = client.post("/v1/jobs", json={"image": GOOD, "t0": 1.0, "steps": 150, "samples": 2})
        assert over.status_code == 422, over.text
        detail = over.json()["detail"]
        _one_sentence(detail)
        assert "32x32" in detail and "2 sample" in detail and "150 steps" in detail and "307,200" in detail, detail
        assert "300,000" in detail
        assert "SDEDIT_MAX_WORK" in detail
        fits = client.post("/v1/jobs", json={"image": GOOD, "t0": 1.0, "steps": 150, "samples": 1})
        assert fits.status_code == 202, fits.text
        client.delete(f"/v1/jobs/{fits.json()['id']}")


def test_the_default_budget_refuses_days_of_work(small_server):
    """4096x4096 x 16 samples x 1000 steps at t0 1 with the embedded model: hours on this CPU, refused at once."""
    body = {"image": b64(png_header_only(4096, 4096)), "t0": 1.0, "steps": 1000, "samples": 16, "model": "landscape"}
    with httpx.Client(base_url=small_server.url, trust_env=False, timeout=30) as client:
        started = time.monotonic()
        over = client.post("/v1/jobs", json=body)
        assert over.status_code == 422 and time.monotonic() - started < 5, over.text
        detail = over.json()["detail"]
        assert "too much work" in detail and "1 hour" in detail and "cpu" in detail, detail
        small = client.post("/v1/jobs", json={"image": GOOD, "steps": 2, "model": "landscape"})
        assert small.status_code == 202, small.text
        client.delete(f"/v1/jobs/{small.json()['id']}")


# -- 9: memory per request ----------------------------------------------------------------------------------------
def _peak_rss_reset(pid: int) -> int:
    """Reset the process's peak RSS (Linux clear_refs 5) and return its current RSS, kB."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pytest.skip("cannot reset the peak RSS of a process here (needs Linux /proc clear_refs)")
    return _status_kb(pid, "VmRSS")


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field}")


@pytest.mark.slow
def test_six_large_bodies_at_once_stay_within_two_decodes_of_memory(small_server):
    """Six 23 MiB bodies at once: without a bound each one costs ~6x its size at the same time (~800 MB)."""
    import io
    import threading

    import numpy as np
    from PIL import Image

    pixels = np.random.RandomState(3).randint(0, 256, (2400, 2400, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=0)
    png = buf.getvalue()[:-4096]  # truncated: every check and the full decode run, then 422 (nothing queued)
    body = ('{"image": "%s", "steps": 1}' % b64(png)).encode()
    mib = len(body) / 2**20
    before = _peak_rss_reset(small_server.proc.pid)
    answers = []

    def post() -> None:
        answer = httpx.post(small_server.url + "/v1/jobs", content=body, timeout=120, trust_env=False,
                            headers={"Content-Type": "application/json"})
        answers.append((answer.status_code, answer.json()["detail"]))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    growth_mib = (_status_kb(small_server.proc.pid, "VmHWM") - before) / 1024
    assert [code for code, _ in answers] == [422] * 6, answers
    assert growth_mib < 15 * mib, f"peak grew {growth_mib:.0f} MiB for six {mib:.0f} MiB bodies"


def test_per_connection_warnings_are_logged_once_a_minute_with_a_count():
    """uvicorn's 'Invalid HTTP request' and asyncio's failed accept() come once per connection: one line each."""
    import logging

    from sdedit.api.connections import RepeatFilter

    records = []
    flt = RepeatFilter(every_s=0.2)
    for name in ("uvicorn.error", "asyncio"):
        for i in range(50):
            record = logging.LogRecord(name, logging.WARNING, __file__, 1, "Invalid HTTP request received.", None,
                                       (ZeroDivisionError, ZeroDivisionError(), None) if name == "asyncio" else None)
            if flt.filter(record):
                records.append(record)
    assert len(records) == 2 and records[1].exc_info is None
    time.sleep(0.25)
    again = logging.LogRecord("asyncio", logging.WARNING, __file__, 1, "Invalid HTTP request received.", None, None)
    assert flt.filter(again) and "49 more" in again.getMessage()
    crash = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", None,
                              (ZeroDivisionError, ZeroDivisionError(), None))
    assert all(flt.filter(crash) for _ in range(3)) and crash.exc_info is not None  # app crashes keep every trace
