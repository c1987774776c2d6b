"""Live mode in the docker: re-edit the active layer (or selection) as the artist paints.

While the Live toggle is on, a gentle timer looks at the active layer and selection between strokes (never
while a mouse button is down, so painting is not disturbed) and notices a change by a checksum of the pixels.
A changed region is scaled to the model's live size and sent as a job of this canvas's live session: the
server drops the session's older job ("superseded"), so at most one is worked on and the newest wins. The
newest result is shown in the panel with a busy indicator while a job is in flight (a job in flight is
superseded only while that is cheap, see sdedit_client.live). Turning Live off stops
the worker and deletes its job on the server within a second. Apply renders the live result again at full
size with the same seed and settings and adds it as one layer (one undo step). docs/design.md "Live mode".
"""

import os
import random
import threading
import time
import zlib
from typing import Any, Dict, Optional, Tuple

from krita import Krita
from PyQt5.QtCore import QThread, QTimer, Qt, pyqtSignal
from PyQt5.QtGui import QImage, QPixmap
from PyQt5.QtWidgets import QApplication, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from sdedit_client import Client, SDEditError
from sdedit_client.autostart import ensure_server
from sdedit_client.live import live_with_loras, send_now
from sdedit_client.mask import mask_needed
from sdedit_client.params import MAX_SEED, new_session_key
from sdedit_client.settings import model_takes_text, request_params, text_params

from .layer_io import Source, active_paint_layer, read_source
from .qt_png import decode_to_bgra, encode_bgra, encode_gray

POLL_MS = 400  # how often the canvas is looked at while Live is on (only between strokes)
LOOK_SHARE = 0.1  # at most this share of the GUI thread's time goes to looking: big layers are looked at less often
JOB_POLL_S = 0.1
STOP_WAIT_S = 0.9  # turning Live off: the worker's job is deleted within this
PREVIEW = 256
FINAL = ("done", "failed", "cancelled")


def scale_region(source: Source, size: int) -> Tuple[int, int, bytes, Optional[bytes]]:
    """The source's pixels (and mask) scaled so the longest side is at most ``size`` (Qt, smooth)."""
    width, height = source.size
    factor = min(1.0, float(size) / max(width, height))
    out_w, out_h = max(8, int(round(width * factor))), max(8, int(round(height * factor)))
    if (out_w, out_h) == (width, height):
        return width, height, source.bgra, source.mask
    image = QImage(source.bgra, width, height, width * 4, QImage.Format_ARGB32)
    scaled = image.scaled(out_w, out_h, Qt.IgnoreAspectRatio, Qt.SmoothTransformation)
    bgra = _bytes(scaled.convertToFormat(QImage.Format_ARGB32), out_w * 4)
    mask = None
    if source.mask is not None:
        gray = QImage(source.mask, width, height, width, QImage.Format_Grayscale8)
        mask = _bytes(gray.scaled(out_w, out_h, Qt.IgnoreAspectRatio, Qt.SmoothTransformation), out_w)
    return out_w, out_h, bgra, mask


def _bytes(image: QImage, row: int) -> bytes:
    pointer = image.constBits()
    pointer.setsize(image.bytesPerLine() * image.height())
    data = bytes(pointer)
    stride = image.bytesPerLine()
    if stride == row:
        return data
    return b"".join(data[y * stride:y * stride + row] for y in range(image.height()))


class LiveRequest:
    """One canvas state to render: the scaled pixels, the checksum of the full-size ones."""

    def __init__(self, version: int, digest: int, width: int, height: int, bgra: bytes, mask: Optional[bytes]):
        self.version, self.digest = version, digest
        self.width, self.height, self.bgra, self.mask = width, height, bgra, mask


class LiveWorker(QThread):
    """Sends the newest request as a job of one session and fetches each finished result (off the GUI thread).

    A newer request supersedes the job in flight only when that is cheap (sdedit_client.live.send_now); else
    it waits for the current result, so previews keep coming while the artist keeps painting.

    Emits ``shown(png, version, digest)`` for every result that is the session's newest, ``busy(bool)``
    while a job is in flight, ``failed(message)`` on an error (and stops)."""

    shown = pyqtSignal(object, int, int)
    busy = pyqtSignal(bool)
    failed = pyqtSignal(str)
    submitted = pyqtSignal(str)  # job id

    def __init__(self, url: str, params: Dict[str, Any], text: Dict[str, Any], session: str, parent=None) -> None:
        super().__init__(parent)
        self._client = Client(url, token=os.environ.get("SDEDIT_TOKEN") or None, timeout=10.0)
        self._params, self._text, self._session = dict(params), dict(text), session
        self._lock = threading.Condition()
        self._pending = None  # type: Optional[LiveRequest]
        self._stop = threading.Event()
        self.live = {}  # type: Dict[str, Any]  # the model's live defaults, once known
        self.job_id = None  # type: Optional[str]
        self.params = {}  # type: Dict[str, Any]  # what each live job asks for, once known
        self.sent = []  # type: list  # job ids sent, for tests and the status line

    def offer(self, request: LiveRequest) -> None:
        """The newest canvas state; replaces one not sent yet."""
        with self._lock:
            self._pending = request
            self._lock.notify_all()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()

    def run(self) -> None:  # noqa: D401 - QThread entry point
        current = None  # type: Optional[Tuple[str, LiveRequest]]
        state, progress, restarts = None, 0.0, 0  # the job in flight's last status; supersessions in a row
        try:
            ensure_server(self._client.base_url, cancel=self._stop.is_set)
            models = self._client.models()
            params = dict(self._params)
            if self._text and model_takes_text(models, params.get("model")):
                params.update(self._text)
            info = next((m for m in models if (m.get("id") == params.get("model") if params.get("model")
                                                else m.get("default"))), {})
            self.live = live_with_loras(info.get("live") or {}, params.get("loras") or [])
            params = live_params(params, self.live, bool(info.get("text")))
            self.params = params
            while not self._stop.is_set():
                with self._lock:
                    request = self._pending if send_now(state, progress, restarts) else None
                    if request is not None:
                        self._pending = None
                if request is not None:  # newer than anything in flight: the server supersedes the old job
                    if current is not None:
                        restarts += 1
                    image = encode_bgra(request.width, request.height, request.bgra)
                    mask = None
                    if mask_needed(request.mask, request.width, request.height):
                        mask = encode_gray(request.width, request.height, request.mask)
                    job_id = self._client.submit(image, mask, session=self._session, grow=True, **params)
                    self.job_id, current, state, progress = job_id, (job_id, request), "queued", 0.0
                    self.sent.append(job_id)
                    self.submitted.emit(job_id)
                    self.busy.emit(True)
                if current is not None:
                    status = self._client.status(current[0])
                    state, progress = status["state"], status["progress"]
                    if status["state"] == "done":
                        pngs, _ = self._client.result(current[0])
                        self.shown.emit(pngs[0], current[1].version, current[1].digest)
                        current, state, restarts = None, None, 0
                    elif status["state"] in ("failed", "cancelled"):
                        if status["state"] == "failed":
                            raise SDEditError("The live edit failed: %s" % (status.get("error") or "no reason given"))
                        current, state = None, None  # superseded or cancelled elsewhere: send the newest
                    if current is None:
                        self.busy.emit(False)
                with self._lock:
                    if (self._pending is None or current is not None) and not self._stop.is_set():
                        self._lock.wait(JOB_POLL_S if current is not None else 0.5)
        except SDEditError as error:
            if not self._stop.is_set():
                self.failed.emit(str(error))
        except Exception as error:  # never a traceback in the painter's face
            if not self._stop.is_set():
                self.failed.emit("Live mode stopped unexpectedly (%s)." % error)
        finally:
            if current is not None:
                try:  # turning Live off leaves nothing running on the server
                    self._client.timeout = STOP_WAIT_S
                    self._client.cancel(current[0])
                except SDEditError:
                    pass
            self.busy.emit(False)


def live_params(params: Dict[str, Any], live: Dict[str, Any], takes_text: bool) -> Dict[str, Any]:
    """The request for a live preview: the model's live sampler and steps (and guidance for text models)
    over the form's, one sample, the form's t0, model, prompt and seed (a random seed is drawn once per live
    session, so each update follows the strokes rather than new noise)."""
    out = dict(params)
    out["samples"] = 1
    if live.get("sde"):
        out["sde"] = live["sde"]
    if live.get("steps"):
        out["steps"] = int(live["steps"])
    if takes_text and live.get("guidance") is not None:  # Turbo/LCM burn with the form's full-edit guidance
        out["guidance"] = float(live["guidance"])
    if out.get("seed") is None:
        out["seed"] = random.SystemRandom().randint(0, MAX_SEED)
    return out


class LivePanel(QWidget):
    """The Live toggle, the newest live result and its busy indicator, and Apply (one layer, one undo step)."""

    def __init__(self, form, parent=None) -> None:
        super().__init__(parent)
        self.form = form
        self.worker = None  # type: Optional[LiveWorker]
        self.session = new_session_key()
        self.version = 0
        self.watched = None  # type: Optional[Tuple[Any, Any, int]]  # (document, node, checksum)
        self.last_source = None  # type: Optional[Source]
        self.result = None  # type: Optional[Dict[str, Any]]  # the newest shown: png, version, digest, params
        self.updates_shown = 0
        self.apply_controller = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.toggle = QPushButton("Live")
        self.toggle.setObjectName("sdedit_live")
        self.toggle.setCheckable(True)
        self.toggle.setToolTip("Re-edit the active layer (or selection) as you paint, with the model's fast "
                               "live settings and a fixed seed")
        self.toggle.toggled.connect(self.set_live)
        self.busy_bar = QProgressBar()
        self.busy_bar.setObjectName("sdedit_live_busy")
        self.busy_bar.setRange(0, 0)  # an animated 'working' bar
        self.busy_bar.setMaximumHeight(10)
        self.busy_bar.setVisible(False)
        self.apply_button = QPushButton("Apply live")
        self.apply_button.setObjectName("sdedit_live_apply")
        self.apply_button.setToolTip("Render the live result at full size (same seed) and add it as a layer")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply)
        row.addWidget(self.toggle)
        row.addWidget(self.busy_bar, 1)
        row.addWidget(self.apply_button)
        layout.addLayout(row)
        self.preview = QLabel("")
        self.preview.setObjectName("sdedit_live_preview")
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setVisible(False)
        layout.addWidget(self.preview)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.look)

    # -- on / off -------------------------------------------------------------------------------------------
    def is_live(self) -> bool:
        return self.worker is not None

    def set_live(self, on: bool) -> None:
        if on and self.worker is None:
            self._start()
        elif not on and self.worker is not None:
            self._stop()
        if self.toggle.isChecked() != self.is_live():
            self.toggle.blockSignals(True)
            self.toggle.setChecked(self.is_live())
            self.toggle.blockSignals(False)

    def _start(self) -> None:
        try:
            settings = self.form.values()
            params = request_params(settings)
            text = text_params(settings)
        except SDEditError as error:
            self.status.setText(str(error))
            return
        self.session = new_session_key()  # a fresh session: nothing of an earlier one is followed
        worker = LiveWorker(settings["server_url"], params, text, self.session)
        worker.shown.connect(self._shown)
        worker.busy.connect(self.busy_bar.setVisible)
        worker.failed.connect(self._failed)
        self.worker = worker
        self.watched = None
        self.preview.setVisible(True)
        self.status.setText("Live: watching the active layer.")
        worker.start()
        self.timer.start()
        self.look()

    def _stop(self) -> None:
        worker, self.worker = self.worker, None
        self.timer.stop()
        worker.stop()  # its thread deletes the job in flight and ends; the GUI never waits for it
        worker.finished.connect(worker.deleteLater)
        _keep(worker)
        self.busy_bar.setVisible(False)
        self.status.setText("Live is off.")

    def _failed(self, message: str) -> None:
        self.status.setText(message)
        self.set_live(False)

    # -- watching the canvas --------------------------------------------------------------------------------
    def look(self) -> None:
        """One gentle look at the canvas: read the active layer's region, send it when its pixels changed.

        The timer's period grows with what a look costs (a 4K layer takes tens of ms to read and checksum), so
        watching never takes more than LOOK_SHARE of the GUI thread between strokes."""
        started = time.perf_counter()
        try:
            self._look()
        finally:
            cost_ms = (time.perf_counter() - started) * 1000.0
            self.timer.setInterval(max(POLL_MS, int(cost_ms / LOOK_SHARE)))

    def _look(self) -> None:
        if self.worker is None or self.apply_controller is not None:
            return
        if QApplication.mouseButtons() != Qt.NoButton:  # mid-stroke: look again once the stroke is done
            return
        document = Krita.instance().activeDocument()
        try:
            node = active_paint_layer(document)
            source = read_source(document, node)
        except SDEditError:
            return  # no paint layer active (a group, a mask...): nothing to show, nothing to send
        digest = zlib.adler32(source.bgra, zlib.adler32(source.mask or b"", len(source.bgra)))
        digest = zlib.adler32(repr(source.rect).encode(), digest)
        if self.watched is not None and self.watched[0] == document and self.watched[1] == node \
                and self.watched[2] == digest:
            return
        if source.mask is not None and not mask_needed_quiet(source):
            return  # an empty selection: nothing to edit
        self.watched = (document, node, digest)
        self.version += 1
        self.last_source = source
        size = int(self.worker.live.get("size") or PREVIEW) if self.worker.live else PREVIEW
        width, height, bgra, mask = scale_region(source, size)
        self.worker.offer(LiveRequest(self.version, digest, width, height, bgra, mask))

    def _shown(self, png: bytes, version: int, digest: int) -> None:
        if self.worker is None:
            return  # a result that came as Live was turned off
        pixmap = QPixmap()
        if not pixmap.loadFromData(png, "PNG"):
            return
        self.preview.setPixmap(pixmap.scaled(PREVIEW, PREVIEW, Qt.KeepAspectRatio, Qt.SmoothTransformation))
        self.result = {"png": png, "version": version, "digest": digest, "params": dict(self.worker.params),
                       "source": self.last_source if version == self.version else None}
        self.updates_shown += 1
        self.apply_button.setEnabled(True)
        self.status.setText("Live: update %d (seed %s)." % (self.updates_shown, self.worker.params.get("seed")))

    # -- apply ----------------------------------------------------------------------------------------------
    def apply(self) -> bool:
        """Render the newest live result at full size with its seed and settings; add it as one layer."""
        from .controller import EditController

        if self.result is None or self.apply_controller is not None:
            return False
        params = self.result["params"]
        document = Krita.instance().activeDocument()
        try:
            source = read_source(document, active_paint_layer(document))
            settings = dict(self.form.values())
            settings.update(seed_mode="fixed", seed=int(params["seed"]), samples=1, sde=params.get("sde") or "",
                            steps=int(params.get("steps") or 0))
            if params.get("guidance") is not None:
                settings["guidance"] = params["guidance"]
            controller = EditController(source, settings, interactive=False, parent_widget=self)
        except SDEditError as error:
            self.status.setText(str(error))
            return False
        controller.finished.connect(self._applied)
        self.apply_controller = controller
        self.status.setText("Rendering the live result at %dx%d…" % source.size)
        controller.start()
        return True

    def _applied(self, report: Dict[str, Any]) -> None:
        self.apply_controller = None
        self.last_apply = report
        self.status.setText(report.get("message") or "")


def mask_needed_quiet(source: Source) -> bool:
    """Whether the selection selects anything (False for an empty one), without raising."""
    try:
        mask_needed(source.mask, *source.size)
        return True
    except SDEditError:
        return False


_STOPPING = set()


def _keep(worker: QThread) -> None:
    """Hold a stopping worker until its thread ends (a QThread collected while running crashes Krita)."""
    _STOPPING.add(worker)
    worker.finished.connect(lambda: _STOPPING.discard(worker))
