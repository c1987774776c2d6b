"""`python -m sdedit.train`: train (or resume, or just export) the embedded landscape model."""
from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from .loop import TrainConfig, export_from_checkpoint, train


def _minutes_until(hhmm: str) -> float:
    now = dt.datetime.now(dt.timezone.utc)
    h, m = (int(v) for v in hhmm.split(":"))
    end = now.replace(hour=h, minute=m, second=0, microsecond=0)
    if end <= now:
        raise SystemExit(f"--until {hhmm} UTC is already past; give a later time or use --minutes.")
    return (end - now).total_seconds() / 60


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sdedit.train", description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("runs/landscape"), help="run folder (checkpoint, loss.csv)")
    ap.add_argument("--data", type=Path, default=None, help="folder with scenes_*.npy (default OUT/data)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt")
    ap.add_argument("--steps", type=int, default=1_000_000, help="stop after this many steps in this run")
    ap.add_argument("--minutes", type=float, default=100.0, help="wall-clock budget of this run")
    ap.add_argument("--until", default=None, help="stop at this UTC time HH:MM (overrides --minutes)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128, help="training crop size (multiple of 32)")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--export", type=Path, default=None, help="write the EMA model folder here at the end")
    ap.add_argument("--export-only", action="store_true", help="export OUT/ckpt.pt's EMA to --export and exit")
    ap.add_argument("--eps-skip", type=float, default=0.5,
                    help="data std for the Wiener skip of the epsilon output (0 = plain UNet output)")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from an exported model folder (e.g. server/sdedit/weights/landscape)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16 autocast on a GPU (weights and optimizer stay fp32)")
    ap.add_argument("--ema-decay", type=float, default=0.998)
    ap.add_argument("--export-every", type=float, default=20.0, help="minutes between EMA exports to OUT/ema_latest")
    ap.add_argument("--tiny", action="store_true", help="tiny network (for smoke tests)")
    ap.add_argument("--attention", type=int, default=0, metavar="HEAD_DIM",
                    help="self-attention in the mid block (lowest resolution) with heads of this width; with "
                         "--init from weights without it, it starts as the identity")
    a = ap.parse_args(argv)
    if a.export_only:
        if not a.export:
            ap.error("--export-only needs --export FOLDER")
        if not (a.out / "ckpt.pt").exists():
            ap.error(f"no checkpoint at {a.out / 'ckpt.pt'}; train first")
        export_from_checkpoint(a.out, a.export)
        print(f"exported EMA weights of {a.out / 'ckpt.pt'} to {a.export}")
        return
    if a.crop % 32:
        ap.error("--crop must be a multiple of 32")
    minutes = _minutes_until(a.until) if a.until else a.minutes
    overrides = dict(block_out_channels=(32, 32, 32, 32), layers_per_block=1, norm_num_groups=8) if a.tiny else {}
    if a.attention:
        overrides.update(add_attention=True, attention_head_dim=a.attention)
    train(TrainConfig(out=a.out, data=a.data, steps=a.steps, minutes=minutes, batch=a.batch, crop=a.crop,
                      lr=a.lr, threads=a.threads, device=a.device, resume=a.resume, export=a.export,
                      eps_skip=a.eps_skip or None, init=a.init, unet_overrides=overrides,
                      precision=a.precision, ema_decay=a.ema_decay, export_every_minutes=a.export_every))


if __name__ == "__main__":
    main()
