"""Runs INSIDE GIMP 3 (gimp-console -b, python-fu-eval): drive plug-in-sdedit like a script would.

The test sets ``SDEDIT_E2E_PARAMS`` (path of a JSON file: server_url, dead_url, report) before exec'ing this file.
It builds images with strokes and a selection, calls the procedure non-interactively, and writes a JSON
report of what happened (status, error, layers, pixel comparisons); the pytest side makes the assertions.
"""

import json
import os
import traceback

from gi.repository import Gegl, Gimp

PARAMS = json.load(open(SDEDIT_E2E_PARAMS))  # noqa: F821  (set by the -b command line)
RGBA = "R'G'B'A u8"


def fill(drawable, rgba_of):
    """Set every pixel of ``drawable`` from ``rgba_of(x, y)`` (local coordinates)."""
    w, h = drawable.get_width(), drawable.get_height()
    data = bytearray()
    for y in range(h):
        for x in range(w):
            data += bytes(rgba_of(x, y))
    buf = drawable.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), RGBA, bytes(data))
    buf.flush()


def read(drawable):
    w, h = drawable.get_width(), drawable.get_height()
    return bytes(drawable.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, RGBA, Gegl.AbyssPolicy.NONE))


def selection_over(image, drawable):
    """Selection values (0-255) over the drawable's rectangle; all 255 without a selection."""
    _, x, y = drawable.get_offsets()
    w, h = drawable.get_width(), drawable.get_height()
    if Gimp.Selection.is_empty(image):
        return bytes([255]) * (w * h)
    buf = image.get_selection().get_buffer()
    return bytes(buf.get(Gegl.Rectangle.new(x, y, w, h), 1.0, "Y u8", Gegl.AbyssPolicy.NONE))


def strokes(x, y):
    """White paper with a red bar, a blue block and a green diagonal: 'rough strokes'."""
    if 10 <= y < 16:
        return (220, 30, 30, 255)
    if 20 <= x < 36 and 24 <= y < 40:
        return (30, 40, 200, 255)
    if abs(x - y) < 3:
        return (20, 160, 40, 255)
    return (250, 250, 245, 255)


def describe(image, layer):
    _, ox, oy = layer.get_offsets()
    parent = layer.get_parent()
    return {"name": layer.get_name(), "offsets": [ox, oy], "size": [layer.get_width(), layer.get_height()],
            "position": image.get_item_position(layer), "parent": parent.get_name() if parent else None,
            "has_alpha": layer.has_alpha()}


#: The server grows a hard selection by a feathered band (a few pixels for these small selections); pixels
#: farther than this from the selection must come back unchanged ("outside_far").
FAR = 8


def near_selection(mask, width, reach=FAR):
    """Per pixel: whether a selected pixel lies within ``reach`` pixels (a square window)."""
    height = len(mask) // width
    rows = [[x for x in range(width) if mask[y * width + x]] for y in range(height)]
    near = bytearray(len(mask))
    for y in range(height):
        xs = [x for yy in range(max(0, y - reach), min(height, y + reach + 1)) for x in rows[yy]]
        for x in set(xs):
            for xx in range(max(0, x - reach), min(width, x + reach + 1)):
                near[y * width + xx] = 1
    return near


def compare(source, result, mask):
    """Pixel statistics of ``result`` against ``source`` inside/outside the selection (and beyond the band
    the server grows a hard selection by)."""
    a, b = read(source), read(result)
    stats = {"pixels": len(mask), "outside": 0, "outside_equal": 0, "outside_far": 0, "outside_far_equal": 0,
             "inside": 0, "inside_changed": 0, "inside_abs_diff": 0}
    near = near_selection(mask, source.get_width())
    for i, m in enumerate(mask):
        pa, pb = a[4 * i:4 * i + 4], b[4 * i:4 * i + 4]
        if m == 0:
            stats["outside"] += 1
            stats["outside_equal"] += pa == pb
            if not near[i]:
                stats["outside_far"] += 1
                stats["outside_far_equal"] += pa == pb
        elif m == 255:
            stats["inside"] += 1
            diff = sum(abs(pa[c] - pb[c]) for c in range(3))
            stats["inside_changed"] += diff > 0
            stats["inside_abs_diff"] += diff
    return stats


def call_sdedit(image, layer, **args):
    proc = Gimp.get_pdb().lookup_procedure("plug-in-sdedit")
    if proc is None:
        raise RuntimeError("plug-in-sdedit is not registered: the plug-in did not load")
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    for name, value in args.items():
        config.set_property(name.replace("_", "-"), value)
    result = proc.run(config)
    status = result.index(0)
    error = Gimp.get_pdb().get_last_error() if status != Gimp.PDBStatusType.SUCCESS else None
    return status.value_nick, error


def all_layers(image):
    """Every layer, groups' children included, top to bottom."""
    out = []

    def walk(layers):
        for layer in layers:
            out.append(layer)
            if layer.is_group():
                walk(layer.get_children())

    walk(image.get_layers())
    return out


def chunks(data):
    return [data[i:i + 4] for i in range(0, len(data), 4)]


def alpha_against_selection(image, source, results):
    """How each result's alpha matches the selection over the source layer: soft pixels and worst error."""
    mask = selection_over(image, source)
    out = []
    for layer in results:
        alpha = read(layer)[3::4]
        out.append({"outside_opaque": sum(1 for a, m in zip(alpha, mask) if m == 0 and a != 0),
                    "inside_not_opaque": sum(1 for a, m in zip(alpha, mask) if m == 255 and a != 255),
                    "soft": sum(1 for m in mask if 0 < m < 255),
                    "soft_max_error": max([abs(a - m) for a, m in zip(alpha, mask) if 0 < m < 255] or [0])})
    return out


def run_case(name, image, source, **args):
    before = {l.get_id() for l in all_layers(image)}
    status, error = call_sdedit(image, source, **args)
    layers = all_layers(image)
    new = [l for l in layers if l.get_id() not in before]
    is_layer = isinstance(source, Gimp.Layer)
    mask = selection_over(image, source) if is_layer else b""
    return {
        "case": name, "status": status, "error": error,
        "source": describe(image, source) if is_layer else {"name": source.get_name()},
        "layers": [describe(image, l) for l in layers],
        "new_layers": [describe(image, l) for l in new],
        "new_layer_types": [l.type().value_nick for l in new],
        "checks": [compare(source, l, mask) for l in new] if is_layer else [],
        "precision": image.get_precision().value_nick,
    }


def main():
    url = PARAMS["server_url"]
    cases = []

    # 8-bit RGB: a background and an offset strokes layer, a selection that starts left of the layer.
    image = Gimp.Image.new(80, 60, Gimp.ImageBaseType.RGB)
    background = Gimp.Layer.new(image, "background", 80, 60, Gimp.ImageType.RGB_IMAGE, 100.0,
                                Gimp.LayerMode.NORMAL)
    image.insert_layer(background, None, 0)
    fill(background, lambda x, y: (128, 128, 128, 255))
    layer = Gimp.Layer.new(image, "strokes", 64, 48, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.set_offsets(8, 6)
    fill(layer, strokes)
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 20, 40, 30)
    cases.append(run_case("selection", image, layer, t0=0.6, sde="vp", samples=2, steps=8, seed=123,
                          server_url=url, full_copy=True))
    if PARAMS.get("only") == "selection":  # e.g. the Ray pool's case (test_gimp_pool_e2e.py)
        return cases

    # The default result layer with a feathered selection: only the selection, its soft edge as alpha.
    # No sampler given (the model's default) and a prompt the tiny model cannot take (not sent).
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 16, 16, 40, 28)
    Gimp.Selection.feather(image, 8.0)
    case = run_case("selection-only", image, layer, t0=0.5, samples=1, steps=6, seed=31, prompt="a lake",
                    server_url=url)
    case["alpha"] = alpha_against_selection(image, layer, [l for l in all_layers(image)
                                                           if l.get_name().startswith("SDEdit t0=0.50 #1")])
    cases.append(case)
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 20, 40, 30)

    # The same image against a server that is not there: one clear error, nothing added.
    cases.append(run_case("no-server", image, layer, samples=1, steps=4, server_url=PARAMS["dead_url"]))

    # An indexed image (a 32-colour palette): converted to RGB with the results, which keep their colours.
    indexed = Gimp.Image.new(40, 30, Gimp.ImageBaseType.RGB)
    indexed_layer = Gimp.Layer.new(indexed, "indexed strokes", 40, 30, Gimp.ImageType.RGB_IMAGE, 100.0,
                                   Gimp.LayerMode.NORMAL)
    indexed.insert_layer(indexed_layer, None, 0)
    fill(indexed_layer, strokes)
    indexed.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE, 32, False, False, "")
    before_mode = indexed.get_base_type().value_nick
    indexed_source = read(indexed_layer)
    case = run_case("indexed", indexed, indexed_layer, t0=0.7, sde="ddim", samples=1, steps=6, seed=4,
                    server_url=url)
    case["mode_before"] = before_mode
    case["mode_after"] = indexed.get_base_type().value_nick
    case["source_kept"] = read(indexed_layer) == indexed_source
    news = [l for l in all_layers(indexed) if l.get_name().startswith("SDEdit")]
    case["result_colours"] = len({bytes(p) for p in chunks(read(news[0]))}) if news else 0
    case["source_colours"] = len({bytes(p) for p in chunks(indexed_source)})
    cases.append(case)

    # A 16-bit image, no selection: the whole layer is edited, the result keeps the image's precision.
    image16 = Gimp.Image.new_with_precision(40, 30, Gimp.ImageBaseType.RGB, Gimp.Precision.U16_NON_LINEAR)
    layer16 = Gimp.Layer.new(image16, "strokes16", 40, 30, Gimp.ImageType.RGBA_IMAGE, 100.0,
                             Gimp.LayerMode.NORMAL)
    image16.insert_layer(layer16, None, 0)
    fill(layer16, strokes)
    cases.append(run_case("u16-whole-layer", image16, layer16, t0=0.5, sde="ve", samples=1, steps=6, seed=7,
                          server_url=url))
    # A grayscale image with the layer inside a group: results stay in the group, in grayscale.
    gray = Gimp.Image.new(32, 24, Gimp.ImageBaseType.GRAY)
    group = Gimp.GroupLayer.new(gray, "group")
    gray.insert_layer(group, None, 0)
    gray_layer = Gimp.Layer.new(gray, "gray strokes", 32, 24, Gimp.ImageType.GRAY_IMAGE, 100.0,
                                Gimp.LayerMode.NORMAL)
    gray.insert_layer(gray_layer, group, 0)
    fill(gray_layer, strokes)
    cases.append(run_case("gray-in-group", gray, gray_layer, t0=0.5, sde="ddim", samples=1, steps=4, seed=3,
                          server_url=url))

    # Mistakes a user or script can make: a model the server does not have, a layer mask as the target.
    cases.append(run_case("unknown-model", image, layer, samples=1, steps=4, model="no-such-model",
                          server_url=url))
    mask = layer.create_mask(Gimp.AddMaskType.WHITE)
    layer.add_mask(mask)
    cases.append(run_case("mask-target", image, mask, samples=1, steps=4, server_url=url))
    layer.remove_mask(Gimp.MaskApplyMode.DISCARD)

    # A model that takes text: the prompt fields go with the job, and the layer name carries the prompt.
    Gimp.Selection.none(image)
    cases.append(run_case("prompt", image, layer, t0=0.5, samples=1, steps=3, seed=5, model="tiny-sd1",
                          prompt="a lake at dusk", negative_prompt="blurry", guidance=5.0, server_url=url))
    # The same with a LoRA from the server's loras/ (the PDB argument added last), and with it at scale 0.
    for name, loras in (("lora", "gimp-ink:0.8"), ("lora-off", "gimp-ink:0")):
        cases.append(run_case(name, image, layer, t0=0.5, samples=1, steps=3, seed=5, model="tiny-sd1",
                              prompt="a lake at dusk", negative_prompt="blurry", guidance=5.0, server_url=url,
                              loras=loras))
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 20, 40, 30)

    # The server stops while it works on the edit (the test kills a second server once this job runs on
    # it): one sentence that says so and what to do, nothing added.
    with open(os.path.join(os.path.dirname(PARAMS["report"]), "stop-started"), "w") as marker:
        marker.write("started")
    cases.append(run_case("server-stopped", image, layer, t0=1.0, sde="vp", samples=2, steps=1000, seed=5,
                          server_url=PARAMS["doomed_url"]))

    # Killed mid-job, the way GIMP's Cancel button ends a plug-in: the test kills the plug-in's process
    # once its watchdog is up and checks that the server job ends cancelled; nothing may be added.
    with open(os.path.join(os.path.dirname(PARAMS["report"]), "cancel-started"), "w") as marker:
        marker.write("started")
    cases.append(run_case("killed", image, layer, t0=1.0, sde="vp", samples=2, steps=1000, seed=5,
                          server_url=url))
    return cases


report = {"ok": False}
try:
    report["cases"] = main()
    report["ok"] = True
except Exception:
    report["traceback"] = traceback.format_exc()
with open(PARAMS["report"], "w") as handle:
    json.dump(report, handle, indent=1)
