"""Latent SDEdit on the SD 1.5 architecture: our edit against diffusers' img2img pipeline, same components.

    .venv/bin/python benchmarks/latent.py [--size 256] [--steps 4] [--repeats 2] [--device cpu|cuda]
                                          [--precision fp32|bf16] [--compile]

The networks are SD 1.5's real configs (the ones shipped in sdedit/models/sd_configs/sd1: 860M-parameter
UNet, VAE, CLIP ViT-L text encoder) with random weights: speed does not depend on the weights. Both sides
get the same image, prompt, guidance 7.5 (unconditional and conditional halves batched), the same number of
UNet calls (ours: `steps` DDIM steps from t0; diffusers: num_inference_steps = steps / t0, strength = t0)
and include VAE encode, text encoding and VAE decode. Runs alternate (ours, theirs, ours, ...) so that load
from other processes hits both alike. ratio = ours / diffusers: below 1.0 means we are faster.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CONFIGS = Path(__file__).resolve().parent.parent / "server" / "sdedit" / "models" / "sd_configs" / "sd1"


def sketch(size: int) -> Image.Image:
    arr = np.zeros((size, size, 3), np.uint8)
    arr[: size // 2] = (120, 170, 235)
    arr[size // 2: int(size * 0.75)] = (50, 100, 170)
    arr[int(size * 0.75):] = (70, 130, 50)
    return Image.fromarray(arr)


def build(device: torch.device, dtype: torch.dtype, compile_net: bool):
    """SD 1.5 components from the shipped configs, random weights, as our LatentModel."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdedit.models.clip_tokenizer import clip_tokenizer
    from sdedit.models.latent import LatentModel
    from sdedit.models.sd_family import FAMILIES
    from sdedit.models.sd_loader import DEFAULT_STEPS, _alphas_cumprod, _vae_dtype
    from sdedit.models.speed import prepare_network

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(json.loads((CONFIGS / "unet" / "config.json").read_text()))
    vae = AutoencoderKL.from_config(json.loads((CONFIGS / "vae" / "config.json").read_text()))
    text = CLIPTextModel(CLIPTextConfig.from_pretrained(str(CONFIGS / "text_encoder")))
    sched = json.loads((CONFIGS / "scheduler" / "scheduler_config.json").read_text())
    unet = prepare_network(unet, device, dtype, compile_net=compile_net)
    vae = vae.to(device=device, dtype=_vae_dtype(device, dtype)).eval().requires_grad_(False)
    vae.enable_tiling()
    text = text.to(device=device, dtype=dtype).eval().requires_grad_(False)
    abar = _alphas_cumprod(sched)
    sigmas = ((1 - abar) / abar).sqrt()
    model = LatentModel(unet, vae, [text], [clip_tokenizer()], FAMILIES["sd1"], id="sd15-random", native_sde="vp",
                        resolution=None, size_multiple=64, default_steps=dict(DEFAULT_STEPS),
                        sigma_min=float(sigmas[0]), sigma_max=float(sigmas[-1]), device=device, dtype=dtype,
                        alphas_cumprod=abar, max_side=1024)
    model.native_size = None  # one stage at any --size, like img2img: the same UNet calls on both sides
    return model, sched


def pipeline(model, sched: dict):
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline(vae=model.vae, text_encoder=model.text_encoders[0],
                                          tokenizer=model.tokenizers[0], unet=model.unet,
                                          scheduler=DDIMScheduler.from_config(sched), safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


from sdedit.models.timing import sync  # noqa: E402  (one place times network calls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--t0", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--compile", action="store_true", help="torch.compile our UNet (CUDA; the pipeline runs eager)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from sdedit.engine import edit

    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    started = time.perf_counter()
    model, sched = build(device, dtype, compile_net=False)
    print(f"built SD 1.5 (random weights, UNet {sum(p.numel() for p in model.unet.parameters()) / 1e6:.1f}M params) "
          f"in {time.perf_counter() - started:.0f} s", flush=True)
    pipe = pipeline(model, sched)
    ours_model = model
    if args.compile:
        ours_model = model.conditioned(None)
        ours_model.unet = torch.compile(model.unet, dynamic=False)
    image = sketch(args.size)
    prompt = "a mountain lake at dawn, photograph"
    total_steps = round(args.steps / args.t0)

    def timed(run) -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process): on a shared CPU the second is the fairer measure."""
        sync(device)
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        sync(device)
        return time.perf_counter() - wall, time.process_time() - cpu

    def ours() -> tuple[float, float]:
        return timed(lambda: edit(ours_model, image, t0=args.t0, sde="ddim", steps=args.steps, seed=1,
                                  prompt=prompt, guidance=7.5))

    def theirs() -> tuple[float, float]:
        return timed(lambda: pipe(prompt=prompt, image=image, strength=args.t0, num_inference_steps=total_steps,
                                  guidance_scale=7.5, generator=torch.Generator().manual_seed(1)))

    def show(label: str, a: tuple[float, float], b: tuple[float, float]) -> None:
        print(f"{label}: ours {a[0]:.1f} s wall / {a[1]:.1f} s CPU, diffusers {b[0]:.1f} s wall / {b[1]:.1f} s CPU",
              flush=True)

    with torch.inference_mode():
        show("warm-up", ours(), theirs())  # (and compilation)
        runs = {"ours": [], "diffusers": []}
        for i in range(args.repeats):
            runs["ours"].append(ours())
            runs["diffusers"].append(theirs())
            show(f"run {i + 1}", runs["ours"][-1], runs["diffusers"][-1])
    times = {k: [w for w, _ in v] for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {device}, {args.precision}{' + compile (ours)' if args.compile else ''}")
    print(f"SD 1.5 architecture, {args.size}x{args.size}, t0 {args.t0}, {args.steps} DDIM steps "
          f"(diffusers: num_inference_steps {total_steps}, strength {args.t0}), guidance 7.5, {args.repeats} runs each\n")
    print("| | ours (sdedit edit) | diffusers img2img | ratio ours/diffusers |")
    print("|---|---|---|---|")
    print(f"| median s per edit (wall) | {med['ours']:.2f} | {med['diffusers']:.2f} | {med['ours'] / med['diffusers']:.3f} |")
    print(f"| median CPU s per edit | {cpu['ours']:.2f} | {cpu['diffusers']:.2f} | {cpu['ours'] / cpu['diffusers']:.3f} |")
    print(f"| all runs (s) | {', '.join(f'{t:.2f}' for t in times['ours'])} | "
          f"{', '.join(f'{t:.2f}' for t in times['diffusers'])} | |")


if __name__ == "__main__":
    main()
