"""Start a real `sdedit serve` process on a free loopback port for tests, and stop it again."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, Optional

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m sdedit serve` with a given default model; ``url`` once ``start()`` returned."""

    def __init__(self, model_dir: Path, log_path: Path, token: Optional[str] = None,
                 extra_env: Optional[Dict[str, str]] = None) -> None:
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.model_dir = Path(model_dir)
        self.log_path = Path(log_path)
        self.token = token
        self.extra_env = extra_env or {}
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 120.0) -> "ServerProcess":
        env = dict(os.environ)
        paths = [str(ROOT / "server"), str(ROOT / "shared")]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env.update({
            "PYTHONPATH": os.pathsep.join(paths),
            "SDEDIT_DEFAULT_MODEL": str(self.model_dir),
            "SDEDIT_MODELS_DIR": str(self.model_dir.parent),
        })
        env.pop("SDEDIT_TOKEN", None)
        if self.token:
            env["SDEDIT_TOKEN"] = self.token
        env.update(self.extra_env)
        cmd = [sys.executable, "-m", "sdedit", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--device", "cpu"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sdedit serve exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=2) as answer:
                    if json.load(answer).get("status") == "ok":
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("sdedit serve did not become healthy in %.0f s:\n%s" % (timeout, self.log_tail()))

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()
