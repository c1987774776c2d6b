"""Live mode: a scripted painting session against a real `sdedit serve`, stroke-to-preview latency.

    .venv/bin/python benchmarks/live.py [--model ID_OR_PATH] [--strokes 24] [--interval 0.5] [--size N]
                                        [--t0 0.5] [--turbo-random [--tiny]] [--device cpu|cuda]

A painter thread adds strokes to a canvas one by one, every --interval seconds (faster than results come on a
CPU: the case live mode is for). A live client does what the Krita docker's Live toggle does, through the
plugins' own stdlib client: when the canvas has changed it sends the whole canvas (at the model's live size)
as a job of one session, superseding the job in flight when sdedit_client.live.send_now allows (a queued or
young job, once in a row; else the newest canvas waits for the current result); when a job is done it shows
the result. Reported:
  stroke-to-preview   for each stroke, seconds until a preview of a canvas that includes it is shown (p50, p95)
  updates shown       previews shown / strokes
  superseded          jobs the server cancelled because a newer one came; "work wasted" = their running
                      seconds / all running seconds of the session (the server's own job seconds)
  in flight           the most jobs of the session ever queued or running together (must stay 1: no growth)
  single job          the same live job alone, submit to decoded result, median of --repeats (the reference:
                      absolute times on a shared machine say little; the ratio p50 / single job says more)
The load average is printed with the table. Without --model: the embedded model with its declared live
defaults (GET /v1/models "live"). --turbo-random: a randomly initialised SD-Turbo-shaped pipeline (SD 2.1's
UNet, VAE and OpenCLIP-H text encoder at 512 px, euler_a, 1 step) written to a temporary folder; on CUDA the
target is <= 150 ms per update. --tiny shrinks it to the tests' tiny components (a CPU smoke run of that path).
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "shared"), str(Path(__file__).resolve().parent)]

from server import Server, guide  # noqa: E402  (benchmarks/server.py: a real `sdedit serve` on loopback)

FINAL = ("done", "failed", "cancelled")


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


class Painter:
    """Adds one stroke every `interval` seconds; `version` counts the strokes on the canvas."""

    def __init__(self, size: int, strokes: int, interval: float) -> None:
        self.canvas = guide(size)
        self.version, self.stroke_times = 0, []
        self.strokes, self.interval = strokes, interval
        self.lock = threading.Lock()
        self.rng = np.random.RandomState(5)
        self.done = threading.Event()

    def snapshot(self) -> tuple[int, bytes]:
        with self.lock:
            return self.version, png(self.canvas)

    def run(self) -> None:
        size = self.canvas.width
        for _ in range(self.strokes):
            time.sleep(self.interval)
            x, y = self.rng.randint(0, size, 2)
            points = [(int(x + dx), int(y + dy)) for dx, dy in self.rng.randint(-size // 6, size // 6, (4, 2))]
            colour = tuple(int(c) for c in self.rng.randint(0, 256, 3))
            with self.lock:
                ImageDraw.Draw(self.canvas).line(points, fill=colour, width=max(3, size // 24))
                self.version += 1
                self.stroke_times.append(time.monotonic())
        self.done.set()


def live_session(client, painter: Painter, job_args: dict, session: str, policy: str) -> dict:
    """The docker's loop: send the canvas when it changed, superseding the job in flight when
    sdedit_client.live.send_now says so (policy "always": on every change), and show each finished result."""
    from sdedit_client.live import send_now

    sent_version, current, shown = 0, None, []  # shown: (time, canvas version)
    state, progress, restarts = None, 0.0, 0
    jobs: list[str] = []
    open_jobs: set[str] = set()
    max_in_flight = 0
    thread = threading.Thread(target=painter.run, daemon=True)
    thread.start()
    while True:
        if current is not None:
            status = client.status(current[0])
            state, progress = status["state"], status["progress"]
            if status["state"] == "done":
                images, _ = client.result(current[0])
                Image.open(io.BytesIO(images[0])).load()  # decoded, as the docker shows it
                shown.append((time.monotonic(), current[1]))
                open_jobs.discard(current[0])
                current, state, restarts = None, None, 0
            elif status["state"] in ("failed", "cancelled"):
                if status.get("superseded_by") is None:
                    raise SystemExit(f"a live job ended {status['state']}: {status.get('error')}")
                current, state = None, None
        version, canvas = painter.snapshot()
        if version > sent_version and (policy == "always" or send_now(state, progress, restarts)):
            if current is not None:
                restarts += 1
            job_id = client.submit(canvas, session=session, **job_args)
            current, sent_version, state, progress = (job_id, version), version, "queued", 0.0
            jobs.append(job_id)
            open_jobs.add(job_id)
            for other in list(open_jobs):  # how many of the session's jobs are still queued or running
                if client.status(other)["state"] in FINAL:
                    open_jobs.discard(other)
            max_in_flight = max(max_in_flight, len(open_jobs))
        if painter.done.is_set() and current is None and sent_version == painter.version:
            break
        time.sleep(0.02)
    latencies = []
    for index, stroke_at in enumerate(painter.stroke_times, start=1):
        later = [t for t, v in shown if v >= index]
        latencies.append(min(later) - stroke_at)
    running = {}
    for job_id in jobs:
        status = client._request("GET", f"/v1/jobs/{job_id}")  # the server's own job seconds
        running[job_id] = (status["state"], status.get("seconds") or 0.0)
    wasted = sum(s for state, s in running.values() if state == "cancelled")
    return dict(latencies=latencies, shown=len(shown), jobs=len(jobs),
                superseded=sum(1 for state, _ in running.values() if state == "cancelled"),
                wasted=wasted, running=sum(s for _, s in running.values()), max_in_flight=max_in_flight)


def single_job(client, canvas: bytes, job_args: dict, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.monotonic()
        images, _ = client.run(canvas, poll_interval=0.02, **job_args)
        Image.open(io.BytesIO(images[0])).load()
        times.append(time.monotonic() - started)
    return statistics.median(times)


def turbo_folder(tmp: Path, tiny: bool) -> Path:
    """A random-weight SD-Turbo-shaped pipeline folder (SD 2.1 base configs shipped in sd_configs/sd2, an
    EulerAncestral 'trailing' scheduler like stabilityai/sd-turbo's), or the tests' tiny one."""
    import json

    import torch

    folder = tmp / "sd-turbo-random"
    if tiny:
        from bench import use_tests

        use_tests()
        from tiny_sd import make_sd_folder

        make_sd_folder(folder, "sd1")
    else:
        from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        from sdedit.models.clip_tokenizer import clip_tokenizer
        from sdedit.models.sd_family import CONFIG_ROOT

        torch.manual_seed(0)
        cfg = CONFIG_ROOT / "sd2"
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(cfg / "unet")))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(cfg / "vae")))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(str(cfg / "text_encoder")))
        from diffusers import EulerAncestralDiscreteScheduler

        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=clip_tokenizer("!"), unet=unet,
                                       scheduler=EulerAncestralDiscreteScheduler(), safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
        pipe.to(torch.float16).save_pretrained(str(folder), safe_serialization=True, variant="fp16")
    sched = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(sched.read_text())
    config.update({"_class_name": "EulerAncestralDiscreteScheduler", "timestep_spacing": "trailing",
                   "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
                   "prediction_type": "epsilon"})
    sched.write_text(json.dumps(config))
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model id or path (default: the embedded model)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda with --turbo-random when present)")
    ap.add_argument("--strokes", type=int, default=24)
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between strokes")
    ap.add_argument("--size", type=int, default=None, help="canvas side (default: the model's live size)")
    ap.add_argument("--t0", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=None, help="default: the model's live steps (1 with --turbo-random)")
    ap.add_argument("--repeats", type=int, default=5, help="single-job reference runs")
    ap.add_argument("--policy", choices=("client", "always"), default="client",
                    help="client: supersede as sdedit_client.live.send_now says (the docker's); always: on every "
                         "change (nothing shows while strokes come faster than jobs)")
    ap.add_argument("--turbo-random", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="with --turbo-random: the tests' tiny components")
    a = ap.parse_args()

    import torch

    from sdedit_client import Client

    device = a.device or ("cuda" if a.turbo_random and torch.cuda.is_available() else "cpu")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "server"), str(ROOT / "shared")]))
    with tempfile.TemporaryDirectory() as tmp:
        model = str(turbo_folder(Path(tmp), a.tiny)) if a.turbo_random else (a.model or "landscape")
        server = Server(model, env, device)
        try:
            server.wait()
            client = Client(server.url, timeout=120)
            info = next(m for m in client.models() if m.get("default"))
            live = info.get("live") or {}
            size = a.size or int(live.get("size") or 256)
            steps = a.steps or (1 if a.turbo_random else int(live.get("steps") or 3))
            job_args = dict(t0=a.t0, sde=live.get("sde"), steps=steps, seed=1234, model=info["id"])
            if info.get("text"):
                job_args.update(prompt="a mountain lake at dawn", guidance=live.get("guidance"))
            painter = Painter(size, a.strokes, a.interval)
            canvas = painter.snapshot()[1]
            client.run(canvas, **job_args)  # warm-up: first-call costs
            single = single_job(client, canvas, job_args, a.repeats)
            load_before = os.getloadavg()
            result = live_session(client, painter, job_args, session="bench-live", policy=a.policy)
            single_after = single_job(client, canvas, job_args, max(1, a.repeats // 2))
            load_after = os.getloadavg()
        finally:
            server.stop()
    lat = sorted(result["latencies"])
    p50 = statistics.median(lat)
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
    ref = statistics.median([single, single_after])
    print(f"# live mode: {info['id']} on {device}, {size}x{size}, sde {job_args['sde']} x {steps} steps, t0 {a.t0}, "
          f"{a.strokes} strokes every {a.interval:g} s, supersede policy {a.policy}")
    print(f"# load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"({os.cpu_count()} CPUs; torch threads in the server: {os.environ.get('OMP_NUM_THREADS', 'default')})")
    print("| measure | value |")
    print("|---|---|")
    print(f"| stroke-to-preview p50 | {p50:.2f} s ({p50 / ref:.2f} x single job) |")
    print(f"| stroke-to-preview p95 | {p95:.2f} s ({p95 / ref:.2f} x single job) |")
    print(f"| single live job (submit to decoded result) | {ref:.3f} s (before {single:.3f}, after {single_after:.3f}) |")
    print(f"| updates shown | {result['shown']} for {a.strokes} strokes ({result['jobs']} jobs sent) |")
    print(f"| superseded jobs | {result['superseded']} of {result['jobs']} |")
    share = result["wasted"] / result["running"] if result["running"] else 0.0
    print(f"| work wasted on superseded jobs | {result['wasted']:.2f} s of {result['running']:.2f} s running "
          f"({share:.0%}) |")
    print(f"| most jobs of the session queued or running at once | {result['max_in_flight']} |")


if __name__ == "__main__":
    main()
