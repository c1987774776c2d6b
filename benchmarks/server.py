"""HTTP server speed: requests per second of /v1/health, and a 256x256 job through HTTP vs. in-process.

    .venv/bin/python benchmarks/server.py [--model ID_OR_PATH] [--size 256] [--steps N] [--repeats 5]
                                          [--threads N] [--health-seconds 3]

Starts a real `sdedit serve` on a free loopback port. The job path is what a plugin does: base64 PNG in,
POST /v1/jobs, GET /v1/jobs/{id}?wait=--wait (long poll) until done, GET the result, decode the PNG. The in-process
baseline is the same `sdedit.engine.edit` call on the same model, seed and image in this process. Both run
interleaved (A B B A ...) so the machine's other load hits them alike; median and min are reported.
  overhead vs in-process = HTTP seconds / in-process seconds - 1   (two runs: includes compute noise)
  overhead of the HTTP path = HTTP seconds / the server's own job seconds (status "seconds") - 1
                              (same run: transport, base64, PNG, queue hand-off and polling only)
`--load` runs benchmarks/server_load.py instead (concurrent clients, bad inputs, stalled connections, memory).
Without --model the embedded default is used; if its weights are not installed, a random-weight copy of its
architecture (same compute) is written to a temporary folder and the header says so.
"""
from __future__ import annotations

import argparse
import base64
import io
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def guide(size: int) -> Image.Image:
    """Flat-colour strokes (sky, hills, lake, grass) with some texture."""
    rng = np.random.RandomState(0)
    arr = np.zeros((size, size, 3), np.uint8)
    arr[: size // 2] = (120, 170, 235)
    ys, xs = np.arange(size)[:, None], np.arange(size)[None, :]
    arr[(ys > size * 0.35 + size * 0.1 * np.sin(xs / size * 6.0)) & (ys < size * 0.6)] = (90, 95, 110)
    arr[int(size * 0.6): int(size * 0.8)] = (50, 100, 170)
    arr[int(size * 0.8):] = (70, 130, 50)
    return Image.fromarray(np.clip(arr + rng.randint(-8, 9, arr.shape), 0, 255).astype(np.uint8))


def resolve_model(ref: str | None, tmp: Path) -> tuple[str, str]:
    """(path or id to load, words for the header)."""
    from sdedit.errors import InputError
    from sdedit.models import resolve

    try:
        model_id, path = resolve(ref)
        return str(path), f"{model_id} ({path})"
    except InputError:
        if ref is not None:
            raise
    from sdedit.models.unshuffle_unet import UnshuffleEpsNet

    folder = tmp / "landscape-random"
    UnshuffleEpsNet.new().save_folder(folder, {"id": "landscape-random"})
    return str(folder), "random weights in the embedded model's architecture (its weights are not installed)"


class Server:
    def __init__(self, model: str, env: dict, device: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="sdedit-bench-server-", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", "sdedit", "serve", "--port", str(self.port), "--device", device, "--model", model]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=str(ROOT))

    def wait(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"the server exited ({self.proc.returncode}); its log: {self.log.name}")
            try:
                httpx.get(self.url + "/v1/health", timeout=2, trust_env=False)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        sys.exit(f"the server did not start in {timeout} s; its log: {self.log.name}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def health_rps(url: str, seconds: float, clients: int) -> float:
    """Requests per second of GET /v1/health with `clients` threads, each on its own keep-alive connection."""
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        with httpx.Client(base_url=url, trust_env=False) as client:
            while time.monotonic() < stop:
                client.get("/v1/health").raise_for_status()
                counts[i] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - started)


def http_job(client: httpx.Client, body_args: dict, image: Image.Image, poll: float,
             wait: float) -> tuple[float, float]:
    """(seconds from PNG-encoding the image to holding the decoded result PNG, the server's job seconds)."""
    t = time.perf_counter()
    buf = io.BytesIO()
    image.save(buf, "PNG")
    job = client.post("/v1/jobs", json={"image": base64.b64encode(buf.getvalue()).decode(), **body_args})
    job.raise_for_status()
    job_id = job.json()["id"]
    while True:
        status = client.get(f"/v1/jobs/{job_id}", params={"wait": wait}).json()
        state = status["state"]
        if state == "done":
            break
        if state in ("failed", "cancelled"):
            sys.exit(f"the benchmark job ended {state}")
        time.sleep(poll)
    result = client.get(f"/v1/jobs/{job_id}/result").json()
    Image.open(io.BytesIO(base64.b64decode(result["images"][0]))).load()
    return time.perf_counter() - t, float(status["seconds"])


def main() -> None:
    if "--load" in sys.argv[1:]:
        from server_load import main as load_main

        load_main([arg for arg in sys.argv[1:] if arg != "--load"])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model id or path (default: the embedded default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--t0", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--wait", type=float, default=30.0, help="long-poll seconds per status request (0 = plain polls)")
    ap.add_argument("--poll", type=float, default=0.01, help="pause between status requests, seconds")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (server and in-process alike)")
    ap.add_argument("--health-seconds", type=float, default=3.0)
    ap.add_argument("--health-clients", type=int, nargs="+", default=[1, 8])
    a = ap.parse_args()

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "server"), str(ROOT / "shared"),
                                                    env.get("PYTHONPATH")) if p)
    if a.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(a.threads)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from sdedit.engine import edit
    from sdedit.models import load_model

    with tempfile.TemporaryDirectory() as tmp:
        model_ref, model_words = resolve_model(a.model, Path(tmp))
        server = Server(model_ref, env, a.device)
        try:
            model = load_model(model_ref, device=a.device)
            server.wait()
            image = guide(a.size)
            params = dict(t0=a.t0, sde="vp", steps=a.steps, samples=1, seed=1)
            body_args = {k: v for k, v in params.items() if v is not None}
            with httpx.Client(base_url=server.url, trust_env=False, timeout=600) as client:
                http_job(client, body_args, image, a.poll, a.wait)  # warm-up: the server loads the model
                rps = {n: health_rps(server.url, a.health_seconds, n) for n in a.health_clients}  # server idle
                edit(model, image, **params)
                http_times, server_times, local_times = [], [], []

                def in_process() -> None:
                    nonlocal result
                    t = time.perf_counter()
                    result = edit(model, image, **params)
                    local_times.append(time.perf_counter() - t)

                def through_http() -> None:
                    total, on_server = http_job(client, body_args, image, a.poll, a.wait)
                    http_times.append(total)
                    server_times.append(on_server)

                result = None
                for i in range(a.repeats):
                    for run in ((through_http, in_process) if i % 2 == 0 else (in_process, through_http)):
                        run()
        finally:
            server.stop()

    http_s, local_s = statistics.median(http_times), statistics.median(local_times)
    path = [h / s - 1 for h, s in zip(http_times, server_times)]
    print(f"model: {model_words}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, device {a.device}, torch threads "
          f"{torch.get_num_threads()}, {a.size}x{a.size} guide, t0 {a.t0}, {result.steps} steps, "
          f"{a.repeats} repeats, status ?wait={a.wait:g} s, pause {a.poll * 1000:g} ms")
    print()
    print(f"{'measure':<40}{'value':>20}")
    print("-" * 60)
    for n, value in rps.items():
        print(f"{f'GET /v1/health, {n} client(s)':<40}{value:>15.0f} rps")
    print(f"{'job through HTTP, median / min':<40}{http_s:>9.3f} s {min(http_times):>7.3f} s")
    print(f"{'same edit in-process, median / min':<40}{local_s:>9.3f} s {min(local_times):>7.3f} s")
    print(f"{'overhead vs in-process, median / min':<40}{(http_s / local_s - 1) * 100:>9.1f} % "
          f"{(min(http_times) / min(local_times) - 1) * 100:>7.1f} %")
    print(f"{'server job seconds, median':<40}{statistics.median(server_times):>9.3f} s")
    print(f"{'overhead of the HTTP path, median / max':<40}{statistics.median(path) * 100:>9.1f} % "
          f"{max(path) * 100:>7.1f} %")
    print(f"{'HTTP path, median ms':<40}{statistics.median(h - s for h, s in zip(http_times, server_times)) * 1000:>9.0f} ms")
    print()
    print("runs (s): HTTP " + " ".join(f"{x:.3f}" for x in http_times))
    print("          on the server " + " ".join(f"{x:.3f}" for x in server_times))
    print("          in-process " + " ".join(f"{x:.3f}" for x in local_times))


if __name__ == "__main__":
    main()
