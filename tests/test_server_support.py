"""Helpers for the server tests: a real `sdedit` server in a subprocess on a free loopback port.

(Named test_server_*.py to stay in the server helper's lane; it holds no tests itself.)
"""
from __future__ import annotations

import base64
import io
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Dict, Optional

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FINAL = ("done", "failed", "cancelled")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_env(models_dir: Path, default_model: Path, **extra: str) -> Dict[str, str]:
    """Environment for a server process: the tiny model as default, one CPU thread (the CPU is shared)."""
    env = dict(os.environ)
    paths = [str(ROOT / "server"), str(ROOT / "shared")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        SDEDIT_MODELS_DIR=str(models_dir),
        SDEDIT_DEFAULT_MODEL=str(default_model),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("SDEDIT_TOKEN", None)
    env.update(extra)
    return env


class ServerProcess:
    """`run_server(...)` (or the `sdedit serve` CLI) in a subprocess; its log goes to a file."""

    def __init__(self, env: Dict[str, str], log_path: Path, host: str = "127.0.0.1", token: Optional[str] = None,
                 via_cli: bool = False, cli_args: tuple = (), nofile: Optional[int] = None) -> None:
        self.host, self.token, self.env, self.log_path = host, token, env, log_path
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        if via_cli:
            cmd = [sys.executable, "-m", "sdedit", "serve", "--host", host, "--port", str(self.port), "--device", "cpu"]
            if token and "--token-file" not in cli_args:
                cmd += ["--token", token]
            cmd += list(cli_args)
        else:
            call = f"run_server(host={host!r}, port={self.port}, token={token!r}, device='cpu')"
            cmd = [sys.executable, "-c", f"from sdedit.api import run_server; {call}"]
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                     preexec_fn=None if nofile is None else lambda: _limit_files(nofile))

    def wait_ready(self, timeout: float = 120.0) -> "ServerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log()[-3000:]}")

    def client(self, token: Optional[str] = "default", timeout: float = 60.0) -> httpx.Client:
        token = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout, trust_env=False)

    def log(self) -> str:
        if not self._log.closed:  # stop() closes it; the file is still there to read
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def _limit_files(count: int) -> None:
    """In the child: at most `count` open files (a small machine, or a ulimit), to test the connection cap."""
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


# -- images ---------------------------------------------------------------------------------------------------
def random_image(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = np.random.RandomState(seed).randint(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if channels == 1 else arr, mode)


def image_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG claiming width x height pixels with almost no data: a decompression-bomb stand-in."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


# -- the job protocol -------------------------------------------------------------------------------------------
def wait_final(client: httpx.Client, job_id: str, timeout: float = 120.0, poll: float = 0.05) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/v1/jobs/{job_id}")
        status.raise_for_status()
        body = status.json()
        if body["state"] in FINAL:
            return body
        time.sleep(poll)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def run_job(client: httpx.Client, body: dict, timeout: float = 120.0) -> tuple[dict, dict]:
    """Submit, wait, fetch: (final status, result JSON or {})."""
    created = client.post("/v1/jobs", json=body)
    assert created.status_code == 202, created.text
    status = wait_final(client, created.json()["id"], timeout)
    if status["state"] != "done":
        return status, {}
    result = client.get(f"/v1/jobs/{status['id']}/result")
    assert result.status_code == 200, result.text
    return status, result.json()
