"""How long `sdedit edit` takes to refuse bad input, and what a default edit costs before its first step.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 3]

Each row is the median wall time of a fresh `python` process (as a user waits for it), with the bare
interpreter's start as the reference in the same run. Bad input is checked before torch is imported; a
default edit then imports the engine (torch) and loads the embedded model (plain torch, models/plain_unet.py).
All runs use --no-server so a running `sdedit serve` does not take the job.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STARTUP_PROBE = """
import time
t0 = time.perf_counter()
from sdedit.engine import edit
t1 = time.perf_counter()
from sdedit.models import load_model
model = load_model(None, "cpu")
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def wall(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    return time.perf_counter() - start, res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'server'}{os.pathsep}{ROOT / 'shared'}", OMP_NUM_THREADS="1")
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="sdedit-startup-"))
    from PIL import Image

    Image.new("RGB", (64, 48), (90, 140, 200)).save(tmp / "guide.png")
    Image.new("L", (10, 10)).save(tmp / "small_mask.png")
    edit = [py, "-m", "sdedit", "edit", str(tmp / "guide.png"), "-o", str(tmp / "out.png"), "--no-server", "--quiet"]
    rows = {
        "python -c pass (reference)": [py, "-c", "pass"],
        "python -c 'import torch'": [py, "-c", "import torch"],
        "refuse --t0 1.5": edit + ["--t0", "1.5"],
        "refuse a mask of the wrong size": edit + ["--mask", str(tmp / "small_mask.png")],
        "refuse --model no-such-model": edit + ["--model", "no-such-model"],
        "default edit, 64x48, 1 ode step": edit + ["--sde", "ode", "--steps", "1", "--seed", "0"],
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    split: list[tuple[float, float]] = []
    for _ in range(args.repeats):
        for name, cmd in rows.items():
            seconds, res = wall(cmd, env)
            expected = 2 if name.startswith("refuse") else 0
            if res.returncode != expected:
                raise SystemExit(f"{name}: exit {res.returncode}: {res.stderr.strip()}")
            times[name].append(seconds)
        _, res = wall([py, "-c", STARTUP_PROBE], env)
        split.append(tuple(float(v) for v in res.stdout.split()))
    ref = statistics.median(times["python -c pass (reference)"])
    print(f"CLI start-up, median of {args.repeats} runs (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")
    print(f"| {'run':<40} | {'seconds':>8} | {'x python start':>14} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 16}|")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name:<40} | {med:8.2f} | {med / ref:14.1f} |")
    engine = statistics.median(s[0] for s in split)
    model = statistics.median(s[1] for s in split)
    print(f"\nInside a default edit's start-up: importing the engine (torch) {engine:.2f} s, loading the embedded "
          f"model (its weights; plain torch, no diffusers) {model:.2f} s.")


if __name__ == "__main__":
    main()
