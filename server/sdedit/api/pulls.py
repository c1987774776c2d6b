"""The model manager over HTTP: the catalogue, downloads as jobs with progress, and removal.

A download is `sdedit models pull SOURCE --progress-json` in a child process (the command line's own code:
same checks, same resume, same atomic install), so that cancelling it is ending that process, the partial
file stays for the next try, and the server's own loading stays offline (the child alone may reach the
network). Only loopback clients or token holders reach these routes (the server's usual rule); sources are
catalogue names, Hub ids (through the operator's HF_ENDPOINT) or https:// URLs (http:// to loopback only), and
sizes are bounded by SDEDIT_MAX_PULL_BYTES. SDEDIT_NO_DOWNLOADS=1 turns downloads and removal off.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import List, Optional

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .auth import BearerAuth
from .schemas import ErrorMessage, ValidationProblem

log = logging.getLogger("sdedit.api")

DEFAULT_MAX_PULL_BYTES = 20 * 10**9  # SDXL in fp32 is 13.9 GB
MAX_ACTIVE = 2
KEEP_FINISHED_S = 3600.0


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source: str = Field(min_length=1, max_length=2000,
                        description="A name from GET /v1/models/catalogue, a Hugging Face id (org/name or "
                                    "org/name/file.safetensors) or an https:// URL of one file.")
    name: Optional[str] = Field(None, max_length=128, description="The id it gets; default the source's name.")
    sha256: Optional[str] = Field(None, min_length=64, max_length=64, pattern="^[0-9a-fA-F]{64}$")


class PullStatus(BaseModel):
    id: str
    state: str = Field(description="queued, running, done, failed or cancelled")
    source: str
    done: int = Field(0, description="Bytes downloaded so far (with what an earlier try left).")
    total: Optional[int] = Field(None, description="Bytes in all, when the source says.")
    progress: float = Field(0.0, ge=0.0, le=1.0)
    error: Optional[str] = None
    name: Optional[str] = Field(None, description="The installed model's id, once done.")


class Removed(BaseModel):
    removed: List[str] = Field(description="The files or folders deleted from the models folder.")


class CatalogueItem(BaseModel):
    name: str
    repo: str
    file: str
    size: int
    licence: str
    kind: str
    family: str
    good_for: str
    installed: bool


@dataclass
class Pull:
    id: str
    source: str
    state: str = "running"
    done: int = 0
    total: Optional[int] = None
    error: Optional[str] = None
    name: Optional[str] = None
    finished_at: Optional[float] = None
    process: Optional[subprocess.Popen] = None
    cancelled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self) -> PullStatus:
        progress = min(1.0, self.done / self.total) if self.total else (1.0 if self.state == "done" else 0.0)
        return PullStatus(id=self.id, state=self.state, source=self.source, done=self.done, total=self.total,
                          progress=progress, error=self.error, name=self.name)


class PullManager:
    """The running and recently finished downloads of this server."""

    def __init__(self, max_bytes: int, refresh=None) -> None:
        self.max_bytes = max_bytes
        self.refresh = refresh  # the backend's model list is read again after an install or removal
        self.pulls: dict[str, Pull] = {}
        self.lock = threading.Lock()

    def start(self, request: PullRequest) -> Pull:
        from ..errors import InputError

        with self.lock:
            self._prune()
            active = [p for p in self.pulls.values() if p.state == "running"]
            if len(active) >= MAX_ACTIVE:
                raise InputError(f"{len(active)} downloads are running; wait for one to finish.")
            if any(p.source == request.source for p in active):
                raise InputError(f"{request.source} is being downloaded already.")
            pull = Pull(id=uuid.uuid4().hex, source=request.source)
            self.pulls[pull.id] = pull
        command = [sys.executable, "-m", "sdedit", "models", "pull", request.source, "--progress-json", "--quiet",
                   "--max-bytes", str(self.max_bytes)]
        if request.name:
            command += ["--name", request.name]
        if request.sha256:
            command += ["--sha256", request.sha256]
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        pull.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                        stdin=subprocess.DEVNULL)
        threading.Thread(target=self._follow, args=(pull,), daemon=True, name=f"pull-{pull.id[:8]}").start()
        log.info("pull %s started: %s", pull.id, request.source)
        return pull

    def _follow(self, pull: Pull) -> None:
        process = pull.process
        for line in process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with pull.lock:
                pull.done = int(event.get("done") or pull.done)
                pull.total = event.get("total") if event.get("total") is not None else pull.total
                if event.get("state") == "done":
                    pull.name = event.get("name") or pull.name
        stderr = process.stderr.read()
        code = process.wait()
        with pull.lock:
            pull.finished_at = time.monotonic()
            if pull.cancelled:
                pull.state = "cancelled"
            elif code == 0:
                pull.state = "done"
                if self.refresh is not None:
                    self.refresh()
            else:
                pull.state = "failed"
                lines = [ln for ln in stderr.splitlines() if ln.strip()]
                message = lines[-1] if lines else f"the download ended with code {code}"
                pull.error = message.split(": ", 1)[1] if message.startswith("sdedit models") else message
        log.info("pull %s %s%s", pull.id, pull.state, f": {pull.error}" if pull.error else "")

    def cancel(self, pull: Pull) -> None:
        with pull.lock:
            if pull.state != "running":
                return
            pull.cancelled = True
        if pull.process is not None and pull.process.poll() is None:
            pull.process.terminate()  # the partial file stays in .downloads/ for the next try

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, p in self.pulls.items() if p.finished_at and now - p.finished_at > KEEP_FINISHED_S]:
            del self.pulls[key]

    def stop(self) -> None:
        for pull in list(self.pulls.values()):
            self.cancel(pull)


def _detail(status: int, text: str) -> JSONResponse:
    return JSONResponse({"detail": text}, status_code=status)


def pull_router(token: Optional[str], limits=None, backend=None) -> APIRouter:
    """Routes under /v1/models: catalogue, pull (start, status, cancel) and remove."""
    from ..errors import InputError

    max_bytes = int(os.environ.get("SDEDIT_MAX_PULL_BYTES", DEFAULT_MAX_PULL_BYTES))
    manager = PullManager(max_bytes, refresh=getattr(backend, "refresh_models", None))
    errors = {code: {"model": ErrorMessage} for code in (400, 401, 403, 404, 409, 413)}
    errors[422] = {"model": ValidationProblem}
    router = APIRouter(prefix="/v1/models", dependencies=[Depends(BearerAuth(token))],
                       responses={401: errors[401], 422: errors[422]})
    router.manager = manager  # type: ignore[attr-defined]

    @router.get("/catalogue", response_model=List[CatalogueItem])
    async def catalogue() -> List[CatalogueItem]:
        from ..models.catalogue import CATALOGUE
        from ..models.folders import LORA_DIR, find_in_subfolder
        from ..models.registry import discover

        installed = set(discover()) | set(find_in_subfolder(LORA_DIR))
        return [CatalogueItem(**e.as_dict(), installed=e.name in installed) for e in CATALOGUE.values()]

    @router.post("/pull", status_code=202, response_model=PullStatus, responses={c: errors[c] for c in (400, 403, 409, 413)})
    def start(request: PullRequest):
        if _management_off():
            return _detail(403, "Downloads are turned off on this server (SDEDIT_NO_DOWNLOADS).")
        source = request.source.strip()
        try:
            _check_source(source)
            pull = manager.start(request)
        except InputError as err:
            return _detail(422 if "running" not in str(err) and "already" not in str(err) else 409, str(err))
        return pull.status()

    @router.get("/pull/{pull_id}", response_model=PullStatus, responses={404: errors[404]})
    async def status(pull_id: str):
        pull = manager.pulls.get(pull_id)
        if pull is None:
            return _detail(404, f"There is no download '{pull_id[:64]}'; start it again.")
        return pull.status()

    @router.delete("/pull/{pull_id}", response_model=PullStatus, responses={404: errors[404]})
    def cancel(pull_id: str):
        pull = manager.pulls.get(pull_id)
        if pull is None:
            return _detail(404, f"There is no download '{pull_id[:64]}'.")
        manager.cancel(pull)
        if pull.process is not None:
            try:
                pull.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pull.process.kill()
        for _ in range(50):  # the follower thread records the end
            if pull.state != "running":
                break
            time.sleep(0.02)
        return pull.status()

    @router.delete("/{name}", response_model=Removed, responses={c: errors[c] for c in (403, 404)})
    def remove(name: str):
        from ..models.pull import remove_model

        if _management_off():
            return _detail(403, "Removing models is turned off on this server (SDEDIT_NO_DOWNLOADS).")
        try:
            removed = remove_model(name)
        except InputError as err:
            return _detail(404, str(err))
        if manager.refresh is not None:
            manager.refresh()
        return Removed(removed=[p.name for p in removed])

    return router


def _management_off() -> bool:
    return os.environ.get("SDEDIT_NO_DOWNLOADS", "") not in ("", "0")


def _check_source(source: str) -> None:
    """What a client may ask this server to fetch (checked again by the child)."""
    from urllib.parse import urlsplit

    from ..errors import InputError
    from ..models.catalogue import CATALOGUE
    from ..models.pull import HUB_ID, _is_loopback

    if source in CATALOGUE or (HUB_ID.match(source) and "://" not in source and ".." not in source.split("/")):
        return
    parts = urlsplit(source)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return
    raise InputError("The source must be a catalogue name, a Hugging Face id (org/name[/file]) or an https:// URL.")
