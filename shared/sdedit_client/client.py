"""HTTP client for the SDEdit server (docs/design.md §3 API), on urllib only.

Every failure becomes an :class:`~sdedit_client.errors.SDEditError` subclass with a one-sentence message,
so a plugin can show ``str(error)`` to the painter as is.
"""

import base64
import json
import socket
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import (
    InvalidParameter,
    JobCancelled,
    JobFailed,
    RequestRejected,
    SDEditError,
    ServerUnavailable,
)
from .params import FALLBACK_LIMITS, limits_from, validate_params, validate_session, validate_text
from .settings import DEFAULT_URL

START_HINT = "start it by running sdedit serve"
FINAL_STATES = ("done", "failed", "cancelled")


def normalize_url(url: str) -> str:
    """``http://host:port`` without a trailing slash; a bare ``host:port`` gets ``http://``."""
    url = (url or "").strip()
    if not url:
        raise InvalidParameter("The server URL is empty: use for example %s." % DEFAULT_URL)
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameter("The server URL %r is not an http:// address like %s." % (url, DEFAULT_URL))
    try:
        parts.port
    except ValueError:
        raise InvalidParameter("The server URL %r has an invalid port number." % url)
    return url.rstrip("/")


def _is_loopback(host: Optional[str]) -> bool:
    return host in ("localhost", "::1") or (host or "").startswith("127.")



class Result(tuple):
    """A finished job: unpacks as ``(images, seeds)`` like before; ``mask`` is the PNG (8-bit grey, the
    input's size) of the mask the server edited with when one was sent: the selection grown and feathered
    outward, so a layer that holds only the edit should take its alpha from this, not from the selection.
    None from a server older than this field."""

    mask: Optional[bytes]

    def __new__(cls, images: List[bytes], seeds: List[int], mask: Optional[bytes] = None) -> "Result":
        result = super().__new__(cls, (images, seeds))
        result.mask = mask
        return result

class Client:
    """Talks to one SDEdit server: health, models, submit/poll/result/cancel of edit jobs."""

    def __init__(self, base_url: str = DEFAULT_URL, token: Optional[str] = None, timeout: float = 10.0) -> None:
        self.base_url = normalize_url(base_url)
        self.token = token or None
        self.timeout = float(timeout)
        host = urllib.parse.urlsplit(self.base_url).hostname
        # A proxy from the environment must not swallow calls to a server on this machine.
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(host) else []
        self._opener = urllib.request.build_opener(*handlers)
        self._limits: Optional[Dict[str, Any]] = None  # what the server published, once health was asked
        #: What the last fetched result says ran: {"steps": int, "sde": str} (empty from older servers).
        self.last_ran: Dict[str, Any] = {}

    # -- the API -----------------------------------------------------------------------------------------
    def health(self) -> Dict[str, Any]:
        """``{"status": "ok", "device": ..., "models": [...], "limits": {...}}``; raises ServerUnavailable when
        down. Keeps the server's published limits for :attr:`limits`."""
        answer = self._request("GET", "/v1/health")
        self._limits = limits_from(answer)
        return answer

    @property
    def limits(self) -> Dict[str, Any]:
        """The server's limits (t0 range, samples, steps, seed, guidance, prompt length, samplers, max_pixels,
        max_work ...) as its last health answer published them; this client's copy before that, or for a
        server that publishes none."""
        return dict(self._limits if self._limits is not None else FALLBACK_LIMITS)

    def models(self) -> List[Dict[str, Any]]:
        """The server's models: ``[{"id", "resolution", "sde", "default", "kind", "text", "default_sde"}, ...]``
        ("sde": the SDE it was trained with; "default_sde": the sampler a job without "sde" gets)."""
        answer = self._request("GET", "/v1/models")
        if isinstance(answer, dict) and isinstance(answer.get("models"), list):
            answer = answer["models"]
        if not isinstance(answer, list):
            raise self._not_sdedit("the model list is not a list")
        return answer

    def submit(self, image_png: bytes, mask_png: Optional[bytes] = None, *, t0: float = 0.5,
               sde: Optional[str] = None, steps: Optional[int] = None, samples: int = 1,
               seed: Optional[int] = None, model: Optional[str] = None, prompt: Optional[str] = None,
               negative_prompt: Optional[str] = None, guidance: Optional[float] = None,
               session: Optional[str] = None, loras: Optional[List[Dict[str, Any]]] = None,
               grow: bool = False) -> str:
        """Queue an edit of ``image_png`` (white in ``mask_png`` = edit); returns the job id.

        ``sde`` None sends no sampler (the model's declared default); the text fields are sent only when
        given (for models that take a prompt). ``session`` (live mode): the server cancels this session's
        queued or running job ("superseded"), so only the newest edit of a live canvas is worked on.
        ``grow`` (with a mask): the server grows and feathers a hard selection outward, as painters expect of
        a selection; the result's mask says where it changed pixels. Without it black mask pixels are kept.
        """
        if not image_png:
            raise InvalidParameter("There is no image to edit.")
        limits = self.limits
        params = validate_params(t0=t0, sde=sde, steps=steps, samples=samples, seed=seed, model=model, limits=limits)
        params.update(validate_text(prompt=prompt, negative_prompt=negative_prompt, guidance=guidance, limits=limits))
        body: Dict[str, Any] = {"image": base64.b64encode(bytes(image_png)).decode("ascii")}
        if mask_png is not None:
            body["mask"] = base64.b64encode(bytes(mask_png)).decode("ascii")
        body.update({key: value for key, value in params.items() if value is not None})
        if grow and mask_png is not None:
            body["grow"] = True
        if session is not None:
            body["session"] = validate_session(session)
        if loras:  # [{"id", "scale"}] (model_manager.parse_loras); sent only when there are some
            body["loras"] = [{"id": str(item["id"]), "scale": float(item.get("scale", 1.0))} for item in loras]
        answer = self._request("POST", "/v1/jobs", body)
        if not isinstance(answer, dict) or not answer.get("id"):
            raise self._not_sdedit("the job answer has no id")
        return str(answer["id"])

    def status(self, job_id: str) -> Dict[str, Any]:
        """``{"id", "state", "progress", "error", "superseded_by"}`` of a job (``superseded_by``: the newer job
        of the same live session that replaced it, else None)."""
        answer = self._request("GET", "/v1/jobs/%s" % urllib.parse.quote(str(job_id), safe=""))
        if not isinstance(answer, dict) or "state" not in answer:
            raise self._not_sdedit("the job status has no state")
        try:
            progress = min(1.0, max(0.0, float(answer.get("progress") or 0.0)))
        except (TypeError, ValueError):
            progress = 0.0
        return {"id": answer.get("id", job_id), "state": str(answer["state"]), "progress": progress,
                "error": answer.get("error"), "superseded_by": answer.get("superseded_by")}

    def result(self, job_id: str) -> "Result":
        """The finished job's images (PNG bytes, the input's size) and the seed of each, as ``(images, seeds)``;
        ``.mask`` is the PNG of the mask the edit used (the selection grown and feathered), or None.

        What ran (the sampler steps and sampler, when the server says) is kept in ``last_ran``."""
        answer = self._request("GET", "/v1/jobs/%s/result" % urllib.parse.quote(str(job_id), safe=""))
        if not isinstance(answer, dict) or not isinstance(answer.get("images"), list):
            raise self._not_sdedit("the result has no image list")
        try:
            images = [base64.b64decode(item, validate=True) for item in answer["images"]]
        except (TypeError, ValueError):
            raise self._not_sdedit("a result image is not valid base64")
        seeds = [int(s) for s in answer.get("seeds") or []]
        ran: Dict[str, Any] = {}
        if isinstance(answer.get("steps"), int) and not isinstance(answer.get("steps"), bool):
            ran["steps"] = answer["steps"]
        if isinstance(answer.get("sde"), str):
            ran["sde"] = answer["sde"]
        self.last_ran = ran
        mask = None
        if isinstance(answer.get("mask"), str):
            try:
                mask = base64.b64decode(answer["mask"], validate=True)
            except ValueError:
                raise self._not_sdedit("the result's mask is not valid base64")
        return Result(images, seeds, mask)

    def cancel(self, job_id: str) -> None:
        """Ask the server to stop the job (it stops within one sampler step)."""
        self._request("DELETE", "/v1/jobs/%s" % urllib.parse.quote(str(job_id), safe=""))

    def preview(self, job_id: str) -> Optional[bytes]:
        """A small PNG (at most 256 px a side) of the running job's current estimate of its result, or None
        while there is none yet (HTTP 404: not started, or an old server without previews)."""
        path = "/v1/jobs/%s/preview" % urllib.parse.quote(str(job_id), safe="")
        try:
            payload = self._open("GET", path, accept="image/png")
        except RequestRejected as error:
            if error.status == 404:
                return None
            raise
        return payload or None

    def run(self, image_png: bytes, mask_png: Optional[bytes] = None, *,
            on_progress: Optional[Callable[[float], Any]] = None,
            should_cancel: Optional[Callable[[], bool]] = None,
            poll_interval: float = 0.25, **params: Any) -> "Result":
        """Submit, poll until finished, return ``(images, seeds)`` (a :class:`Result`, with ``.mask``).

        ``on_progress(fraction)`` is called after every poll; when ``should_cancel()`` turns true the job
        is deleted on the server and :class:`JobCancelled` raised. Blocking: call it off the GUI thread.
        """
        job_id = self.submit(image_png, mask_png, **params)
        samples = int(params.get("samples") or 1)
        try:
            while True:
                if should_cancel is not None and should_cancel():
                    raise JobCancelled("The edit was cancelled.")
                state = self.status(job_id)
                if on_progress is not None:
                    on_progress(state["progress"])
                if state["state"] == "done":
                    result = self.result(job_id)
                    self.check_results(result[0], result[1], samples, png_size(image_png))
                    return result
                if state["state"] == "failed":
                    raise JobFailed("The SDEdit server could not finish the edit: %s"
                                    % _sentence(state.get("error") or "it gave no reason."))
                if state["state"] == "cancelled":
                    raise JobCancelled("The edit was cancelled on the server.")
                _sleep(poll_interval, should_cancel)
        except (JobCancelled, KeyboardInterrupt):
            self._cancel_quietly(job_id)
            raise

    def check_results(self, images: List[bytes], seeds: List[int], samples: int,
                      size: Optional[Tuple[int, int]]) -> None:
        """Raise SDEditError unless there is one PNG (8-bit grey/RGB/RGBA) of the input's ``size`` per sample:
        a result that is not what was asked for is never handed to the editor."""
        if len(images) != samples or len(seeds) != samples:
            raise self._wrong_result("%d image(s) and %d seed(s) for %d sample(s)" % (len(images), len(seeds),
                                                                                         samples))
        for index, png in enumerate(images):
            header = png_header(png)
            if header is None:
                raise self._wrong_result("image %d is not a PNG" % index)
            if size is not None and header[:2] != tuple(size):
                raise self._wrong_result("a %dx%d image for a %dx%d input" % (header[0], header[1], size[0], size[1]))
            if header[2:] not in ((8, 0), (8, 2), (8, 6)):
                raise self._wrong_result("image %d has an unexpected pixel format" % index)

    def _wrong_result(self, what: str) -> SDEditError:
        return SDEditError("The server at %s sent a wrong result (%s); nothing was changed: check that the server "
                           "URL points at your SDEdit server." % (self.base_url, what))

    # -- plumbing ----------------------------------------------------------------------------------------
    def _cancel_quietly(self, job_id: str) -> None:
        try:
            self.cancel(job_id)
        except SDEditError:
            pass

    def _request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        payload = self._open(method, path, body)
        if not payload:
            return None
        try:
            return json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise self._not_sdedit("the answer is not JSON")

    def _open(self, method: str, path: str, body: Optional[Dict[str, Any]] = None,
              accept: str = "application/json") -> bytes:
        """The raw answer body; every failure as an SDEditError."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Accept", accept)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", _header_value("Bearer " + self.token))
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            raise self._http_error(error, path)
        except (socket.timeout, TimeoutError):
            raise ServerUnavailable("The SDEdit server at %s did not answer within %g s: check that it is running "
                                    "and not overloaded, or %s." % (self.base_url, self.timeout, START_HINT))
        except urllib.error.URLError as error:
            if isinstance(error.reason, (socket.timeout, TimeoutError)):
                raise ServerUnavailable("The SDEdit server at %s did not answer within %g s: check that it is "
                                        "running, or %s." % (self.base_url, self.timeout, START_HINT))
            raise ServerUnavailable("Cannot reach the SDEdit server at %s — %s." % (self.base_url, START_HINT))
        except (HTTPException, ConnectionError, OSError):
            raise ServerUnavailable("Cannot reach the SDEdit server at %s — %s." % (self.base_url, START_HINT))
        return payload

    def _http_error(self, error: urllib.error.HTTPError, path: str) -> SDEditError:
        message = _server_message(error)
        code = error.code
        if code in (401, 403):
            hint = ("set the server's access token in the plugin settings" if not self.token
                    else "check the access token in the plugin settings")
            return RequestRejected("The SDEdit server at %s refused access (%s): %s."
                                   % (self.base_url, (message or "no valid token").rstrip("."), hint), code)
        if code == 404 and path.startswith("/v1/jobs/"):
            return RequestRejected("The SDEdit server does not know this job (it may have been restarted): "
                                   "run the edit again.", code)
        if code == 404:
            return ServerUnavailable("The server at %s is not an SDEdit server (no %s): check the server URL."
                                     % (self.base_url, path))
        if code == 409:
            return RequestRejected(_sentence(message or "The job has not finished yet."), code)
        if 400 <= code < 500:
            return RequestRejected(_sentence(message or "The SDEdit server rejected the request (HTTP %d)." % code),
                                   code)
        return SDEditError("The SDEdit server failed (HTTP %d): %s" % (code, _sentence(message or "see its log.")))

    def _not_sdedit(self, what: str) -> SDEditError:
        return SDEditError("The server at %s did not answer like an SDEdit server (%s): check the server URL."
                           % (self.base_url, what))


def png_header(data: bytes) -> Optional[Tuple[int, int, int, int]]:
    """(width, height, bit depth, colour type) from a PNG's IHDR, or None when the bytes are not a PNG."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < 33 or bytes(data[:8]) != b"\x89PNG\r\n\x1a\n" \
            or bytes(data[12:16]) != b"IHDR":
        return None
    width, height = struct.unpack(">II", bytes(data[16:24]))
    return width, height, data[24], data[25]


def png_size(data: bytes) -> Optional[Tuple[int, int]]:
    header = png_header(data)
    return None if header is None else header[:2]


def _server_message(error: urllib.error.HTTPError) -> str:
    """The human message in an error body: FastAPI's ``detail`` (string or validation list) or ``error``."""
    try:
        raw = error.read()
    except Exception:  # the body is a courtesy; the status code still counts
        raw = b""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        text = raw.decode("utf-8", "replace").strip()
        return text[:300] if text and "<" not in text[:1] else ""
    if isinstance(payload, dict):
        for key in ("detail", "error", "message"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict) and isinstance(value.get("message") or value.get("msg"), str):
                return value.get("message") or value.get("msg")
            if isinstance(value, list) and value:
                parts = []
                for item in value:
                    if isinstance(item, dict):
                        loc = [str(p) for p in item.get("loc", []) if p != "body"]
                        msg = str(item.get("msg", "invalid value"))
                        parts.append(("%s: %s" % (".".join(loc), msg)) if loc else msg)
                    else:
                        parts.append(str(item))
                return "; ".join(parts)
    return ""


def _header_value(text: str) -> str:
    """A header value that http.client sends as the UTF-8 bytes of ``text`` (it encodes headers as latin-1)."""
    return text.encode("utf-8").decode("latin-1")


def _sentence(text: Any) -> str:
    text = str(text).strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _sleep(seconds: float, should_cancel: Optional[Callable[[], bool]]) -> None:
    """Sleep in short slices so a cancel request is noticed quickly."""
    end = time.monotonic() + max(0.0, seconds)
    while True:
        left = end - time.monotonic()
        if left <= 0 or (should_cancel is not None and should_cancel()):
            return
        time.sleep(min(0.05, left))
