"""Runs INSIDE GIMP 3 with an X display: the plug-in's dialog as built for a painter (its real GTK widgets,
read and changed here), and a group layer as the target (edited as its merged picture, as in Krita).

The test sets ``SDEDIT_E2E_PARAMS`` (JSON: server_url, down_url, text_model, report).
"""

import json
import os
import sys
import traceback

from gi.repository import Gegl, Gimp

PARAMS = json.load(open(SDEDIT_E2E_PARAMS))  # noqa: F821  (set by the -b command line)
RGBA = "R'G'B'A u8"


def pump():
    from gi.repository import Gtk

    while Gtk.events_pending():
        Gtk.main_iteration_do(False)


def labels(widget):
    """Every label text inside ``widget``, in order."""
    from gi.repository import Gtk

    out = []
    if isinstance(widget, Gtk.Label):
        out.append(widget.get_text())
    if isinstance(widget, Gtk.Container):
        for child in widget.get_children():
            out.extend(labels(child))
    return out


def seen(dialog):
    return {
        "t0_sentence": dialog.t0_label.get_text(),
        "steps_text": dialog.steps.get_text(),
        "seed_text": dialog.seed.get_text(),
        "models": [row[0] for row in dialog.model.get_model()],
        "model": dialog.model.get_active_id(),
        "server_label": dialog.server_label.get_text(),
        "prompt_sensitive": [w.get_sensitive() for w in (dialog.prompt, dialog.negative, dialog.guidance)],
        "text_note": dialog.text_note.get_text(),
        "labels": labels(dialog.grid),
    }


def dialog_case():
    # the plug-in as the test installed it, beside this run's report
    sys.path.insert(0, os.path.join(os.path.dirname(PARAMS["report"]), "home/.config/GIMP/3.0/plug-ins/sdedit"))
    from sdedit_gimp.dialog import SDEditDialog

    proc = Gimp.get_pdb().lookup_procedure("plug-in-sdedit")
    out = {}
    config = proc.create_config()
    config.set_property("server-url", PARAMS["server_url"])
    config.set_property("t0", 0.35)
    dialog = SDEditDialog(config, "plug-in-sdedit")
    dialog.window.show_all()
    pump()
    out["initial"] = seen(dialog)
    dialog.t0.set_value(0.85)
    dialog.model.set_active_id(PARAMS["text_model"])
    pump()
    out["text_model"] = seen(dialog)
    dialog.steps.set_text("12")
    dialog.seed.set_text("77")
    dialog.prompt.set_text("a lake at dusk")
    dialog.apply()
    out["config"] = {name: config.get_property(name) for name in
                     ("t0", "sde", "samples", "steps", "seed", "model", "prompt", "server-url")}
    dialog.steps.set_text("0")
    dialog.seed.set_text("-1")
    dialog.values()
    pump()
    out["back_to_special"] = [dialog.steps.get_text(), dialog.seed.get_text(), dialog.values()["seed"]]
    dialog.window.destroy()

    down = proc.create_config()
    down.set_property("server-url", PARAMS["down_url"])
    down.set_property("model", "remembered-model")
    dialog = SDEditDialog(down, "plug-in-sdedit")
    dialog.window.show_all()
    pump()
    out["down"] = seen(dialog)
    out["down_values"] = dialog.values()
    dialog.window.destroy()
    return out


def fill(drawable, rgba_of):
    w, h = drawable.get_width(), drawable.get_height()
    data = bytearray()
    for y in range(h):
        for x in range(w):
            data += bytes(rgba_of(x, y))
    buf = drawable.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), RGBA, bytes(data))
    buf.flush()
    drawable.update(0, 0, w, h)


def read(drawable):
    w, h = drawable.get_width(), drawable.get_height()
    return bytes(drawable.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, RGBA, Gegl.AbyssPolicy.NONE))


def strokes(x, y):
    if 10 <= y < 16:
        return (220, 30, 30, 255)
    if abs(x - y) < 3:
        return (20, 160, 40, 255)
    return (250, 250, 245, 255)


def dabs(x, y):
    return (250, 220, 0, 255) if 28 <= x < 44 and 4 <= y < 16 else (0, 0, 0, 0)


def group_case():
    """A group with two layers as the target: the merged picture is edited; the result goes above it."""
    width, height = 48, 40
    image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
    group = Gimp.GroupLayer.new(image, "Sky")
    image.insert_layer(group, None, 0)
    lower = Gimp.Layer.new(image, "Strokes", width, height, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(lower, group, 0)
    fill(lower, strokes)
    upper = Gimp.Layer.new(image, "Dabs", width, height, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(upper, group, 0)
    fill(upper, dabs)
    merged = read(group)
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 8, 20, 24, 16)
    mask = bytes(image.get_selection().get_buffer().get(Gegl.Rectangle.new(0, 0, width, height), 1.0, "Y u8",
                                                        Gegl.AbyssPolicy.NONE))
    proc = Gimp.get_pdb().lookup_procedure("plug-in-sdedit")
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [group])
    for name, value in (("t0", 0.6), ("sde", "vp"), ("samples", 1), ("steps", 4), ("seed", 13),
                        ("full-copy", True), ("server-url", PARAMS["server_url"])):
        config.set_property(name, value)
    status = proc.run(config).index(0)
    top = image.get_layers()
    out = {"status": status.value_nick,
           "error": Gimp.get_pdb().get_last_error() if status != Gimp.PDBStatusType.SUCCESS else None,
           "top_level": [layer.get_name() for layer in top],
           "group_children": [layer.get_name() for layer in group.get_children()]}
    result = [layer for layer in top if layer.get_name().startswith("SDEdit")]
    if result:
        pixels = read(result[0])
        px = lambda data, i: data[4 * i:4 * i + 4]  # noqa: E731
        lower_px = read(lower)
        # the plug-in asks the server to grow the selection (a feathered band of at least 4 px here): compare
        # the pixels beyond the selection's box grown by 6 px
        outside = [i for i in range(width * height)
                   if not (8 - 6 <= i % width < 8 + 24 + 6 and 20 - 6 <= i // width < 20 + 16 + 6)]
        out["outside_equal_merged"] = all(px(pixels, i) == px(merged, i) for i in outside)
        out["merged_differs_from_lower"] = any(px(merged, i) != px(lower_px, i) for i in outside)
        out["inside_changed"] = sum(1 for i in range(width * height) if mask[i] == 255
                                    and px(pixels, i) != px(merged, i))
    return out


def empty_case():
    """A fully transparent layer: refused in one sentence, nothing sent, no layer added."""
    image = Gimp.Image.new(40, 32, Gimp.ImageBaseType.RGB)
    layer = Gimp.Layer.new(image, "Ink", 40, 32, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    fill(layer, lambda x, y: (200, 30, 30, 0))  # colour with alpha 0, as an eraser leaves it
    proc = Gimp.get_pdb().lookup_procedure("plug-in-sdedit")
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    config.set_property("server-url", PARAMS["server_url"])
    status = proc.run(config).index(0)
    return {"status": status.value_nick, "error": Gimp.get_pdb().get_last_error(),
            "layers": [l.get_name() for l in image.get_layers()]}


report = {"ok": False}
try:
    report["empty"] = empty_case()
    report["dialog"] = dialog_case()
    report["group"] = group_case()
    report["ok"] = True
except Exception:
    report["traceback"] = traceback.format_exc()
with open(PARAMS["report"], "w") as handle:
    json.dump(report, handle, indent=1)
