"""Masks from editor selections: one byte per pixel, 255 = edit, 0 = keep, grey = soft blend.

Editors hand out a selection in its own rectangle; the request needs it in the layer's rectangle.
"""

from typing import Optional, Tuple

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
