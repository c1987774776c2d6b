"""GPU speed of the paper's 256x256 DDPM architecture: precision, compile, batching, samplers vs the reference loop.

    python benchmarks/gpu.py [--configs fp32 bf16 bf16+compile] [--batch 4] [--t0 0.5] [--out table.md]

Random weights in the architecture of the official SDEdit/DDPM LSUN 256x256 checkpoints (about 114M parameters,
attention at 16x16), so no checkpoint download is needed; speed does not depend on the weights. For each
configuration it prints one bare network call (batch 1 and batch K), the achieved TFLOP/s and its fraction of
the bf16 matrix-product rate measured on the same GPU in the same run, and seconds per 256x256 edit for the
reference loop (T0 plain DDPM calls, as the official code) and for the engine's samplers. Needs a CUDA GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from speed import reference_loop  # noqa: E402  (a sibling: benchmarks/ is on the path, benchmarks/bench.py)

from sdedit.engine import edit  # noqa: E402
from sdedit.models import registry  # noqa: E402
from sdedit.models import load_model, timing  # noqa: E402

DDPM_256 = dict(  # google/ddpm-ema-church-256's UNet (the paper's LSUN models)
    sample_size=256, in_channels=3, out_channels=3, layers_per_block=2,
    block_out_channels=(128, 128, 256, 256, 512, 512),
    down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
)


DEVICE = "cuda"
SMOKE_UNET = dict(DDPM_256, block_out_channels=(32,) * 6, norm_num_groups=8)  # --smoke: the same shape, thin


def make_random_ddpm(folder: Path, config: dict) -> int:
    """Write a random-weight DDPM-256 model folder (unet/ + scheduler/); returns its parameter count."""
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(**config)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    DDPMScheduler(beta_schedule="linear", num_train_timesteps=1000).save_pretrained(folder / "scheduler")
    return sum(p.numel() for p in unet.parameters())


def sync() -> None:
    timing.sync(DEVICE)


def matmul_tflops(n: int = 8192, repeats: int = 10) -> float:
    """Dense bf16 matrix-product rate of this GPU (random data), the ceiling the network is compared with."""
    a = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync()
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e12


def network_flops(model, batch: int) -> float:
    """Floating-point operations of one network call (convolutions, matmuls, attention) at 256x256."""
    from torch.utils.flop_counter import FlopCounterMode

    x = timing.network_input(model, 256, 256, batch=batch, random=True)
    with FlopCounterMode(display=False) as counter:
        model.eps_vp(x, 400)
    return float(counter.get_total_flops())


def call_seconds(model, batch: int, repeats: int = 10) -> tuple[float, float]:
    """(first call seconds, median seconds of later calls) at batch size `batch`, 256x256."""
    t = timing.time_call(model, (256, 256), batch=batch, repeats=repeats, warmup=3)
    return t.first, t.median


def timed(fn) -> float:
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="*", default=["fp32", "bf16", "bf16+compile"])
    ap.add_argument("--batch", type=int, default=4, help="K samples per edit for the batched rows")
    ap.add_argument("--t0", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=None, help="also write the results here (JSON)")
    ap.add_argument("--smoke", action="store_true", help="check the script on the CPU: a thin network, t0 0.06")
    a = ap.parse_args()
    global DEVICE
    if a.smoke:
        DEVICE, a.t0 = "cpu", 0.06
    elif not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA GPU; none is visible to PyTorch (--smoke runs on the CPU).")

    folder = Path(tempfile.mkdtemp()) / "ddpm256-random"
    n_params = make_random_ddpm(folder, SMOKE_UNET if a.smoke else DDPM_256)
    peak = matmul_tflops(512 if a.smoke else 8192)
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (smoke run)"
    print(f"{name}, torch {torch.__version__}; DDPM-256 architecture with random weights, {n_params / 1e6:.1f}M "
          f"params; bf16 8192^3 matrix product: {peak:.0f} TFLOP/s (the ceiling below)", flush=True)
    guide = (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8)  # speed is picture-blind
    t_start = round(a.t0 * 1000)
    results = {"gpu": name, "torch": torch.__version__, "params": n_params, "bf16_matmul_tflops": peak,
               "t0": a.t0, "rows": []}
    os.environ["SDEDIT_COMPILE"] = "0"
    plain = load_model(str(folder), DEVICE, "fp32")
    flops = {b: network_flops(plain, b) for b in (1, a.batch)}  # the same count at every precision
    del plain
    for cfg in a.configs:
        precision, _, extra = cfg.partition("+")
        os.environ["SDEDIT_COMPILE"] = "1" if extra == "compile" else "0"
        registry._cache.clear()
        torch.compiler.reset()
        t = time.perf_counter()
        model = load_model(str(folder), DEVICE, precision)
        load_s = time.perf_counter() - t
        first1, one = call_seconds(model, 1)
        firstk, onek = call_seconds(model, a.batch)
        row = {"config": cfg, "load_s": load_s, "first_call_s": first1, "first_call_batch_s": firstk,
               "call_ms": one * 1e3, "call_batch_ms": onek * 1e3, "batch": a.batch}
        row["tflops"], row["tflops_batch"] = flops[1] / one / 1e12, flops[a.batch] / onek / 1e12
        ref_s = timed(lambda: reference_loop(model, guide, a.t0, seed=0))
        row["reference_s"] = ref_s
        edit(model, Image.fromarray(guide), t0=a.t0, sde="vp", steps=25, seed=0)  # warm-up
        for sde, steps in (("vp", 50), ("vp", 25), ("ode", 20), ("ode", 10)):
            row[f"{sde}{steps}_s"] = timed(lambda: edit(model, Image.fromarray(guide), t0=a.t0, sde=sde,
                                                        steps=steps, seed=1))
        edit(model, Image.fromarray(guide), t0=a.t0, sde="vp", steps=50, seed=0, samples=a.batch)
        row["vp50_batch_s"] = timed(lambda: edit(model, Image.fromarray(guide), t0=a.t0, sde="vp", steps=50,
                                                 seed=1, samples=a.batch))
        results["rows"].append(row)
        print(json.dumps(row), flush=True)
        del model
        registry._cache.clear()
        if DEVICE == "cuda":
            torch.cuda.empty_cache()

    fl1 = flops[1]
    print(f"\none network call at 256x256: {fl1 / 1e9:.0f} GFLOP (batch 1); t0 {a.t0}, T0 = {t_start}\n")
    print(f"| config | first call s | call ms (b=1) | TFLOP/s (b=1) | % of bf16 peak | call ms (b={a.batch}) | "
          f"TFLOP/s (b={a.batch}) | % of peak |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        tf1, tfk = r["tflops"], r["tflops_batch"]
        print(f"| {r['config']} | {r['first_call_s']:.1f} | {r['call_ms']:.2f} | {tf1:.1f} | {100 * tf1 / peak:.1f} % | "
              f"{r['call_batch_ms']:.2f} | {tfk:.1f} | {100 * tfk / peak:.1f} % |")
    print(f"\n| config | reference loop ({t_start} calls) s | vp 50 s | engine overhead | vp 25 s | "
          f"ode 20 s | ode 10 s | speed-up vp 25 | vp 50, K={a.batch} s/sample |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        ovh = r["vp50_s"] / (50 * r["call_ms"] / 1e3)
        print(f"| {r['config']} | {r['reference_s']:.2f} | {r['vp50_s']:.3f} | {ovh:.3f} | "
              f"{r['vp25_s']:.3f} | {r['ode20_s']:.3f} | {r['ode10_s']:.3f} | {r['reference_s'] / r['vp25_s']:.0f}x | "
              f"{r['vp50_batch_s'] / a.batch:.3f} |")
    results["gflop_per_call"] = fl1 / 1e9
    if a.out:
        a.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
