"""Wall time of the README example, `sdedit edit examples/lake.png -o lake-sdedit.png`, run in its own
process (`--no-server`) and handed to a running local server, plus a check that both write the same bytes.

    .venv/bin/python benchmarks/cli_handoff.py [--repeats 3] [--image examples/lake.png] [--threads 2]

A server is started on a free loopback port for the run (its start-up time is shown for reference) and
stopped at the end. Runs alternate local / hand-off; times are wall seconds of the whole command, as a user
waits for it. The edits use --seed 0 so that the two kinds of run can be compared byte for byte.
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            with opener.open(url + "/v1/health", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not answer")


def timed(cmd: list, env: dict) -> float:
    started = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default=str(ROOT / "examples" / "lake.png"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the server and the CLI")
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "server"), str(ROOT / "shared")]))
    if a.threads:
        env["OMP_NUM_THREADS"] = str(a.threads)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = Path(tempfile.mkdtemp(prefix="handoff-bench-"))
    log = open(out / "server.log", "wb")
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "sdedit", "serve", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_health(url, server)
        up = time.perf_counter() - started
        base = [sys.executable, "-m", "sdedit", "edit", a.image, "--seed", "0", "--quiet"]
        local_env = dict(env, SDEDIT_SERVER_URL="off")
        served_env = dict(env, SDEDIT_SERVER_URL=url)
        first = timed(base + ["-o", str(out / "first.png")], served_env)  # includes the server's model load
        local, served = [], []
        for k in range(a.repeats):
            local.append(timed(base + ["-o", str(out / f"local-{k}.png")], local_env))
            served.append(timed(base + ["-o", str(out / f"served-{k}.png")], served_env))
        same = all((out / f"local-{k}.png").read_bytes() == (out / f"served-{k}.png").read_bytes()
                   for k in range(a.repeats))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
        log.close()
    print(f"{Path(a.image).name}, embedded model, defaults (vp, t0 0.5, 25 steps); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', 'unset')}; median of {a.repeats}")
    print(f"{'run':>34} {'wall s':>7} {'vs local':>8}")
    ref = statistics.median(local)
    print(f"{'local (--no-server)':>34} {ref:>7.2f} {1.0:>8.2f}")
    print(f"{'hand-off to a warm server':>34} {statistics.median(served):>7.2f} {statistics.median(served) / ref:>8.2f}")
    print(f"{'first hand-off (server loads model)':>34} {first:>7.2f} {first / ref:>8.2f}")
    print(f"{'server start until /v1/health':>34} {up:>7.2f} {up / ref:>8.2f}")
    print(f"same bytes (local vs hand-off, seed 0): {same}")


if __name__ == "__main__":
    main()
