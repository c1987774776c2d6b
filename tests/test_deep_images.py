"""16-bit and greyscale pictures, and pictures larger than PIL's own size guard (issue 20, items 10 and 11).

A 16-bit greyscale PNG opens in PIL as mode I;16, whose convert("RGB") / convert("L") clips every value
above 255 to white: the guide became a blank white sheet and a 16-bit mask's 50 % grey became "edit fully".
A picture over about 179 megapixels made PIL's decompression-bomb guard fire inside Image.open, before its
size was read, and the refusal said it was not a valid PNG.
"""
from __future__ import annotations

import base64
import io
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from sdedit import imaging
from sdedit_client.png import decode_png
from test_cli import run_cli
from test_server_support import ServerProcess, b64, run_job, server_env

GREY_TYPE, RGB_TYPE, GREY_ALPHA_TYPE = 0, 2, 4


def png_bytes(samples: np.ndarray, color_type: int, depth: int = 16, trns: bytes = b"") -> bytes:
    """A valid, non-interlaced PNG of `samples` (H, W[, C]) written by hand, at 1, 8 or 16 bits."""
    height, width = samples.shape[:2]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = samples.reshape(height, -1)
    if depth == 16:
        raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in rows)
    elif depth == 8:
        raw = b"".join(b"\0" + row.astype(np.uint8).tobytes() for row in rows)
    else:  # 1 bit: eight pixels a byte
        raw = b"".join(b"\0" + np.packbits(row.astype(bool)).tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + (chunk(b"tRNS", trns) if trns else b"")
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def grey16(width: int = 64, height: int = 48) -> np.ndarray:
    """A 16-bit greyscale ramp around 50 % grey, with values whose low byte matters."""
    ramp = np.linspace(20000, 45000, width)[None, :] + np.arange(height)[:, None] * 13
    return ramp.astype(np.uint16)


def half_mask16(width: int = 64, height: int = 48) -> np.ndarray:
    mask = np.zeros((height, width), np.uint16)
    mask[:, width // 2:] = 65535
    return mask


@pytest.fixture(scope="module")
def conv_dir(tmp_path_factory):
    from tiny_models import make_unshuffle_folder

    return make_unshuffle_folder(tmp_path_factory.mktemp("deep") / "tiny-conv")


# -- item 10: 16-bit input is scaled, not clipped ------------------------------------------------------------
def test_16bit_grey_guide_is_scaled_to_8_bits_not_clipped_to_white():
    img = imaging.decode_image(png_bytes(np.full((4, 4), 32768, np.uint16), GREY_TYPE))
    rgb, alpha = imaging.split_alpha(img)
    assert alpha is None and rgb.shape == (4, 4, 3)
    assert np.all(rgb == 128)  # 32768 / 257 = 127.5 -> 128; PIL's convert gave 255


def test_16bit_mask_keeps_its_grey_levels():
    levels = np.array([[0, 16384, 32768, 65535]], np.uint16)
    mask = imaging.decode_image(png_bytes(levels, GREY_TYPE), "mask")
    assert imaging.mask_array(mask, mask.size).tolist() == [[0, 64, 128, 255]]


@pytest.mark.parametrize("mode", ["L", "LA", "I;16"])
def test_greyscale_input_comes_back_greyscale_and_kept_pixels_exact(conv_dir, mode):
    from sdedit.engine import edit
    from sdedit.models import load_model

    values = grey16()
    if mode == "I;16":
        image = imaging.decode_image(png_bytes(values, GREY_TYPE))
    else:
        l8 = Image.fromarray((values // 257).astype(np.uint8), "L")
        image = l8 if mode == "L" else Image.merge("LA", [l8, Image.new("L", l8.size, 200)])
    mask = Image.fromarray((half_mask16() // 257).astype(np.uint8), "L")
    out = edit(load_model(str(conv_dir), "cpu"), image, mask, t0=0.3, sde="ode", steps=2, seed=1).images[0]
    assert out.mode == image.mode
    before, after = np.asarray(image), np.asarray(out)
    assert np.array_equal(after[:, :24], before[:, :24])  # beyond the grown band: 16-bit values kept to the last bit


def test_cli_edits_a_16bit_grey_png_with_a_16bit_mask(tmp_path, conv_dir):
    src, mask, out, jpg = tmp_path / "g16.png", tmp_path / "m16.png", tmp_path / "out.png", tmp_path / "out.jpg"
    src.write_bytes(png_bytes(grey16(), GREY_TYPE))
    mask.write_bytes(png_bytes(half_mask16(), GREY_TYPE))
    for target in (out, jpg):
        res = run_cli("edit", str(src), "--mask", str(mask), "-o", str(target), "--model", str(conv_dir),
                      "--t0", "0.05", "--steps", "2", "--seed", "2", "--no-server", "--quiet")
        assert res.returncode == 0, res.stderr
    result = Image.open(out)
    assert result.mode == "I;16"
    after = np.asarray(result).astype(np.int64)
    assert np.array_equal(after[:, :24], grey16()[:, :24])  # beyond the grown band (a few px)
    # the edited half starts from the picture (about 50 % grey), not from a white sheet
    assert abs(after[:, 32:].mean() - grey16()[:, 32:].mean()) < 0.2 * 65535
    as_jpeg = np.asarray(Image.open(jpg).convert("L"), np.float64)
    assert as_jpeg.mean() < 200  # written as 8 bits by scaling (a clip made it 255 everywhere)


def test_server_returns_a_16bit_grey_result_for_a_16bit_grey_request(tmp_path_factory, conv_dir):
    root = tmp_path_factory.mktemp("deep_models")
    shutil.copytree(conv_dir, root / "tiny-conv")
    server = ServerProcess(server_env(root, root / "tiny-conv"), tmp_path_factory.mktemp("logs") / "deep.log")
    try:
        server.wait_ready()
        with server.client() as http:
            body = {"image": b64(png_bytes(grey16(), GREY_TYPE)), "mask": b64(png_bytes(half_mask16(), GREY_TYPE)),
                    "t0": 0.05, "steps": 2, "seed": 4, "sde": "ode"}
            status, result = run_job(http, body)
            assert status["state"] == "done", status
            img = Image.open(io.BytesIO(base64.b64decode(result["images"][0])))
            assert img.mode == "I;16" and np.array_equal(np.asarray(img)[:, :24], grey16()[:, :24])
            assert abs(np.asarray(img)[:, 32:].mean() - grey16()[:, 32:].mean()) < 0.2 * 65535

            # item 11 on the same server: a valid picture far over PIL's guard is refused with its size
            huge = png_bytes(np.zeros((20000, 20000), np.uint8), GREY_TYPE, depth=1)
            answer = http.post("/v1/jobs", json={"image": b64(huge)})
            assert answer.status_code == 413, answer.text
            assert "20000x20000" in answer.json()["detail"] and "megapixels" in answer.json()["detail"]
    finally:
        assert server.stop() == 0, server.log()[-2000:]


# -- the plugins' shared PNG decoder --------------------------------------------------------------------------
def test_shared_decoder_reads_16bit_grey_and_its_colour_key():
    values = np.array([[0, 32768, 65535, 1000]], np.uint16)
    key = struct.pack(">H", 1000)  # a 16-bit key: its low byte (0xe8) must not match the 8-bit value 232
    width, height, rgba = decode_png(png_bytes(values, GREY_TYPE, trns=key))
    pixels = np.frombuffer(rgba, np.uint8).reshape(height, width, 4)
    assert pixels[0, :, 0].tolist() == [0, 128, 255, 4] and pixels[0, :, 3].tolist() == [255, 255, 255, 0]
    rgb = np.stack([values] * 3, axis=-1)
    _, _, rgba = decode_png(png_bytes(rgb, RGB_TYPE, trns=struct.pack(">HHH", 1000, 1000, 1000)))
    assert np.frombuffer(rgba, np.uint8)[3::4].tolist() == [255, 255, 255, 0]


# -- item 11: pictures over PIL's own size guard ---------------------------------------------------------------
def test_cli_says_how_large_a_picture_over_pils_guard_is(tmp_path):
    src = tmp_path / "huge.png"
    src.write_bytes(png_bytes(np.zeros((20000, 20000), np.uint8), GREY_TYPE, depth=1))  # a valid 400 MP PNG
    res = run_cli("edit", str(src), "-o", str(tmp_path / "out.png"), "--no-server")
    assert res.returncode == 2
    assert "20000x20000" in res.stderr and "64 megapixels" in res.stderr and "not a valid" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
