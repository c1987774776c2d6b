"""Ray pool throughput: jobs per minute with 1 and 2 replicas, and the Ray path's cost against the plain server.

    .venv/bin/python benchmarks/cluster.py [--model ID_OR_PATH] [--size 128] [--steps 20] [--jobs 8] [--rounds 2]

Starts three real servers on free loopback ports, each with one torch thread per edit:
  plain  `sdedit serve`                           (one worker, edits in the server process)
  ray-1  `sdedit serve --ray --replicas 1`        (its own local Ray; one CPU replica)
  ray-2  `sdedit serve --ray --replicas 2`        (its own local Ray; two CPU replicas)
Each round sends the same --jobs edits to each server at once (one client thread per job, what a studio's
artists do) and times first submit -> last decoded result; the order of the servers rotates per round so the
machine's other load hits them alike. A CPU probe in the same rounds runs the same edits in 1 and then 2 bare
processes (no HTTP, no Ray): what this machine gives two single-threaded workers right now, the ceiling for the
2-replica speed-up. Ratios (medians over the rounds):
  ray-2 / ray-1 jobs per minute         the pool's scaling (issue 15 asks >= 1.6 where the CPU allows it)
  probe: 2 processes / 1 process        what the machine allowed meanwhile
  plain / ray-1 jobs per minute - 1     the Ray path's overhead at one replica
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_server", ROOT / "benchmarks" / "server.py")
bench_server = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_server)  # guide(), resolve_model(), free_port(), http_job()

PROBE = """
import sys, time, torch
torch.set_num_threads(1)
sys.path[:0] = [{server!r}, {bench!r}]
from sdedit.engine import edit
from sdedit.models import load_model
import importlib.util
spec = importlib.util.spec_from_file_location("b", {bench_file!r}); b = importlib.util.module_from_spec(spec)
spec.loader.exec_module(b)
model, image = load_model({model!r}, device="cpu"), b.guide({size})
edit(model, image, t0={t0}, steps={steps}, seed=0)
print("ready", flush=True); sys.stdin.readline()
for k in range({jobs}):
    edit(model, image, t0={t0}, steps={steps}, seed=k)
print("done", flush=True)
"""


class Server:
    """One `sdedit serve` process (plain or --ray) on a free loopback port; its log in a temporary file."""

    def __init__(self, name: str, extra: list[str], model: str, env: dict) -> None:
        self.name, self.port = name, bench_server.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"sdedit-bench-{name}-", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", "sdedit", "serve", "--port", str(self.port), "--device", "cpu",
               "--model", model, *extra]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=str(ROOT))

    def wait(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited ({self.proc.returncode}); its log: {self.log.name}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        sys.exit(f"{self.name} did not start in {timeout} s; its log: {self.log.name}")

    def stop(self) -> None:
        self.proc.send_signal(2)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def batch(url: str, jobs: int, body: dict, image) -> tuple[float, list[float]]:
    """Send `jobs` edits at once; (seconds to the last result, the server's job seconds of each)."""
    on_server: list[float] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(jobs)

    def one(seed: int) -> None:
        try:
            with httpx.Client(base_url=url, trust_env=False, timeout=900) as client:
                gate.wait(60)
                on_server.append(bench_server.http_job(client, dict(body, seed=seed), image, 0.01, 30.0)[1])
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=one, args=(seed,)) for seed in range(jobs)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started, on_server


def probe(processes: int, jobs: int, a, model: str, env: dict) -> float:
    """Seconds for `jobs` edits shared by `processes` bare single-threaded processes (model loaded beforehand)."""
    code = PROBE.format(server=str(ROOT / "server"), bench=str(ROOT / "benchmarks"),
                        bench_file=str(ROOT / "benchmarks" / "server.py"), model=model, size=a.size, t0=a.t0,
                        steps=a.steps, jobs=jobs // processes)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(processes)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdout.readline().strip() == "done"
        proc.wait()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model id or path (default: the embedded default)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--t0", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=8, help="edits per server per round, sent at once (even)")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "server"), str(ROOT / "shared"),
                                                    env.get("PYTHONPATH")) if p)
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        model, model_words = bench_server.resolve_model(a.model, Path(tmp))
        servers = [Server("plain", [], model, env), Server("ray-1", ["--ray", "--replicas", "1"], model, env),
                   Server("ray-2", ["--ray", "--replicas", "2"], model, env)]
        image = bench_server.guide(a.size)
        body = {"t0": a.t0, "steps": a.steps}
        seconds: dict = {name: [] for name in ("plain", "ray-1", "ray-2", "probe-1", "probe-2")}
        job_seconds: dict = {s.name: [] for s in servers}
        try:
            for server in servers:
                server.wait()
            for server in servers:  # warm-up: every worker/replica has run an edit once
                batch(server.url, 2, dict(body, steps=2), image)
            for r in range(a.rounds):
                order = servers[r % 3:] + servers[: r % 3]
                for server in order:
                    took, on_server = batch(server.url, a.jobs, body, image)
                    seconds[server.name].append(took)
                    job_seconds[server.name] += on_server
                    load.append(os.getloadavg()[0])
                for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                    seconds[f"probe-{n}"].append(probe(n, a.jobs, a, model, env))
        finally:
            for server in servers:
                server.stop()

    per_min = {name: [a.jobs / s * 60 for s in runs] for name, runs in seconds.items()}
    med = {name: statistics.median(values) for name, values in per_min.items()}
    print(f"model: {model_words}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), load average (1 min) during the run "
          f"{min(load):.1f}..{max(load):.1f}; {a.size}x{a.size} guide, t0 {a.t0}, {a.steps} steps, "
          f"{a.jobs} jobs at once per server per round, {a.rounds} rounds, one torch thread per edit")
    print()
    print(f"{'setup':<44}{'jobs/min (median)':>18}{'per round':>28}")
    print("-" * 90)
    labels = {"plain": "plain sdedit serve (1 worker)", "ray-1": "sdedit serve --ray, 1 replica",
              "ray-2": "sdedit serve --ray, 2 replicas", "probe-1": "CPU probe: 1 bare process",
              "probe-2": "CPU probe: 2 bare processes"}
    for name, label in labels.items():
        print(f"{label:<44}{med[name]:>18.1f}{' '.join(f'{v:.1f}' for v in per_min[name]):>28}")
    print()
    for name in ("plain", "ray-1", "ray-2"):
        print(f"job seconds on the server, {name:<6} median {statistics.median(job_seconds[name]):.2f} s")
    print()
    print(f"{'ratio':<44}{'value':>18}")
    print("-" * 62)
    print(f"{'ray-2 / ray-1 jobs per minute':<44}{med['ray-2'] / med['ray-1']:>17.2f}x")
    print(f"{'CPU probe: 2 processes / 1 process':<44}{med['probe-2'] / med['probe-1']:>17.2f}x")
    print(f"{'ray-2 scaling / the probe allowed':<44}"
          f"{(med['ray-2'] / med['ray-1']) / (med['probe-2'] / med['probe-1']):>17.2f}")
    print(f"{'Ray path overhead at 1 replica (plain/ray-1-1)':<44}{(med['plain'] / med['ray-1'] - 1) * 100:>16.1f} %")


if __name__ == "__main__":
    main()
