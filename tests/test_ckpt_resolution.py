"""Original DDPM .ckpt files without a sidecar: the image size comes from the network's structure or the
user is asked, in one sentence, for NAME.json; never a silent 256x256."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from sdedit.engine import edit
from sdedit.errors import InputError
from sdedit.models import list_models, load_model
from tiny_models import ddpm_original_state_dict

# The official layouts, with ch 32 instead of 128 and one block per level to stay small.
CIFAR10 = dict(channels=(32, 64, 64, 64), attn_levels=frozenset({1}), sample_size=32)  # ch_mult 1,2,2,2
LSUN256 = dict(channels=(32, 32, 64, 64, 128, 128), attn_levels=frozenset({4}), sample_size=256)  # 1,1,2,2,4,4


@pytest.mark.parametrize("layout, side", [(CIFAR10, 32), (LSUN256, 256)])
def test_resolution_is_read_off_the_checkpoint(tmp_path, monkeypatch, layout, side):
    sd, reference = ddpm_original_state_dict(blocks=1, **layout)
    torch.save(sd, tmp_path / "net.ckpt")
    model = load_model(str(tmp_path / "net.ckpt"), "cpu")
    assert model.resolution == side and model.net.config.sample_size == side
    monkeypatch.setenv("SDEDIT_MODELS_DIR", str(tmp_path))
    assert {i.id: i.resolution for i in list_models()}["net"] == side
    if side == 32:
        x, t = torch.randn(1, 3, 32, 32), torch.tensor([200.0])
        with torch.no_grad():
            torch.testing.assert_close(model.net(x, t).sample, reference(x, t).sample, rtol=1e-4, atol=1e-5)
        out = edit(model, Image.new("RGB", (40, 30), (90, 120, 200)), t0=0.2, steps=2, seed=1)
        assert out.working_size == (32, 32)


def test_a_checkpoint_that_does_not_tell_needs_the_sidecar(tmp_path):
    sd, _ = ddpm_original_state_dict(blocks=1, channels=(32, 64), attn_levels=frozenset(), sample_size=32)
    torch.save(sd, tmp_path / "plain.ckpt")
    with pytest.raises(InputError) as err:
        load_model(str(tmp_path / "plain.ckpt"), "cpu")
    message = str(err.value)
    assert "plain.json" in message and '{"resolution": N}' in message and "\n" not in message
    (tmp_path / "plain.json").write_text(json.dumps({"resolution": 48}))
    assert load_model(str(tmp_path / "plain.ckpt"), "cpu").resolution == 48


def test_the_sidecar_wins_and_a_bad_one_is_one_sentence(tmp_path):
    sd, _ = ddpm_original_state_dict(blocks=1, **CIFAR10)
    torch.save(sd, tmp_path / "c.ckpt")
    (tmp_path / "c.json").write_text(json.dumps({"resolution": 64}))
    assert load_model(str(tmp_path / "c.ckpt"), "cpu").resolution == 64
    torch.save(sd, tmp_path / "d.ckpt")
    (tmp_path / "d.json").write_text('{"resolution": "big"}')
    with pytest.raises(InputError, match='"resolution" must be a whole number'):
        load_model(str(tmp_path / "d.ckpt"), "cpu")
