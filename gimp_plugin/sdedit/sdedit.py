#!/usr/bin/env python3
"""SDEdit for GIMP 3: Filters > Generic > SDEdit… turns rough strokes on a layer into a realistic image.

The plug-in only moves pixels: it sends the active layer (and the selection as the mask) to the SDEdit
server (started here when the URL is local and nothing answers), shows GIMP's progress bar while the server
works, and adds each result as a new layer above the source, as one undo step. Scripts call the PDB procedure "plug-in-sdedit" with
run-mode NONINTERACTIVE and the arguments listed in sdedit_gimp/options.py.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Installed: sdedit_client sits next to this file. In a source checkout it lives in ../../shared.
for _path in (HERE, os.path.join(HERE, os.pardir, os.pardir, "shared")):
    _path = os.path.normpath(_path)
    if os.path.isdir(os.path.join(_path, "sdedit_client")) and _path not in sys.path:
        sys.path.insert(0, _path)
        break
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, GLib, GObject  # noqa: E402

from sdedit_gimp.options import (  # noqa: E402
    ARGUMENTS, IMAGE_TYPES, MENU_LABEL, MENU_PATH, PROCEDURE_NAME, SDE_CHOICES, request_from_config)


def _fail(procedure, message, status=Gimp.PDBStatusType.EXECUTION_ERROR):
    """End the run with one sentence; GIMP shows it to the user (or returns it to the calling script)."""
    return procedure.new_return_values(status, GLib.Error(message))


def _dialog(procedure, config):
    """Show the SDEdit dialog (sdedit_gimp/dialog.py); True when the user pressed OK."""
    from sdedit_gimp.dialog import SDEditDialog

    return SDEditDialog(config, PROCEDURE_NAME).run()


def run(procedure, run_mode, image, drawables, config, data):
    """The procedure: check the target, ask for arguments if interactive, edit, report one clear error."""
    # Imported here so a broken install still registers the menu entry and can explain itself.
    try:
        from sdedit_client import JobCancelled, SDEditError
        from sdedit_gimp.edit import run_edit
    except ImportError as error:
        return _fail(procedure, "The SDEdit plug-in is incomplete (%s): reinstall it with install.py." % error)

    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
        return _fail(procedure, "Select exactly one layer (not a mask or channel) for SDEdit.",
                     Gimp.PDBStatusType.CALLING_ERROR)
    layer = drawables[0]

    if run_mode == Gimp.RunMode.INTERACTIVE and not _dialog(procedure, config):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())

    window = None
    try:
        request = request_from_config(config.get_property)
        if run_mode != Gimp.RunMode.NONINTERACTIVE:  # a person is watching: show the live preview
            from sdedit_gimp.preview_window import open_window
            window = open_window(PROCEDURE_NAME)
        run_edit(image, layer, request, window)
    except JobCancelled as error:
        return _fail(procedure, str(error), Gimp.PDBStatusType.CANCEL)
    except SDEditError as error:
        return _fail(procedure, str(error))
    except Exception as error:  # never a traceback in the user's face; the log keeps the details
        if os.environ.get("SDEDIT_DEBUG"):
            import traceback
            traceback.print_exc()
        return _fail(procedure, "SDEdit failed unexpectedly: %s" % (str(error) or type(error).__name__))
    finally:
        if window is not None:
            window.close()
    Gimp.displays_flush()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class SDEditPlugIn(Gimp.PlugIn):
    """Registers the one procedure, plug-in-sdedit."""

    def do_query_procedures(self):
        return [PROCEDURE_NAME]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types(IMAGE_TYPES)
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label(MENU_LABEL)
        procedure.add_menu_path(MENU_PATH)
        procedure.set_documentation(
            "Turn rough strokes into a realistic image (SDEdit)",
            "Sends the active layer, and the selection as the area to edit, to the SDEdit server and adds "
            "each result as a new layer above it: with a selection, only the edited selection (transparent "
            "outside) unless full-copy is set. A local server is started when none answers. An indexed "
            "image is converted to RGB together with the results (one undo step), so they keep their "
            "colours.",
            name)
        procedure.set_attribution("SDEdit for painters", "SDEdit for painters", "2026")
        flags = GObject.ParamFlags.READWRITE
        for arg in ARGUMENTS:
            if arg.kind == "double":
                procedure.add_double_argument(arg.name, arg.label, arg.blurb, arg.minimum, arg.maximum,
                                              arg.default, flags)
            elif arg.kind == "int":
                procedure.add_int_argument(arg.name, arg.label, arg.blurb, arg.minimum, arg.maximum,
                                           arg.default, flags)
            elif arg.kind == "bool":
                procedure.add_boolean_argument(arg.name, arg.label, arg.blurb, arg.default, flags)
            elif arg.kind == "string":
                procedure.add_string_argument(arg.name, arg.label, arg.blurb, arg.default, flags)
            elif arg.kind == "choice":
                choice = Gimp.Choice.new()
                for index, (nick, label) in enumerate(SDE_CHOICES):
                    choice.add(nick, index, label, "")
                procedure.add_choice_argument(arg.name, arg.label, arg.blurb, choice, arg.default, flags)
        return procedure


if __name__ == "__main__":
    Gimp.main(SDEditPlugIn.__gtype__, sys.argv)
