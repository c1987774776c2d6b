"""The docker's Models panel: what is installed, the catalogue, Download (with progress and Cancel), Remove.

Every HTTP call runs on a QThread (the model manager routes of the server, through sdedit_client); a
download is a server job (`POST /v1/models/pull`) polled a few times a second, so Krita never freezes and the
download goes on on the server even if the panel is closed. Cancel ends the server's download; what it had
fetched stays on the server's disk and the next Download of the same model resumes from there.
"""

import os
import time
from typing import Any, Callable, Dict, List, Optional

from PyQt5.QtCore import Qt, QThread, pyqtSignal
from PyQt5.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from sdedit_client import Client, SDEditError
from sdedit_client.model_manager import ModelManager

from .worker import keep_alive

POLL_S = 0.3


def _size(n: Optional[int]) -> str:
    if not n:
        return "?"
    for unit, scale in (("GB", 10 ** 9), ("MB", 10 ** 6), ("kB", 10 ** 3)):
        if n >= scale:
            return "%.1f %s" % (n / scale, unit)
    return "%d B" % n


class _Call(QThread):
    """One blocking call off the GUI thread: emits done(result) or failed(one sentence)."""

    done = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__()
        self._call = call

    def run(self) -> None:
        try:
            self.done.emit(self._call())
        except SDEditError as error:
            self.failed.emit(str(error))
        except Exception as error:  # never let a thread's error pass silently
            self.failed.emit("%s: %s" % (type(error).__name__, error))


class _PullWorker(QThread):
    """Start a download on the server and follow it until it ends; `cancel()` asks the server to stop it."""

    progressed = pyqtSignal(object)  # the pull's status dict
    finished_pull = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, manager: ModelManager, source: str) -> None:
        super().__init__()
        self.manager, self.source = manager, source
        self.cancel_requested = False

    def cancel(self) -> None:
        self.cancel_requested = True

    def run(self) -> None:
        try:
            status = self.manager.pull(self.source)
            pull_id = status.get("id")
            if not pull_id:
                self.failed.emit("The server did not start the download.")
                return
            while status.get("state") == "running":
                if self.cancel_requested:
                    status = self.manager.cancel_pull(pull_id)
                    break
                self.progressed.emit(status)
                time.sleep(POLL_S)
                status = self.manager.pull_status(pull_id)
            self.finished_pull.emit(status)
        except SDEditError as error:
            self.failed.emit(str(error))
        except Exception as error:
            self.failed.emit("%s: %s" % (type(error).__name__, error))


class ModelsPanel(QGroupBox):
    """Installed models and LoRAs, the catalogue, Download / Cancel / Remove; `changed` after an install or removal."""

    changed = pyqtSignal()

    def __init__(self, server_url: Callable[[], str], parent=None) -> None:
        super().__init__("Models", parent)
        self.setObjectName("sdedit_models_panel")
        self.server_url = server_url
        self.catalogue = []  # type: List[Dict[str, Any]]
        self.worker = None  # type: Optional[_PullWorker]
        self.last_pull = None  # type: Optional[Dict[str, Any]]
        layout = QVBoxLayout(self)

        layout.addWidget(QLabel("Installed:"))
        self.installed_list = QListWidget()
        self.installed_list.setObjectName("sdedit_models_installed")
        self.installed_list.setMinimumHeight(70)
        layout.addWidget(self.installed_list)
        layout.addWidget(QLabel("Get more (downloaded by the server):"))
        self.catalogue_list = QListWidget()
        self.catalogue_list.setObjectName("sdedit_models_catalogue")
        self.catalogue_list.setMinimumHeight(90)
        self.catalogue_list.currentRowChanged.connect(lambda _row: self.source_edit.clear())
        layout.addWidget(self.catalogue_list)
        self.source_edit = QLineEdit()
        self.source_edit.setPlaceholderText("or a Hugging Face id (org/name[/file]) or an https:// link")
        layout.addWidget(self.source_edit)

        row = QHBoxLayout()
        self.download_button = QPushButton("Download")
        self.download_button.setObjectName("sdedit_models_download")
        self.download_button.clicked.connect(lambda _checked=False: self.download())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda _checked=False: self.cancel())
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Delete the chosen installed model or LoRA from the server's models folder")
        self.remove_button.clicked.connect(lambda _checked=False: self.remove_selected())
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(lambda _checked=False: self.refresh())
        for button in (self.download_button, self.cancel_button, self.remove_button, self.refresh_button):
            row.addWidget(button)
        layout.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status_label = QLabel("")
        self.status_label.setObjectName("sdedit_models_status")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self._update_buttons()

    # -- server calls --------------------------------------------------------------------------------------
    def _manager(self) -> ModelManager:
        return ModelManager(Client(self.server_url(), token=os.environ.get("SDEDIT_TOKEN") or None, timeout=10.0))

    def _start(self, call: Callable[[], Any], done: Callable[[Any], None]) -> None:
        thread = _Call(call)
        thread.done.connect(done)
        thread.failed.connect(self.status_label.setText)
        keep_alive(thread)
        thread.start()

    def refresh(self) -> None:
        """Ask the server for its models, LoRAs and catalogue."""
        manager = self._manager()

        def fetch():
            return manager.client.models(), manager.loras(), manager.catalogue()

        self._start(fetch, self._show)

    def _show(self, answer) -> None:
        models, loras, catalogue = answer
        self.installed_list.clear()
        for model in models:
            label = "%s  (%s%s)" % (model.get("id"), model.get("kind", "pixel"), ", default" if model.get("default") else "")
            item = QListWidgetItem(label)
            item.setData(Qt.UserRole, model.get("id"))
            self.installed_list.addItem(item)
        for name in loras:
            item = QListWidgetItem("%s  (LoRA)" % name)
            item.setData(Qt.UserRole, name)
            self.installed_list.addItem(item)
        self.catalogue = list(catalogue)
        self.catalogue_list.clear()
        for entry in self.catalogue:
            item = QListWidgetItem("%s%s — %s, %s, %s" % (
                entry.get("name"), " ✓" if entry.get("installed") else "", _size(entry.get("size")),
                entry.get("licence"), entry.get("good_for")))
            item.setToolTip("%s/%s" % (entry.get("repo"), entry.get("file")))
            item.setData(Qt.UserRole, entry.get("name"))
            self.catalogue_list.addItem(item)
        self._update_buttons()

    # -- actions ----------------------------------------------------------------------------------------------
    def chosen_source(self) -> str:
        typed = self.source_edit.text().strip()
        if typed:
            return typed
        item = self.catalogue_list.currentItem()
        return item.data(Qt.UserRole) if item is not None else ""

    def downloading(self) -> bool:
        return self.worker is not None and self.worker.isRunning()

    def download(self, source: Optional[str] = None) -> bool:
        source = (source or self.chosen_source()).strip()
        if not source:
            self.status_label.setText("Choose a model in the list, or type a Hugging Face id or an https:// link.")
            return False
        if self.downloading():
            return False
        self.progress.setValue(0)
        self.status_label.setText("Downloading %s…" % source)
        self.worker = _PullWorker(self._manager(), source)
        self.worker.progressed.connect(self._on_progress)
        self.worker.finished_pull.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        keep_alive(self.worker)
        self.worker.start()
        self._update_buttons()
        return True

    def cancel(self) -> None:
        if self.downloading():
            self.worker.cancel()
            self.status_label.setText("Cancelling…")

    def _on_progress(self, status: Dict[str, Any]) -> None:
        self.progress.setValue(int(1000 * float(status.get("progress") or 0.0)))
        self.status_label.setText("Downloading %s: %s of %s" % (status.get("source"), _size(status.get("done")),
                                                                 _size(status.get("total"))))

    def _on_finished(self, status: Dict[str, Any]) -> None:
        self.last_pull = status
        state = status.get("state")
        if state == "done":
            self.progress.setValue(1000)
            self.status_label.setText("Installed %s." % (status.get("name") or status.get("source")))
            self.changed.emit()
        elif state == "cancelled":
            self.status_label.setText("Download cancelled; downloading it again resumes where it stopped.")
        else:
            self.status_label.setText("The download failed: %s" % (status.get("error") or "no reason given."))
        self._update_buttons()
        self.refresh()

    def _on_failed(self, message: str) -> None:
        self.last_pull = {"state": "failed", "error": message}
        self.status_label.setText(message)
        self._update_buttons()

    def remove_selected(self, confirm: bool = True) -> bool:
        item = self.installed_list.currentItem()
        if item is None:
            self.status_label.setText("Choose an installed model or LoRA to remove.")
            return False
        name = item.data(Qt.UserRole)
        if confirm and QMessageBox.question(self, "Remove model", "Delete %s from the server's models folder?"
                                            % name) != QMessageBox.Yes:
            return False
        manager = self._manager()

        def removed(_answer) -> None:
            self.status_label.setText("Removed %s." % name)
            self.changed.emit()
            self.refresh()

        self._start(lambda: manager.remove(name), removed)
        return True

    def _update_buttons(self) -> None:
        busy = self.downloading()
        self.download_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
