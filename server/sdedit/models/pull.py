"""`sdedit models pull SOURCE`: download a model into the models folder, safely.

SOURCE is a catalogue name (catalogue.py), a Hugging Face repository id or a file in one (`org/name`,
`org/name/file.safetensors`; through `huggingface_hub`, which honours HF_ENDPOINT and the user's token), or an
`https://` URL of one file (`http://` only to a loopback address, for tests).

What the artist can rely on: free disk space is checked before a byte is fetched; an interrupted download is
resumed (HTTP Range) both within one run (a dropped connection is retried) and by running the command again;
every file is checked against the SHA-256 its source publishes (the Hub's LFS hash, a server's Repr-Digest, or
--sha256), and only a finished, verified file (or a complete pipeline folder) is renamed into place, so a partial
download is never listed as a model. Unfinished files wait in `<models folder>/.downloads/`.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

from sdedit.errors import Cancelled, InputError
from sdedit.models.catalogue import CATALOGUE, CatalogueEntry, human_size
from sdedit.models.folders import DOWNLOADS_DIR, EMBEDDING_DIR, LORA_DIR, WEIGHT_SUFFIXES, models_folder

CONNECT_TIMEOUT_S = 10.0  # an unreachable host is reported within this
READ_TIMEOUT_S = 60.0  # a server that stops sending for this long counts as a dropped connection
RETRIES = 3  # dropped connections retried (with Range) per file within one run, after each bit of progress
CHUNK = 1 << 20  # hashing
NET_CHUNK = 16 << 10  # small reads: progress moves, and little is lost when a connection drops
DISK_RESERVE = 64 * 2**20  # keep this much free beyond the download
GENERIC_STEMS = {"pytorch_lora_weights", "diffusion_pytorch_model", "model", "learned_embeds"}
PIPELINE_PARTS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(/[^\s]+)?$")

Progress = Callable[[int, "int | None"], None]  # (bytes done, bytes in all) -> None


@dataclass
class RemoteFile:
    """One file to fetch: where from, where to (relative to the target), and how to check it."""

    url: str
    path: str
    size: int | None = None
    sha256: str | None = None
    git_sha1: str | None = None  # the Hub's blob id of a small (non-LFS) file
    headers: dict = field(default_factory=dict)


@dataclass
class PullPlan:
    """Everything a download needs, found before any byte of a model is fetched."""

    name: str
    target: Path  # the final file, or the final pipeline folder
    files: list[RemoteFile]
    folder: bool = False
    sidecar: dict | None = None
    source: str = ""
    licence: str | None = None
    classify: bool = False  # put a single file in loras/ or embeddings/ by its tensor names

    def installed(self) -> Path | None:
        """Where this download is already installed (a classified single file may sit in loras/ or embeddings/)."""
        places = [self.target]
        if self.classify and not self.folder:
            places += [self.target.parent / kind / self.target.name for kind in (LORA_DIR, EMBEDDING_DIR)]
        return next((p for p in places if p.exists()), None)

    @property
    def total(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)


# -- finding out what to download --------------------------------------------------------------------------
def plan_pull(source: str, *, name: str | None = None, sha256: str | None = None,
              dest: Path | None = None) -> PullPlan:
    """Resolve SOURCE to files with sizes and hashes (one metadata request); nothing is written."""
    dest = Path(dest) if dest is not None else models_folder()
    source = source.strip()
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise InputError("--sha256 must be 64 hexadecimal digits (the SHA-256 of the file).")
    if source.startswith(("https://", "http://")):
        plan = _plan_url(source, name, dest)
    elif source in CATALOGUE:
        plan = _plan_catalogue(CATALOGUE[source], name, dest)
    elif HUB_ID.match(source) and ".." not in source.split("/"):
        plan = _plan_hub(source, name, dest)
    else:
        raise InputError(f"'{source}' is not something to download: give a name from `sdedit models catalogue`, a "
                         "Hugging Face repository id (org/name or org/name/file.safetensors) or an https:// URL.")
    if sha256 is not None:
        if plan.folder:
            raise InputError("--sha256 checks one file; this source is a whole pipeline folder, whose files are "
                             "checked against the hashes the Hub publishes.")
        plan.files[0].sha256 = sha256.lower()
    return plan


def _plan_catalogue(entry: CatalogueEntry, name: str | None, dest: Path) -> PullPlan:
    plan = _plan_hub(entry.source, name or entry.name, dest / LORA_DIR if entry.kind == "lora" else dest)
    plan.classify = False
    plan.sidecar, plan.licence = entry.sidecar, entry.licence
    if entry.sha256 and plan.files[0].sha256 and plan.files[0].sha256 != entry.sha256:
        raise InputError(f"The Hub now publishes a different file for '{entry.name}' than the one this sdedit "
                         f"knows (SHA-256 {plan.files[0].sha256[:12]}… instead of {entry.sha256[:12]}…); "
                         f"pull {entry.source} by name if you trust the new one.")
    return plan


def _hub_endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None  # read now: huggingface_hub reads it once, at import


def _plan_hub(source: str, name: str | None, dest: Path) -> PullPlan:
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    parts = source.split("/")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:]) or None
    endpoint = _hub_endpoint()
    info = _hub_call(lambda: HfApi(endpoint=endpoint).model_info(repo, files_metadata=True,
                                                                   timeout=CONNECT_TIMEOUT_S), repo, endpoint)
    siblings = {s.rfilename: s for s in (info.siblings or [])}
    headers = build_hf_headers()

    def remote(rfilename: str, path: str) -> RemoteFile:
        s = siblings[rfilename]
        lfs = s.lfs
        return RemoteFile(url=hf_hub_url(repo, rfilename, endpoint=endpoint), path=path,
                          size=lfs.size if lfs else s.size, sha256=lfs.sha256 if lfs else None,
                          git_sha1=None if lfs else s.blob_id, headers=headers)

    if filename is not None:
        if filename not in siblings:
            raise InputError(f"The repository {repo} has no file {filename}; its model files are: "
                             f"{_weight_files(siblings) or 'none'}.")
        stem, suffix = _split_name(Path(filename).name)
        if suffix not in WEIGHT_SUFFIXES:
            raise InputError(f"{filename} is not a model file (.safetensors, .ckpt, .pt, .bin).")
        final = _final_name(name, (repo.split("/")[1] if stem in GENERIC_STEMS else stem), suffix)
        return PullPlan(final, dest / final, [remote(filename, final)], source=source, classify=True)
    if "model_index.json" not in siblings:
        weights = _weight_files(siblings)
        if len(weights.split(", ")) == 1 and weights:
            return _plan_hub(f"{repo}/{weights}", name, dest)
        raise InputError(f"The repository {repo} is not a diffusers pipeline; name one of its files, e.g. "
                         f"{repo}/{weights.split(', ')[0] if weights else 'FILE.safetensors'} "
                         f"(its model files: {weights or 'none'}).")
    folder_name = _final_name(name, repo.split("/")[1], "")
    chosen = ["model_index.json", *_pipeline_files(list(siblings))]
    return PullPlan(folder_name, dest / folder_name, [remote(f, f) for f in chosen], folder=True, source=source)


def _weight_files(siblings: dict) -> str:
    return ", ".join(sorted(f for f in siblings if "/" not in f and Path(f).suffix in WEIGHT_SUFFIXES))


def _pipeline_files(names: list[str]) -> list[str]:
    """The files of a diffusers pipeline sdedit loads: configs, tokenizers, and one set of weights per part
    (plain safetensors, else the fp16 variant, else .bin); no safety checker, no ONNX/Flax/OpenVINO copies."""
    chosen = []
    for part in PIPELINE_PARTS:
        files = [n for n in names if n.startswith(part + "/") and n.count("/") == 1]
        chosen += [n for n in files if Path(n).suffix in (".json", ".txt", ".model") and not n.endswith(".index.json")
                   and "onnx" not in n]
        weights = [n for n in files if n.endswith((".safetensors", ".bin", ".safetensors.index.json",
                                                   ".bin.index.json"))]
        for pick in (lambda n: n.endswith(("safetensors", ".safetensors.index.json")) and ".fp16." not in n
                     and "non_ema" not in n,
                     lambda n: ".fp16." in n and "safetensors" in n,
                     lambda n: ".bin" in n and ".fp16." not in n and "non_ema" not in n and "flax" not in n):
            group = [n for n in weights if pick(n)]
            if group:
                chosen += group
                break
    return chosen


def _hub_call(call, repo: str, endpoint: str | None):
    """A huggingface_hub request, its failures as one sentence."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    where = endpoint or "huggingface.co"
    try:
        return call()
    except OfflineModeIsEnabled:
        raise InputError("HF_HUB_OFFLINE is set, so nothing can be downloaded from the Hugging Face Hub; unset it "
                         "to pull models.") from None
    except GatedRepoError:
        raise InputError(f"{repo} is gated: accept its licence on its Hub page while logged in, then log in here "
                         "with `hf auth login` (or set HF_TOKEN).") from None
    except RepositoryNotFoundError:
        raise InputError(f"There is no repository {repo} on {where} (or it is private: log in with "
                         "`hf auth login` or set HF_TOKEN).") from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 404:
            raise InputError(f"There is no repository {repo} on {where}.") from None
        if status in (401, 403):
            raise InputError(f"{where} refused access to {repo} ({status}); log in with `hf auth login` or set "
                             "HF_TOKEN.") from None
        raise InputError(f"{where} answered {status} for {repo}; try again later.") from None
    except InputError:
        raise
    except Exception as exc:  # connection refused, DNS, timeouts: httpx's errors, whatever their module
        raise InputError(f"Cannot reach {where} ({_reason(exc)}); check the network, or download the file "
                         "yourself and put it in the models folder.") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _plan_url(url: str, name: str | None, dest: Path) -> PullPlan:
    import requests

    parts = urlsplit(url)
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        raise InputError("Only https:// URLs are downloaded (plain http:// is accepted for this computer's own "
                         "address only); use the https:// link.")
    if not parts.hostname:
        raise InputError(f"'{url}' has no host name.")
    size = digest = None
    filename = unquote(Path(parts.path).name)
    try:
        head = requests.head(url, allow_redirects=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        if head.ok:
            size = _int_or_none(head.headers.get("Content-Length")) if "gzip" not in head.headers.get(
                "Content-Encoding", "") else None
            digest = _published_sha256(head.headers)
            filename = _disposition_name(head.headers.get("Content-Disposition")) or unquote(
                Path(urlsplit(head.url).path).name) or filename
        elif head.status_code in (404, 410):
            raise InputError(f"{parts.hostname} has no file at {url} ({head.status_code}).")
        elif head.status_code in (401, 403):
            raise InputError(f"{parts.hostname} refused the download ({head.status_code}); the site may need you "
                             "to log in: download it in a browser and put it in the models folder.")
    except requests.exceptions.RequestException as exc:
        raise InputError(f"Cannot reach {parts.hostname} ({_reason(exc)}); check the network, or download the "
                         "file yourself and put it in the models folder.") from None
    stem, suffix = _split_name(filename)
    if name is None and suffix not in WEIGHT_SUFFIXES:
        raise InputError(f"The URL's file '{filename or '?'}' is not a .safetensors/.ckpt model file; give "
                         "--name NAME.safetensors to say what it is.")
    final = _final_name(name, stem, suffix or ".safetensors")
    remote = RemoteFile(url=url, path=final, size=size, sha256=digest)
    return PullPlan(final, dest / final, [remote], source=url, classify=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _published_sha256(headers) -> str | None:
    """The SHA-256 a server publishes: the Hub's X-Linked-Etag (LFS files) or an RFC 9530 Repr-Digest/Digest."""
    linked = (headers.get("X-Linked-Etag") or "").strip('"').removeprefix("W/").strip('"')
    if re.fullmatch(r"[0-9a-f]{64}", linked):
        return linked
    for header in ("Repr-Digest", "Content-Digest", "Digest"):
        value = headers.get(header) or ""
        match = re.search(r"sha-256=:?([A-Za-z0-9+/=]+):?", value, re.IGNORECASE)
        if match:
            try:
                return base64.b64decode(match.group(1)).hex()
            except ValueError:
                continue
    return None


def _disposition_name(value: str | None) -> str | None:
    if not value:
        return None
    match = re.search(r"filename\*=UTF-8''([^;]+)", value, re.IGNORECASE) or re.search(r'filename="?([^";]+)"?', value)
    return Path(unquote(match.group(1))).name if match else None


def _split_name(filename: str) -> tuple[str, str]:
    path = Path(filename)
    return (path.stem, path.suffix.lower()) if path.suffix.lower() in WEIGHT_SUFFIXES else (path.name, "")


def _final_name(name: str | None, stem: str, suffix: str) -> str:
    """NAME (the id it will have), with the source's suffix unless NAME has one; a safe plain file name."""
    if name is not None:
        given_stem, given_suffix = _split_name(name)
        stem, suffix = given_stem, (given_suffix or suffix)
    final = f"{stem}{suffix}"
    if not SAFE_NAME.match(final) or ".." in final:
        raise InputError(f"'{final}' is not usable as a model name: use letters, digits, '.', '_', '+' and '-' "
                         "(give --name NAME).")
    return final


# -- downloading -------------------------------------------------------------------------------------------
class _Cut(Exception):
    """The connection dropped before the file was complete."""


def run_pull(plan: PullPlan, progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
             max_bytes: int | None = None) -> Path:
    """Download, verify and install; returns the installed path. Partial files stay for the next run."""
    import requests

    if plan.installed() is not None:
        return plan.installed()
    total = plan.total
    if max_bytes is not None and total is not None and total > max_bytes:
        raise InputError(f"{plan.name} is {human_size(total)}, more than this server's limit of "
                         f"{human_size(max_bytes)} (SDEDIT_MAX_PULL_BYTES).")
    staging = plan.target.parent / DOWNLOADS_DIR
    staging.mkdir(parents=True, exist_ok=True)
    work = staging / plan.name if plan.folder else staging
    parts = {f.path: (work / (f.path + ".part")) for f in plan.files}
    finals = {f.path: (work / f.path) for f in plan.files}
    have = sum(_have(finals[f.path], parts[f.path], plan.folder) for f in plan.files)
    _check_disk(staging, plan, have)
    done = have
    if progress:
        progress(done, total)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if max_bytes is not None and done > max_bytes:
            raise InputError(f"{plan.name} is larger than this server's limit of {human_size(max_bytes)} "
                             "(SDEDIT_MAX_PULL_BYTES); the download was stopped.")
        if progress:
            progress(done, total)
        if cancel is not None and cancel():
            raise Cancelled()

    with requests.Session() as session:
        for f in plan.files:
            final = finals[f.path] if plan.folder else None
            if final is not None and final.is_file():
                continue
            part = parts[f.path]
            part.parent.mkdir(parents=True, exist_ok=True)
            _fetch(session, f, part, advance)
            _verify(f, part, plan)
            if final is not None:
                os.replace(part, final)
    return _install(plan, work, parts)


def _have(final: Path, part: Path, folder: bool) -> int:
    """Bytes already here: a verified file of a pipeline folder, or an unfinished part."""
    if folder and final.is_file():
        return final.stat().st_size
    return part.stat().st_size if part.is_file() else 0


def _check_disk(staging: Path, plan: PullPlan, have: int) -> None:
    total = plan.total
    if total is None:
        return
    need = max(0, total - have)
    free = shutil.disk_usage(staging).free
    if need + DISK_RESERVE > free:
        raise InputError(f"Not enough free disk space in {staging.parent}: {plan.name} needs {human_size(need)} more "
                         f"and {human_size(free)} is free; make room or set SDEDIT_MODELS_DIR to a larger disk.")


def _fetch(session, f: RemoteFile, part: Path, advance: Callable[[int], None]) -> None:
    """Fetch one file into `part`, appending to what is there (HTTP Range); retries dropped connections."""
    import requests

    failures = 0
    while True:
        have = part.stat().st_size if part.is_file() else 0
        if f.size is not None and have >= f.size:
            if have > f.size:
                part.unlink()
                continue
            return
        headers = dict(f.headers)
        if have:
            headers["Range"] = f"bytes={have}-"
        got = 0
        try:
            with session.get(f.url, headers=headers, stream=True,
                             timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) as response:
                if response.status_code == 416 and have and f.size is None:
                    return  # the server says we have it all
                _raise_for_status(response, f)
                append = have and response.status_code == 206
                if have and not append:  # the server ignored Range: start over
                    advance(-have)
                with open(part, "ab" if append else "wb") as fh:
                    for chunk in response.iter_content(NET_CHUNK):
                        fh.write(chunk)
                        got += len(chunk)
                        advance(len(chunk))
            size_now = part.stat().st_size
            if f.size is not None and size_now < f.size:
                raise _Cut(f"{size_now} of {f.size} bytes")
            return
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.Timeout, _Cut) as exc:
            if isinstance(exc, requests.exceptions.ConnectTimeout) or (
                    isinstance(exc, requests.exceptions.ConnectionError) and not have and not got
                    and failures == 0 and _is_connect_failure(exc)):
                host = urlsplit(f.url).hostname
                raise InputError(f"Cannot reach {host} ({_reason(exc)}); check the network, or download the file "
                                 "yourself and put it in the models folder.") from None
            failures = 0 if got else failures + 1
            if failures > RETRIES:
                size_now = part.stat().st_size if part.is_file() else 0
                raise InputError(f"The download of {f.path} keeps being cut off ({_reason(exc)}); "
                                 f"{human_size(size_now)} are kept: run the same command again to resume.") from None
            time.sleep(min(0.2 * 2**failures, 5.0))


def _is_connect_failure(exc: BaseException) -> bool:
    text = repr(exc)
    return any(s in text for s in ("NewConnectionError", "NameResolutionError", "Connection refused",
                                   "Failed to resolve", "ConnectTimeout", "Max retries exceeded"))


def _raise_for_status(response, f: RemoteFile) -> None:
    if response.status_code < 400:
        return
    host = urlsplit(f.url).hostname
    if response.status_code in (401, 403):
        raise InputError(f"{host} refused the download of {f.path} ({response.status_code}); log in (`hf auth "
                         "login` / HF_TOKEN for the Hub) or download it in a browser.")
    if response.status_code in (404, 410):
        raise InputError(f"{host} has no file {f.path} any more ({response.status_code}).")
    raise InputError(f"{host} answered {response.status_code} for {f.path}; try again later.")


def _verify(f: RemoteFile, part: Path, plan: PullPlan) -> None:
    """The size and hash the source published; a mismatch deletes the file (nothing is installed)."""
    size = part.stat().st_size
    problem = None
    if f.size is not None and size != f.size:
        problem = f"it has {size} bytes instead of {f.size}"
    elif f.sha256 is not None:
        got = _file_hash(part, hashlib.sha256())
        if got != f.sha256.lower():
            problem = f"its SHA-256 is {got[:16]}…, not the published {f.sha256.lower()[:16]}…"
    elif f.git_sha1 is not None:
        h = hashlib.sha1()
        h.update(f"blob {size}\0".encode())
        got = _file_hash(part, h)
        if got != f.git_sha1:
            problem = f"its git hash is {got[:12]}…, not the published {f.git_sha1[:12]}…"
    if problem:
        part.unlink(missing_ok=True)
        raise InputError(f"The downloaded {f.path} does not match its source ({problem}); it was deleted and "
                         f"nothing was installed.")


def _file_hash(path: Path, h) -> str:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _install(plan: PullPlan, work: Path, parts: dict) -> Path:
    """Rename the verified download into place (same file system: atomic); a single file may go to loras/ or
    embeddings/ when its tensors say it is one."""
    target = plan.target
    if plan.folder:
        os.replace(work, target)
        return target
    part = parts[plan.files[0].path]
    if plan.classify:
        kind = classify_weights(part, plan.files[0].path)
        if kind in (LORA_DIR, EMBEDDING_DIR):
            target = target.parent / kind / target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        part.unlink()
        raise InputError(f"{target} appeared meanwhile; nothing was replaced.")
    if plan.sidecar:
        side = target.with_suffix(".json")
        tmp = side.with_name(f".{side.name}.tmp")
        tmp.write_text(json.dumps(plan.sidecar))
        os.replace(tmp, side)
    os.replace(part, target)
    return target


def classify_weights(path: Path, name: str) -> str | None:
    """'loras', 'embeddings' or None (a checkpoint, or unknown), from a safetensors header's tensor names."""
    if not name.endswith(".safetensors"):
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            keys = list(fh.keys())
    except Exception:
        return None
    if any(k.startswith(("model.diffusion_model.", "unet.conv_in", "conv_in.")) for k in keys):
        return None
    if any("lora" in k for k in keys):
        return LORA_DIR
    if keys and (set(keys) <= {"emb_params", "clip_l", "clip_g", "string_to_param.*"} or "emb_params" in keys
                 or {"clip_l", "clip_g"} <= set(keys)):
        return EMBEDDING_DIR
    return None


# -- removing ---------------------------------------------------------------------------------------------
def remove_model(name: str, folder: Path | None = None) -> list[Path]:
    """Delete a model, LoRA or embedding NAME from the models folder (with its NAME.json sidecar and any
    unfinished download of it); refuses anything outside the models folder."""
    folder = Path(folder) if folder is not None else models_folder()
    if not name or "/" in name or "\\" in name or name.startswith(".") or name in ("loras", "embeddings"):
        raise InputError(f"'{name}' is not a model name; see `sdedit models`.")
    removed: list[Path] = []
    for base in (folder, folder / LORA_DIR, folder / EMBEDDING_DIR):
        if not base.is_dir():
            continue
        for entry in base.iterdir():
            if entry.name.startswith("."):
                continue
            stem = entry.name if entry.is_dir() else _split_name(entry.name)[0]
            if stem != name or (entry.is_file() and entry.suffix.lower() not in WEIGHT_SUFFIXES):
                continue
            _delete(entry)
            removed.append(entry)
            side = entry.with_suffix(".json") if entry.is_file() else None
            if side is not None and side.is_file():
                side.unlink()
        downloads = base / DOWNLOADS_DIR
        if downloads.is_dir():
            for entry in downloads.iterdir():
                if entry.name == name or _split_name(entry.name.removesuffix(".part"))[0] == name:
                    _delete(entry)
    if not removed:
        raise InputError(f"There is no model '{name}' in {folder} (sdedit only removes what is in its models "
                         "folder); see `sdedit models`.")
    return removed


def _delete(entry: Path) -> None:
    if entry.is_symlink() or entry.is_file():
        entry.unlink()
    else:
        shutil.rmtree(entry)
