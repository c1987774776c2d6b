"""Minimal PNG encoder/decoder on the standard library (zlib), for editors without an image library.

encode_png writes 8-bit gray/gray+alpha/RGB/RGBA. decode_png reads non-interlaced PNGs of 8 or 16 bits
per channel (gray, RGB, palette, gray+alpha, RGBA; all five row filters) and always returns 8-bit RGBA.
"""

import struct
import zlib
from typing import List, Tuple

from .errors import SDEditError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE_FOR_CHANNELS = {1: 0, 2: 4, 3: 2, 4: 6}
_CHANNELS_FOR_COLOR_TYPE = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class PNGError(SDEditError, ValueError):
    """The bytes are not a PNG this decoder can read."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(width: int, height: int, data: bytes, channels: int = 4) -> bytes:
    """PNG bytes of an 8-bit image given row-major ``data`` with 1 (gray), 2, 3 (RGB) or 4 (RGBA) channels."""
    if channels not in _COLOR_TYPE_FOR_CHANNELS:
        raise PNGError("A PNG can be written with 1, 2, 3 or 4 channels, not %r." % (channels,))
    if width <= 0 or height <= 0:
        raise PNGError("Cannot write an empty %dx%d image as PNG." % (width, height))
    stride = width * channels
    if len(data) != stride * height:
        raise PNGError("Pixel data has %d bytes, expected %d for %dx%d with %d channels."
                       % (len(data), stride * height, width, height, channels))
    raw = bytearray()
    view = memoryview(data)
    for y in range(height):
        raw.append(0)  # filter type None: fast, and zlib still compresses flat areas well
        raw += view[y * stride:(y + 1) * stride]
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE_FOR_CHANNELS[channels], 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + _chunk(b"IEND", b"")


def decode_png(png: bytes) -> Tuple[int, int, bytes]:
    """``(width, height, rgba)`` of a PNG: 8-bit RGBA bytes, row-major, straight alpha."""
    if not isinstance(png, (bytes, bytearray, memoryview)) or bytes(png[:8]) != SIGNATURE:
        raise PNGError("The data is not a PNG image.")
    png = bytes(png)
    pos = 8
    header = None
    palette = b""
    trns = b""
    idat: List[bytes] = []
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind = png[pos + 4:pos + 8]
        data = png[pos + 8:pos + 8 + length]
        if len(data) != length:
            raise PNGError("The PNG image is truncated.")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"PLTE":
            palette = data
        elif kind == b"tRNS":
            trns = data
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise PNGError("The PNG image has no header or no pixel data.")
    width, height, depth, color_type, _compression, _filter, interlace = header
    if color_type not in _CHANNELS_FOR_COLOR_TYPE:
        raise PNGError("PNG colour type %d is not valid." % color_type)
    if interlace:
        raise PNGError("Interlaced PNG images are not supported: save the image without interlacing.")
    if depth not in (8, 16) or (color_type == 3 and depth != 8):
        raise PNGError("PNG images with %d bits per channel are not supported: use 8 or 16 bits." % depth)
    channels = _CHANNELS_FOR_COLOR_TYPE[color_type]
    bpp = channels * depth // 8
    stride = width * bpp
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error:
        raise PNGError("The PNG image data is corrupt.")
    if len(raw) < (stride + 1) * height:
        raise PNGError("The PNG image data is truncated.")
    pixels = _unfilter(raw, height, stride, bpp)
    if depth == 16:
        keyed = _keyed_16bit(pixels, bpp, color_type, trns)  # the key is a 16-bit sample: match before scaling
        rgba = _to_rgba(_to_8bit(pixels), width * height, color_type, palette, b"")
        if keyed:
            rgba = bytearray(rgba)
            for i in keyed:
                rgba[4 * i + 3] = 0
            rgba = bytes(rgba)
        return width, height, rgba
    return width, height, _to_rgba(pixels, width * height, color_type, palette, trns)


def _keyed_16bit(px: bytes, bpp: int, color_type: int, trns: bytes) -> List[int]:
    """Indices of the pixels a 16-bit grey or RGB PNG's tRNS colour key makes transparent."""
    if (color_type, len(trns)) not in ((0, 2), (2, 6)):
        return []
    return [i for i, pos in enumerate(range(0, len(px) - bpp + 1, bpp)) if px[pos:pos + bpp] == trns]


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> bytes:
    out = bytearray(stride * height)
    prev = bytearray(stride)
    pos = 0
    for y in range(height):
        ftype = raw[pos]
        row = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += stride + 1
        if ftype == 0:
            pass
        elif ftype == 1:  # Sub
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 0xFF
        elif ftype == 2:  # Up
            row = bytearray(_add_bytes(row, prev))
        elif ftype == 3:  # Average
            for i in range(bpp):
                row[i] = (row[i] + (prev[i] >> 1)) & 0xFF
            for i in range(bpp, stride):
                row[i] = (row[i] + ((row[i - bpp] + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:  # Paeth
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                if pa <= pb and pa <= pc:
                    pred = a
                elif pb <= pc:
                    pred = b
                else:
                    pred = c
                row[i] = (row[i] + pred) & 0xFF
        else:
            raise PNGError("The PNG image uses unknown row filter %d; it is corrupt." % ftype)
        out[y * stride:(y + 1) * stride] = row
        prev = row
    return bytes(out)


def _add_bytes(a: bytes, b: bytes) -> bytes:
    """Byte-wise (a + b) mod 256 over whole rows at once, using carry-free big-integer arithmetic."""
    n = len(a)
    if n == 0:
        return b""
    low = int.from_bytes(b"\x7f" * n, "big")
    high = int.from_bytes(b"\x80" * n, "big")
    x = int.from_bytes(bytes(a), "big")
    y = int.from_bytes(bytes(b), "big")
    total = ((x & low) + (y & low)) ^ ((x ^ y) & high)
    return total.to_bytes(n, "big")


def _to_8bit(data: bytes) -> bytes:
    hi = data[0::2]
    lo = data[1::2]
    return bytes(((h << 8 | l) * 255 + 32767) // 65535 for h, l in zip(hi, lo))


def _to_rgba(px: bytes, count: int, color_type: int, palette: bytes, trns: bytes) -> bytes:
    out = bytearray(count * 4)
    if color_type == 6:
        return bytes(px[:count * 4])
    if color_type == 2:
        for c in range(3):
            out[c::4] = px[c::3]
        out[3::4] = b"\xff" * count
        if len(trns) == 6:  # one RGB colour is transparent (8-bit samples in 16-bit fields; 16-bit: above)
            key = bytes((trns[1], trns[3], trns[5]))
            for i in range(count):
                if out[4 * i:4 * i + 3] == key:
                    out[4 * i + 3] = 0
        return bytes(out)
    if color_type in (0, 4):
        gray = px[0::2] if color_type == 4 else px
        for c in range(3):
            out[c::4] = gray
        out[3::4] = px[1::2] if color_type == 4 else b"\xff" * count
        if color_type == 0 and len(trns) == 2:
            for i in range(count):
                if gray[i] == trns[1]:
                    out[4 * i + 3] = 0
        return bytes(out)
    # palette
    if not palette or len(palette) % 3:
        raise PNGError("The palette PNG image has no valid palette.")
    n = len(palette) // 3
    tables = []
    for c in range(3):
        tables.append(bytes(palette[3 * i + c] if i < n else 0 for i in range(256)))
    tables.append(bytes(trns[i] if i < len(trns) else 255 for i in range(256)))
    for c in range(4):
        out[c::4] = px.translate(tables[c])
    return bytes(out)
