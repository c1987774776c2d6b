"""Turn the request's base64 images into bytes the engine may decode, refusing what is unsafe first.

Checks happen before any pixel is decoded: the base64 is strict, only PNG, JPEG and WebP headers pass,
and the size read from the header must stay under the pixel limit (decompression bombs).
"""
from __future__ import annotations

import base64
import binascii
import sys

from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from ..imaging import ALLOWED_FORMATS, open_image, too_large


class TooLarge(InputError):
    """The image has more pixels than the server accepts (answered with 413)."""


def b64_to_bytes(text: str, what: str) -> bytes:
    """Strict base64 (whitespace and a `data:image/...;base64,` prefix allowed) -> bytes."""
    if text.startswith("data:"):
        _, sep, text = text.partition(",")
        if not sep:
            raise InputError(f"The {what} data URL has no ',' before its base64 data.")
    try:
        data = _strict_b64(text)  # no whitespace: decoded straight from the string, no copies of it
    except (binascii.Error, ValueError):
        try:
            data = base64.b64decode("".join(text.split()), validate=True)  # line-wrapped base64
        except (binascii.Error, ValueError):
            raise InputError(f"The {what} is not valid base64; send the file's bytes base64-encoded.") from None
    if not data:
        raise InputError(f"The {what} is empty.")
    return data


def _strict_b64(text: str) -> bytes:
    """binascii reads an ASCII str in place; b64decode would first copy it to bytes (100 MB for a big canvas)."""
    if sys.version_info >= (3, 11):
        return binascii.a2b_base64(text, strict_mode=True)
    return base64.b64decode(text, validate=True)


def check_image_bytes(data: bytes, what: str, max_pixels: int) -> tuple[int, int]:
    """Read only the header: format must be PNG/JPEG/WebP, width*height at most max_pixels. Returns (w, h)."""
    try:
        with open_image(data, ALLOWED_FORMATS) as im:
            fmt, (width, height) = im.format, im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise InputError(f"The {what} is not a readable PNG, JPEG or WebP file.") from None
    if fmt not in ALLOWED_FORMATS:
        raise InputError(f"The {what} is a {fmt} file; send PNG, JPEG or WebP.")
    if width < 1 or height < 1:
        raise InputError(f"The {what} has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise TooLarge(too_large(what, width, height, max_pixels, "scale it down (the server's limit is SDEDIT_MAX_PIXELS)"))
    return width, height
