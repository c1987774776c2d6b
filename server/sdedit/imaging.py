"""Pixels in and out: decoding with validation, the working crop, and the exact composite back.

The model sees only a working region: the mask's bounding box plus some context, brought to the size the
model wants. Everything outside that region, and every pixel whose mask is 0, comes back byte-identical.
"""
from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from sdedit.errors import InputError

if TYPE_CHECKING:  # decoding and checking files must not wait for torch; only the tensor helpers need it
    import torch

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_PIXELS = 64_000_000  # larger images are refused before decoding (decompression bombs)
CONTEXT_FRACTION = 0.25  # context added around the mask's bounding box, per side
MIN_CONTEXT = 16


def open_image(data: bytes, formats: tuple[str, ...] | None = None) -> Image.Image:
    """The image's header opened lazily (no pixels decoded), whatever its size.

    PIL's own guard (Image.MAX_IMAGE_PIXELS) refuses a picture over about 179 megapixels inside Image.open,
    before its size can be read, and that error reads like a broken file; our limits are checked on the size
    this returns instead, so the refusal can say how large the picture is. Raises what Image.open raises for a
    file that is not an image (or not one of `formats`, when given).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError:
        Image.preinit()
        for fmt in formats or ALLOWED_FORMATS:  # the format's own reader, without Image.open's size guard around it
            factory, accept = Image.OPEN[fmt]
            if accept is None or accept(data[:16]):
                return factory(io.BytesIO(data), "")
        raise


def too_large(what: str, width: int, height: int, limit: int, advice: str) -> str:
    """One sentence: how large the picture is and the megapixel limit it passes."""
    return (f"The {what} is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), more than the limit "
            f"of {round(limit / 1e6, 1):g} megapixels; {advice}.")


def decode_image(data: bytes, what: str = "image") -> Image.Image:
    """Decode PNG/JPEG/WebP bytes, refusing other formats, corrupt files and pixel bombs."""
    try:
        img = open_image(data)
        if img.format not in ALLOWED_FORMATS:
            raise InputError(f"The {what} is a {img.format} file; send PNG, JPEG or WebP.")
        if img.width * img.height > MAX_PIXELS:
            raise InputError(too_large(what, img.width, img.height, MAX_PIXELS, "scale it down first"))
        img.load()
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"The {what} could not be read: it is not a valid PNG, JPEG or WebP file.") from exc
    return img


def load_image(path: str | Path, what: str = "image") -> Image.Image:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"The {what} file {path} could not be opened ({exc.strerror or exc}).") from exc
    return decode_image(data, what)


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


def is_deep_grey(img: Image.Image) -> bool:
    """A greyscale picture of more than 8 bits (a 16-bit greyscale PNG opens as mode I;16 or I)."""
    return img.mode.startswith("I")


def to_8bit(img: Image.Image) -> Image.Image:
    """The picture with 8 bits per channel: 16-bit grey scaled to 0-255 (PIL's own convert would clip every
    value above 255 to white); anything else as it is (PIL opens 16-bit RGB(A) PNGs as 8-bit already)."""
    if not is_deep_grey(img):
        return img
    return Image.fromarray(_grey16_to_8(np.asarray(img)), "L")


def _grey16_to_8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values.astype(np.float32) / 257.0), 0, 255).astype(np.uint8)


def split_alpha(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 RGB (H, W, 3) and the alpha plane if the image has one (kept untouched by the edit)."""
    img = to_8bit(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    rgba = np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
    return rgba[..., :3].copy(), (rgba[..., 3].copy() if has_alpha else None)


def fill_transparent(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """RGB whose fully transparent pixels take the colour of their nearest painted neighbours.

    The hidden colour under alpha 0 (usually black) is not paint: edited as if it were, it bleeds a dark band
    into every transparency edge. Pull-push fill: a pyramid of paint-weighted means, each level blurring the
    one below with the overlapping kernel (1, 3, 3, 1) / 8 and halving it, built until every cell holds some
    paint; going back up, each empty cell takes the bilinear upsampling of the level above. O(pixels),
    uint16 at full size (about 1 s for 4000x4000 on this CPU); pixels with alpha > 0 keep their colour.
    """
    if alpha is None:
        return rgb
    hidden = alpha == 0
    if not hidden.any() or hidden.all():
        return rgb
    painted = ~hidden
    colour = _down(_down(rgb * painted[..., None], np.uint16), np.uint16)  # 64 x 255 fits uint16
    weight = _down(_down(painted, np.uint16), np.uint16)
    levels = [(colour.astype(np.float32), weight.astype(np.float32))]
    while levels[-1][1].min() == 0 and levels[-1][1].size > 1:
        c, w = levels[-1]
        levels.append((_down(_down(c, np.float32), np.float32), _down(_down(w, np.float32), np.float32)))
    c, w = levels.pop()
    mean = c / w[..., None]  # the top level has paint in every cell
    for c, w in reversed(levels):
        up = _up(_up(mean, w.shape[0]).swapaxes(0, 1), w.shape[1]).swapaxes(0, 1)
        mean = np.where((w > 0)[..., None], c / np.maximum(w, 1e-6)[..., None], up)
    mean8 = np.clip(np.rint(mean), 0, 255).astype(np.uint8)
    fill = np.repeat(np.repeat(mean8, 2, axis=0), 2, axis=1)[:rgb.shape[0], :rgb.shape[1]]  # nearest: 2 px
    return np.where(hidden[..., None], fill, rgb)


def _down(a: np.ndarray, dtype: type) -> np.ndarray:
    """Blur by (1, 3, 3, 1) along axis 0 and keep every other row (zero outside), then swap axes 0 and 1,
    so two calls halve both sides. Coarse row i covers fine rows 2i-1 .. 2i+2."""
    n = (a.shape[0] + 1) // 2
    p = np.zeros((2 * n + 2,) + a.shape[1:], dtype)
    p[1:a.shape[0] + 1] = a
    out = p[0:2 * n:2] + 3 * p[1:2 * n + 1:2] + 3 * p[2:2 * n + 2:2] + p[3:2 * n + 3:2]
    return out.swapaxes(0, 1)


def _up(m: np.ndarray, size: int) -> np.ndarray:
    """Bilinear 2x upsampling along axis 0 (the transpose of _down's kernel), cut to `size` rows."""
    prev = np.concatenate([m[:1], m[:-1]])
    nxt = np.concatenate([m[1:], m[-1:]])
    out = np.empty((2 * m.shape[0],) + m.shape[1:], m.dtype)
    out[0::2], out[1::2] = 0.75 * m + 0.25 * prev, 0.75 * m + 0.25 * nxt
    return out[:size]


def mask_array(mask: Image.Image | None, size: tuple[int, int]) -> np.ndarray:
    """Mask as uint8 (H, W): 255 edit, 0 keep, between = soft. Its size must be the image's."""
    if mask is None:
        return np.full((size[1], size[0]), 255, np.uint8)
    if mask.size != size:
        raise InputError(f"The mask is {mask.width}x{mask.height} but the image is {size[0]}x{size[1]}; "
                         "they must be the same size.")
    mask = to_8bit(mask)  # a 16-bit mask's 50 % grey is 128, not white
    if mask.mode in ("RGBA", "LA"):
        # a mask exported with transparency: transparent = keep
        alpha = np.asarray(mask.getchannel("A"), np.float32) / 255.0
        return (np.asarray(mask.convert("L"), np.float32) * alpha).round().astype(np.uint8)
    return np.asarray(mask.convert("L"), np.uint8).copy()


@dataclass(frozen=True)
class Region:
    """A box (x0, y0, x1, y1) of the image, possibly reaching past its edges (padded by replication)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def working_region(mask: np.ndarray, square: bool) -> Region | None:
    """The mask's bounding box plus context, clipped to the image (square for fixed-size models).

    None when the mask is empty: nothing to edit.
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    bx0, bx1, by0, by1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    pad_x = max(MIN_CONTEXT, math.ceil((bx1 - bx0) * CONTEXT_FRACTION))
    pad_y = max(MIN_CONTEXT, math.ceil((by1 - by0) * CONTEXT_FRACTION))
    x0, x1 = max(0, bx0 - pad_x), min(w, bx1 + pad_x)
    y0, y1 = max(0, by0 - pad_y), min(h, by1 + pad_y)
    if square:
        side = max(x1 - x0, y1 - y0)
        x0, x1 = _grow_to(x0, x1, side, w)
        y0, y1 = _grow_to(y0, y1, side, h)
    return Region(x0, y0, x1, y1)


def add_margin(region: Region, margin: int) -> Region:
    """The box grown by `margin` pixels on every side (past the image's edges too: edge replication there)."""
    return Region(region.x0 - margin, region.y0 - margin, region.x1 + margin, region.y1 + margin)


def grow_to_multiple(region: Region, multiple: int, image_size: tuple[int, int]) -> Region:
    """Grow a box so both sides are multiples of `multiple` (a fully convolutional network's need),
    staying inside the image where it fits; the rest is edge padding, which is cropped away again."""
    w, h = image_size
    side_x = -(-region.width // multiple) * multiple
    side_y = -(-region.height // multiple) * multiple
    x0, x1 = _grow_to(region.x0, region.x1, side_x, w)
    y0, y1 = _grow_to(region.y0, region.y1, side_y, h)
    return Region(x0, y0, x1, y1)


def _grow_to(a: int, b: int, side: int, limit: int) -> tuple[int, int]:
    """Grow [a, b) to length `side`, centred, shifted to stay inside [0, limit) where it fits."""
    extra = side - (b - a)
    a -= extra // 2
    b = a + side
    if side <= limit:
        shift = max(0, -a) - max(0, b - limit)
        a, b = a + shift, b + shift
    return a, b


def crop_padded(arr: np.ndarray, region: Region) -> np.ndarray:
    """arr[y0:y1, x0:x1] where the box may leave the image: outside pixels replicate the edge."""
    h, w = arr.shape[:2]
    ys = np.clip(np.arange(region.y0, region.y1), 0, h - 1)
    xs = np.clip(np.arange(region.x0, region.x1), 0, w - 1)
    return arr[ys][:, xs]


def working_size(region: Region, resolution: int | None, multiple: int, max_side: int) -> tuple[int, int]:
    """(width, height) the model works at: its fixed resolution, or the region's size scaled to fit max_side
    and rounded to the network's size multiple."""
    if resolution:
        return resolution, resolution
    scale = min(1.0, max_side / max(region.width, region.height))
    round_to = lambda v: max(multiple, int(round(v * scale / multiple)) * multiple)  # noqa: E731
    return round_to(region.width), round_to(region.height)


def resize_array(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 (H, W[, C]) array with Lanczos (a no-op at the same size)."""
    if (arr.shape[1], arr.shape[0]) == size:
        return arr
    return np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS))


def resize_float(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float (H, W, C) array (model output in [-1, 1]) with bicubic filtering per channel."""
    if (arr.shape[1], arr.shape[0]) == size:
        return arr
    chans = [np.asarray(Image.fromarray(arr[..., c].astype(np.float32), mode="F").resize(size, Image.Resampling.BICUBIC))
             for c in range(arr.shape[2])]
    return np.stack(chans, axis=-1)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [-1, 1]."""
    import torch

    return torch.tensor(rgb).permute(2, 0, 1).unsqueeze(0).float().div(127.5).sub(1.0)


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) -> float (1, 1, H, W) in [0, 1]."""
    import torch

    return torch.tensor(mask).float().div(255.0)[None, None]


def from_tensor(x: torch.Tensor) -> np.ndarray:
    """float (3, H, W) in [-1, 1] -> float (H, W, 3) in [0, 255] (not yet rounded)."""
    return ((x.clamp(-1, 1) + 1.0) * 127.5).permute(1, 2, 0).cpu().numpy()


def composite(original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend edited (float, 0..255) into original (uint8) by the mask; mask 0 pixels stay byte-exact."""
    m = mask.astype(np.float32)[..., None] / 255.0
    out = np.clip(np.rint(original.astype(np.float32) * (1.0 - m) + edited * m), 0, 255).astype(np.uint8)
    keep = mask == 0
    out[keep] = original[keep]
    return out


def rebuild_image(rgb: np.ndarray, alpha: np.ndarray | None, like: Image.Image) -> Image.Image:
    """An image with the input's size, alpha and kind: RGBA when it had alpha, else RGB; a greyscale input
    comes back greyscale (L, LA, or 16-bit grey where every pixel the edit left unchanged keeps its 16 bits)."""
    if alpha is not None:
        out = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
        return out.convert("LA") if like.mode == "LA" else out
    out = Image.fromarray(rgb, "RGB")
    if is_deep_grey(like):
        grey8 = np.asarray(out.convert("L"))
        original = np.asarray(like).astype(np.uint32)
        same = grey8 == _grey16_to_8(original)
        return Image.fromarray(np.where(same, original, grey8.astype(np.uint32) * 257).astype(np.uint16))  # I;16
    return out.convert("L") if like.mode == "L" else out
