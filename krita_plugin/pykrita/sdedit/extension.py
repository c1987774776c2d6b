"""The Krita extension: the Filters → SDEdit… action, the dialog, and a scriptable entry point."""

from typing import Any, Dict, List, Optional

from krita import Extension, Krita
from PyQt5.QtWidgets import QDialog, QMessageBox, QWidget

from sdedit_client import SDEditError
from sdedit_client.settings import dump_settings, load_settings

from .controller import TITLE, EditController
from .dialog import SDEditDialog
from .layer_io import active_paint_layer, read_source

ACTION_ID = "sdedit_filter"
ACTION_TEXT = "SDEdit…"
#: Krita matches this against the menubar's object names: the Filters menu is "Filter" (checked in 5.1.5).
MENU_LOCATION = "filter"
SETTINGS_GROUP = "sdedit"

_RUNNING: List[EditController] = []  # keep controllers alive while their job runs


def load_remembered() -> Dict[str, Any]:
    """The dialog values of the last run (kritarc, group [sdedit]); defaults where missing or broken."""
    app = Krita.instance()
    return load_settings(lambda key, default: app.readSetting(SETTINGS_GROUP, key, default))


def remember(settings: Dict[str, Any]) -> None:
    app = Krita.instance()
    for key, value in dump_settings(settings).items():
        app.writeSetting(SETTINGS_GROUP, key, value)


def main_window() -> Optional[QWidget]:
    window = Krita.instance().activeWindow()
    return window.qwindow() if window is not None else None


def run_edit(settings: Optional[Dict[str, Any]] = None, document=None, interactive: bool = False,
             parent: Optional[QWidget] = None) -> EditController:
    """Start an SDEdit of the active paint layer of ``document`` (default: the active one).

    ``settings`` overrides the remembered values (keys of sdedit_client.settings.DEFAULT_SETTINGS).
    Returns the started controller; connect to ``finished(report)``. Raises SDEditError for problems
    found before anything is sent (no paint layer, empty selection, bad parameters).
    """
    values = load_remembered()
    values.update(settings or {})
    document = document or Krita.instance().activeDocument()
    node = active_paint_layer(document)
    source = read_source(document, node)
    controller = EditController(source, values, interactive=interactive, parent_widget=parent or main_window())
    _RUNNING.append(controller)
    controller.finished.connect(lambda _report: _RUNNING.remove(controller) if controller in _RUNNING else None)
    controller.start()
    return controller


def make_dialog(document=None, parent: Optional[QWidget] = None) -> SDEditDialog:
    """The dialog filled with the remembered values and a line about the layer it will edit."""
    info = ""
    document = document or Krita.instance().activeDocument()
    if document is not None and document.activeNode() is not None:
        node = document.activeNode()
        bounds = node.bounds()
        group = node.type() == "grouplayer"
        selection = "the selection" if document.selection() is not None else (
            "its merged picture" if group else "the whole layer")
        info = "%s \u201c%s\u201d (%dx%d): SDEdit will repaint %s%s." % (
            "Group" if group else "Layer", node.name(), bounds.width(), bounds.height(), selection,
            " of its merged picture" if group and document.selection() is not None else "")
    return SDEditDialog(load_remembered(), info, parent or main_window())


class SDEditExtension(Extension):
    """Registers the SDEdit… action in every window's Filters menu."""

    def __init__(self, parent) -> None:
        super().__init__(parent)

    def setup(self) -> None:
        pass

    def createActions(self, window) -> None:
        action = window.createAction(ACTION_ID, ACTION_TEXT, MENU_LOCATION)
        action.setToolTip("Turn rough strokes into a realistic image with SDEdit")
        action.triggered.connect(self.show_dialog)

    def show_dialog(self) -> None:
        parent = main_window()
        try:
            active_paint_layer(Krita.instance().activeDocument())
            dialog = make_dialog(parent=parent)
            if dialog.exec_() != QDialog.Accepted:
                return
            values = dialog.values()
            remember(values)
            run_edit(values, interactive=True, parent=parent)
        except SDEditError as error:
            QMessageBox.warning(parent, TITLE, str(error))
