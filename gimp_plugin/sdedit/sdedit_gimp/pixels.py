"""Moving pixels between GIMP and plain bytes: the layer as 8-bit RGBA, the selection as a mask, results
as new layers.

GEGL converts on the way in and out, so 16-bit, 32-bit float and grayscale images work the same as 8-bit
RGB ones: the server always sees 8-bit sRGB RGBA and the new layers take the image's own precision.
"""

from typing import List, Optional, Sequence, Tuple

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402

from sdedit_client import SDEditError  # noqa: E402
from sdedit_client.mask import place_mask  # noqa: E402

Rect = Tuple[int, int, int, int]  # x, y, width, height in image coordinates

RGBA_U8 = "R'G'B'A u8"
MASK_U8 = "Y u8"  # selection strength, linear: 255 = fully selected


def drawable_rect(drawable: Gimp.Drawable) -> Rect:
    """Where the drawable sits in the image."""
    _, x, y = drawable.get_offsets()
    return x, y, drawable.get_width(), drawable.get_height()


def read_rgba(drawable: Gimp.Drawable) -> bytes:
    """The drawable's pixels as 8-bit non-linear RGBA, row by row (GEGL converts any precision)."""
    width, height = drawable.get_width(), drawable.get_height()
    buffer = drawable.get_buffer()
    data = buffer.get(Gegl.Rectangle.new(0, 0, width, height), 1.0, RGBA_U8, Gegl.AbyssPolicy.NONE)
    return bytes(data)


def read_selection(image: Gimp.Image, rect: Rect) -> Optional[bytes]:
    """The selection over ``rect`` (one byte per pixel, 255 = edit), or None when nothing is selected.

    The selection channel covers the image, while a layer may be smaller, larger or offset: read the part
    that overlaps the layer and place it in the layer's rectangle (0 where the layer leaves the image).
    """
    if Gimp.Selection.is_empty(image):
        return None
    lx, ly, lw, lh = rect
    x0, y0 = max(lx, 0), max(ly, 0)
    x1, y1 = min(lx + lw, image.get_width()), min(ly + lh, image.get_height())
    if x0 >= x1 or y0 >= y1:
        return bytes(lw * lh)
    selection = image.get_selection().get_buffer()
    data = selection.get(Gegl.Rectangle.new(x0, y0, x1 - x0, y1 - y0), 1.0, MASK_U8, Gegl.AbyssPolicy.NONE)
    return place_mask(bytes(data), (x0, y0, x1 - x0, y1 - y0), rect)


def new_layer_type(image: Gimp.Image) -> Gimp.ImageType:
    """Results carry alpha like the request does; grayscale images get grayscale layers."""
    if image.get_base_type() == Gimp.ImageBaseType.GRAY:
        return Gimp.ImageType.GRAYA_IMAGE
    return Gimp.ImageType.RGBA_IMAGE


def add_layers(image: Gimp.Image, source: Gimp.Layer, results: Sequence[Tuple[str, bytes]]) -> List[Gimp.Layer]:
    """Insert one layer per ``(name, rgba)`` directly above ``source`` at its offsets, as one undo step.

    The first result ends up on top, the others below it in order. If anything fails, the layers already
    added are removed again, so the image is never left half-written. An indexed image is converted to
    RGB first, in the same undo step: layers of an indexed image can only hold its palette, which would
    band the results.
    """
    x, y, width, height = drawable_rect(source)
    expected = width * height * 4
    for name, rgba in results:
        if len(rgba) != expected:
            raise ValueError("The result %r has %d bytes, expected %d for a %dx%d layer."
                             % (name, len(rgba), expected, width, height))
    parent = source.get_parent()
    added: List[Gimp.Layer] = []
    image.undo_group_start()
    try:
        if image.get_base_type() == Gimp.ImageBaseType.INDEXED and not image.convert_rgb():
            raise SDEditError("GIMP could not convert the indexed image to RGB: use Image > Mode > RGB, "
                             "then run SDEdit again.")
        layer_type = new_layer_type(image)
        for name, rgba in results:
            position = image.get_item_position(source)  # just above the source, below earlier results
            layer = Gimp.Layer.new(image, name, width, height, layer_type, 100.0, Gimp.LayerMode.NORMAL)
            image.insert_layer(layer, parent, position)
            added.append(layer)
            layer.set_offsets(x, y)
            buffer = layer.get_buffer()
            buffer.set(Gegl.Rectangle.new(0, 0, width, height), RGBA_U8, rgba)
            buffer.flush()
            layer.update(0, 0, width, height)
    except BaseException:
        for layer in added:
            try:
                image.remove_layer(layer)
            except Exception:  # the original error is the one worth reporting
                pass
        raise
    finally:
        image.undo_group_end()
    return added
