"""What every benchmark script needs: its common arguments, the model, timing, and writing its results.

Run a script from the repository root as `.venv/bin/python benchmarks/NAME.py`: Python puts benchmarks/ first
on the import path, so this module and the other helpers here (canvas_metrics, timing, ...) import without
path edits, and `sdedit` is the installed package. Scripts that build tiny test models call `use_tests()`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent


def parser(doc: str | None, *, model: bool = True, device: bool = True, precision: bool = False,
           threads: bool = True, out: bool = False) -> argparse.ArgumentParser:
    """An ArgumentParser with the options the benchmarks share (each script adds its own): --model, --device,
    --precision, --threads, --out (a JSON file the rows are written to, besides the printed table)."""
    ap = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    if model:
        ap.add_argument("--model", default=None, help="model id or path (default: the embedded model)")
    if device:
        ap.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    if precision:
        ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    if threads:
        ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    if out:
        ap.add_argument("--out", type=Path, default=None, help="also write the rows to this JSON file")
    return ap


def setup(args: argparse.Namespace) -> None:
    """Apply the shared options that act before a model is loaded (torch's thread count)."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def load(args: argparse.Namespace):
    """The model the options name, on their device and precision."""
    from sdedit.models import load_model

    setup(args)
    return load_model(getattr(args, "model", None), getattr(args, "device", "auto"),
                      getattr(args, "precision", None))


def machine(model=None) -> str:
    """One line naming what the numbers were measured on (model, device, CPU, threads, torch, load)."""
    import torch

    parts = [] if model is None else [f"model {model.id} on {model.device}"]
    parts.append(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                 f"torch {torch.__version__}")
    if hasattr(os, "getloadavg"):
        parts.append("load average %.2f" % os.getloadavg()[0])
    return "; ".join(parts)


def call_seconds(model, size: tuple[int, int], repeats: int = 5) -> float:
    """Median seconds of one network call at working size (width, height) (sdedit.models.timing)."""
    from sdedit.models.timing import time_call

    return time_call(model, size, repeats=repeats).median


def table(rows: Sequence[dict], columns: Sequence[str] | None = None, formats: dict | None = None) -> str:
    """Rows as an aligned plain-text table (the first row's keys unless `columns` is given)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    formats = formats or {}

    def cell(row: dict, col: str) -> str:
        value = row.get(col, "")
        fmt = formats.get(col)
        return format(value, fmt) if fmt and value != "" else str(value)

    cells = [[cell(r, c) for c in columns] for r in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def write_results(rows: Sequence[dict], out: Path | None = None, *, columns: Sequence[str] | None = None,
                  formats: dict | None = None, about: str = "") -> None:
    """Print the table (after a line saying what it was measured on) and, with `out`, write the rows and that
    line as JSON."""
    if about:
        print(about)
    print(table(rows, columns, formats))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"about": about, "rows": list(rows)}, indent=1, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Iterable):
        return list(value)
    return str(value)


def use_tests() -> Path:
    """Put tests/ on the import path (tiny_models, tiny_sd: random-weight models in real layouts)."""
    tests = ROOT / "tests"
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    return tests
