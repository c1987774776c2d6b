"""One edit from start to finish: read pixels, run the job in a thread, show progress, insert layers.

Interactive runs report problems in a message box; non-interactive runs (scripts, the e2e harness)
only emit ``finished`` with a report dict, so nothing waits for a click.
"""

import os
from typing import Any, Dict, Optional

from krita import Krita
from PyQt5.QtCore import QObject, Qt, pyqtSignal
from PyQt5.QtWidgets import QMessageBox, QProgressDialog, QWidget

from sdedit_client import Client, SDEditError
from sdedit_client.mask import mask_needed
from sdedit_client.params import group_name, layer_name, summary
from sdedit_client.settings import request_params

from .layer_io import Source, insert_results
from .worker import EditWorker, keep_alive

TITLE = "SDEdit"


class EditController(QObject):
    """Drives one edit; emits ``finished(report)`` with keys ok, kind, message, layers, seeds."""

    finished = pyqtSignal(dict)

    def __init__(self, source: Source, settings: Dict[str, Any], interactive: bool = True,
                 parent_widget: Optional[QWidget] = None) -> None:
        super().__init__(parent_widget)
        self.source = source
        self.settings = dict(settings)
        self.params = request_params(self.settings)
        self.interactive = interactive
        self._parent_widget = parent_widget
        self._progress = None  # type: Optional[QProgressDialog]
        self._worker = None  # type: Optional[EditWorker]
        self.report = None  # type: Optional[Dict[str, Any]]
        mask_needed(source.mask, *source.size)  # an empty selection fails here, before anything is sent

    def start(self) -> None:
        """Start the job in a background thread and show a progress dialog with Cancel."""
        client = Client(self.settings["server_url"], token=os.environ.get("SDEDIT_TOKEN") or None)
        width, height = self.source.size
        worker = EditWorker(client, width, height, self.source.bgra, self.source.mask, self.params)
        worker.progressed.connect(self._on_progress)
        worker.succeeded.connect(self._on_success)
        worker.failed.connect(self._on_failure)
        self._worker = worker
        keep_alive(worker)
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

    def _on_progress(self, fraction: float) -> None:
        if self._progress is not None and not self._progress.wasCanceled():
            self._progress.setValue(int(round(fraction * 1000)))

    def _on_success(self, images, seeds) -> None:
        if not _is_open(self.source.document):
            self._finish({"ok": False, "kind": "error", "message": "The image was closed before SDEdit finished, "
                          "so the results were not added."})
            return
        t0, sde = self.params["t0"], self.params["sde"]
        seeds = list(seeds) + [None] * (len(images) - len(seeds))
        names = [layer_name(t0, sde, i + 1, seed=seeds[i]) for i in range(len(images))]
        try:
            inserted = insert_results(self.source, images, names, group_name(t0, sde, len(images)))
        except SDEditError as error:
            self._finish({"ok": False, "kind": "error", "message": str(error)})
            return
        except Exception as error:  # a closed document or a deleted layer ends up here
            self._finish({"ok": False, "kind": "error",
                          "message": "SDEdit could not add the result layers (%s): was the image closed?" % error})
            return
        self._finish({"ok": True, "kind": "done", "message": "Added %d layer(s)." % len(inserted),
                      "layers": inserted, "seeds": seeds})

    def _on_failure(self, kind: str, message: str) -> None:
        self._finish({"ok": False, "kind": kind, "message": message})

    def _finish(self, report: Dict[str, Any]) -> None:
        report.setdefault("layers", [])
        report.setdefault("seeds", [])
        self.report = report
        if self._progress is not None:
            self._progress.close()
            self._progress.deleteLater()
            self._progress = None
        if self.interactive and not report["ok"]:
            if report["kind"] == "cancelled":
                QMessageBox.information(self._parent_widget, TITLE, report["message"])
            else:
                QMessageBox.warning(self._parent_widget, TITLE, report["message"])
        self.finished.emit(report)


def _is_open(document) -> bool:
    """Whether ``document`` is still one of Krita's open documents (libkis compares the documents)."""
    try:
        return any(open_document == document for open_document in Krita.instance().documents())
    except Exception:
        return False
