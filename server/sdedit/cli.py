"""`sdedit edit | models | serve`: the command line of docs/design.md §3.

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
    ed.add_argument("--grow", action="store_true",
                    help="grow and feather a hard-edged mask outward, as the editor plugins do with a selection "
                         "(a band that scales with its size and t0); without it black pixels are kept exactly")
    ed.add_argument("--t0", type=float, default=0.5, help="noise level in (0, 1]: small = faithful, large = realistic (default 0.5)")
    ed.add_argument("--sde", default=None, type=str.lower,
                    help="sampler, any case: vp, ve (the paper's SDEs), ode (fast deterministic DPM-Solver++), ddim, "
                         "lcm (LCM / LCM-LoRA checkpoints) or euler_a (Euler ancestral on trailing timesteps: Turbo "
                         "checkpoints) (default: the model's, see `sdedit models`; ode for the embedded model)")
    ed.add_argument("--steps", type=int, default=None,
                    help="sampler steps, 1-1000; 0 or not given = the model's default for this sampler (the paper's "
                         "t0 x 1000 for vp/ve when the model names none, 20 for ode/ddim)")
    ed.add_argument("--samples", type=int, default=1, help="number of results K (default 1)")
    ed.add_argument("--seed", type=int, default=None, help="random seed; sample k uses seed + k (default random)")
    ed.add_argument("--model", default=None, help="model id (see `sdedit models`) or path to a model folder / .ckpt")
    ed.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    ed.add_argument("--precision", default=None, help="auto (fp32 on CPU, bf16/fp16 on CUDA), fp32, bf16 or fp16")
    ed.add_argument("--quiet", action="store_true", help="no progress bar")
    ed.add_argument("--no-server", action="store_true",
                    help="edit in this process even when a local `sdedit serve` is running (by default the job is "
                         "handed to it: its model is loaded already, the files are the same; $SDEDIT_SERVER_URL)")
    ed.add_argument("--prompt", default=None, help="text models only: what the picture shows (none = the paper's unconditional edit)")
    ed.add_argument("--negative-prompt", default=None, help="text models only: what the picture should not show")
    ed.add_argument("--guidance", type=float, default=None, help="text models only: classifier-free guidance scale (default the model's, 7.5 for SD 1.x/2.x)")
    ed.add_argument("--lora", action="append", default=[], metavar="NAME_OR_FILE[:SCALE]",
                    help="Stable Diffusion only: apply a LoRA from the models folder's loras/ (or a file) at SCALE "
                         "(default 1); repeatable")

    from sdedit.cli_models import add_models_parser

    add_models_parser(sub)  # sdedit models [pull | remove | catalogue]

    sv = sub.add_parser("serve", help="run the HTTP server for the editor plugins", description="Run the HTTP server.")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need a token)")
    sv.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    sv.add_argument("--token", default=None, help="bearer token required on every call but health; visible to "
                    "other users in `ps`: prefer $SDEDIT_TOKEN or --token-file")
    sv.add_argument("--token-file", default=None, help="read the bearer token from the first line of this file")
    sv.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                    help="also answer requests addressed to NAME (a reverse proxy's host name); repeatable")
    sv.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    sv.add_argument("--models-dir", default=None, help="extra folder of model folders / .ckpt files")
    sv.add_argument("--model", default=None, help="default model id or path")
    sv.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                    help='run edits on a Ray Serve pool: the cluster at ADDRESS (e.g. 10.0.0.5:6379, or "auto"), '
                         'or a local Ray without ADDRESS (needs: pip install "sdedit[cluster]")')
    sv.add_argument("--replicas", type=int, default=None,
                    help="with --ray: replicas of the model (default: one per GPU of the cluster, else 1)")
    sv.add_argument("--cpus-per-replica", type=float, default=1.0, help="with --ray on CPU: cores per replica (default 1)")
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
    if fmt != "PNG":  # JPEG and WebP hold 8 bits: a 16-bit greyscale result is scaled, not clipped to white
        from sdedit.imaging import to_8bit

        img = to_8bit(img)
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


def edit_via_server(args: argparse.Namespace, guide=None) -> bool:
    """Hand the edit to a running local server (warm model, same output bytes) unless --no-server; False =
    edit here. Runs before torch is imported; any input problem is left to the local path to report."""
    if args.no_server or getattr(args, "lora", None):  # LoRAs: named files may be paths only this process sees
        return False
    from sdedit.handoff import edit_on_server

    try:
        paths = output_paths(args.output, args.samples)
    except InputError:
        return False
    return edit_on_server(args, paths, save_atomic, lambda line: print(f"sdedit: {line}", file=sys.stderr), guide)


def check_edit_request(args: argparse.Namespace):
    """Every check that needs no torch: parameters, output folder, input and mask files.

    Runs before torch or diffusers are imported, so bad input is refused in a fraction of a second.
    Returns (output paths, image, mask).
    """
    from sdedit.imaging import load_image
    from sdedit.params import check_device, check_precision, validate

    validate(args.t0, args.sde, args.steps, args.samples, args.seed)
    from sdedit.models.lora import check_loras_exist, parse_lora

    args.loras = [parse_lora(spec) for spec in getattr(args, "lora", [])]
    check_loras_exist(args.loras)
    check_device(args.device)
    check_precision(args.precision)
    paths = output_paths(args.output, args.samples)
    image = load_image(args.input, "input image")
    mask = load_image(args.mask, "mask") if args.mask else None
    if mask is not None and mask.size != image.size:
        raise InputError(f"The mask is {mask.width}x{mask.height} but the input is {image.width}x{image.height}; "
                         "they must be the same size.")
    return paths, image, mask


def cmd_edit(args: argparse.Namespace) -> int:
    paths, image, mask = check_edit_request(args)
    if edit_via_server(args, image):
        return 0
    from sdedit.models.registry import resolve

    resolve(args.model)  # an unknown id or a missing path, still before torch
    from tqdm import tqdm

    from sdedit.engine import edit  # torch and the engine: only now that the edit will run here
    from sdedit.models import load_model
    from sdedit.models.facts import facts_of
    from sdedit.params import validate_text

    from sdedit.models.lora import apply_loras

    model = load_model(args.model, args.device, args.precision)
    facts = facts_of(model)
    args.sde = args.sde or facts.default_sde
    validate_text(facts, args.prompt, args.negative_prompt, args.guidance)
    apply_loras(model, args.loras)
    from sdedit.models.embeddings import use_embeddings

    args.prompt, args.negative_prompt = use_embeddings(model, args.prompt), use_embeddings(model, args.negative_prompt)
    bar = tqdm(total=1, desc="sdedit", unit="step", file=sys.stderr, disable=args.quiet, leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = edit(model, image, mask, t0=args.t0, sde=args.sde, steps=args.steps, samples=args.samples,
                      seed=args.seed, progress=progress, prompt=args.prompt, negative_prompt=args.negative_prompt,
                      guidance=args.guidance, grow=bool(getattr(args, "grow", False)))
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
    from sdedit.cli_models import cmd_models as models_command

    return models_command(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from sdedit.api import run_server
    from sdedit.api.auth import serve_token

    token = serve_token(args.token, args.token_file)
    server_args = dict(host=args.host, port=args.port, token=token, device=args.device, models_dir=args.models_dir,
                       default_model=args.model, allow_hosts=args.allow_host)
    if args.ray is not None:  # Ray is imported only on this path
        from sdedit.cluster import run_cluster_server

        run_cluster_server(args.ray or None, args.replicas, args.cpus_per_replica, **server_args)
        return 0
    run_server(**server_args)
    return 0


COMMANDS = {"edit": cmd_edit, "models": cmd_models, "serve": cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "models_command", None) != "pull":  # only `sdedit models pull` may reach the network
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models load from local files only: never wait on the network
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
