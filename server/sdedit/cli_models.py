"""`sdedit models [pull SOURCE | remove NAME | catalogue]`: list, download and remove models.

Listing stays cheap (no torch). `pull` shows a progress bar with bytes, rate and ETA on stderr; with
--progress-json it prints one JSON object a line on stdout instead (what the server's download job reads).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from sdedit.errors import InputError


def add_models_parser(sub) -> None:
    md = sub.add_parser("models", help="list, download (pull) and remove models",
                        description="List the available models (no subcommand), or download and remove them.")
    msub = md.add_subparsers(dest="models_command", required=False, parser_class=type(md))
    pl = msub.add_parser("pull", help="download a model into the models folder",
                         description="Download a model: a name from `sdedit models catalogue`, a Hugging Face "
                                     "repository id (org/name, org/name/file.safetensors) or an https:// URL.")
    pl.add_argument("source", help="catalogue name, org/name[/file] on the Hugging Face Hub, or https:// URL")
    pl.add_argument("--name", default=None, help="the id it gets (default: the catalogue name, file or repo name)")
    pl.add_argument("--sha256", default=None, help="the file's SHA-256, checked before it is installed")
    pl.add_argument("--quiet", action="store_true", help="no progress bar")
    pl.add_argument("--progress-json", action="store_true", help=argparse.SUPPRESS)
    pl.add_argument("--max-bytes", type=int, default=None, help=argparse.SUPPRESS)
    rm = msub.add_parser("remove", help="delete a model, LoRA or embedding from the models folder",
                         description="Delete a model, LoRA or embedding from the models folder.")
    rm.add_argument("name", help="its id, as `sdedit models` lists it")
    msub.add_parser("catalogue", help="the models `pull` knows by name",
                    description="The models `sdedit models pull NAME` knows by name.")


def cmd_models(args: argparse.Namespace) -> int:
    command = getattr(args, "models_command", None)
    if command == "pull":
        return _pull(args)
    if command == "remove":
        return _remove(args)
    if command == "catalogue":
        return _catalogue()
    return _list()


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _prediction_cell(info) -> str:
    """What a latent model's UNet predicts, and how that was settled when the file does not say (SD 2.x)."""
    if not info.prediction:
        return "-"
    short = {"v_prediction": "v"}.get(info.prediction, info.prediction)
    return f"{short} ({info.prediction_note})" if info.prediction_note else short


def _list() -> int:
    from sdedit.models import list_models
    from sdedit.models.folders import EMBEDDING_DIR, LORA_DIR, find_in_subfolder, models_folder

    rows = [("id", "kind", "text", "size", "default_sde", "prediction", "default", "path")]
    infos = list_models()
    for info in infos:
        rows.append((info.id, info.kind, "yes" if info.text else "no", size_words(info), info.default_sde,
                     _prediction_cell(info), "*" if info.default else "", info.path))
    _table(rows)
    broken = _not_loading({info.id for info in infos})
    if broken:
        print("\nIn the models folder but not loadable:")
        _table([(name, why) for name, why in broken])
    for title, kind in (("LoRAs (--lora NAME[:SCALE])", LORA_DIR), ("Embeddings (write NAME in the prompt)",
                                                                       EMBEDDING_DIR)):
        found = find_in_subfolder(kind)
        if found:
            print(f"\n{title}:")
            _table([(name, str(path)) for name, path in found.items()])
    print(f"\nModels folder: {models_folder()} (`sdedit models pull NAME`, `sdedit models catalogue`)")
    return 0


def size_words(info) -> str:
    """What `sdedit models` says about a model's size: its fixed resolution, or the native size it was
    trained at (larger canvases are edited at that scale first, docs/design.md §4) and that it takes any."""
    if info.resolution:
        return f"{info.resolution} px fixed"
    if info.native_size:
        return f"{info.native_size} px native, any size"
    return "any size"


def _not_loading(listed: set) -> list:
    """Files and folders in the models folder that are no listed model, with the one-sentence reason (what a
    download of an arbitrary URL may have brought)."""
    from sdedit.models.folders import WEIGHT_SUFFIXES, models_folder
    from sdedit.models.registry import describe

    folder = models_folder()
    out = []
    if not folder.is_dir():
        return out
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in ("loras", "embeddings") or entry.suffix == ".json":
            continue
        name = entry.stem if entry.is_file() else entry.name
        if name in listed or (entry.is_file() and entry.suffix.lower() not in WEIGHT_SUFFIXES):
            continue
        try:
            describe(name, entry)
            why = "not a model sdedit knows (a Stable Diffusion checkpoint, diffusers folder or DDPM .ckpt)"
        except InputError as err:
            why = str(err)
        except Exception as err:  # a damaged file: say so, never a traceback in a listing
            why = f"could not be read ({type(err).__name__})"
        out.append((name, why))
    return out


def _catalogue() -> int:
    from sdedit.models.catalogue import CATALOGUE, human_size

    rows = [("name", "kind", "family", "size", "licence", "source", "good for")]
    for e in CATALOGUE.values():
        rows.append((e.name, e.kind, e.family, human_size(e.size), e.licence, e.source, e.good_for))
    _table(rows)
    print("\nAlso: `sdedit models pull org/name[/file.safetensors]` (Hugging Face Hub) or an https:// URL.")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from sdedit.models.pull import remove_model

    for path in remove_model(args.name):
        print(f"sdedit: removed {path}", file=sys.stderr)
    return 0


def _pull(args: argparse.Namespace) -> int:
    from sdedit.models.catalogue import human_size
    from sdedit.models.pull import plan_pull, run_pull

    plan = plan_pull(args.source, name=args.name, sha256=args.sha256)
    installed = plan.installed()
    if installed is not None:
        print(f"sdedit: {plan.name} is already installed at {installed}.", file=sys.stderr)
        _emit(args, {"state": "done", "path": str(installed), "done": plan.total, "total": plan.total,
                     "name": installed.stem if installed.is_file() else installed.name})
        return 0
    if not args.quiet and not args.progress_json:
        licence = f", licence {plan.licence}" if plan.licence else ""
        print(f"sdedit: downloading {plan.source} ({human_size(plan.total)}{licence}) to {plan.target}",
              file=sys.stderr)
    progress = _json_progress(args) if args.progress_json else _bar(args, plan.name)
    try:
        path = run_pull(plan, progress=progress, max_bytes=args.max_bytes)
    finally:
        if hasattr(progress, "close"):
            progress.close()
    _emit(args, {"state": "done", "path": str(path), "name": path.stem if path.is_file() else path.name})
    if not args.quiet:
        print(f"sdedit: installed {path}", file=sys.stderr)
    return 0


def _emit(args: argparse.Namespace, obj: dict) -> None:
    if args.progress_json:
        print(json.dumps(obj), flush=True)


def _json_progress(args: argparse.Namespace):
    last = [0.0]

    def progress(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.2 or (total is not None and done >= total):
            last[0] = now
            _emit(args, {"state": "running", "done": done, "total": total})

    return progress


class _bar:
    """tqdm in bytes (rate and ETA), created on the first report so that it starts at the resumed size."""

    def __init__(self, args: argparse.Namespace, name: str) -> None:
        self.quiet, self.name, self.tqdm = args.quiet, name, None

    def __call__(self, done: int, total: int | None) -> None:
        if self.quiet:
            return
        if self.tqdm is None:
            from tqdm import tqdm

            self.tqdm = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=self.name, file=sys.stderr, leave=False)
        self.tqdm.update(done - self.tqdm.n)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()


__all__ = ["add_models_parser", "cmd_models", "InputError"]
