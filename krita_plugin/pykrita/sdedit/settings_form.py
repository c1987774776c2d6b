"""The settings form shared by the SDEdit dialog and the SDEdit docker (one widget, not two copies).

t0 with its trade-off in words, sampler ("model default" first), samples, steps, seed, model, the prompt
fields (enabled only for a model that takes text), the result-layer choice, the server URL, a line that
says what is remembered from the last run, and a "Defaults" button.
"""

from typing import Any, Dict, List, Optional

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from sdedit_client.params import MAX_GUIDANCE, MAX_SAMPLES, MAX_STEPS, MIN_GUIDANCE, random_seed, t0_words
from sdedit_client.settings import (
    connected_text,
    default_values,
    model_label,
    model_takes_text,
    remembered_summary,
    text_note,
)

from .worker import ServerInfoWorker, keep_alive

SPIN_MAX = 2**31 - 1  # QSpinBox holds a C int

#: The sampler choice; "" = send no "sde" field, the model's declared default (docs/design.md §3), and it comes first.
SDE_ITEMS = (
    ("Model default", ""),
    ("VP (DDPM sampler)", "vp"),
    ("VE (NCSN sampler)", "ve"),
    ("ODE (fast, deterministic)", "ode"),
    ("DDIM (fast, deterministic)", "ddim"),
    ("LCM (LCM / LCM-LoRA models, 2-8 steps)", "lcm"),
    ("Euler a, trailing (Turbo models, 1-4 steps)", "euler_a"),
)


class SettingsForm(QWidget):
    """Edit settings in the sdedit_client settings shape: ``values()`` / ``set_values()``."""

    server_info_changed = pyqtSignal()

    def __init__(self, settings: Dict[str, Any], parent: Optional[QWidget] = None, compact: bool = False,
                 retry_ms: int = 0) -> None:
        """``retry_ms`` > 0: while no server answers, ask again that often (a long-lived docker: the server
        may be started at any time, by an edit or by hand)."""
        super().__init__(parent)
        self._retry_ms = retry_ms
        self.setObjectName("sdedit_settings_form")
        self._info_worker = None  # type: Optional[ServerInfoWorker]
        self._wanted_model = settings.get("model") or ""
        self._models = []  # type: List[Dict[str, Any]]
        self._closing = False
        self._compact = compact

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        outer.addLayout(form)

        # t0: the one knob that matters, with its meaning in words
        self.t0_slider = QSlider(Qt.Horizontal)
        self.t0_slider.setRange(1, 100)
        self.t0_slider.setToolTip("How much noise is added before denoising: low keeps your strokes, "
                                  "high lets the model invent more. 0.3-0.6 suits rough strokes.")
        slider_row = QHBoxLayout()
        slider_row.addWidget(QLabel("faithful"))
        slider_row.addWidget(self.t0_slider, 1)
        slider_row.addWidget(QLabel("realistic"))
        self.t0_label = QLabel()
        self.t0_label.setWordWrap(compact)
        if not compact:
            self.t0_label.setMinimumWidth(360)
        t0_box = QVBoxLayout()
        t0_box.addLayout(slider_row)
        t0_box.addWidget(self.t0_label)
        form.addRow("Strength (t0):", t0_box)
        self.t0_slider.valueChanged.connect(self._update_t0_label)

        self.sde_combo = QComboBox()
        for label, nick in SDE_ITEMS:
            self.sde_combo.addItem(label, nick)
        self.sde_combo.setToolTip("The sampler. Model default: the one the model declares best.")
        form.addRow("Sampler:", self.sde_combo)

        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, MAX_SAMPLES)
        self.samples_spin.setToolTip("How many variants to make; each becomes its own layer.")
        form.addRow("Samples:", self.samples_spin)

        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, MAX_STEPS)
        self.steps_spin.setSpecialValueText("auto (model default)")
        self.steps_spin.setToolTip("Sampler steps; fewer is faster and rougher. 0 = the model's default.")
        form.addRow("Steps:", self.steps_spin)

        self.seed_fixed = QCheckBox("fixed:")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, SPIN_MAX)
        dice = QPushButton("New")
        dice.setToolTip("Pick a new random seed")
        dice.clicked.connect(lambda: self.seed_spin.setValue(random_seed() % (SPIN_MAX + 1)))
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed_fixed)
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(dice)
        self.seed_fixed.toggled.connect(self.seed_spin.setEnabled)
        form.addRow("Seed (else random):", seed_row)

        self.model_combo = QComboBox()
        self.model_combo.addItem("Server default", "")
        if self._wanted_model:
            self.model_combo.addItem(self._wanted_model, self._wanted_model)
        self.model_combo.currentIndexChanged.connect(self._update_text_fields)
        form.addRow("Model:", self.model_combo)

        self.prompt_edit = QLineEdit()
        self.prompt_edit.setPlaceholderText("e.g. a lake below mountains" if compact else
                                            "what the picture shows, e.g. a lake below mountains at dusk")
        self.negative_edit = QLineEdit()
        self.negative_edit.setPlaceholderText("e.g. blurry" if compact else "what to avoid, e.g. blurry, text")
        self.guidance_spin = QDoubleSpinBox()
        self.guidance_spin.setRange(MIN_GUIDANCE, MAX_GUIDANCE)
        self.guidance_spin.setSingleStep(0.5)
        self.guidance_spin.setDecimals(1)
        self.guidance_spin.setToolTip("How strongly the prompt steers the picture (classifier-free guidance); "
                                      "7.5 is usual, 1 ignores the negative prompt.")
        form.addRow("Prompt:", self.prompt_edit)
        form.addRow("Negative prompt:", self.negative_edit)
        form.addRow("Guidance:", self.guidance_spin)
        self.loras_edit = QLineEdit()
        self.loras_edit.setPlaceholderText("e.g. ink-style:0.8, lcm-lora-sd15" if not compact else "name:0.8, other")
        self.loras_edit.setToolTip("Stable Diffusion models only: LoRAs from the models folder's loras/ (see the "
                                   "Models panel), each as NAME or NAME:SCALE (1 = as trained, 0 = off), "
                                   "separated by commas.")
        form.addRow("LoRAs:", self.loras_edit)
        self.text_note = QLabel()
        self.text_note.setWordWrap(True)
        form.addRow("", self.text_note)

        self.full_copy = QCheckBox("full copy (else only the selection)" if compact else
                                   "full copy of the layer (else only the selection, transparent outside)")
        self.full_copy.setToolTip("With a selection, each result layer holds only the edited selection, with "
                                  "the selection's soft edge as transparency, so strokes you paint on the "
                                  "source later stay visible. Tick for an opaque full copy instead.")
        form.addRow("Result layer:", self.full_copy)

        self.url_edit = QLineEdit()
        refresh = QPushButton("Connect")
        refresh.clicked.connect(self.refresh_server_info)
        self.url_edit.editingFinished.connect(self.refresh_server_info)
        url_row = QHBoxLayout()
        url_row.addWidget(self.url_edit, 1)
        url_row.addWidget(refresh)
        form.addRow("Server:", url_row)
        self.server_label = QLabel("Asking the server for its models…")
        self.server_label.setWordWrap(True)
        form.addRow("", self.server_label)

        self.remembered_label = QLabel(remembered_summary(settings))
        self.remembered_label.setObjectName("sdedit_remembered")
        self.remembered_label.setWordWrap(True)
        self.defaults_button = QPushButton("Defaults")
        self.defaults_button.setObjectName("sdedit_defaults")
        self.defaults_button.setToolTip("Put every setting back to its default (the server URL and prompts stay)")
        self.defaults_button.clicked.connect(self.reset_to_defaults)
        remembered_row = QHBoxLayout()
        remembered_row.addWidget(self.remembered_label, 1)
        remembered_row.addWidget(self.defaults_button, 0, Qt.AlignTop)
        outer.addLayout(remembered_row)

        self.set_values(settings)

    # -- values ------------------------------------------------------------------------------------------
    def values(self) -> Dict[str, Any]:
        """The chosen settings (same keys as sdedit_client.settings.DEFAULT_SETTINGS)."""
        return {
            "server_url": self.url_edit.text().strip(),
            "t0": self.t0_slider.value() / 100.0,
            "sde": self.sde_combo.currentData() or "",
            "samples": self.samples_spin.value(),
            "steps": self.steps_spin.value(),
            "seed_mode": "fixed" if self.seed_fixed.isChecked() else "random",
            "seed": self.seed_spin.value(),
            "model": self.model_combo.currentData() or "",
            "prompt": self.prompt_edit.text().strip(),
            "negative_prompt": self.negative_edit.text().strip(),
            "guidance": round(self.guidance_spin.value(), 2),
            "loras": " ".join(self.loras_edit.text().split()),
            "result_layer": "full" if self.full_copy.isChecked() else "selection",
        }

    def set_values(self, settings: Dict[str, Any]) -> None:
        """Show ``settings`` (missing keys keep what is shown)."""
        if "t0" in settings:
            self.t0_slider.setValue(int(round(float(settings["t0"]) * 100)))
        if "sde" in settings:
            self.sde_combo.setCurrentIndex(max(0, self.sde_combo.findData(settings.get("sde") or "")))
        if "samples" in settings:
            self.samples_spin.setValue(int(settings["samples"]))
        if "steps" in settings:
            self.steps_spin.setValue(int(settings.get("steps") or 0))
        if "seed_mode" in settings:
            self.seed_fixed.setChecked(settings.get("seed_mode") == "fixed")
        if "seed" in settings:
            self.seed_spin.setValue(min(SPIN_MAX, int(settings.get("seed") or 0)))
        self.seed_spin.setEnabled(self.seed_fixed.isChecked())
        if "model" in settings:
            self._select_model(settings.get("model") or "")
        if "prompt" in settings:
            self.prompt_edit.setText(settings.get("prompt") or "")
        if "negative_prompt" in settings:
            self.negative_edit.setText(settings.get("negative_prompt") or "")
        if "guidance" in settings:
            self.guidance_spin.setValue(float(settings["guidance"]))
        if "loras" in settings:
            self.loras_edit.setText(settings.get("loras") or "")
        if "result_layer" in settings:
            self.full_copy.setChecked(settings.get("result_layer") == "full")
        if "server_url" in settings and settings["server_url"] != self.url_edit.text():
            self.url_edit.setText(settings["server_url"])
            if self._models or self._info_worker is not None:  # already asked another server: ask this one
                self._models = []
                self.refresh_server_info()
        self._update_t0_label()
        self._update_text_fields()

    def reset_to_defaults(self) -> None:
        """The "Defaults" button: every default back (server URL and prompts stay)."""
        self.set_values(default_values(self.values()))
        self.remembered_label.setText("Defaults: steps auto, a new random seed each run, 1 sample, "
                                      "the model's sampler.")

    def takes_text(self) -> bool:
        """Whether the chosen model takes a prompt (as the server last said)."""
        return model_takes_text(self._models, self.model_combo.currentData() or "")

    def _select_model(self, model_id: str) -> None:
        index = self.model_combo.findData(model_id)
        if index < 0 and model_id:
            self.model_combo.addItem(model_id, model_id)
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(max(0, index))

    def _update_t0_label(self) -> None:
        t0 = self.t0_slider.value() / 100.0
        self.t0_label.setText("t0 = %.2f — %s" % (t0, t0_words(t0)))

    def _update_text_fields(self, *_args) -> None:
        enabled = self.takes_text()
        for widget in (self.prompt_edit, self.negative_edit, self.guidance_spin, self.loras_edit):
            widget.setEnabled(enabled)
        self.text_note.setText(text_note(enabled, self._compact))

    # -- server info -------------------------------------------------------------------------------------
    def refresh_server_info(self) -> None:
        """Ask the server (in a thread) for health and models; fills the model list."""
        if self._info_worker is not None and self._info_worker.isRunning():
            return
        self.server_label.setText("Asking %s for its models…" % self.url_edit.text().strip())
        worker = ServerInfoWorker(self.url_edit.text().strip())
        worker.loaded.connect(self._on_server_info)
        worker.failed.connect(self._on_server_error)
        self._info_worker = worker
        keep_alive(worker)
        worker.start()

    def server_info_pending(self) -> bool:
        return self._info_worker is not None and self._info_worker.isRunning()

    def _on_server_info(self, health: Dict[str, Any], models: List[Dict[str, Any]]) -> None:
        if self._closing:
            return
        current = self.model_combo.currentData() or self._wanted_model
        self._models = [m for m in models if isinstance(m, dict)]
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItem("Server default", "")
        for model in self._models:
            self.model_combo.addItem(model_label(model), model.get("id"))
        index = self.model_combo.findData(current) if current else 0
        self.model_combo.setCurrentIndex(max(0, index))
        self.model_combo.blockSignals(False)
        self._update_text_fields()
        self.server_label.setText(connected_text(models, health))
        self.server_info_changed.emit()

    def _on_server_error(self, message: str) -> None:
        if not self._closing:
            self.server_label.setText(message)
            self.server_info_changed.emit()
            if self._retry_ms > 0:
                QTimer.singleShot(self._retry_ms, self._retry_server_info)

    def _retry_server_info(self) -> None:
        if self._closing:
            return
        if self.isVisible():
            self.refresh_server_info()
        else:  # nobody looks: check again later, without a request
            QTimer.singleShot(self._retry_ms, self._retry_server_info)

    def detach(self) -> None:
        """Stop listening to a pending server query (the owner is closing)."""
        self._closing = True
        if self._info_worker is not None:
            try:
                self._info_worker.loaded.disconnect(self._on_server_info)
                self._info_worker.failed.disconnect(self._on_server_error)
            except TypeError:
                pass
