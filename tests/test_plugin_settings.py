"""What both editor plugins share beyond the HTTP client: the model-default sampler, prompt fields, layer
names with a prompt, the remembered-settings line and "Defaults", and selection-only result layers."""
from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "shared") not in sys.path:
    sys.path.insert(0, str(ROOT / "shared"))

from sdedit_client import InvalidParameter  # noqa: E402
from sdedit_client.mask import cut_to_selection  # noqa: E402
from sdedit_client.params import (  # noqa: E402
    group_name, layer_name, short_prompt, summary, validate_params, validate_text)
from sdedit_client.settings import (  # noqa: E402
    DEFAULT_SETTINGS, default_values, dump_settings, load_settings, model_takes_text, remembered_summary,
    request_params)


def test_no_sde_means_the_models_default_and_sends_no_field():
    for name in (None, "", "default", " Default ", "auto"):
        assert validate_params(sde=name)["sde"] is None
    assert DEFAULT_SETTINGS["sde"] == ""
    assert request_params(dict(DEFAULT_SETTINGS))["sde"] is None
    with pytest.raises(InvalidParameter, match="model's default"):
        validate_params(sde="euler")


MODELS = [{"id": "embedded", "default": True, "text": False, "default_sde": "ode"},
          {"id": "sd15", "default": False, "text": True, "kind": "latent"},
          {"id": "old-server-entry", "default": False}]


def test_model_takes_text_from_the_model_list():
    assert model_takes_text(MODELS, "sd15") is True
    assert model_takes_text(MODELS, "embedded") is False
    assert model_takes_text(MODELS, "") is False  # the default model, embedded
    assert model_takes_text([dict(MODELS[0], default=False), dict(MODELS[1], default=True)], None) is True
    assert model_takes_text(MODELS, "old-server-entry") is False  # no "text": an older server
    assert model_takes_text(MODELS, "unknown") is False and model_takes_text([], "sd15") is False


def test_text_fields_are_sent_only_for_a_text_model():
    settings = dict(DEFAULT_SETTINGS, prompt="a lake\nat dusk ", negative_prompt="blurry", guidance=5)
    plain = request_params(settings)
    assert not {"prompt", "negative_prompt", "guidance"} & set(plain)
    text = request_params(settings, takes_text=True)
    assert text["prompt"] == "a lake at dusk" and text["negative_prompt"] == "blurry" and text["guidance"] == 5.0
    empty = request_params(dict(DEFAULT_SETTINGS), takes_text=True)  # "" = the paper's unconditional edit
    assert empty["prompt"] == "" and empty["guidance"] == DEFAULT_SETTINGS["guidance"]


@pytest.mark.parametrize("bad", [dict(guidance=-1), dict(guidance=51), dict(guidance="lots"),
                                 dict(prompt="x" * 2001)])
def test_bad_text_fields_are_one_sentence(bad):
    with pytest.raises(InvalidParameter) as info:
        validate_text(**bad)
    assert str(info.value).endswith(".") and "\n" not in str(info.value)


def test_text_settings_round_trip_and_repair():
    store = dump_settings(dict(DEFAULT_SETTINGS, prompt="a misty lake", negative_prompt="text", guidance=4.5,
                               result_layer="full", sde=""))
    loaded = load_settings(lambda key, default: store.get(key, default))
    assert (loaded["prompt"], loaded["negative_prompt"], loaded["guidance"]) == ("a misty lake", "text", 4.5)
    assert loaded["result_layer"] == "full" and loaded["sde"] == ""
    broken = {"guidance": "-3", "result_layer": "half", "sde": "nope"}
    repaired = load_settings(lambda key, default: broken.get(key, default))
    assert repaired["guidance"] == DEFAULT_SETTINGS["guidance"]
    assert repaired["result_layer"] == "selection" and repaired["sde"] == ""


def test_layer_names_carry_a_short_prompt_and_leave_out_a_default_sampler():
    assert layer_name(0.5, None, 1, seed=3) == "SDEdit t0=0.50 #1 seed=3"
    assert group_name(0.5, "", 2) == "SDEdit t0=0.50 x2"
    assert layer_name(0.4, "ode", 2, seed=9, prompt="a lake") == "SDEdit t0=0.40 ODE \u201ca lake\u201d #2 seed=9"
    assert short_prompt("a misty mountain lake at dawn, oil painting") == "a misty mountain lake\u2026"
    assert short_prompt("  ") == "" and short_prompt(None) == ""
    assert len(short_prompt("x" * 100)) == 25
    assert summary({"t0": 0.5, "sde": None, "samples": 1, "steps": None}) == \
        "t0=0.50 model's sampler, 1 sample(s), steps auto"


def test_remembered_line_and_defaults_button():
    last = dict(DEFAULT_SETTINGS, steps=4, seed_mode="fixed", seed=21, samples=2, sde="vp",
                server_url="http://127.0.0.1:9001", prompt="a lake", t0=0.8)
    line = remembered_summary(last)
    assert line == "Remembered from your last run: 4 steps, fixed seed 21, 2 samples, VP."
    assert "steps auto" in remembered_summary(DEFAULT_SETTINGS)
    assert "a new random seed each run" in remembered_summary(DEFAULT_SETTINGS)
    reset = default_values(last)
    assert reset["server_url"] == "http://127.0.0.1:9001" and reset["prompt"] == "a lake"
    for key in ("t0", "steps", "seed_mode", "seed", "samples", "sde", "result_layer"):
        assert reset[key] == DEFAULT_SETTINGS[key], key


def _slow_cut(result, mask, source):
    out = bytearray(result)
    for i, m in enumerate(mask):
        out[4 * i + 3] = (result[4 * i + 3] * m + 127) // 255
        if 0 < m < 255:
            for c in range(3):
                out[4 * i + c] = max(0, min(255, (result[4 * i + c] * 255 - (255 - m) * source[4 * i + c] + m // 2) // m))
    return bytes(out)


def test_cut_to_selection_matches_the_per_pixel_formula():
    rng = random.Random(4)
    n = 3000
    mask = bytes(rng.choice([0, 255, 255, rng.randrange(256)]) for _ in range(n))
    result, source = os.urandom(4 * n), os.urandom(4 * n)
    assert cut_to_selection(result, mask, source) == _slow_cut(result, mask, source)
    hard = bytes(rng.choice([0, 255]) for _ in range(n))
    cut = cut_to_selection(result, hard)
    assert all(cut[4 * i + 3] == (result[4 * i + 3] if hard[i] else 0) for i in range(n))
    assert cut[0::4] == result[0::4]  # colour untouched on hard selections
    with pytest.raises(InvalidParameter):
        cut_to_selection(result[:-4], mask)


def test_cut_layer_over_the_source_gives_back_the_servers_soft_blend():
    """Soft edge: the layer (alpha m, recovered edit colour) over the source ≈ the server's composite."""
    source = bytes([200, 40, 10, 255])
    edit = (20, 120, 240)
    for m in (1, 30, 128, 200, 254):
        composite = bytes([round((m * e + (255 - m) * s) / 255) for e, s in zip(edit, source[:3])] + [255])
        layer = cut_to_selection(composite, bytes([m]), source)
        a = layer[3] / 255
        seen = [layer[c] * a + source[c] * (1 - a) for c in range(3)]
        assert all(abs(x - y) <= 1.01 for x, y in zip(seen, composite[:3])), (m, seen, composite)


def test_an_empty_layer_or_selection_is_refused_in_one_sentence():
    """Issue 20, item 4: nothing visible to repaint (all alpha 0 where the edit goes) is refused up front."""
    from sdedit_client.mask import require_visible

    transparent = bytes(4 * 6)
    with pytest.raises(InvalidParameter) as caught:
        require_visible(transparent, None, "The layer \u201cInk\u201d")
    assert str(caught.value) == ("The layer \u201cInk\u201d is empty (fully transparent), so SDEdit has nothing to "
                                 "repaint: paint some strokes there first.")
    one_dot = bytearray(transparent)
    one_dot[4 * 5:4 * 6] = bytes((10, 20, 30, 1))  # the last pixel is barely visible
    require_visible(bytes(one_dot), None)
    require_visible(bytes(one_dot), bytes([0, 0, 0, 0, 0, 7]))  # a faint selection over it still counts
    with pytest.raises(InvalidParameter, match="empty \\(fully transparent\\) inside the selection"):
        require_visible(bytes(one_dot), bytes([255, 255, 255, 255, 255, 0]))
    rgb_without_alpha = bytes((200, 10, 10, 0)) * 6  # colour but alpha 0 everywhere: still invisible
    with pytest.raises(InvalidParameter):
        require_visible(rgb_without_alpha, None)


def test_both_dialogs_word_the_server_and_its_models_the_same():
    """Issue 20, item 8: Krita's form and GIMP's dialog take these words from one place."""
    from sdedit_client.settings import connected_text, model_label, not_started_text, text_note

    assert model_label({"id": "tiny", "resolution": 256, "sde": "vp", "default_sde": "ode", "default": True}) \
        == "tiny (ODE, 256px, default)"
    assert model_label({"id": "sd15", "resolution": 512, "sde": "vp", "text": True}) == "sd15 (VP, 512px, prompt)"
    assert model_label({"id": "bare"}) == "bare"
    assert text_note(True) == "This model takes a prompt; empty = the plain (unconditional) edit."
    assert text_note(False).startswith("The prompt fields are for models that take text")
    assert text_note(False, compact=True) == "Prompts: only for models that take text."
    assert connected_text([{}, {}], {"device": "cpu"}) == "Connected: 2 model(s), running on cpu."
    assert not_started_text("http://127.0.0.1:8765") == (
        "No SDEdit server answers at http://127.0.0.1:8765 yet: it is started when the edit begins.")
