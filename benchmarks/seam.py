"""Does a hard rectangular selection still read as a pasted patch? Seams before/after growing the selection.

The artist's usual round trip: a picture already edited (the held-out stroke painting of benchmarks/canvas.py,
edited whole at the same t0: realistic everywhere), then a rectangle across the middle selected, its original
strokes put back inside, and the selection edited again with another seed, three ways:
  grown     the engine as it is: the selection grown and feathered outward (engine/seam.py edit_mask)
  inside    the engine before: feather and colour match inside the selection only (seam.blend)
  hard      no blending at all: the edit pasted back at the outline
line: benchmarks/canvas_metrics.py's line step: per side, the colour step across a line averaged along the
whole side (texture averages out; a patch's colour or haze offset stays), against the same line in the
picture it was made in (the first edit: that place without a seam); taken on every rectangle from 8 px inside
the outline to 8 px beyond the transition band, every 2 px, the worst line counts (a seam moved outward is
still a seam). 0-255 units, lower is better. seam: canvas_metrics' seam score (colour + texture step per
outline pixel, in excess of the picture's), worst line the same way: it also counts the new content's own
texture near the outline, so it rises wherever the edit differs from the first picture.
changed-outside: share of the pixels beyond the selection that changed (the price of growing it).

    python benchmarks/seam.py                          # 256x256 and 512x384, 3 paintings each
    python benchmarks/seam.py --sizes 512x384 --guides 6 --out /tmp/seams   # also a picture grid
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from canvas import guides_for, selection  # noqa: E402
from canvas_metrics import line_step, seam_score  # noqa: E402
from grids import save_labelled_grid  # noqa: E402

from sdedit.engine import edit, seam  # noqa: E402
from sdedit.models import load_model  # noqa: E402

FIRST_GUIDE = 40  # paintings not used by benchmarks/canvas.py's defaults


@contextlib.contextmanager
def variant(name: str):
    """The engine with the selection handled the given way."""
    saved = seam.edit_mask, seam.blend
    if name in ("inside", "hard"):
        seam.edit_mask = lambda mask, t0: mask
    if name == "hard":
        seam.blend = lambda original, edited, mask: (edited, mask)
    try:
        yield
    finally:
        seam.edit_mask, seam.blend = saved


def worst(measure, result: np.ndarray, reference: np.ndarray, box: tuple[int, int, int, int], reach: int) -> float:
    """The measure's worst value over the rectangles from 8 px inside `box` to `reach` px beyond it."""
    h, w = reference.shape[:2]
    scores = []
    for k in range(-8, reach + 1, 2):
        grown = (box[0] - k, box[1] - k, box[2] + k, box[3] + k)
        if grown[0] >= 4 and grown[1] >= 4 and grown[2] <= w - 4 and grown[3] <= h - 4:
            scores.append(measure(result, reference, grown))
    return max(scores)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--sizes", nargs="*", default=["256x256", "512x384"])
    ap.add_argument("--t0", type=float, nargs="*", default=[0.3, 0.5, 0.7])
    ap.add_argument("--guides", type=int, default=3)
    ap.add_argument("--first-guide", type=int, default=FIRST_GUIDE)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", nargs="*", default=["grown", "inside", "hard"], choices=["grown", "inside", "hard"])
    ap.add_argument("--out", type=Path, default=None, help="folder for seams.png (one row per size and t0)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    model = load_model(a.model, device="cpu")
    names = tuple(a.variants)
    print(f"model {model.id}; {a.guides} painting(s) per size from #{a.first_guide}; load average "
          f"{os.getloadavg()[0]:.1f} at the start", flush=True)
    print(f"{'size':>8} {'t0':>4} {'band':>5} " + " ".join(f"{'line ' + n:>12}" for n in names)
          + " " + " ".join(f"{'seam ' + n:>12}" for n in names) + f" {'changed-outside':>15}", flush=True)
    pictures = []
    for size in a.sizes:
        w, h = (int(v) for v in size.split("x"))
        mask, box = selection(w, h)
        inside = mask > 0
        for t0 in a.t0:
            band = seam.transition_width(inside, t0)
            reach = band + 8
            cells = {n: [] for n in names}
            lines = {n: [] for n in names}
            outside = []
            for i in range(a.first_guide, a.first_guide + a.guides):
                painting = guides_for("scenes", i, w, h)[0]
                picture = np.asarray(edit(model, Image.fromarray(painting), t0=t0, seed=i).images[0].convert("RGB"))
                guide = np.where(inside[..., None], painting, picture)  # the strokes back inside the selection
                row = [guide, picture]
                for name in names:
                    with variant(name):
                        out = edit(model, Image.fromarray(guide), Image.fromarray(mask), t0=t0, seed=i + 1000)
                    out = np.asarray(out.images[0].convert("RGB"))
                    cells[name].append(worst(seam_score, out, picture, box, reach))
                    lines[name].append(worst(line_step, out, picture, box, reach))
                    if name == "grown":
                        outside.append(float(np.mean(np.any(out != guide, axis=-1)[~inside])))
                    row.append(out)
                if i == a.first_guide:
                    pictures.append((f"{size} t0 {t0}", row))
            print(f"{size:>8} {t0:4.1f} {band:5d} " + " ".join(f"{np.mean(lines[n]):12.2f}" for n in names)
                  + " " + " ".join(f"{np.mean(cells[n]):12.2f}" for n in names)
                  + f" {np.mean(outside) if outside else float('nan'):15.1%}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        save_grid(pictures, a.out / "seams.png")
        print(f"wrote {a.out / 'seams.png'}")
    return 0


def save_grid(rows: list[tuple[str, list[np.ndarray]]], path: Path, height: int = 192) -> None:
    """One row per size and t0: guide, the picture it was made in, grown, inside, hard."""
    save_labelled_grid(rows, path, "guide (strokes in the picture), picture, grown selection, inside feather "
                       "(before), hard paste", height=height, label_w=96)
    for (label, ims) in rows[:1]:  # full size, side by side: grown, inside, hard
        strip = np.concatenate([np.pad(im, ((0, 0), (0, 8), (0, 0)), constant_values=255) for im in ims[2:]], axis=1)
        Image.fromarray(strip).save(path.with_name("seams-full.png"))


if __name__ == "__main__":
    sys.exit(main())
