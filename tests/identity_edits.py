"""A fixed set of edits whose output bytes must not change when the engine is only reorganised.

Pixel models (the embedded landscape model, a tiny fully convolutional one with a small max_side so the
detail pass runs, a tiny fixed-size 32 px DDPM) and a tiny random Stable Diffusion 1.x model; with and
without a selection (soft, hard, empty, with transparency); one stage and two stages; previews; and the job
budget's estimates. CPU, fixed seeds. Each case prints one SHA-256 over its images and the facts the engine
reports (steps, network calls, working size, region, params), never the seconds.

    PYTHONPATH=server:shared:tests python tests/identity_edits.py                # print the hashes
    PYTHONPATH=server:shared:tests python tests/identity_edits.py --write        # record anew (outputs changed on purpose)
    PYTHONPATH=server:shared:tests python tests/identity_edits.py --add-machine  # add this machine's bytes

Float results differ in their last bits across torch builds and CPU instruction sets (torch's AVX2 and AVX-512
kernels round differently), so the bytes are recorded per environment (`environment()`). Beside them each case
keeps a fingerprint (every output image pooled to 16x16, 0-255), which holds across machines within
FINGERPRINT_TOLERANCE levels.
tests/test_identity.py compares a run with the recorded bytes where this environment has them, and with the
fingerprints everywhere.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

HASHES = Path(__file__).with_name("identity_hashes.json")


def painting(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """Colour bands plus noise: something a sampler cannot leave alone."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 3] = (120, 170, 230)
    img[height // 3: 2 * height // 3] = (60, 130, 60)
    img[2 * height // 3:] = (40, 80, 160)
    img = np.clip(img.astype(int) + rng.integers(-30, 30, img.shape), 0, 255).astype(np.uint8)
    out = Image.fromarray(img)
    if mode == "RGBA":
        alpha = np.full((height, width), 255, np.uint8)
        alpha[: height // 5, : width // 4] = 0  # a transparent corner
        alpha[height // 5: height // 4] = 128
        out.putalpha(Image.fromarray(alpha))
    return out


def hard_mask(width: int, height: int) -> Image.Image:
    m = np.zeros((height, width), np.uint8)
    m[height // 4: 3 * height // 4, width // 3: 5 * width // 6] = 255
    return Image.fromarray(m)


def soft_mask(width: int, height: int) -> Image.Image:
    m = np.zeros((height, width), np.uint8)
    ramp = np.linspace(0, 255, width // 2).astype(np.uint8)
    m[height // 5: 4 * height // 5, width // 4: width // 4 + len(ramp)] = ramp
    return Image.fromarray(m)


FINGERPRINT_SIDE = 16  # each output pooled to 16x16: holds across CPUs, moves when an edit changes
# Largest difference (0-255) of a fingerprint allowed across machines. Measured (2026-12-07, AMD EPYC): the same
# code with torch's portable kernels (ATEN_CPU_CAPABILITY=default) against its AVX2 kernels: 0 in every case
# (full-size pictures: at most 1 level, mean 3e-5); a changed edit of pixel-two-stage moves it by 6 (t0 0.5 ->
# 0.48), 7 (ode -> ddim), 20 (3 -> 4 steps).
FINGERPRINT_TOLERANCE = 2


def fingerprint(res) -> list[str]:
    """Each output image pooled to FINGERPRINT_SIDE² RGB pixels, as hex: what must hold on any machine."""
    side = FINGERPRINT_SIDE
    return [im.convert("RGB").resize((side, side), Image.BOX).tobytes().hex() for im in res.images]


def digest_result(res, previews: list[bytes]) -> str:
    h = hashlib.sha256()
    for im in res.images:
        h.update(f"{im.mode}{im.size}".encode())
        h.update(im.tobytes())
    region = None if res.region is None else [res.region.x0, res.region.y0, res.region.x1, res.region.y1]
    facts = {"seeds": res.seeds, "steps": res.steps, "evaluations": res.evaluations,
             "working_size": None if res.working_size is None else list(res.working_size), "region": region,
             "params": res.params}
    h.update(json.dumps(facts, sort_keys=True).encode())
    used = getattr(res, "mask", None)  # the mask the edit used (a hard selection grown), when one was given
    if used is not None:
        h.update(used.tobytes())
    for p in previews:
        h.update(p)
    return h.hexdigest()


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr)).save(buf, "PNG")
    return buf.getvalue()


def cases(root: Path) -> dict[str, Callable[[], tuple[str, list | None]]]:
    """name -> a function that runs the edit and returns its SHA-256 and fingerprint (None: no images)."""
    import torch

    from sdedit.engine import edit
    from sdedit.models import load_model
    from tiny_models import make_unshuffle_folder, make_vp_folder
    from tiny_sd import make_sd_folder

    torch.set_num_threads(1)
    models: dict = {}

    def model(name: str):
        if name not in models:
            if name == "landscape":
                models[name] = load_model("landscape", device="cpu")
            elif name == "conv":  # fully convolutional, native 16 px, refines at most 128 px: every stage kind
                m = load_model(str(make_unshuffle_folder(root / "tiny-conv")), device="cpu")
                m.native_size, m.max_side, m.edge_margin = 16, 128, 0
                models[name] = m
            elif name == "square":  # a fixed-size 32 px DDPM
                models[name] = load_model(str(make_vp_folder(root / "tiny-square")), device="cpu")
            elif name == "sd1":
                models[name] = load_model(str(make_sd_folder(root / "tiny-sd1", "sd1")), device="cpu")
            elif name == "sd1-staged":  # the same checkpoint declaring a 32 px native size: two stages
                m = load_model(str(make_sd_folder(root / "tiny-sd1-staged", "sd1")), device="cpu")
                _set_native(m, 32)
                models[name] = m
        return models[name]

    def run(name: str, image: Image.Image, mask=None, preview: bool = False, **kw) -> tuple[str, list]:
        shots: list[bytes] = []
        m = model(name)
        # A latent model's preview maps latents to RGB by a float32 least-squares fit, whose last bits vary from
        # run to run on an ill-conditioned fit (LAPACK); only its size is hashed. Pixel previews are exact.
        shoot = (lambda a: shots.append(_png(a))) if getattr(m, "kind", "pixel") == "pixel" else (lambda a: shots.append(
            str(np.asarray(a).shape).encode()))
        res = edit(m, image, mask, preview=shoot if preview else None, **kw)
        return digest_result(res, shots), fingerprint(res)

    return {
        "pixel-one-stage": lambda: run("landscape", painting(96, 64, 1), t0=0.5, sde="ode", steps=3, samples=2,
                                       seed=11),
        "pixel-one-stage-vp-hard-mask-rgba": lambda: run("landscape", painting(96, 64, 2, "RGBA"),
                                                         hard_mask(96, 64), t0=0.4, sde="vp", steps=3, seed=12),
        "pixel-one-stage-soft-mask-ve": lambda: run("landscape", painting(80, 72, 3), soft_mask(80, 72), t0=0.3,
                                                    sde="ve", steps=3, seed=13),
        "pixel-empty-mask": lambda: run("landscape", painting(64, 48, 4), Image.new("L", (64, 48), 0), t0=0.5,
                                        seed=14, samples=2),
        "pixel-two-stage": lambda: run("landscape", painting(352, 264, 5), t0=0.5, sde="ode", steps=3, seed=15,
                                       preview=True, preview_every=2),
        "pixel-two-stage-hard-mask": lambda: run("landscape", painting(352, 264, 6), hard_mask(352, 264),
                                                 t0=0.6, sde="ddim", steps=3, seed=16),
        "conv-stages-and-detail-pass": lambda: run("conv", painting(200, 150, 7), t0=0.5, sde="ode", steps=4,
                                                   seed=17, samples=2, preview=True, preview_every=3),
        "conv-stages-soft-mask-vp": lambda: run("conv", painting(200, 150, 8, "RGBA"), soft_mask(200, 150),
                                                t0=0.5, sde="vp", steps=4, seed=18),
        "square-one-stage-mask": lambda: run("square", painting(36, 30, 9), hard_mask(36, 30), t0=0.5, sde="vp",
                                             steps=4, seed=19),
        "square-two-stage": lambda: run("square", painting(80, 60, 10), t0=0.5, sde="ode", steps=4, seed=20),
        "latent-one-stage": lambda: run("sd1", painting(64, 48, 21), t0=0.6, sde="ode", steps=3, seed=21,
                                        prompt="a lake", samples=2, preview=True, preview_every=2),
        "latent-one-stage-hard-mask-rgba": lambda: run("sd1", painting(64, 48, 22, "RGBA"), hard_mask(64, 48),
                                                       t0=0.5, sde="ddim", steps=3, seed=22, guidance=3.0,
                                                       prompt="hills", negative_prompt="fog"),
        "latent-empty-mask": lambda: run("sd1", painting(64, 48, 23), Image.new("L", (64, 48), 0), t0=0.5, seed=23),
        "latent-two-stage": lambda: run("sd1-staged", painting(96, 80, 24), t0=0.5, sde="ode", steps=4, seed=24,
                                        prompt="a lake", preview=True, preview_every=2),
        "latent-two-stage-soft-mask-vp": lambda: run("sd1-staged", painting(96, 80, 25), soft_mask(96, 80),
                                                     t0=0.5, sde="vp", steps=4, seed=25, samples=2),
        "budget-estimates": lambda: (_budget_digest(model), None),  # integers: the same bytes everywhere
    }


def _set_native(model, side: int) -> None:
    """A latent model's native size (named native_resolution before the model facts were unified)."""
    if hasattr(model, "native_resolution"):
        model.native_resolution = side
    model.native_size = side


def _budget_digest(model) -> str:
    """The job budget's work estimate for the models above at several canvas sizes (it mirrors the engine's
    sizing), and for a model it never saw."""
    from sdedit.api.budget import Budget

    budget = Budget("cpu", max_work=10**12)
    names = ("landscape", "conv", "square", "sd1", "sd1-staged")
    for name in names:
        m = model(name)
        budget.learn_model(m) if name != "sd1-staged" else None
    rows = []
    sizes = [(64, 48), (96, 64), (300, 200), (352, 264), (1000, 700), (1100, 900), (2048, 1536), (5000, 3000)]
    for name in names:
        m = model(name)
        if name == "sd1-staged":
            continue
        for w, h in sizes:
            for sde, t0, steps in (("vp", 0.5, None), ("ode", 0.3, None), ("ve", 0.7, 5), ("ddim", 0.5, 7)):
                work = budget.estimate(m.id, m.resolution, w, h, t0, sde, steps, 2)
                rows.append([name, w, h, sde, t0, steps, work.width, work.height, work.samples, work.steps])
    for w, h in sizes:
        work = budget.estimate("never-loaded", None, w, h, 0.5, "vp", None, 1)
        rows.append(["never-loaded", w, h, work.width, work.height, work.samples, work.steps])
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def compute(only: list[str] | None = None) -> dict[str, tuple[str, list | None]]:
    """name -> (SHA-256, fingerprint) for every case (or those in only)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        table = cases(Path(tmp))
        return {name: fn() for name, fn in table.items() if not only or name in only}


def environment() -> dict:
    """What the bytes depend on besides the code: the torch build, the CPU architecture and the instruction set
    torch's kernels were built for and chose at run time (AVX2 and AVX-512 round differently)."""
    import platform

    import torch

    return {"torch": torch.__version__, "machine": platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def recorded() -> dict:
    """The recorded bytes per environment and the fingerprints: {"recordings": [...], "fingerprints": {...}}."""
    return json.loads(HASHES.read_text())


def recording_for(env: dict, data: dict) -> dict | None:
    """The recorded hashes of this environment, if it has any."""
    return next((r["hashes"] for r in data["recordings"] if r["environment"] == env), None)


def fingerprint_gaps(got: dict, fingerprints: dict) -> dict[str, int]:
    """name -> the largest difference (0-255) between this run's fingerprint and the recorded one."""
    gaps = {}
    for name, (_, fp) in got.items():
        want = fingerprints.get(name)
        if fp is None or want is None:
            continue
        if len(fp) != len(want) or any(len(a) != len(b) for a, b in zip(fp, want)):
            gaps[name] = 255
        else:
            gaps[name] = max((int(np.abs(np.frombuffer(bytes.fromhex(a), np.uint8).astype(int)
                                         - np.frombuffer(bytes.fromhex(b), np.uint8)).max())
                              for a, b in zip(fp, want)), default=0)
    return gaps


def moved_beyond_noise(got: dict, fingerprints: dict) -> dict[str, int]:
    """The cases whose fingerprint moved more than float noise does across machines, with their gaps."""
    return {name: gap for name, gap in fingerprint_gaps(got, fingerprints).items() if gap > FINGERPRINT_TOLERANCE}


def main() -> int:
    got = compute()
    for name, (digest, _) in got.items():
        print(f"{digest}  {name}")
    env = environment()
    hashes = {name: digest for name, (digest, _) in got.items()}
    if "--write" in sys.argv:  # outputs changed on purpose: other machines' bytes are stale now
        data = {"recordings": [{"environment": env, "hashes": hashes}],
                "fingerprints": {name: fp for name, (_, fp) in got.items() if fp is not None}}
        HASHES.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {HASHES} for {env}")
    elif "--add-machine" in sys.argv:  # the same code on another machine: its bytes, if its pictures agree
        data = recorded()
        print("largest fingerprint difference per case:", fingerprint_gaps(got, data["fingerprints"]))
        moved = moved_beyond_noise(got, data["fingerprints"])
        if moved:
            print(f"not added: these outputs differ beyond float noise, the code changed them: {moved}")
            return 1
        data["recordings"] = [r for r in data["recordings"] if r["environment"] != env]
        data["recordings"].append({"environment": env, "hashes": hashes})
        HASHES.write_text(json.dumps(data, indent=1) + "\n")
        print(f"added {env} to {HASHES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
