"""Figures and numbers for docs/model_card.md: loss curve, sample edits at t0 0.3/0.5/0.7, timings.

    python -m sdedit.train.card --run runs/landscape --model server/sdedit/weights/landscape --out docs/model_card
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from sdedit.engine import edit
from sdedit.models import load_model

from ..synth.guides import EXAMPLES

T0S = (0.3, 0.5, 0.7)
REPO = Path(__file__).resolve().parents[3]


def loss_plot(csv_path: Path, out: Path, marks: list[tuple[int, str]] = ()) -> dict:
    """Training loss (smoothed) against step, log-scaled loss axis, drawn with Pillow.

    marks: (step, label) pairs drawn as vertical lines, e.g. where training moved to another machine.
    """
    rows = list(csv.DictReader(open(csv_path)))
    if len(rows) < 2:
        return {}
    steps = [int(r["step"]) for r in rows]
    raw = [float(r["loss"]) for r in rows]
    ema = [float(r["loss_ema"]) for r in rows]
    W, H, L, R, T, B = 640, 360, 60, 20, 30, 45
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    lo, hi = math.log10(max(min(raw), 1e-3)), math.log10(max(raw))
    lo, hi = math.floor(lo * 10) / 10, math.ceil(hi * 10) / 10

    def pt(s: int, v: float) -> tuple[float, float]:
        x = L + s / max(steps[-1], 1) * (W - L - R)
        y = H - B - (math.log10(max(v, 1e-3)) - lo) / max(hi - lo, 1e-6) * (H - T - B)
        return x, y

    d.rectangle([L, T, W - R, H - B], outline="black")
    for k in range(6):
        v = 10 ** (lo + (hi - lo) * k / 5)
        d.text((5, pt(0, v)[1] - 6), f"{v:.3f}", fill="black")
        s = int(steps[-1] * k / 5)
        d.text((pt(s, 10**lo)[0] - 10, H - B + 6), str(s), fill="black")
    for s, text in marks:
        x = pt(s, 10**lo)[0]
        d.line([x, T, x, H - B], fill=(150, 150, 150))
        d.text((x + 4, T + 4), text, fill=(90, 90, 90))
    d.line([pt(s, v) for s, v in zip(steps, raw)], fill=(190, 190, 230), width=1)
    d.line([pt(s, v) for s, v in zip(steps, ema)], fill=(30, 30, 160), width=2)
    elapsed = float(rows[-1]["elapsed_s"])
    d.text((L, 8), f"training loss (MSE on epsilon), light: per 10 steps, dark: EMA; {steps[-1]} steps, "
                   f"{elapsed / 60:.0f} min", fill="black")
    d.text((W // 2 - 10, H - 18), "step", fill="black")
    img.save(out)
    return {"steps": steps[-1], "wall_minutes": round(elapsed / 60, 1), "final_loss_ema": ema[-1],
            "samples": int(rows[-1]["samples"])}


def sample_grid(model, out: Path, seed: int = 0, sde: str = "vp", steps: int | None = None) -> None:
    """Rows: each bundled guide (shown at 256), then its edits at t0 = 0.3, 0.5, 0.7."""
    tiles = []
    for name in EXAMPLES:
        guide = Image.open(REPO / "examples" / name).convert("RGB")
        row = [guide]
        for t0 in T0S:
            res = edit(model, guide, t0=t0, seed=seed, sde=sde, steps=steps).images[0]
            row.append(res)
            if guide.size != (256, 256):
                suffix = "" if sde == "vp" else f"_{sde}"
                res.save(out.parent / f"{Path(name).stem}_t{int(t0 * 10)}{suffix}.png")
        tiles.append([im.resize((256, 256), Image.LANCZOS) for im in row])
    pad, lab = 4, 18
    W = 4 * 256 + 5 * pad
    H = len(tiles) * (256 + pad) + pad + lab
    grid = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(grid)
    for c, text in enumerate(["stroke guide"] + [f"t0 = {t} ({sde})" for t in T0S]):
        d.text((pad + c * (256 + pad) + 90, 3), text, fill="black")
    for r, row in enumerate(tiles):
        for c, im in enumerate(row):
            grid.paste(im, (pad + c * (256 + pad), lab + pad + r * (256 + pad)))
    # a 256-colour palette keeps this ~1000x1000 figure under 1 MB in git; the difference is invisible here
    grid.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)


@torch.no_grad()
def timings(model) -> dict:
    """Seconds per network evaluation and per default edit (VP) at 256 and 512."""
    out = {}
    for s in (256, 512):
        x = torch.randn(1, 3, s, s)
        model.net(x, torch.tensor([500.0]))
        t = time.perf_counter()
        for _ in range(3):
            model.net(x, torch.tensor([500.0]))
        out[f"s_per_eval_{s}"] = round((time.perf_counter() - t) / 3, 3)
        guide = Image.fromarray(np.full((s, s, 3), 120, np.uint8))
        t = time.perf_counter()
        r = edit(model, guide, t0=0.5, seed=0)
        out[f"s_per_edit_{s}"] = round(time.perf_counter() - t, 2)
        out["default_vp_steps"] = r.steps
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("runs/landscape"))
    ap.add_argument("--model", default=None, help="model folder (default: the embedded default)")
    ap.add_argument("--out", type=Path, default=Path("docs/model_card"))
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--ode-steps", type=int, default=0, help="also draw samples_ode.png with the ode sampler")
    ap.add_argument("--mark", action="append", default=[], metavar="STEP:LABEL",
                    help="vertical line on the loss plot, e.g. 8749:'GPU from here' (repeatable)")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    a.out.mkdir(parents=True, exist_ok=True)
    model = load_model(a.model, device="cpu")
    info: dict = {"params": sum(p.numel() for p in model.net.parameters())}
    if (a.run / "loss.csv").exists():
        marks = [(int(m.split(":", 1)[0]), m.split(":", 1)[1]) for m in a.mark]
        info.update(loss_plot(a.run / "loss.csv", a.out / "loss.png", marks))
    sample_grid(model, a.out / "samples.png")
    if a.ode_steps:
        sample_grid(model, a.out / "samples_ode.png", sde="ode", steps=a.ode_steps)
    if not a.skip_timing:
        info.update(timings(model))
    (a.out / "card.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
