"""`sdedit edit | models | serve`: the command line of DESIGN.md §3.

Bad input ends with exit code 2 and one line on stderr; the traceback is shown only with SDEDIT_DEBUG=1.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import NoReturn, Sequence

from sdedit.errors import Cancelled, InputError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (not usage + error) and exits with 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="sdedit", description="SDEdit: turn rough colour strokes into realistic images.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    ed = sub.add_parser("edit", help="edit an image file", description="Run SDEdit on an image file.")
    ed.add_argument("input", help="guide image (PNG, JPEG or WebP)")
    ed.add_argument("-o", "--output", required=True, help="output image; with --samples K > 1, out.png becomes out-0.png ...")
    ed.add_argument("--mask", help="mask image of the input's size: white = edit, black = keep, grey = blend")
    ed.add_argument("--t0", type=float, default=0.5, help="noise level in (0, 1]: small = faithful, large = realistic (default 0.5)")
    ed.add_argument("--sde", default=None, help="sampler: vp, ve (the paper's SDEs), ode (fast deterministic DPM-Solver++) "
                    "or ddim (default: the model's declared sampler, see `sdedit models`; ode for the embedded model)")
    ed.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    ed.add_argument("--samples", type=int, default=1, help="number of results K (default 1)")
    ed.add_argument("--seed", type=int, default=None, help="random seed; sample k uses seed + k (default random)")
    ed.add_argument("--model", default=None, help="model id (see `sdedit models`) or path to a model folder / .ckpt")
    ed.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    ed.add_argument("--precision", default=None, help="auto (fp32 on CPU, bf16/fp16 on CUDA), fp32, bf16 or fp16")
    ed.add_argument("--quiet", action="store_true", help="no progress bar")

    sub.add_parser("models", help="list the available models", description="List the available models.")

    sv = sub.add_parser("serve", help="run the HTTP server for the editor plugins", description="Run the HTTP server.")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need a token)")
    sv.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    sv.add_argument("--token", default=None, help="bearer token required on every call but health (or $SDEDIT_TOKEN)")
    sv.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    sv.add_argument("--models-dir", default=None, help="extra folder of model folders / .ckpt files")
    sv.add_argument("--model", default=None, help="default model id or path")
    return parser


def output_paths(output: str, samples: int) -> list[Path]:
    """out.png for one sample; out-0.png ... out-{K-1}.png for K."""
    path = Path(output)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise InputError(f"The output {output} must end in .png, .jpg or .webp.")
    if not path.parent.exists():
        raise InputError(f"The output folder {path.parent} does not exist.")
    if samples == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{k}{path.suffix}") for k in range(samples)]


def save_atomic(img, path: Path) -> None:
    """Write through a temporary file in the same folder, so no half-written image is ever left."""
    fmt = OUTPUT_FORMATS[path.suffix.lower()]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            (img.convert("RGB") if fmt == "JPEG" else img).save(fh, format=fmt, **({"compress_level": 4} if fmt == "PNG" else {}))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the user's usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_edit(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sdedit.engine import edit
    from sdedit.imaging import load_image
    from sdedit.models import load_model

    from sdedit.engine import validate

    validate(args.t0, args.sde, args.steps, args.samples, args.seed)
    paths = output_paths(args.output, args.samples)
    image = load_image(args.input, "input image")
    mask = load_image(args.mask, "mask") if args.mask else None
    if mask is not None and mask.size != image.size:
        raise InputError(f"The mask is {mask.width}x{mask.height} but the input is {image.width}x{image.height}; "
                         "they must be the same size.")
    model = load_model(args.model, args.device, args.precision)
    bar = tqdm(total=1, desc="sdedit", unit="step", file=sys.stderr, disable=args.quiet, leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = edit(model, image, mask, t0=args.t0, sde=args.sde, steps=args.steps, samples=args.samples,
                      seed=args.seed, progress=progress)
    finally:
        bar.close()
    for img, path in zip(result.images, paths):
        save_atomic(img, path)
    if not args.quiet:
        seeds = ", ".join(str(s) for s in result.seeds)
        print(f"sdedit: wrote {', '.join(map(str, paths))} ({result.steps} {result.params['sde']} steps, t0={args.t0}, "
              f"seed {seeds}, {result.seconds:.1f} s on {model.device})", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from sdedit.models import list_models

    rows = [("id", "resolution", "sde", "default sampler", "default", "path")]
    for info in list_models():
        rows.append((info.id, str(info.resolution or "any"), info.sde, info.default_sde, "*" if info.default else "",
                     info.path))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from sdedit.api import run_server

    run_server(host=args.host, port=args.port, token=args.token, device=args.device, models_dir=args.models_dir,
               default_model=args.model)
    return 0


COMMANDS = {"edit": cmd_edit, "models": cmd_models, "serve": cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"sdedit {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Cancelled:
        print(f"sdedit {args.command}: cancelled.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(f"sdedit {args.command}: interrupted; nothing was written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # an unexpected failure still gets one line, the traceback only on request
        if os.environ.get("SDEDIT_DEBUG"):
            raise
        print(f"sdedit {args.command}: failed: {type(exc).__name__}: {exc} (set SDEDIT_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
