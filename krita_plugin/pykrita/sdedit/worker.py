"""Background thread that runs one edit on the server, so Krita's window never freezes.

PNG encoding, the HTTP calls and PNG decoding all happen here; the GUI thread only gets signals.
"""

import os
import sys
import threading
import traceback
from typing import Any, Dict, Optional

from PyQt5.QtCore import QThread, pyqtSignal

from sdedit_client import Client, JobCancelled, SDEditError, ServerStopped, ServerUnavailable
from sdedit_client.client import _is_loopback, normalize_url
from sdedit_client.autostart import ensure_server, started_server, stopped_error
from sdedit_client.mask import grown_mask, mask_needed
from sdedit_client.settings import model_takes_text, not_started_text

from .qt_png import decode_to_bgra, encode_bgra, encode_gray


_LIVE_THREADS = set()


def keep_alive(thread: QThread) -> None:
    """Hold a reference until the thread ends: a QThread collected while running crashes Krita."""
    _LIVE_THREADS.add(thread)
    thread.finished.connect(lambda: _LIVE_THREADS.discard(thread))


class _JobClient(Client):
    """A client that remembers the id of the job it submitted, so previews can be asked for it."""

    job_id = None  # type: Optional[str]

    def submit(self, *args: Any, **kwargs: Any) -> str:
        self.job_id = super().submit(*args, **kwargs)
        return self.job_id


def make_client(url: str, timeout: float = 10.0) -> Client:
    return _JobClient(url, token=os.environ.get("SDEDIT_TOKEN") or None, timeout=timeout)


class EditWorker(QThread):
    """Runs ``Client.run`` off the GUI thread; emits progress (0..1), then succeeded or failed.

    ``text`` holds the prompt fields; they are sent only when the server says the chosen model takes text.
    A local server that does not answer is started first (``status`` says so); with ``previews`` the
    running job's small preview PNG is emitted whenever it changes.
    """

    progressed = pyqtSignal(float)
    status = pyqtSignal(str, float)  # "Starting the SDEdit server…", fraction of the expected start time
    previewed = pyqtSignal(object)  # PNG bytes of the running job's current estimate
    succeeded = pyqtSignal(object, object, object, object)  # BGRA per result (Krita's order), seeds, params sent,
    #                                                         what ran ({"steps", "sde"} as the server says)
    failed = pyqtSignal(str, str)  # kind ("cancelled" | "error" | "server_stopped"), one-sentence message

    def __init__(self, client: Client, width: int, height: int, bgra: bytes, mask: Optional[bytes],
                 params: Dict[str, Any], text: Optional[Dict[str, Any]] = None, previews: bool = False,
                 parent=None) -> None:
        super().__init__(parent)
        self._client = client
        self._previews = previews
        self._last_preview = None  # type: Optional[bytes]
        self._size = (width, height)
        self._bgra = bgra
        self._mask = mask
        self.edit_mask = None  # type: Optional[bytes]  # the mask the server edited with, once it answered
        self._params = dict(params)
        self._text = dict(text or {})
        self._cancel = threading.Event()

    def request_cancel(self) -> None:
        """Ask the job to stop; the worker deletes it on the server and reports 'cancelled'."""
        self._cancel.set()

    def run(self) -> None:  # noqa: D401 - QThread entry point
        width, height = self._size
        try:
            image = encode_bgra(width, height, self._bgra)
            mask = None
            if mask_needed(self._mask, width, height):  # all selected = edit everything, no mask
                mask = encode_gray(width, height, self._mask)
            ensure_server(self._client.base_url, on_status=self.status.emit, cancel=self._cancel.is_set)
            started = started_server(self._client.base_url)  # an editor started it: its log says why it stops
            params = dict(self._params)
            try:
                if self._text and model_takes_text(self._client.models(), params.get("model")):
                    params.update(self._text)
                result = self._client.run(image, mask, on_progress=self._on_progress, grow=True,
                                          should_cancel=self._cancel.is_set,
                                          poll_interval=0.1 if self._previews else 0.25, **params)
            except ServerUnavailable as error:  # it answered a moment ago: did it stop?
                raise stopped_error(self._client.base_url, started) or error
            pngs, seeds = result
            if mask is not None:  # the server grew the selection: result layers keep that fade
                self.edit_mask = grown_mask(getattr(result, "mask", None), self._mask, width, height, decode_to_bgra)
            images = []
            for png in pngs:
                w, h, bgra = decode_to_bgra(png)
                if (w, h) != (width, height):
                    raise SDEditError("The server returned a %dx%d result for a %dx%d layer: update the "
                                      "SDEdit server." % (w, h, width, height))
                images.append(bgra)
            if self._cancel.is_set():
                raise JobCancelled("The edit was cancelled.")
            self.succeeded.emit(images, seeds, params, dict(self._client.last_ran))
        except JobCancelled as error:
            self.failed.emit("cancelled", str(error))
        except ServerStopped as error:
            self.failed.emit("server_stopped", str(error))
        except SDEditError as error:
            self.failed.emit("error", str(error))
        except Exception as error:  # never a traceback in the painter's face; keep it in Krita's log
            traceback.print_exc(file=sys.stderr)
            self.failed.emit("error", "SDEdit failed unexpectedly (%s): see Krita's log for details." % error)


    def _on_progress(self, fraction: float) -> None:
        self.progressed.emit(fraction)
        job_id = getattr(self._client, "job_id", None)
        if not self._previews or job_id is None or fraction >= 1.0:
            return
        try:
            png = self._client.preview(job_id)
        except SDEditError:  # a preview is a courtesy: the job goes on without it
            return
        if png and png != self._last_preview:
            self._last_preview = png
            self.previewed.emit(png)


def is_local(url: str) -> bool:
    """Whether ``url`` names this computer (where a missing server is started by the plugin)."""
    import urllib.parse

    try:
        return _is_loopback(urllib.parse.urlsplit(normalize_url(url)).hostname)
    except SDEditError:
        return False


class ServerInfoWorker(QThread):
    """Fetches health and the model list for the dialog without blocking it."""

    loaded = pyqtSignal(object, object)  # health dict, models list
    failed = pyqtSignal(str)

    def __init__(self, url: str, parent=None) -> None:
        super().__init__(parent)
        self._url = url

    def run(self) -> None:  # noqa: D401
        try:
            client = Client(self._url, token=os.environ.get("SDEDIT_TOKEN") or None, timeout=5.0)
            self.loaded.emit(client.health(), client.models())
        except ServerUnavailable as error:
            if is_local(self._url):  # the edit starts it: say that, not "start it yourself"
                self.failed.emit(not_started_text(client.base_url))
            else:
                self.failed.emit(str(error))
        except SDEditError as error:
            self.failed.emit(str(error))
        except Exception as error:
            self.failed.emit("Could not ask the server for its models (%s)." % error)
