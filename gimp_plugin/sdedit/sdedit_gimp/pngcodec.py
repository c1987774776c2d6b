"""Decode the server's result PNGs at C speed with GdkPixbuf (it ships with GIMP 3), else with the shared
client's pure-Python decoder.

The pure-Python decoder needs about 3 s per megapixel for the filtered PNGs a server writes; GdkPixbuf
about 0.2 s (measured in GIMP 3.0.4's Python). Both give the same 8-bit non-premultiplied RGBA rows.
Encoding stays with the client's ``encode_png``: unfiltered and fast, GdkPixbuf is no quicker there.
"""

from typing import Tuple

from sdedit_client.png import decode_png

try:
    import gi

    gi.require_version("GdkPixbuf", "2.0")
    from gi.repository import GdkPixbuf, GLib
except (ImportError, ValueError):  # no GdkPixbuf typelib: stay pure Python
    GdkPixbuf = None


def decode_rgba(png: bytes) -> Tuple[int, int, bytes]:
    """``(width, height, rgba)`` of a PNG."""
    if GdkPixbuf is not None:
        try:
            return _pixbuf_decode(png)
        except (GLib.Error, ValueError, TypeError):
            pass  # let the strict pure-Python decoder give its own clear error
    return decode_png(png)


def _pixbuf_decode(png: bytes) -> Tuple[int, int, bytes]:
    loader = GdkPixbuf.PixbufLoader.new_with_type("png")
    try:
        loader.write(png)
    finally:
        loader.close()
    pixbuf = loader.get_pixbuf()
    if pixbuf is None or pixbuf.get_bits_per_sample() != 8:
        raise ValueError("unsupported PNG")
    if not pixbuf.get_has_alpha():
        pixbuf = pixbuf.add_alpha(False, 0, 0, 0)
    width, height, stride = pixbuf.get_width(), pixbuf.get_height(), pixbuf.get_rowstride()
    pixels = pixbuf.read_pixel_bytes().get_data()
    row = width * 4
    if stride == row:
        return width, height, bytes(pixels[:row * height])
    return width, height, b"".join(pixels[y * stride:y * stride + row] for y in range(height))
