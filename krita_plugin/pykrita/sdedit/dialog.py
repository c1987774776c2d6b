"""The SDEdit dialog (Filters → SDEdit…): the shared settings form with OK and Cancel."""

from typing import Any, Dict, Optional

from PyQt5.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from .settings_form import SettingsForm


class SDEditDialog(QDialog):
    """Collects the edit settings; ``values()`` returns them in the sdedit_client settings shape."""

    def __init__(self, settings: Dict[str, Any], layer_info: str = "", parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("sdedit_dialog")
        self.setWindowTitle("SDEdit")
        layout = QVBoxLayout(self)
        if layer_info:
            info = QLabel(layer_info)
            info.setWordWrap(True)
            layout.addWidget(info)
        self.form = SettingsForm(settings, self)
        layout.addWidget(self.form)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.form.refresh_server_info()

    # The form's parts, under the names scripts and the e2e harness know.
    @property
    def server_label(self):
        return self.form.server_label

    @property
    def model_combo(self):
        return self.form.model_combo

    def values(self) -> Dict[str, Any]:
        """The chosen settings (same keys as sdedit_client.settings.DEFAULT_SETTINGS)."""
        return self.form.values()

    def takes_text(self) -> bool:
        return self.form.takes_text()

    def refresh_server_info(self) -> None:
        self.form.refresh_server_info()

    def server_info_pending(self) -> bool:
        return self.form.server_info_pending()

    def done(self, result: int) -> None:  # a slow server must not call back into a closed dialog
        self.form.detach()
        super().done(result)
