"""Speed and quality of each sampler against the reference loop, in one run, on one model and input set.

    .venv/bin/python benchmarks/speed.py [--model ID_OR_PATH] [--size 128] [--guides 16] [--t0 0.5]
                                         [--device auto] [--precision auto] [--quick]

The reference is the official code's loop: noise the guide to DDPM step T0 = t0*1000, then call the network
T0 times with ancestral DDPM steps (no respacing, no masks, no engine). Every sampler edits the same stroke
guides (made from held-out scenes as in benchmarks/quality.py); quality is measured against the reference's
results (RMS difference on the 0-255 scale: how far a sampler's edit lies from the reference's edit of the
same guide; stochastic samplers differ from it even at equal quality, so compare with the 'vp T0' row, which
is the reference algorithm run through the engine with other noise) and as realism (KID on the fixed texture
features of sdedit.synth.metrics against held-out real scenes; lower is better; ± is the std over subsets).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from sdedit.engine import edit
from bench import call_seconds as bare_call_seconds
from sdedit.imaging import from_tensor, to_tensor
from sdedit.models import load_model
from sdedit.synth.scenes import HELD_OUT_SEED_BASE
from sdedit.synth.metrics import RealismKID, faithfulness_l2
from sdedit.synth.scenes import render_scene
from sdedit.synth.strokes import stroke_painting


def reference_loop(model, guide: np.ndarray, t0: float, seed: int) -> tuple[np.ndarray, int]:
    """The official SDEdit VP loop: T0 network calls, 'fixed small' variance. Returns (image, calls)."""
    torch.manual_seed(seed)
    abar = model.alphas_cumprod
    t_start = round(t0 * len(abar))
    x0 = to_tensor(guide).to(model.device)
    a = float(abar[t_start - 1])
    x = x0 * a**0.5 + torch.randn_like(x0) * (1 - a) ** 0.5
    with torch.inference_mode():
        for i in reversed(range(t_start)):
            a_t = float(abar[i])
            a_prev = float(abar[i - 1]) if i > 0 else 1.0
            beta = 1 - a_t / a_prev
            eps = model.eps_vp(x, i)
            x = (x - beta / (1 - a_t) ** 0.5 * eps) / (1 - beta) ** 0.5
            if i > 0:
                x = x + ((1 - a_prev) / (1 - a_t) * beta) ** 0.5 * torch.randn_like(x)
    return np.clip(np.rint(from_tensor(x[0])), 0, 255).astype(np.uint8), t_start


def scenes(n: int, offset: int, size: int) -> np.ndarray:
    out = []
    for s in range(n):
        im = render_scene(HELD_OUT_SEED_BASE + offset + s, 256)
        out.append(np.asarray(Image.fromarray(im).resize((size, size), Image.LANCZOS)) if size != 256 else im)
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--precision", default=None)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--guides", type=int, default=16)
    ap.add_argument("--real", type=int, default=64)
    ap.add_argument("--t0", type=float, default=0.5)
    ap.add_argument("--configs", nargs="*", default=["vp:T0", "vp:default", "ve:default", "ddim:20", "ode:20", "ode:10"],
                    help="sampler:steps pairs; steps T0 (= t0 x 1000), default (the model's) or a number")
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 guides, 32x32, t0 0.1")
    a = ap.parse_args()
    if a.quick:
        a.guides, a.real, a.size, a.t0 = 3, 6, 32, 0.1
    if a.threads:
        torch.set_num_threads(a.threads)
    model = load_model(a.model, a.device, a.precision)
    t_start = round(a.t0 * len(model.alphas_cumprod))
    sources = scenes(a.guides, 0, a.size)
    guides = np.stack([stroke_painting(im, seed=i) for i, im in enumerate(sources)])
    real = scenes(a.real, 100_000, a.size)
    sub = min(50, a.guides, a.real)
    realism = RealismKID(real, guides, subset_size=sub)
    realism_half = RealismKID(real, guides, half=True, subset_size=sub)  # see metrics.half_scale
    one_call = bare_call_seconds(model, (a.size, a.size))
    print(f"model {model.id} on {model.device} ({model.dtype}), {a.guides} guides at {a.size}x{a.size}, t0 {a.t0} "
          f"(T0 = {t_start}), {torch.get_num_threads()} threads, one bare network call {one_call * 1000:.1f} ms")

    rows = []
    t = time.perf_counter()
    ref = [reference_loop(model, g, a.t0, seed=i) for i, g in enumerate(guides)]
    ref_seconds = (time.perf_counter() - t) / len(guides)
    ref_images = np.stack([r[0] for r in ref])
    rows.append(("reference loop", t_start, ref_seconds, ref_images))
    for spec in a.configs:
        sde, steps = spec.split(":")
        n = t_start if steps == "T0" else (None if steps == "default" else int(steps))
        t = time.perf_counter()
        outs = [edit(model, Image.fromarray(g), t0=a.t0, sde=sde, steps=n, seed=1000 + i) for i, g in enumerate(guides)]
        seconds = (time.perf_counter() - t) / len(guides)
        rows.append((f"{sde} {steps}", outs[0].steps, seconds, np.stack([np.asarray(o.images[0]) for o in outs])))

    print(f"{'sampler':<16} {'calls':>6} {'% ref':>6} {'s/edit':>8} {'speed-up':>8} {'overhead':>8} "
          f"{'L2 to ref':>9} {'L2 guide':>9} {'KID':>8} {'± std':>7} {'KID half':>8} {'± std':>7}")
    for name, calls, seconds, images in rows:
        (k, ks), (kh, khs) = realism(images), realism_half(images)
        l2_ref = float(faithfulness_l2(images, ref_images).mean())
        l2_guide = float(faithfulness_l2(images, guides).mean())
        print(f"{name:<16} {calls:>6} {100 * calls / t_start:>5.1f}% {seconds:>8.2f} {ref_seconds / seconds:>7.1f}x "
              f"{seconds / (calls * one_call):>8.3f} {l2_ref:>9.1f} {l2_guide:>9.1f} {k:>8.4f} {ks:>7.4f} {kh:>8.4f} {khs:>7.4f}")
    (k, ks), (kh, khs) = realism(guides), realism_half(guides)
    print(f"{'(the guides)':<16} {'':>6} {'':>6} {'':>8} {'':>8} {'':>8} {'':>9} {0.0:>9.1f} {k:>8.4f} {ks:>7.4f} "
          f"{kh:>8.4f} {khs:>7.4f}")


if __name__ == "__main__":
    main()
