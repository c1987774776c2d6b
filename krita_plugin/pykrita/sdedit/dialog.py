"""The SDEdit dialog: t0 with its trade-off in words, SDE, samples, steps, seed, model and server URL."""

from typing import Any, Dict, List, Optional

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
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

from sdedit_client.params import MAX_SAMPLES, MAX_STEPS, random_seed, t0_words

from .worker import ServerInfoWorker, keep_alive

SPIN_MAX = 2**31 - 1  # QSpinBox holds a C int


class SDEditDialog(QDialog):
    """Collects the edit settings; ``values()`` returns them in the sdedit_client settings shape."""

    def __init__(self, settings: Dict[str, Any], layer_info: str = "", parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("sdedit_dialog")
        self.setWindowTitle("SDEdit")
        self._info_worker = None  # type: Optional[ServerInfoWorker]
        self._wanted_model = settings.get("model") or ""

        layout = QVBoxLayout(self)
        if layer_info:
            info = QLabel(layer_info)
            info.setWordWrap(True)
            layout.addWidget(info)
        form = QFormLayout()
        layout.addLayout(form)

        # t0: the one knob that matters, with its meaning in words
        self.t0_slider = QSlider(Qt.Horizontal)
        self.t0_slider.setRange(1, 100)
        self.t0_slider.setValue(int(round(float(settings["t0"]) * 100)))
        self.t0_slider.setToolTip("How much noise is added before denoising: low keeps your strokes, "
                                  "high lets the model invent more. 0.3-0.6 suits rough strokes.")
        slider_row = QHBoxLayout()
        slider_row.addWidget(QLabel("faithful"))
        slider_row.addWidget(self.t0_slider, 1)
        slider_row.addWidget(QLabel("realistic"))
        self.t0_label = QLabel()
        self.t0_label.setMinimumWidth(360)
        t0_box = QVBoxLayout()
        t0_box.addLayout(slider_row)
        t0_box.addWidget(self.t0_label)
        form.addRow("Strength (t0):", t0_box)
        self.t0_slider.valueChanged.connect(self._update_t0_label)
        self._update_t0_label()

        self.sde_combo = QComboBox()
        self.sde_combo.addItem("VP (DDPM sampler)", "vp")
        self.sde_combo.addItem("VE (NCSN sampler)", "ve")
        self.sde_combo.addItem("ODE (fast, deterministic)", "ode")
        self.sde_combo.addItem("DDIM (fast, deterministic)", "ddim")
        self.sde_combo.setCurrentIndex(max(0, self.sde_combo.findData(settings["sde"])))
        form.addRow("SDE:", self.sde_combo)

        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, MAX_SAMPLES)
        self.samples_spin.setValue(int(settings["samples"]))
        self.samples_spin.setToolTip("How many variants to make; each becomes its own layer.")
        form.addRow("Samples:", self.samples_spin)

        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, MAX_STEPS)
        self.steps_spin.setSpecialValueText("auto (model default)")
        self.steps_spin.setValue(int(settings.get("steps") or 0))
        self.steps_spin.setToolTip("Sampler steps; fewer is faster and rougher. 0 = the model's default.")
        form.addRow("Steps:", self.steps_spin)

        self.seed_fixed = QCheckBox("fixed:")
        self.seed_fixed.setChecked(settings.get("seed_mode") == "fixed")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, SPIN_MAX)
        self.seed_spin.setValue(min(SPIN_MAX, int(settings.get("seed") or 0)))
        dice = QPushButton("New")
        dice.setToolTip("Pick a new random seed")
        dice.clicked.connect(lambda: self.seed_spin.setValue(random_seed() % (SPIN_MAX + 1)))
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed_fixed)
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(dice)
        self.seed_fixed.toggled.connect(self.seed_spin.setEnabled)
        self.seed_spin.setEnabled(self.seed_fixed.isChecked())
        form.addRow("Seed (else random):", seed_row)

        self.model_combo = QComboBox()
        self.model_combo.addItem("Server default", "")
        if self._wanted_model:
            self.model_combo.addItem(self._wanted_model, self._wanted_model)
            self.model_combo.setCurrentIndex(1)
        form.addRow("Model:", self.model_combo)

        self.url_edit = QLineEdit(settings["server_url"])
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

        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.refresh_server_info()

    # -- values ------------------------------------------------------------------------------------------
    def values(self) -> Dict[str, Any]:
        """The chosen settings (same keys as sdedit_client.settings.DEFAULT_SETTINGS)."""
        return {
            "server_url": self.url_edit.text().strip(),
            "t0": self.t0_slider.value() / 100.0,
            "sde": self.sde_combo.currentData(),
            "samples": self.samples_spin.value(),
            "steps": self.steps_spin.value(),
            "seed_mode": "fixed" if self.seed_fixed.isChecked() else "random",
            "seed": self.seed_spin.value(),
            "model": self.model_combo.currentData() or "",
        }

    def _update_t0_label(self) -> None:
        t0 = self.t0_slider.value() / 100.0
        self.t0_label.setText("t0 = %.2f — %s" % (t0, t0_words(t0)))

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
        current = self.model_combo.currentData() or self._wanted_model
        self.model_combo.clear()
        self.model_combo.addItem("Server default", "")
        for model in models:
            label = str(model.get("id"))
            extras = [str(model.get("sde", "")).upper()]
            if model.get("resolution"):
                extras.append("%spx" % model["resolution"])
            if model.get("default"):
                extras.append("default")
            self.model_combo.addItem("%s (%s)" % (label, ", ".join(e for e in extras if e)), model.get("id"))
        index = self.model_combo.findData(current) if current else 0
        self.model_combo.setCurrentIndex(max(0, index))
        self.server_label.setText("Connected: %d model(s), running on %s."
                                  % (len(models), health.get("device", "an unknown device")))

    def _on_server_error(self, message: str) -> None:
        self.server_label.setText(message)

    def done(self, result: int) -> None:  # a slow server must not call back into a closed dialog
        if self._info_worker is not None:
            try:
                self._info_worker.loaded.disconnect(self._on_server_info)
                self._info_worker.failed.disconnect(self._on_server_error)
            except TypeError:
                pass
        super().done(result)
