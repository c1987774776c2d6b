"""The GIMP plug-in's argument table and its mapping to a server request (no GIMP needed)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "gimp_plugin" / "sdedit"
if str(PLUGIN_DIR) not in sys.path:
    sys.path.append(str(PLUGIN_DIR))  # appended: the plug-in's sdedit.py must not shadow the server package

from sdedit_client import DEFAULT_URL, InvalidParameter  # noqa: E402
from sdedit_client.params import SDES  # noqa: E402
from sdedit_gimp.options import ARGUMENTS, SDE_CHOICES, default_of, progress_text, request_from_config  # noqa: E402


def config(**overrides):
    values = {arg.name: arg.default for arg in ARGUMENTS}
    values.update({k.replace("_", "-"): v for k, v in overrides.items()})
    return values.__getitem__


def test_defaults_make_the_papers_default_request():
    request = request_from_config(config())
    assert request.server_url == DEFAULT_URL
    assert request.params == {"t0": 0.5, "sde": None, "steps": None, "samples": 1, "seed": None, "model": None}
    assert request.text == {"prompt": "", "negative_prompt": "", "guidance": 7.5} and request.full_copy is False


def test_zero_steps_random_seed_and_empty_model_mean_defaults():
    request = request_from_config(config(steps=0, seed=-1, model="  "))
    assert request.params["steps"] is None and request.params["seed"] is None and request.params["model"] is None


def test_explicit_values_pass_through():
    request = request_from_config(config(t0=0.35, sde="ve", steps=20, samples=3, seed=42, model="church",
                                         server_url="http://127.0.0.1:9000"))
    assert request.params == {"t0": 0.35, "sde": "ve", "steps": 20, "samples": 3, "seed": 42, "model": "church"}
    assert request.server_url == "http://127.0.0.1:9000"


def test_empty_url_falls_back_to_default():
    assert request_from_config(config(server_url="")).server_url == DEFAULT_URL


@pytest.mark.parametrize("bad", [{"t0": 0.0}, {"t0": 1.5}, {"sde": "ode?"}, {"samples": 0}, {"steps": 5000}])
def test_out_of_range_values_raise_one_sentence(bad):
    with pytest.raises(InvalidParameter) as info:
        request_from_config(config(**bad))
    assert str(info.value).endswith(".") and "\n" not in str(info.value)


def test_every_default_is_inside_its_range_and_names_are_unique():
    names = [arg.name for arg in ARGUMENTS]
    assert len(names) == len(set(names))
    # the old arguments keep their order; new ones only at the end (positional scripts keep working)
    assert names == ["t0", "sde", "samples", "steps", "seed", "model", "server-url",
                     "prompt", "negative-prompt", "guidance", "full-copy", "loras"]
    for arg in ARGUMENTS:
        if arg.minimum is not None:
            assert arg.minimum <= arg.default <= arg.maximum, arg.name
    assert default_of("sde") == "default" and default_of("nope") is None


def test_progress_text():
    assert progress_text(0.426, 1) == "SDEdit: 43% of 1 sample"
    assert progress_text(2.0, 3) == "SDEdit: 100% of 3 samples"


def test_sampler_choice_offers_the_model_default_first_then_what_the_client_accepts():
    assert SDE_CHOICES[0] == ("default", "Model default")
    assert tuple(nick for nick, _ in SDE_CHOICES[1:]) == tuple(SDES)
    assert request_from_config(config(sde="default")).params["sde"] is None  # no "sde" field is sent
    for nick, _ in SDE_CHOICES[1:]:
        assert request_from_config(config(sde=nick)).params["sde"] == nick


def test_text_arguments_and_full_copy():
    request = request_from_config(config(prompt=" a lake ", negative_prompt="fog", guidance=3.0, full_copy=True))
    assert request.text == {"prompt": "a lake", "negative_prompt": "fog", "guidance": 3.0}
    assert request.full_copy is True
    assert "prompt" not in request.params  # added only when the server says the model takes text
    with pytest.raises(InvalidParameter):
        request_from_config(config(guidance=99.0))


def test_indexed_images_are_accepted():
    from sdedit_gimp.options import IMAGE_TYPES

    assert "INDEXED*" in IMAGE_TYPES and "RGB*" in IMAGE_TYPES and "GRAY*" in IMAGE_TYPES
