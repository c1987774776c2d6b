"""The plugins' LoRA field and model hint (shared client, standard library only)."""
from __future__ import annotations

import pytest

from sdedit_client.errors import InvalidParameter
from sdedit_client.model_manager import parse_loras
from sdedit_client.settings import DEFAULT_SETTINGS, load_settings, models_hint, request_params, text_params


def test_parse_loras_reads_names_and_scales():
    assert parse_loras("") == []
    assert parse_loras("ink") == [{"id": "ink", "scale": 1.0}]
    assert parse_loras(" ink:0.8,  lcm-lora-sd15 ; glow:-0.5 ") == [
        {"id": "ink", "scale": 0.8}, {"id": "lcm-lora-sd15", "scale": 1.0}, {"id": "glow", "scale": -0.5}]


@pytest.mark.parametrize("bad", ["ink:lots", "ink:9", ":0.5", "ink, ink:0.3", ",".join("l%d" % i for i in range(9))])
def test_bad_lora_fields_are_one_sentence(bad):
    with pytest.raises(InvalidParameter) as err:
        parse_loras(bad)
    assert str(err.value).endswith(".") and "\n" not in str(err.value)


def test_loras_go_with_the_text_fields_only():
    settings = dict(DEFAULT_SETTINGS, loras="ink:0.5", prompt="a lake")
    assert text_params(settings)["loras"] == [{"id": "ink", "scale": 0.5}]
    assert "loras" not in request_params(settings, takes_text=False)
    assert request_params(settings, takes_text=True)["loras"] == [{"id": "ink", "scale": 0.5}]
    assert "loras" not in text_params(dict(settings, loras=""))


def test_a_damaged_stored_lora_field_falls_back_to_none():
    stored = {"loras": "ink:99"}
    assert load_settings(lambda key, default: stored.get(key, default))["loras"] == ""
    stored = {"loras": "ink:0.7"}
    assert load_settings(lambda key, default: stored.get(key, default))["loras"] == "ink:0.7"


def test_the_dialogs_say_how_to_get_a_realistic_model_when_only_the_built_in_one_is_there():
    assert "sdedit models pull sd15" in models_hint([{"id": "landscape", "kind": "pixel"}])
    assert models_hint([{"id": "landscape", "kind": "pixel"}, {"id": "sd15", "kind": "latent"}]) == ""
