"""The SDEdit docker (Settings → Dockers → SDEdit): generate, watch the live preview, apply results later.

It uses the same settings form as the dialog. Results come back as thumbnails; Apply puts the chosen one
in as a layer (one undo step), Apply all adds them all as the dialog does (one group). Every run of a
document stays in its history with its settings and seeds; "Run again" repeats one exactly (same source
pixels and selection, same settings, its first seed fixed), so it gives the same pixels.
"""

import time
from typing import Any, Dict, List, Optional

from krita import DockWidget, DockWidgetFactory, DockWidgetFactoryBase, Krita
from PyQt5.QtCore import QSize, Qt
from PyQt5.QtGui import QIcon, QImage, QPixmap
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from sdedit_client import SDEditError
from sdedit_client.params import short_prompt

from .controller import EditController, _is_open, result_names
from .layer_io import Source, active_paint_layer, insert_results, read_source, selection_only
from .live import LivePanel
from .settings_form import SettingsForm

DOCKER_ID = "sdedit_docker"
THUMB = 96
PREVIEW = 256
SERVER_RETRY_MS = 5000  # while no server answers, the docker asks again this often (it may be started any time)


class HistoryEntry:
    """One finished run of a document: what went in, what was asked, what came back."""

    def __init__(self, source: Source, settings: Dict[str, Any], params: Dict[str, Any], seeds: List[Optional[int]],
                 images: List[bytes], ran: Optional[Dict[str, Any]] = None) -> None:
        self.source = source
        self.settings = dict(settings)
        self.params = dict(params)
        self.ran = dict(ran or {})  # what the server says ran: {"steps", "sde"} (the model's defaults when asked)
        self.seeds = list(seeds)
        self.images = list(images)
        self.when = time.strftime("%H:%M:%S")
        self.thumbs = [_thumbnail(image, *source.size) for image in images]

    @property
    def document(self):
        return self.source.document

    def title(self) -> str:
        sde = str(self.params.get("sde")).upper() if self.params.get("sde") else "default sampler"
        seeds = [s for s in self.seeds if s is not None]
        seed_text = ("seed %d" % seeds[0]) if len(seeds) == 1 else (
            "seeds %d-%d" % (seeds[0], seeds[-1]) if seeds else "")
        steps = self.steps_text()
        text = "%s  t0=%.2f %s, %s, %s" % (self.when, self.params["t0"], sde,
                                           "auto steps" if steps == "auto" else "%s step(s)" % steps, seed_text)
        if self.params.get("prompt"):
            text += " \u201c%s\u201d" % short_prompt(self.params["prompt"])
        return text

    def steps_text(self) -> str:
        """The sampler steps that ran: the server's count (the model's default when none was asked), else
        the steps asked for, else "auto" (an older server that does not say)."""
        steps = self.ran.get("steps") or self.params.get("steps")
        return str(int(steps)) if steps else "auto"

    def rerun_settings(self) -> Dict[str, Any]:
        """The settings that repeat this run exactly: its first seed fixed (sample k uses seed + k)."""
        settings = dict(self.settings)
        if self.seeds and self.seeds[0] is not None:
            settings.update(seed_mode="fixed", seed=int(self.seeds[0]))
        settings["samples"] = len(self.images)
        return settings


def _thumbnail(bgra: bytes, width: int, height: int, size: int = THUMB) -> QPixmap:
    image = QImage(bgra, width, height, width * 4, QImage.Format_ARGB32).copy()  # copy: own the bytes
    return QPixmap.fromImage(image.scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation))


class SDEditDocker(DockWidget):
    """Settings → Dockers → SDEdit."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("SDEdit")
        from .extension import load_remembered  # the extension module imports this one

        self.history = []  # type: List[HistoryEntry]
        self.shown = None  # type: Optional[HistoryEntry]
        self.controller = None  # type: Optional[EditController]
        self.previews_shown = 0
        self._pending_settings = None  # type: Optional[Dict[str, Any]]

        body = QWidget()
        layout = QVBoxLayout(body)
        self.form = SettingsForm(load_remembered(), body, compact=True, retry_ms=SERVER_RETRY_MS)
        layout.addWidget(self.form)

        run_row = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("sdedit_generate")
        self.generate_button.setToolTip("Edit the active paint layer (or the selection) with these settings")
        self.generate_button.clicked.connect(self._generate_or_cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        run_row.addWidget(self.generate_button)
        run_row.addWidget(self.progress, 1)
        layout.addLayout(run_row)
        self.status_label = QLabel("")
        self.status_label.setObjectName("sdedit_status")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.live = LivePanel(self.form, body)  # live mode: re-edit as you paint (live.py)
        layout.addWidget(self.live)

        self.preview_label = QLabel("The live preview shows here while a job runs.")
        self.preview_label.setObjectName("sdedit_preview")
        self.preview_label.setAlignment(Qt.AlignCenter)
        self.preview_label.setMinimumHeight(120)
        layout.addWidget(self.preview_label)

        layout.addWidget(QLabel("Results:"))
        self.results_list = QListWidget()
        self.results_list.setObjectName("sdedit_results")
        self.results_list.setViewMode(QListWidget.IconMode)
        self.results_list.setIconSize(QSize(THUMB, THUMB))
        self.results_list.setResizeMode(QListWidget.Adjust)
        self.results_list.setMovement(QListWidget.Static)
        self.results_list.setFixedHeight(THUMB + 40)
        self.results_list.itemDoubleClicked.connect(lambda _item: self.apply_selected())
        layout.addWidget(self.results_list)
        apply_row = QHBoxLayout()
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Add the chosen result as a layer above its source (one undo step)")
        # clicked(bool) would pass its checked flag as the index: the chosen thumbnail is read instead
        self.apply_button.clicked.connect(lambda _checked=False: self.apply_selected())
        self.apply_all_button = QPushButton("Apply all")
        self.apply_all_button.setToolTip("Add every result of this run (several go into one group)")
        self.apply_all_button.clicked.connect(lambda _checked=False: self.apply_all())
        apply_row.addWidget(self.apply_button)
        apply_row.addWidget(self.apply_all_button)
        layout.addLayout(apply_row)

        layout.addWidget(QLabel("History of this image:"))
        self.history_list = QListWidget()
        self.history_list.setObjectName("sdedit_history")
        self.history_list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.history_list.currentRowChanged.connect(self._show_history_row)
        self.history_list.setMinimumHeight(80)
        layout.addWidget(self.history_list)
        self.run_again_button = QPushButton("Run again")
        self.run_again_button.setToolTip("Repeat the chosen run exactly: same pixels in, same settings and seeds")
        self.run_again_button.clicked.connect(lambda: self.run_again(self._selected_entry()))
        layout.addWidget(self.run_again_button)
        self.settings_label = QLabel("")
        self.settings_label.setWordWrap(True)
        layout.addWidget(self.settings_label)
        from .models_panel import ModelsPanel  # installed models, the catalogue, Download / Cancel / Remove

        self.models_panel = ModelsPanel(lambda: self.form.values().get("server_url") or "", body)
        self.models_panel.changed.connect(self.form.refresh_server_info)  # a new model shows in the model list
        layout.addWidget(self.models_panel)
        layout.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        self.setWidget(scroll)
        self._update_buttons()
        self.form.refresh_server_info()
        self.models_panel.refresh()

    # -- Krita --------------------------------------------------------------------------------------------
    def canvasChanged(self, canvas) -> None:  # noqa: N802 - Krita's name
        """Another image got the focus: show its history."""
        self.refresh_history()

    # -- running ------------------------------------------------------------------------------------------
    def running(self) -> bool:
        return self.controller is not None and self.controller.report is None

    def _generate_or_cancel(self) -> None:
        if self.running():
            self.controller.cancel()
            self.status_label.setText("Cancelling…")
        else:
            self.generate()

    def generate(self, settings: Optional[Dict[str, Any]] = None, source: Optional[Source] = None) -> bool:
        """Start a job with the form's settings (or ``settings``) on the active layer (or ``source``)."""
        if self.running():
            return False
        from .extension import remember

        try:
            if settings is None:
                settings = self.form.values()
                remember(settings)
            if source is None:
                document = Krita.instance().activeDocument()
                source = read_source(document, active_paint_layer(document))
            controller = EditController(source, settings, interactive=False, parent_widget=self, docker=True)
        except SDEditError as error:
            self.status_label.setText(str(error))
            return False
        controller.progressed.connect(lambda f: self.progress.setValue(int(round(f * 1000))))
        controller.status.connect(self.status_label.setText)
        controller.previewed.connect(self._show_preview)
        controller.finished.connect(self._finished)
        self.controller = controller
        self._pending_settings = dict(settings)
        self.progress.setValue(0)
        self.status_label.setText("Running on %dx%d pixels…" % source.size)
        self.preview_label.setText("Waiting for the first preview…")
        self.preview_label.setPixmap(QPixmap())
        self.generate_button.setText("Cancel")
        self._update_buttons()
        controller.start()
        return True

    def _show_preview(self, png: bytes) -> None:
        pixmap = QPixmap()
        if not pixmap.loadFromData(png, "PNG"):
            return
        pixmap = pixmap.scaled(PREVIEW, PREVIEW, Qt.KeepAspectRatio, Qt.SmoothTransformation)  # small ones too
        self.preview_label.setPixmap(pixmap)
        self.previews_shown += 1

    def _finished(self, report: Dict[str, Any]) -> None:
        controller, self.controller = self.controller, None
        self.generate_button.setText("Generate")
        self.form.refresh_server_info()  # the job may have started the server: say it is up, list its models
        if report.get("ok"):
            entry = HistoryEntry(controller.source, self._pending_settings or controller.settings,
                                 report["params"], report["seeds"], report["images"], report.get("ran"))
            self.history.append(entry)
            self.progress.setValue(1000)
            self.status_label.setText("%d result(s): pick one and Apply, or Apply all." % len(entry.images))
            self.refresh_history(select=entry)
            if entry.thumbs:
                self.preview_label.setPixmap(entry.thumbs[0].scaled(
                    PREVIEW, PREVIEW, Qt.KeepAspectRatio, Qt.SmoothTransformation))
        else:
            message = report.get("message") or "The edit did not finish."
            if report.get("kind") == "server_stopped":
                message += " Generate starts it again."
            self.status_label.setText(message)
            self.progress.setValue(0)
        self._update_buttons()
        self.last_report = report

    # -- results and history ------------------------------------------------------------------------------
    def entries_of_active_document(self) -> List[HistoryEntry]:
        document = Krita.instance().activeDocument()
        self.history = [entry for entry in self.history if _is_open(entry.document)]  # closed images go
        if document is None:
            return []
        return [entry for entry in self.history if entry.document == document]

    def refresh_history(self, select: Optional[HistoryEntry] = None) -> None:
        entries = self.entries_of_active_document()
        self.history_list.blockSignals(True)
        self.history_list.clear()
        for entry in entries:
            item = QListWidgetItem(entry.title())
            item.setToolTip(_settings_text(entry))
            self.history_list.addItem(item)
        self.history_list.blockSignals(False)
        if select is not None and select in entries:
            self.history_list.setCurrentRow(entries.index(select))
        elif entries:
            self.history_list.setCurrentRow(len(entries) - 1)
        else:
            self._show_entry(None)

    def _show_history_row(self, row: int) -> None:
        entries = self.entries_of_active_document()
        self._show_entry(entries[row] if 0 <= row < len(entries) else None)

    def _show_entry(self, entry: Optional[HistoryEntry]) -> None:
        self.shown = entry
        self.results_list.clear()
        if entry is not None:
            for index, thumb in enumerate(entry.thumbs):
                seed = entry.seeds[index] if index < len(entry.seeds) else None
                item = QListWidgetItem(QIcon(thumb), "#%d" % (index + 1) + (" seed %d" % seed if seed is not None else ""))
                self.results_list.addItem(item)
            self.results_list.setCurrentRow(0)
            self.settings_label.setText(_settings_text(entry))
        else:
            self.settings_label.setText("")
        self._update_buttons()

    def _selected_entry(self) -> Optional[HistoryEntry]:
        return self.shown

    def _update_buttons(self) -> None:
        has = self.shown is not None and not self.running()
        for button in (self.apply_button, self.apply_all_button, self.run_again_button):
            button.setEnabled(has)

    def apply_selected(self, index: Optional[int] = None) -> List[str]:
        """Put the chosen result (or result ``index``) of the shown run in as one layer: one undo step."""
        entry = self.shown
        if entry is None:
            return []
        if index is None:
            index = max(0, self.results_list.currentRow())
        return self._apply(entry, [index])

    def apply_all(self) -> List[str]:
        """Put every result of the shown run in, as the menu action does (several in one group)."""
        entry = self.shown
        return self._apply(entry, list(range(len(entry.images)))) if entry is not None else []

    def _apply(self, entry: HistoryEntry, indexes: List[int]) -> List[str]:
        names, group = result_names(entry.params, entry.seeds)
        try:
            if not _is_open(entry.document):
                raise SDEditError("That image was closed, so its results cannot be applied.")
            added = insert_results(entry.source, [entry.images[i] for i in indexes], [names[i] for i in indexes],
                                   group, selection_only(entry.source, entry.settings.get("result_layer", "selection")))
        except SDEditError as error:
            self.status_label.setText(str(error))
            return []
        except Exception as error:  # a deleted source layer ends up here
            self.status_label.setText("SDEdit could not add the layer (%s): is its source layer still there?" % error)
            return []
        self.status_label.setText("Added %s." % ", ".join(added))
        return added

    def run_again(self, entry: Optional[HistoryEntry]) -> bool:
        """Repeat ``entry`` exactly: its source pixels and selection, its settings, its seeds."""
        if entry is None:
            return False
        if not _is_open(entry.document):
            self.status_label.setText("That image was closed, so the run cannot be repeated on it.")
            return False
        return self.generate(entry.rerun_settings(), entry.source)


def _settings_text(entry: HistoryEntry) -> str:
    params = entry.params
    parts = ["t0 %.2f" % params["t0"],
             "sampler %s" % (str(params["sde"]).upper() if params.get("sde") else "model default"),
             "steps %s" % (entry.steps_text() + ("" if params.get("steps") else " (the model's default)")),
             "samples %d" % len(entry.images),
             "seeds %s" % ", ".join(str(s) for s in entry.seeds),
             "model %s" % (params.get("model") or "server default")]
    if "prompt" in params:
        parts.append("prompt \u201c%s\u201d, negative \u201c%s\u201d, guidance %g" % (
            params.get("prompt", ""), params.get("negative_prompt", ""), params.get("guidance", 0)))
    return "; ".join(parts) + "."


def register() -> None:
    """Add the docker to Settings → Dockers (call at plugin load, before windows are made)."""
    Krita.instance().addDockWidgetFactory(
        DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, SDEditDocker))
