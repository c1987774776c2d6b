"""Pure-Python pixel plumbing between Krita and the request (no Krita import, so it is unit-tested).

Krita's 8-bit RGBA paint devices hand out BGRA bytes; the request and the PNG codec use RGBA.
"""

from typing import Optional, Tuple

Rect = Tuple[int, int, int, int]  # x, y, width, height

#: The colour space the server speaks, in Krita's names.
SRGB8 = ("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc")


def swap_red_blue(data: bytes) -> bytes:
    """BGRA <-> RGBA for 4-byte pixels (the swap is its own inverse)."""
    if len(data) % 4:
        raise ValueError("Pixel data of %d bytes is not whole 4-byte pixels." % len(data))
    out = bytearray(data)
    out[0::4] = data[2::4]
    out[2::4] = data[0::4]
    return bytes(out)


def intersect(a: Rect, b: Rect) -> Optional[Rect]:
    """The overlap of two rectangles, or None when they do not overlap."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def is_native_srgb8(model: str, depth: str, profile: str) -> bool:
    """True when Krita's bytes can go to the server as they are (after the BGRA swap)."""
    return (model, depth) == ("RGBA", "U8") and ("srgb" in profile.lower() and "g10" not in profile.lower())


#: Krita's node types in words, for "the active layer is …" messages.
_NODE_KIND_WORDS = {
    "grouplayer": "a group",
    "paintlayer": "a paint layer",
    "vectorlayer": "a vector layer",
    "filelayer": "a file layer",
    "filterlayer": "a filter layer",
    "filllayer": "a fill layer",
    "clonelayer": "a clone layer",
    "transparencymask": "a transparency mask",
    "filtermask": "a filter mask",
    "transformmask": "a transform mask",
    "selectionmask": "a selection mask",
    "colorizemask": "a colorize mask",
}


def node_kind_words(node_type: Optional[str]) -> str:
    """``"a group"`` for "grouplayer" and so on; "nothing" when no layer is active."""
    if not node_type:
        return "nothing"
    return _NODE_KIND_WORDS.get(node_type, "a %s" % node_type.replace("layer", " layer").replace("mask", " mask").strip())


def changed_fraction(before: bytes, after: bytes, mask: Optional[bytes] = None) -> float:
    """Fraction of 4-byte pixels that differ (within ``mask`` > 0 when given); for checks and reports."""
    n = len(before) // 4
    if n == 0 or len(after) != len(before):
        return 0.0
    count = total = 0
    for i in range(n):
        if mask is not None and not mask[i]:
            continue
        total += 1
        if before[4 * i:4 * i + 4] != after[4 * i:4 * i + 4]:
            count += 1
    return count / total if total else 0.0
