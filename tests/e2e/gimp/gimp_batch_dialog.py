"""Runs INSIDE GIMP 3 with an X display: plug-in-sdedit in INTERACTIVE mode (its dialog, which the test
answers with xdotool), then WITH_LAST_VALS (no dialog: the values just used must be remembered).

The test sets ``SDEDIT_E2E_PARAMS`` (JSON: server_url, report) before exec'ing this file.
"""

import json
import traceback

from gi.repository import Gimp

PARAMS = json.load(open(SDEDIT_E2E_PARAMS))  # noqa: F821  (set by the -b command line)


def run(image, layer, mode, **args):
    proc = Gimp.get_pdb().lookup_procedure("plug-in-sdedit")
    config = proc.create_config()
    config.set_property("run-mode", mode)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    for name, value in args.items():
        config.set_property(name.replace("_", "-"), value)
    before = {l.get_id() for l in image.get_layers()}
    status = proc.run(config).index(0)
    return {"mode": mode.value_nick, "status": status.value_nick,
            "error": Gimp.get_pdb().get_last_error() if status != Gimp.PDBStatusType.SUCCESS else None,
            "new_layers": [l.get_name() for l in image.get_layers() if l.get_id() not in before]}


report = {"ok": False}
try:
    image = Gimp.Image.new(192, 144, Gimp.ImageBaseType.RGB)
    layer = Gimp.Layer.new(image, "strokes", 192, 144, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.fill(Gimp.FillType.WHITE)
    # The dialog opens with these values; the test changes t0 in it before pressing OK.
    report["runs"] = [
        run(image, layer, Gimp.RunMode.INTERACTIVE, server_url=PARAMS["server_url"], steps=40, seed=11),
        run(image, layer, Gimp.RunMode.WITH_LAST_VALS),
    ]
    report["ok"] = True
except Exception:
    report["traceback"] = traceback.format_exc()
with open(PARAMS["report"], "w") as handle:
    json.dump(report, handle, indent=1)
