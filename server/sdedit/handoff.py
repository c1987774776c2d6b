"""`sdedit edit` through a running local server: its model is already loaded, so the command skips
importing torch and loading the model, and the output files are byte for byte those of a local run.

Only when the edit means exactly the same thing there: a server on this computer that proves it is this
user's sdedit (sdedit_client.handoff_key: an HMAC of a fresh nonce with a secret in a private file; the
token and picture are sent only after it), a model it knows by id (the server never opens paths), the same
device, no precision override; and only results that match the input (count, seeds, size, mode) are written.
Otherwise, or when no server answers within a moment, the caller edits locally and says why in one line.
Imports no torch (only the standard-library client).
"""
from __future__ import annotations

import argparse
import http.client
import io
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Optional, Tuple, Union

SERVER_URL_ENV = "SDEDIT_SERVER_URL"  # where `sdedit edit` looks for a server; "off" never looks
DEFAULT_MODEL_ENV = "SDEDIT_DEFAULT_MODEL"  # the registry's override of the default model (models/registry.py)
EMBEDDED_MODEL_ID = "landscape"
PROBE_TIMEOUT_S = 1.0
POLL_S = 0.1


def server_url() -> Optional[str]:
    """The server `sdedit edit` would hand its job to: $SDEDIT_SERVER_URL, else the default URL; None = off."""
    from sdedit_client import DEFAULT_URL

    value = os.environ.get(SERVER_URL_ENV, "").strip()
    if value.lower() in ("off", "none", "no", "0"):
        return None
    return value or DEFAULT_URL


def model_id_for_server(model: Optional[str]) -> Optional[str]:
    """The id to ask the server for, or None when only a local run means the same model (a path)."""
    from sdedit.models.registry import discover  # torch-free

    ref = model or os.environ.get(DEFAULT_MODEL_ENV) or EMBEDDED_MODEL_ID
    if ref in discover():  # known ids first: a stray file named like one in the cwd is not the model
        return ref
    return None if Path(ref).expanduser().exists() else ref


def edit_on_server(args: argparse.Namespace, paths: list, save: Callable, note: Callable[[str], None],
                   guide: Optional[Any] = None) -> bool:
    """Run the edit on a local server and write `paths` with `save(image, path)`; False = edit locally.

    Only a server that proves it is this user's sdedit gets the picture and the token (`prove_server`), and its
    results are checked (count, size, mode against `guide`, the decoded input) before anything is written.
    `note` gets one line for the user (why it fell back, or what it did). Ctrl-C cancels the server's job.
    """
    url = server_url()
    model = model_id_for_server(args.model)
    if url is None or model is None or args.precision is not None:
        return False
    text = {name: getattr(args, name, None) for name in ("prompt", "negative_prompt", "guidance")}
    text = {name: value for name, value in text.items() if value is not None}
    if any(isinstance(v, str) and " ".join(v.split()) != v for v in text.values()):
        return False  # the client sends a prompt as one line; only the local run sees it exactly as typed
    from sdedit_client import Client, InvalidParameter, JobCancelled, RequestRejected, SDEditError

    host = urllib.parse.urlsplit(url if "://" in url else "http://" + url).hostname
    if not _is_loopback(host):
        return False
    proven = prove_server(url)
    if proven is None:
        return False  # nothing answers: the usual case, and silent
    if isinstance(proven, Refusal):
        note(f"the program at {url} did not prove it is your sdedit server ({proven}); editing here instead.")
        return False
    try:  # from here on every request goes to the proven address, with the token
        client = Client(proven, token=os.environ.get("SDEDIT_TOKEN"), timeout=PROBE_TIMEOUT_S)
        health = client.health()
    except SDEditError:
        return False
    if not isinstance(health, dict) or model not in (health.get("models") or []):
        return False
    if args.device != "auto" and _device_kind(args.device) != _device_kind(str(health.get("device", ""))):
        return False
    try:
        image = Path(args.input).read_bytes()
        mask = Path(args.mask).read_bytes() if args.mask else None
    except OSError:
        return False  # the local path says what is wrong with the file
    client.timeout = 60.0
    started = time.perf_counter()
    bar = _LazyBar(args.quiet)  # drawn from the first poll on: a refused request leaves no bar behind
    try:
        pngs, seeds = client.run(image, mask, t0=args.t0, sde=args.sde, steps=args.steps, samples=args.samples,
                                 seed=args.seed, model=model, poll_interval=POLL_S, on_progress=bar.show,
                                 grow=bool(getattr(args, "grow", False)), **text)
    except JobCancelled:
        from sdedit.errors import Cancelled

        raise Cancelled("The edit was cancelled on the server.") from None
    except (InvalidParameter, RequestRejected):
        return False  # bad input (or over the server's limits): the local path checks and reports it
    except SDEditError as error:
        note(f"the server at {client.base_url} could not do it ({error}); editing here instead.")
        return False
    finally:
        bar.close()
    images, problem = checked_results(pngs, seeds, args.samples, args.seed, guide)
    if problem:
        note(f"the server at {client.base_url} sent {problem}; editing here instead.")
        return False
    for picture, path in zip(images, paths):
        save(picture, path)
    if not args.quiet:
        note(f"wrote {', '.join(map(str, paths))} via the server at {client.base_url} ({args.sde or 'default sampler'}, t0={args.t0}, "
             f"seed {', '.join(str(s) for s in seeds)}, {time.perf_counter() - started:.1f} s)")
    return True


class Refusal(str):
    """Why a program on the port is not trusted with the job (a few words)."""


def prove_server(url: str) -> Union[None, str, Refusal]:
    """The base URL of the proven server (its own address, which may differ from `url`'s `localhost`), None when
    nothing answers, or a Refusal. Sends no token and no picture: only a fresh nonce."""
    import json
    import urllib.error
    import urllib.request

    from sdedit_client.client import normalize_url
    from sdedit_client.handoff_key import KeyProblem, load_key, new_nonce, normal_host, proof_matches

    try:
        base = normalize_url(url)
    except Exception:  # noqa: BLE001 - a bad $SDEDIT_SERVER_URL: nothing to hand off to
        return None
    parts = urllib.parse.urlsplit(base)
    port = parts.port or 80
    nonce = new_nonce()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{base}/v1/handoff?nonce={nonce}", timeout=PROBE_TIMEOUT_S) as response:
            payload = response.read(4096)
    except urllib.error.HTTPError as error:
        return Refusal(f"it answered HTTP {error.code} to the hand-off proof")
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        return None
    try:
        answer = json.loads(payload.decode("utf-8"))
        host, offered, answered_port = normal_host(str(answer["host"])), answer["proof"], int(answer["port"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return Refusal("its answer to the hand-off proof is not one")
    try:
        key = load_key()
    except KeyProblem as problem:
        return Refusal(str(problem))
    if not proof_matches(key, nonce, host, answered_port, offered):
        return Refusal("its proof does not match your key")
    if answered_port != port or not _is_loopback(host):
        return Refusal(f"its proof is for {host}:{answered_port}, another address")
    wanted = normal_host(parts.hostname or "")
    if wanted != "localhost" and wanted != host:
        return Refusal(f"its proof is for {host}:{answered_port}, another address")
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{answered_port}"


def checked_results(pngs: list, seeds: list, samples: int, seed: Optional[int], guide: Any) -> Tuple[list, str]:
    """(decoded images, '') when the server's answer is what this edit must give, else ([], what is wrong)."""
    from PIL import Image, UnidentifiedImageError

    if len(pngs) != samples or len(seeds) != samples:
        return [], f"{len(pngs)} image(s) and {len(seeds)} seed(s) for {samples} sample(s)"
    if seed is not None and list(seeds) != [seed + k for k in range(samples)]:
        return [], f"seeds {seeds} for seed {seed}"
    images = []
    for k, png in enumerate(pngs):
        try:
            picture = Image.open(io.BytesIO(png))
            if picture.format != "PNG":
                return [], f"image {k} as {picture.format}, not PNG"
            picture.load()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            return [], f"image {k} that is not a readable PNG"
        if guide is not None:
            if picture.size != guide.size:
                return [], (f"a {picture.width}x{picture.height} image for a {guide.width}x{guide.height} input")
            if picture.mode != result_mode(guide):
                return [], f"an image in mode {picture.mode} for an input that gives {result_mode(guide)}"
        images.append(picture)
    return images, ""


def result_mode(guide: Any) -> str:
    """The mode of the engine's result for this input (imaging.rebuild_image): alpha kept, grey stays grey."""
    has_alpha = guide.mode in ("RGBA", "LA", "PA") or (guide.mode == "P" and "transparency" in guide.info)
    if has_alpha:
        return "RGBA"
    return "L" if guide.mode == "L" else "RGB"


def _is_loopback(host: Optional[str]) -> bool:
    return host in ("localhost", "::1") or (host or "").startswith("127.")


def _device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else device


class _LazyBar:
    """A tqdm percentage bar on stderr, created at the first progress report."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar = quiet, None

    def show(self, fraction: float) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=100, desc="sdedit (server)", unit="%", file=sys.stderr, leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")
        self.bar.n = round(100 * fraction)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
