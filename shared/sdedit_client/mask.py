"""Masks from editor selections: one byte per pixel, 255 = edit, 0 = keep, grey = soft blend.

Editors hand out a selection in its own rectangle; the request needs it in the layer's rectangle.
"""

from typing import Callable, Optional, Tuple

from .errors import InvalidParameter
from .png import encode_png

Rect = Tuple[int, int, int, int]  # x, y, width, height


def place_mask(selection: bytes, sel_rect: Rect, layer_rect: Rect) -> bytes:
    """Map a 1-byte-per-pixel selection given over ``sel_rect`` onto ``layer_rect`` (0 outside it)."""
    sx, sy, sw, sh = sel_rect
    lx, ly, lw, lh = layer_rect
    if len(selection) != sw * sh:
        raise InvalidParameter("The selection data has %d bytes, expected %d for a %dx%d area."
                               % (len(selection), sw * sh, sw, sh))
    if lw <= 0 or lh <= 0:
        raise InvalidParameter("The layer is empty: paint something on it first.")
    if (sx, sy, sw, sh) == (lx, ly, lw, lh):
        return bytes(selection)
    out = bytearray(lw * lh)
    x0, x1 = max(sx, lx), min(sx + sw, lx + lw)
    y0, y1 = max(sy, ly), min(sy + sh, ly + lh)
    if x0 >= x1 or y0 >= y1:
        return bytes(out)
    width = x1 - x0
    for y in range(y0, y1):
        src = (y - sy) * sw + (x0 - sx)
        dst = (y - ly) * lw + (x0 - lx)
        out[dst:dst + width] = selection[src:src + width]
    return bytes(out)


def mask_needed(mask: Optional[bytes], width: int, height: int) -> bool:
    """Whether ``mask`` must be sent: False for no mask or everything selected (edit the whole layer).

    Raises :class:`InvalidParameter` when the selection does not touch the layer at all.
    """
    if mask is None:
        return False
    if len(mask) != width * height:
        raise InvalidParameter("The mask has %d bytes, expected %d for a %dx%d layer."
                               % (len(mask), width * height, width, height))
    if not mask.strip(b"\x00"):
        raise InvalidParameter("The selection does not cover any part of the active layer: "
                               "select an area on it, or select nothing to edit the whole layer.")
    return bool(mask.strip(b"\xff"))


def mask_png(mask: Optional[bytes], width: int, height: int) -> Optional[bytes]:
    """The PNG to send for a mask, or None when everything is selected (edit the whole layer).

    Raises :class:`InvalidParameter` when the selection does not touch the layer at all.
    """
    if not mask_needed(mask, width, height):
        return None
    return encode_png(width, height, mask, channels=1)


def _soft_positions(mask: bytes):
    """Indices of the grey (0 < m < 255) mask bytes: the selection's soft edge, usually a thin band."""
    flags = mask.translate(_SOFT_TABLE)
    position = flags.find(1)
    while position >= 0:
        yield position
        position = flags.find(1, position + 1)


_SOFT_TABLE = bytes([0] + [1] * 254 + [0])


def cut_to_selection(result: bytes, mask: bytes, source: Optional[bytes] = None) -> bytes:
    """The result as a layer that holds only the edited selection: alpha × selection, transparent outside.

    ``result`` and ``source`` are 4-byte pixels with alpha last (RGBA or Krita's BGRA), ``mask`` one byte per
    pixel (255 = edited). Where the selection is soft the server returned ``m·edit + (1−m)·source``; given
    ``source``, the edit's own colour is recovered there, so the layer over the source shows exactly that
    blend again instead of fading the edge twice. Hard selections take a fast path (whole-buffer AND).
    """
    count = len(mask)
    if len(result) != 4 * count or (source is not None and len(source) != len(result)):
        raise InvalidParameter("The result has %d bytes, expected %d for a %d-pixel selection."
                               % (len(result), 4 * count, count))
    out = bytearray(result)
    alpha = result[3::4]
    # m in {0, 255}: alpha & m is alpha or 0, exactly; the grey pixels are fixed one by one below.
    hard = (int.from_bytes(alpha, "little") & int.from_bytes(mask, "little")).to_bytes(count, "little")
    out[3::4] = hard
    for i in _soft_positions(mask):
        m = mask[i]
        out[4 * i + 3] = (alpha[i] * m + 127) // 255
        if source is not None:
            for c in range(3):
                mixed, kept = result[4 * i + c], source[4 * i + c]
                out[4 * i + c] = max(0, min(255, (mixed * 255 - (255 - m) * kept + m // 2) // m))
    return bytes(out)


def grown_mask(server_mask: Optional[bytes], selection: Optional[bytes], width: int, height: int,
               decode: Callable[[bytes], Tuple[int, int, bytes]]) -> Optional[bytes]:
    """The mask a selection-only result layer takes its alpha from, one byte per pixel.

    The server grows and feathers a hard selection outward (so the edit fades into the picture beyond it)
    and returns the mask it used (:attr:`Result.mask`, a grey PNG); cut to the selection itself, that fade
    would be lost. ``decode`` is the host's PNG decoder (``(w, h, four bytes per pixel)``, grey in every
    colour channel). An older server sends none, and a mask of another size is not this layer's: then
    the selection.
    """
    if server_mask is None:
        return selection
    w, h, pixels = decode(server_mask)
    if (w, h) != (width, height):
        return selection
    return bytes(pixels[0::4])


_NONZERO_TABLE = bytes([0] + [255] * 255)


def require_visible(pixels: bytes, mask: Optional[bytes], what: str = "The layer") -> None:
    """Refuse an edit of nothing: every pixel to edit (``mask`` > 0, or all) fully transparent.

    ``pixels`` are 4-byte pixels with alpha last (RGBA or Krita's BGRA). SDEdit of a transparent area
    gives invisible results, so the painter is told before any work is sent. Raises
    :class:`InvalidParameter` with one sentence naming ``what``.
    """
    alpha = pixels[3::4]
    if mask is None:
        visible = bool(alpha.strip(b"\x00"))
        where = ""
    else:
        if len(mask) != len(alpha):
            raise InvalidParameter("The mask has %d bytes, expected %d." % (len(mask), len(alpha)))
        # any pixel with alpha > 0 inside the selection: a whole-buffer AND of alpha and the selection's support
        visible = (int.from_bytes(alpha, "little") & int.from_bytes(mask.translate(_NONZERO_TABLE), "little")) != 0
        where = " inside the selection"
    if not visible:
        raise InvalidParameter("%s is empty (fully transparent)%s, so SDEdit has nothing to repaint: paint some "
                               "strokes there first." % (what, where))
