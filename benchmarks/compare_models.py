"""Two embedded-model weights side by side on the same held-out stroke paintings, seeds and samplers, in one
run: the numbers issue 25 ships new weights on (streak, blur-RMSE, detail, region colour; benchmarks/canvas.py
defines them) and a grid, per painting, of the guide, model A's edit and model B's edit.

    python benchmarks/compare_models.py --a landscape --b runs/v3/export --sets composed terrain scenes \
        --guides 2 --sizes 256x256 1024x768 --t0 0.5 --sde ode vp --out runs/v3/compare

Paintings: `composed` (the hand-composed demo blocks), `terrain` (held-out 3-D terrain renders, seeds
1,700,000 + i, turned into flat-colour stroke paintings) and `scenes` (held-out sdedit.synth.scenes paintings,
from --first-guide). None of them is in any training shard (those use seeds below 1,000,000).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import canvas  # noqa: E402  (benchmarks/canvas.py: paintings, run_cell)
from grids import save_labelled_grid  # noqa: E402


def _model(ref: str):
    from sdedit.models import load_model

    return load_model(ref, device="cpu")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", default="landscape", help="model id or folder (the shipped weights by default)")
    ap.add_argument("--b", required=True, help="model id or folder to compare")
    ap.add_argument("--sets", nargs="+", default=["composed", "terrain"], choices=["composed", "terrain", "scenes"])
    ap.add_argument("--guides", type=int, default=2)
    ap.add_argument("--first-guide", type=int, default=0, help="first painting of each set")
    ap.add_argument("--sizes", nargs="+", default=["256x256"])
    ap.add_argument("--t0", type=float, nargs="+", default=[0.5])
    ap.add_argument("--sde", nargs="+", default=[None])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    models = {"A": _model(a.a), "B": _model(a.b)}
    rows, table = [], []
    print(f"A = {a.a}, B = {a.b}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{torch.get_num_threads()} torch threads", flush=True)
    print("| set | canvas | sampler | t0 | model | streak | blur-RMSE | detail | region (worst) | s per edit |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for kind in a.sets:
        first = a.first_guide
        for size in a.sizes:
            w, h = (int(v) for v in size.split("x"))
            pairs = [canvas.guides_for(kind, first + i, w, h) for i in range(a.guides)]
            guides, regions = [p[0] for p in pairs], [p[1] for p in pairs]
            for sde in a.sde:
                for t0 in a.t0:
                    cells = {}
                    for name, model in models.items():
                        cell = canvas.run_cell(model, guides, t0, a.seed, regions=regions, sde=sde)
                        cells[name] = cell
                        row = {"set": kind, "size": size, "sde": cell["sde"], "t0": t0, "model": name,
                               **{k: v for k, v in cell.items() if k not in ("outputs", "sde")}}
                        table.append(row)
                        print(f"| {kind} | {size} | {cell['sde']} | {t0} | {name} | {cell['streak']:.2f} | "
                              f"{cell['blur_rmse']:.1f} | {cell['detail']:.1f} | {cell['region_colour']:.1f} "
                              f"({cell['region_colour_worst']:.1f}) | {cell['seconds']:.1f} |", flush=True)
                    for i, g in enumerate(guides):
                        rows.append((f"{kind} {first + i} {size} {cells['A']['sde']} {t0}",
                                     [g, cells["A"]["outputs"][i], cells["B"]["outputs"][i]]))
    (a.out / "compare.json").write_text(json.dumps({"a": a.a, "b": a.b, "rows": table}, indent=1))
    save_grid(rows, a.out / "compare.png")
    print(f"wrote {a.out / 'compare.png'} and compare.json")
    return 0


def save_grid(rows: list[tuple[str, list[np.ndarray]]], path: Path, height: int = 160) -> None:
    """Guide | A | B, one row per painting and cell."""
    save_labelled_grid(rows, path, "guide | A | B", height=height)

if __name__ == "__main__":
    raise SystemExit(main())
