"""One edit from start to finish: read pixels, run the job in a thread, show progress, insert layers.

Interactive runs report problems in a message box; non-interactive runs (scripts, the e2e harness)
only emit ``finished`` with a report dict, so nothing waits for a click. A job whose image is closed is
cancelled at once; a job whose local server stopped offers to start the server again and repeat the edit.
"""

from typing import Any, Dict, List, Optional, Tuple

from krita import Krita
from PyQt5.QtCore import QObject, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import QMessageBox, QProgressDialog, QWidget

from sdedit_client import SDEditError
from sdedit_client.mask import mask_needed, require_visible
from sdedit_client.params import group_name, layer_name, summary
from sdedit_client.settings import request_params, text_params

from .layer_io import Source, insert_results, selection_only
from .worker import EditWorker, keep_alive, make_client

TITLE = "SDEdit"
CLOSED_MESSAGE = "The image was closed, so SDEdit stopped its job."
RESTART_BUTTON = "Start the server again"
OPEN_CHECK_MS = 300  # how often a running job checks that its image is still open

_RETRIES = []  # type: List[EditController]  # controllers started by "Start the server again", kept alive


class EditController(QObject):
    """Drives one edit; emits ``finished(report)`` with keys ok, kind, message, layers, seeds, params, ran.

    ``kind``: "done", "error", "cancelled", "closed" (its image was closed: the job was cancelled) or
    "server_stopped" (the local server stopped mid-job; interactive runs offer to start it again, and the
    repeated edit's controller is ``retry``).

    The menu action shows a progress dialog and inserts the layers (``docker=False``). The docker shows
    progress and previews itself (``progressed``, ``status``, ``previewed``) and applies results later:
    with ``docker=True`` the report carries the result pixels ("images", Krita's BGRA) instead.
    """

    finished = pyqtSignal(dict)
    progressed = pyqtSignal(float)
    status = pyqtSignal(str)
    previewed = pyqtSignal(object)  # PNG bytes

    def __init__(self, source: Source, settings: Dict[str, Any], interactive: bool = True,
                 parent_widget: Optional[QWidget] = None, docker: bool = False) -> None:
        super().__init__(parent_widget)
        self.docker = docker
        self.source = source
        self.settings = dict(settings)
        self.params = request_params(self.settings)
        self.text = text_params(self.settings)  # checked now; sent only if the model takes text
        self.interactive = interactive
        self._parent_widget = parent_widget
        self._progress = None  # type: Optional[QProgressDialog]
        self._starting = False
        self._worker = None  # type: Optional[EditWorker]
        self.report = None  # type: Optional[Dict[str, Any]]
        self.retry = None  # type: Optional[EditController]
        self._open_check = None  # type: Optional[QTimer]
        # an empty selection, or nothing visible to repaint, fails here, before anything is sent
        partial = mask_needed(source.mask, *source.size)
        require_visible(source.bgra, source.mask if partial else None, source.describe())

    def start(self) -> None:
        """Start the job in a background thread (and, from the menu, show a progress dialog with Cancel)."""
        client = make_client(self.settings["server_url"])
        width, height = self.source.size
        worker = EditWorker(client, width, height, self.source.bgra, self.source.mask, self.params, self.text,
                            previews=self.docker)
        worker.progressed.connect(self._on_progress)
        worker.status.connect(self._on_status)
        worker.previewed.connect(self.previewed.emit)
        worker.succeeded.connect(self._on_success)
        worker.failed.connect(self._on_failure)
        self._worker = worker
        keep_alive(worker)
        self._open_check = QTimer(self)
        self._open_check.timeout.connect(self._check_open)
        self._open_check.start(OPEN_CHECK_MS)
        if self.docker:
            worker.start()
            return
        progress = QProgressDialog("SDEdit: %s on %dx%d pixels…" % (summary(self.params), width, height),
                                   "Cancel", 0, 1000, self._parent_widget)
        progress.setObjectName("sdedit_progress")
        progress.setWindowTitle(TITLE)
        progress.setWindowModality(Qt.WindowModal)
        progress.setMinimumDuration(0)
        progress.setAutoClose(False)
        progress.setAutoReset(False)
        progress.setValue(0)
        progress.canceled.connect(self.cancel)
        self._progress = progress
        worker.start()

    def cancel(self) -> None:
        """Stop the job: the worker deletes it on the server and reports 'cancelled'."""
        if self._worker is not None:
            self._worker.request_cancel()
        if self._progress is not None:
            self._progress.setLabelText("Cancelling…")

    def _check_open(self) -> None:
        """The image was closed: stop the job now (the server deletes it) instead of waiting for its end."""
        if self.report is None and not _is_open(self.source.document):
            if self._worker is not None:
                self._worker.request_cancel()
            self._finish({"ok": False, "kind": "closed", "message": CLOSED_MESSAGE})

    def _on_progress(self, fraction: float) -> None:
        if self.report is not None:
            return
        self.progressed.emit(fraction)
        if self._progress is not None and not self._progress.wasCanceled():
            if self._starting:
                self._starting = False
                width, height = self.source.size
                self._progress.setLabelText("SDEdit: %s on %dx%d pixels…" % (summary(self.params), width, height))
            self._progress.setValue(int(round(fraction * 1000)))

    def _on_status(self, text: str, fraction: float) -> None:
        """The server is being started: say so, with the expected-time fraction on the bar."""
        if self.report is not None:
            return
        self._starting = True
        self.status.emit(text)
        if self._progress is not None and not self._progress.wasCanceled():
            self._progress.setLabelText(text)
            self._progress.setValue(int(round(max(0.0, min(1.0, fraction)) * 1000)))

    def _on_success(self, images, seeds, params, ran) -> None:
        if self.report is not None:  # already finished (its image was closed)
            return
        self.source = self.source.with_edit_mask(getattr(self._worker, "edit_mask", None))
        if not _is_open(self.source.document):
            self._finish({"ok": False, "kind": "closed", "message": CLOSED_MESSAGE})
            return
        seeds = list(seeds) + [None] * (len(images) - len(seeds))
        if self.docker:  # the docker shows them as thumbnails and applies them when asked
            self._finish({"ok": True, "kind": "done", "message": "%d result(s) ready." % len(images),
                          "images": images, "seeds": seeds, "params": dict(params), "ran": dict(ran)})
            return
        names, group = result_names(params, seeds)
        try:
            inserted = insert_results(self.source, images, names, group,
                                      selection_only(self.source, self.settings.get("result_layer", "selection")))
        except SDEditError as error:
            self._finish({"ok": False, "kind": "error", "message": str(error)})
            return
        except Exception as error:  # a closed document or a deleted layer ends up here
            self._finish({"ok": False, "kind": "error",
                          "message": "SDEdit could not add the result layers (%s): was the image closed?" % error})
            return
        self._finish({"ok": True, "kind": "done", "message": "Added %d layer(s)." % len(inserted),
                      "layers": inserted, "seeds": seeds, "params": dict(params), "ran": dict(ran)})

    def _on_failure(self, kind: str, message: str) -> None:
        if self.report is None:
            self._finish({"ok": False, "kind": kind, "message": message})

    def _finish(self, report: Dict[str, Any]) -> None:
        report.setdefault("layers", [])
        report.setdefault("seeds", [])
        self.report = report
        if self._open_check is not None:
            self._open_check.stop()
        if self._progress is not None:
            self._progress.close()
            self._progress.deleteLater()
            self._progress = None
        if self.interactive and not report["ok"]:
            if report["kind"] == "cancelled":
                QMessageBox.information(self._parent_widget, TITLE, report["message"])
            elif report["kind"] == "server_stopped":
                self._offer_restart(report["message"])
            elif report["kind"] != "closed":  # the painter closed it: nothing to tell
                QMessageBox.warning(self._parent_widget, TITLE, report["message"])
        self.finished.emit(report)

    def _offer_restart(self, message: str) -> None:
        """The local server stopped mid-job: say so (with its log's last line) and offer to start it again
        and repeat the edit, which starts the server the way the first run did."""
        box = QMessageBox(QMessageBox.Warning, TITLE, message, QMessageBox.NoButton, self._parent_widget)
        box.setObjectName("sdedit_server_stopped")
        box.setInformativeText("Start the server again and repeat the edit?")
        restart = box.addButton(RESTART_BUTTON, QMessageBox.AcceptRole)
        box.addButton(QMessageBox.Close)
        box.exec_()
        if box.clickedButton() is not restart or not _is_open(self.source.document):
            return
        retry = EditController(self.source, self.settings, interactive=True, parent_widget=self._parent_widget)
        _RETRIES.append(retry)
        retry.finished.connect(lambda _report: _RETRIES.remove(retry) if retry in _RETRIES else None)
        self.retry = retry
        retry.start()


def result_names(params: Dict[str, Any], seeds: List[Optional[int]]) -> Tuple[List[str], str]:
    """The layer names of K results (sampler, seed and the first words of the prompt) and their group's."""
    t0, sde, prompt = params["t0"], params.get("sde"), params.get("prompt")
    names = [layer_name(t0, sde, i + 1, seed=seeds[i], prompt=prompt) for i in range(len(seeds))]
    return names, group_name(t0, sde, len(seeds), prompt)


def _is_open(document) -> bool:
    """Whether ``document`` is still one of Krita's open documents (libkis compares the documents)."""
    try:
        return any(open_document == document for open_document in Krita.instance().documents())
    except Exception:
        return False
