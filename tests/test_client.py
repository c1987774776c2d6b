"""sdedit_client: the PNG codec and helpers (pure), and the HTTP client against a real `sdedit serve`."""
from __future__ import annotations

import io
import socket
import struct
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e" / "krita"))

from sdedit_client import (  # noqa: E402
    Client,
    InvalidParameter,
    JobCancelled,
    RequestRejected,
    SDEditError,
    ServerUnavailable,
    group_name,
    layer_name,
    validate_params,
)
from sdedit_client.mask import grown_mask, mask_needed, mask_png, place_mask  # noqa: E402
from sdedit_client.params import t0_words  # noqa: E402
from sdedit_client.png import PNGError, decode_png, encode_png  # noqa: E402
from sdedit_client.settings import DEFAULT_SETTINGS, dump_settings, load_settings, request_params  # noqa: E402

# ---------------------------------------------------------------------------------------------------- PNG


def _pattern(width: int, height: int, channels: int, seed: int = 1) -> bytes:
    import random

    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(width * height * channels))


def _reference_png(width, height, data, channels, filter_type, color_type=None, depth=8, extra=b""):
    """An independent PNG writer applying one given row filter (the spec's definitions, written plainly)."""
    bpp = channels * depth // 8
    stride = width * bpp
    raw = bytearray()
    prev = bytes(stride)
    for y in range(height):
        row = data[y * stride:(y + 1) * stride]
        out = bytearray()
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if filter_type == 0:
                pred = 0
            elif filter_type == 1:
                pred = a
            elif filter_type == 2:
                pred = b
            elif filter_type == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out.append((row[i] - pred) % 256)
        raw.append(filter_type)
        raw += out
        prev = row
    ctype = color_type if color_type is not None else {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(bytes(raw)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("filter_type", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_decode_every_filter_and_colour_type(filter_type, channels):
    width, height = 7, 5
    data = _pattern(width, height, channels, seed=filter_type * 10 + channels)
    got_w, got_h, rgba = decode_png(_reference_png(width, height, data, channels, filter_type))
    assert (got_w, got_h) == (width, height)
    for i in range(width * height):
        px = data[i * channels:(i + 1) * channels]
        if channels == 1:
            expected = (px[0],) * 3 + (255,)
        elif channels == 2:
            expected = (px[0],) * 3 + (px[1],)
        else:
            expected = tuple(px) + (255,) * (4 - channels)
        assert tuple(rgba[4 * i:4 * i + 4]) == expected, (filter_type, channels, i)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_encode_decode_round_trip(channels):
    data = _pattern(13, 9, channels, seed=channels)
    width, height, rgba = decode_png(encode_png(13, 9, data, channels=channels))
    assert (width, height) == (13, 9)
    if channels == 4:
        assert rgba == data


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L", "LA", "P", "I;16"])
def test_decode_matches_pillow(mode):
    """Pillow writes with its own adaptive filters, palettes and 16-bit samples; we must agree with it."""
    from PIL import Image

    source = Image.frombytes("RGBA", (37, 23), _pattern(37, 23, 4, seed=7))
    if mode == "P":
        image = source.convert("RGB").quantize(50)
    elif mode == "I;16":
        image = source.convert("L").convert("I").point(lambda v: v * 257).convert("I;16")
    else:
        image = source.convert(mode)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    width, height, rgba = decode_png(buf.getvalue())
    # 16-bit samples g*257 come back as the 8-bit g they were made from
    expected = source.convert("L").convert("RGBA") if mode == "I;16" else image.convert("RGBA")
    assert (width, height) == (37, 23)
    assert rgba == expected.tobytes()


def test_pillow_reads_our_png():
    from PIL import Image

    data = _pattern(11, 6, 4, seed=3)
    image = Image.open(io.BytesIO(encode_png(11, 6, data)))
    assert image.mode == "RGBA" and image.size == (11, 6) and image.tobytes() == data
    gray = Image.open(io.BytesIO(encode_png(11, 6, data[:66], channels=1)))
    assert gray.mode == "L" and gray.tobytes() == data[:66]


def test_png_errors_are_sentences():
    data = _pattern(4, 4, 4)
    interlaced = bytearray(_reference_png(4, 4, data, 4, 0))
    # set the interlace byte of IHDR and fix its CRC
    interlaced[28] = 1
    interlaced[29:33] = struct.pack(">I", zlib.crc32(bytes(interlaced[12:29])))
    cases = [b"not a png", bytes(interlaced), _reference_png(4, 4, data, 4, 0)[:40],
             _reference_png(4, 2, bytes(4), 1, 0, depth=2)]
    for bad in cases:
        with pytest.raises(PNGError) as info:
            decode_png(bad)
        message = str(info.value)
        assert message.endswith(".") and "\n" not in message
        assert isinstance(info.value, SDEditError)
    with pytest.raises(PNGError):
        encode_png(3, 3, b"\x00" * 5)


def test_png_speed_is_usable():
    """A 512x512 RGBA layer (what a painter sends) encodes and decodes in well under a few seconds."""
    data = _pattern(512, 512, 4, seed=5)
    start = time.perf_counter()
    png = encode_png(512, 512, data)
    assert decode_png(png)[2] == data
    assert time.perf_counter() - start < 5.0


# ---------------------------------------------------------------------------------- params, names, masks


def test_validate_params_defaults_and_ranges():
    assert validate_params() == {"t0": 0.5, "sde": None, "steps": None, "samples": 1, "seed": None, "model": None}
    ok = validate_params(t0="0.3", sde="VE", steps=0, samples="2", seed="42", model=" tiny ")
    assert ok == {"t0": 0.3, "sde": "ve", "steps": None, "samples": 2, "seed": 42, "model": "tiny"}
    for bad in (dict(t0=0), dict(t0=1.5), dict(t0="x"), dict(sde="ode2"), dict(steps=-1), dict(steps=1001),
                dict(samples=0), dict(samples=17), dict(seed=-3), dict(seed=1.5), dict(samples=True)):
        with pytest.raises(InvalidParameter) as info:
            validate_params(**bad)
        assert str(info.value).endswith(".") and "\n" not in str(info.value)


def test_layer_and_group_names():
    assert layer_name(0.5, "vp", 2) == "SDEdit t0=0.50 VP #2"
    assert layer_name(0.456, "ve", 1, seed=7) == "SDEdit t0=0.46 VE #1 seed=7"
    assert group_name(0.35, "vp", 3) == "SDEdit t0=0.35 VP x3"
    words = [t0_words(t / 10) for t in range(1, 11)]
    assert "faithful" in words[0] and "realistic" in words[-1]


def test_settings_round_trip_and_repair():
    store = dump_settings({"t0": 0.35, "sde": "ve", "samples": 3, "seed_mode": "fixed", "seed": 99,
                           "server_url": "http://127.0.0.1:9000/", "model": "tiny"})
    loaded = load_settings(lambda key, default: store.get(key, default))
    assert loaded["t0"] == 0.35 and loaded["sde"] == "ve" and loaded["samples"] == 3
    assert loaded["server_url"] == "http://127.0.0.1:9000" and loaded["seed"] == 99
    assert request_params(loaded) == {"t0": 0.35, "sde": "ve", "steps": None, "samples": 3, "seed": 99,
                                      "model": "tiny"}
    broken = {"t0": "lots", "sde": "xx", "samples": "-4", "seed_mode": "?", "server_url": "ftp://x", "steps": "a"}
    repaired = load_settings(lambda key, default: broken.get(key, default))
    for key in ("t0", "sde", "samples", "seed_mode", "server_url", "steps"):
        assert repaired[key] == DEFAULT_SETTINGS[key], key
    assert request_params(repaired)["seed"] is None  # random mode sends no seed


def test_place_mask_maps_selection_rect_onto_layer():
    # selection 3x2 at (5, 4); layer 6x5 at (3, 3)
    selection = bytes([10, 20, 30, 40, 50, 60])
    mask = place_mask(selection, (5, 4, 3, 2), (3, 3, 6, 5))
    grid = [list(mask[r * 6:(r + 1) * 6]) for r in range(5)]
    assert grid[0] == [0] * 6
    assert grid[1] == [0, 0, 10, 20, 30, 0]
    assert grid[2] == [0, 0, 40, 50, 60, 0]
    assert grid[3] == grid[4] == [0] * 6
    # partly outside the layer: clipped
    clipped = place_mask(bytes([1, 2, 3, 4]), (-1, -1, 2, 2), (0, 0, 2, 2))
    assert list(clipped) == [4, 0, 0, 0]
    assert place_mask(b"\x07" * 4, (9, 9, 2, 2), (0, 0, 2, 2)) == b"\x00" * 4


def test_mask_png_whole_empty_and_partial():
    assert mask_png(None, 4, 4) is None and not mask_needed(None, 4, 4)
    assert mask_needed(bytes([0, 255] * 8), 4, 4) and not mask_needed(b"\xff" * 16, 4, 4)
    assert mask_png(b"\xff" * 16, 4, 4) is None  # everything selected = edit the whole layer
    with pytest.raises(InvalidParameter, match="selection does not cover"):
        mask_png(b"\x00" * 16, 4, 4)
    partial = bytes([0, 255, 128, 0] * 4)
    assert decode_png(mask_png(partial, 4, 4))[2][0::4] == partial


# ----------------------------------------------------------------------- the client against a real server

TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def server(tiny_vp_dir, tmp_path_factory):
    from sdedit_server_process import ServerProcess

    proc = ServerProcess(tiny_vp_dir, tmp_path_factory.mktemp("server") / "server.log", token=TOKEN)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture()
def client(server):
    return Client(server.url, token=TOKEN, timeout=20.0)


def _guide(width=40, height=30):
    data = bytearray()
    for y in range(height):
        for x in range(width):
            data += bytes((x * 6 % 256, y * 8 % 256, (x + y) * 3 % 256, 255))
    return bytes(data)


def _box_mask(width, height, box):
    x0, y0, x1, y1 = box
    return bytes(255 if x0 <= x < x1 and y0 <= y < y1 else 0 for y in range(height) for x in range(width))


def test_health_and_models(client, server, tiny_vp_dir):
    health = client.health()
    assert health["status"] == "ok" and tiny_vp_dir.name in health["models"]
    models = client.models()
    default = [m for m in models if m["default"]]
    assert len(default) == 1 and default[0]["id"] == tiny_vp_dir.name
    assert {"id", "resolution", "sde", "default"} <= set(models[0])


@pytest.mark.slow
def test_run_masked_edit_keeps_outside_and_reproduces_with_seed(client):
    width, height = 40, 30
    guide = _guide(width, height)
    mask = _box_mask(width, height, (8, 6, 30, 22))
    seen = []
    result = client.run(encode_png(width, height, guide), mask_png(mask, width, height), t0=0.5, steps=8,
                        samples=2, seed=11, on_progress=seen.append, poll_interval=0.05, grow=True)
    images, seeds = result
    assert seeds == [11, 12] and len(images) == 2
    # asked to grow (as the plugins do), the server grew the hard selection by a feathered band and says so: the mask it edited with
    grown = grown_mask(result.mask, mask, width, height, decode_png)
    assert grown != mask and all(g == 255 for g, m in zip(grown, mask) if m == 255)
    assert sum(1 for g in grown if g) > sum(1 for m in mask if m)
    assert seen and all(0.0 <= p <= 1.0 for p in seen) and seen == sorted(seen)
    results = [decode_png(png) for png in images]
    for w, h, rgba in results:
        assert (w, h) == (width, height)
        outside_same = all(rgba[4 * i:4 * i + 4] == guide[4 * i:4 * i + 4] for i in range(w * h) if not grown[i])
        inside_changed = sum(rgba[4 * i:4 * i + 4] != guide[4 * i:4 * i + 4] for i in range(w * h) if mask[i])
        assert outside_same
        assert inside_changed > 0.5 * sum(1 for m in mask if m)
    assert results[0][2] != results[1][2]  # independent noise per sample
    again, _ = client.run(encode_png(width, height, guide), mask_png(mask, width, height), t0=0.5, steps=8,
                          samples=1, seed=11, grow=True)
    assert again[0] == images[0]
    plain = client.run(encode_png(width, height, guide), mask_png(mask, width, height), t0=0.5, steps=8,
                       samples=1, seed=11)  # not asked to grow: the mask is the contract, black pixels kept
    assert plain.mask is None or grown_mask(plain.mask, mask, width, height, decode_png) == mask
    _, _, rgba = decode_png(plain[0][0])
    assert all(rgba[4 * i:4 * i + 4] == guide[4 * i:4 * i + 4] for i in range(width * height) if not mask[i])


def test_grown_mask_falls_back_to_the_selection():
    selection = _box_mask(8, 6, (2, 1, 6, 5))
    grown = bytes(255 if m else 90 for m in selection)
    png = encode_png(8, 6, grown, channels=1)
    assert grown_mask(png, selection, 8, 6, decode_png) == grown
    assert grown_mask(None, selection, 8, 6, decode_png) == selection  # an older server sends none
    assert grown_mask(png, selection, 9, 6, decode_png) == selection  # not this layer's size


def test_submit_status_result_and_unknown_job(client):
    job = client.submit(encode_png(16, 16, _guide(16, 16)), t0=0.3, steps=2, seed=1)
    deadline = time.monotonic() + 60
    state = client.status(job)
    assert set(state) == {"id", "state", "progress", "error", "superseded_by"} and state["id"] == job
    while state["state"] not in ("done", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.1)
        state = client.status(job)
    assert state["state"] == "done", state
    images, seeds = client.result(job)
    assert len(images) == 1 and seeds == [1] and decode_png(images[0])[:2] == (16, 16)
    with pytest.raises(RequestRejected, match="does not know this job"):
        client.status("no-such-job")


def test_result_before_done_is_rejected_and_cancel_stops_the_job(client):
    job = client.submit(encode_png(32, 32, _guide(32, 32)), t0=1.0, steps=1000, samples=4, seed=3)
    with pytest.raises(RequestRejected) as info:
        client.result(job)
    assert info.value.status == 409
    client.cancel(job)
    deadline = time.monotonic() + 30
    while client.status(job)["state"] != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.status(job)["state"] == "cancelled"


def test_run_with_should_cancel_deletes_the_job(client, server):
    start = time.monotonic()
    flag = {"polls": 0}

    def should_cancel():
        flag["polls"] += 1
        return flag["polls"] > 3

    with pytest.raises(JobCancelled, match="cancelled"):
        client.run(encode_png(32, 32, _guide(32, 32)), t0=1.0, steps=1000, samples=4, should_cancel=should_cancel,
                   poll_interval=0.05)
    assert time.monotonic() - start < 20


def test_server_rejections_carry_the_servers_message(client):
    with pytest.raises(RequestRejected) as info:
        client.submit(b"this is not an image", t0=0.5)
    message = str(info.value)
    assert 400 <= info.value.status < 500 and "\n" not in message and "Traceback" not in message
    with pytest.raises(RequestRejected) as info:
        client.submit(encode_png(8, 8, _guide(8, 8)), model="no-such-model-anywhere")
    assert "no-such-model-anywhere" in str(info.value)
    with pytest.raises(RequestRejected):  # mask of the wrong size
        client.submit(encode_png(8, 8, _guide(8, 8)), encode_png(4, 4, b"\xff" * 16, channels=1))


def test_token_is_required_and_sent(server):
    anonymous = Client(server.url, timeout=10)
    assert anonymous.health()["status"] == "ok"  # health needs no token
    with pytest.raises(RequestRejected, match="token") as info:
        anonymous.models()
    assert info.value.status == 401
    with pytest.raises(RequestRejected, match="token"):
        Client(server.url, token="wrong", timeout=10).models()


def test_server_down_says_how_to_start_it():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ServerUnavailable) as info:
        Client("http://127.0.0.1:%d" % port).health()
    assert str(info.value) == ("Cannot reach the SDEdit server at http://127.0.0.1:%d — start it by running "
                               "sdedit serve." % port)


def test_silent_server_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
    thread.start()
    try:
        start = time.monotonic()
        with pytest.raises(ServerUnavailable, match="did not answer within 0.5 s"):
            Client("http://127.0.0.1:%d" % listener.getsockname()[1], timeout=0.5).health()
        assert time.monotonic() - start < 5
    finally:
        listener.close()
        for conn, _ in accepted:
            conn.close()


def test_bad_urls_are_explained():
    for bad in ("", "ftp://example.org", "http://:80", "http://host:99999"):
        with pytest.raises(InvalidParameter):
            Client(bad)
    assert Client("127.0.0.1:8765/").base_url == "http://127.0.0.1:8765"
