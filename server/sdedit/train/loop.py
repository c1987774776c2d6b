"""Training loop of the embedded model: epsilon-prediction, DDPM linear schedule, MSE, AdamW, EMA.

Runs within a wall-clock budget, checkpoints every few minutes (model + EMA + optimizer + step) so a
killed run resumes with --resume, logs to loss.csv, and exports the EMA weights at the end.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..models.unshuffle_unet import UnshuffleEpsNet, make_scheduler
from .dataset import CropSampler, DeviceCropSampler, load_scenes

TRAINED_ON = ("procedural landscape scenes rendered by sdedit.synth.scenes (numpy fractal noise: skies, clouds, "
              "mountains with snow, lakes/sea with reflections, meadows, beaches, trees; day/golden/sunset/"
              "dusk/overcast) and, from v3, 3-D heightfield landscapes rendered by sdedit.synth.terrain, 256x256, "
              "random {crop}x{crop} crops of the scenes and of the whole scenes at half scale")
DESCRIPTION = ("Embedded default: small landscape DDPM (4x pixel-unshuffle + UNet2DModel), trained by this project "
               "(docs/model_card.md)")


@dataclass
class TrainConfig:
    out: Path
    data: Optional[Path] = None
    steps: int = 1_000_000
    minutes: float = 100.0
    batch: int = 16
    crop: int = 128
    lr: float = 2e-4
    warmup: int = 200
    ema_decay: float = 0.998
    threads: int = 2
    device: str = "auto"
    resume: bool = False
    export: Optional[Path] = None
    ckpt_minutes: float = 5.0
    export_every_minutes: float = 20.0
    seed: int = 0
    eps_skip: float | None = 0.5
    init: Optional[Path] = None
    unet_overrides: dict = field(default_factory=dict)
    precision: str = "fp32"  # "bf16": autocast the forward/backward on CUDA (weights and Adam stay fp32)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto.")
    return torch.device(name)


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def export_ema(ema: UnshuffleEpsNet, folder: Path, step: int, elapsed: float, loss: float | None,
               crop: int = 96) -> None:
    """Write the EMA weights in the model-folder format (float16 safetensors)."""
    net = copy.deepcopy(ema).to("cpu").float()
    extra = {"description": DESCRIPTION, "trained_on": TRAINED_ON.format(crop=crop),
             "training": {"steps": step, "wall_minutes": round(elapsed / 60, 1),
                          "final_loss_ema": None if loss is None else round(loss, 5)}}
    net.save_folder(folder, extra=extra)


def train(cfg: TrainConfig) -> Path:
    """Run training; returns the checkpoint path."""
    torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    cfg.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = cfg.out / "ckpt.pt"
    torch.manual_seed(cfg.seed)

    model = UnshuffleEpsNet.new(eps_skip=cfg.eps_skip, **cfg.unet_overrides).to(device)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    step, elapsed_before, loss_avg = 0, 0.0, None
    if cfg.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, elapsed_before, loss_avg = ck["step"], ck["elapsed"], ck.get("loss_avg")
        print(f"resumed from {ckpt_path} at step {step} ({elapsed_before / 60:.1f} min trained)", flush=True)
    elif cfg.resume and not cfg.init:
        print(f"--resume: no checkpoint at {ckpt_path}, starting fresh", flush=True)
    if cfg.init and not (cfg.resume and ckpt_path.exists()):
        # continue from exported weights (e.g. the committed model on a new machine): model and EMA start
        # there; the optimizer starts fresh, so the warm-up runs again
        src = UnshuffleEpsNet.from_folder(cfg.init)
        added = load_grown(model.unet, src.unet.state_dict())
        load_grown(ema.unet, src.unet.state_dict())
        if added:
            print(f"new layers (not in {cfg.init}, start as identity): {len(added)} tensors", flush=True)
        model.eps_skip = ema.eps_skip = src.eps_skip
        history = json.loads((Path(cfg.init) / "sdedit.json").read_text()).get("training", {})
        step = int(history.get("steps", 0))
        elapsed_before = float(history.get("wall_minutes", 0.0)) * 60
        print(f"initialised from {cfg.init} (step {step}, {elapsed_before / 60:.0f} min trained, eps skip "
              f"{src.eps_skip})", flush=True)

    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M params, size_multiple {model.size_multiple}, eps skip "
          f"{model.eps_skip}, device {device}", flush=True)
    scenes = load_scenes(cfg.data or cfg.out / "data")
    print(f"data: {len(scenes)} scenes {scenes.shape[1]}x{scenes.shape[2]}", flush=True)
    if device.type == "cuda":
        sampler = DeviceCropSampler(scenes, cfg.crop, device, seed=cfg.seed + step)
        torch.backends.cudnn.benchmark = True
    else:
        sampler = CropSampler(scenes, cfg.crop, np.random.default_rng(cfg.seed + step))
    if cfg.precision not in ("fp32", "bf16"):
        raise SystemExit(f"--precision {cfg.precision}: use fp32 or bf16")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")

    alphas_bar = make_scheduler().alphas_cumprod.to(device)
    log_new = not (cfg.out / "loss.csv").exists()
    log_f = open(cfg.out / "loss.csv", "a", newline="")
    log = csv.writer(log_f)
    if log_new:
        log.writerow(["step", "loss", "loss_ema", "lr", "elapsed_s", "samples"])

    t_start = time.time()
    budget_s = cfg.minutes * 60
    last_ckpt = last_export = t_start
    run_steps = 0

    def checkpoint() -> None:
        _save_atomic({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                      "step": step, "elapsed": elapsed_before + time.time() - t_start, "loss_avg": loss_avg,
                      "eps_skip": model.eps_skip,
                      "unet_config": dict(model.unet.config)}, ckpt_path)

    model.train()
    while run_steps < cfg.steps:
        now = time.time()
        frac = (now - t_start) / budget_s
        if frac >= 1.0:
            break
        # warmup, then constant, then a linear decay to 20% over the last quarter of this run's budget
        lr = cfg.lr * min(1.0, (run_steps + 1) / cfg.warmup if cfg.init else (step + 1) / cfg.warmup) * (1.0 if frac < 0.75 else 1.0 - 0.8 * (frac - 0.75) / 0.25)
        for g in opt.param_groups:
            g["lr"] = lr
        x0 = sampler.batch(cfg.batch).to(device)
        t = torch.randint(0, 1000, (cfg.batch,), device=device)
        noise = torch.randn_like(x0)
        ab = alphas_bar[t].view(-1, 1, 1, 1)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        with autocast:
            pred = model(xt, t.float())
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        d = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - d)
        step += 1
        run_steps += 1
        lv = float(loss.detach())
        if not math.isfinite(lv):
            raise RuntimeError(f"loss became {lv} at step {step}; lower --lr and --resume from the last checkpoint")
        loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
        elapsed = elapsed_before + time.time() - t_start
        if step % 10 == 0:
            log.writerow([step, f"{lv:.5f}", f"{loss_avg:.5f}", f"{lr:.3g}", f"{elapsed:.1f}", step * cfg.batch])
            log_f.flush()
        if step % 50 == 0:
            print(f"step {step} loss {loss_avg:.4f} lr {lr:.2e} {elapsed / 60:.1f} min", flush=True)
        if time.time() - last_ckpt > cfg.ckpt_minutes * 60:
            checkpoint()
            last_ckpt = time.time()
        if time.time() - last_export > cfg.export_every_minutes * 60:
            export_ema(ema, cfg.out / "ema_latest", step, elapsed, loss_avg, cfg.crop)
            last_export = time.time()
    checkpoint()
    log_f.close()
    elapsed = elapsed_before + time.time() - t_start
    print(f"done: step {step}, {elapsed / 60:.1f} min trained, loss_ema {loss_avg}", flush=True)
    export_ema(ema, cfg.out / "ema_latest", step, elapsed, loss_avg, cfg.crop)
    if cfg.export:
        export_ema(ema, cfg.export, step, elapsed, loss_avg, cfg.crop)
        print(f"exported EMA weights to {cfg.export}", flush=True)
    return ckpt_path


def load_grown(unet: torch.nn.Module, state: dict) -> list[str]:
    """Load weights of a smaller network into `unet` that adds layers to it (mid-block attention): every
    tensor of `state` must fit; the added attention's output projection starts at zero, so the grown network
    computes exactly what the old one did and training starts from today's model. Returns the added names."""
    try:
        missing, unexpected = unet.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise SystemExit(f"--init weights do not fit this network: {str(exc).splitlines()[-1].strip()}") from None
    if unexpected or any(".attentions." not in k for k in missing):
        raise SystemExit(f"--init weights do not fit this network: missing {missing[:4]}, unexpected {unexpected[:4]}")
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if name in missing and ".to_out." in name:
                p.zero_()
    return list(missing)


def export_from_checkpoint(out: Path, folder: Path) -> None:
    """Export the EMA weights of out/ckpt.pt to `folder` without training."""
    ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    from diffusers import UNet2DModel
    ema = UnshuffleEpsNet(UNet2DModel.from_config(ck["unet_config"]), eps_skip=ck.get("eps_skip"))
    ema.load_state_dict(ck["ema"])
    export_ema(ema, folder, ck["step"], ck["elapsed"], ck.get("loss_avg"))
