"""Loading every supported checkpoint layout, converting original DDPM .ckpt files, the registry."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from sdedit.engine import edit
from sdedit.errors import InputError
from sdedit.models import list_models, load_model
from sdedit.models.base import VEScoreModel, VPEpsilonModel
from tiny_models import ddpm_original_state_dict, make_vp_folder


def test_vp_folder_with_subfolders(tiny_vp):
    assert isinstance(tiny_vp, VPEpsilonModel)
    assert tiny_vp.resolution == 32 and tiny_vp.native_sde == "vp"
    assert tiny_vp.sigma_min == pytest.approx(0.01, rel=0.01) and 150 < tiny_vp.sigma_max < 160


def test_flat_vp_folder_loads_the_same_network(tmp_path, tiny_vp):
    flat = load_model(str(make_vp_folder(tmp_path / "flat", subfolders=False)), "cpu")
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(flat.eps_vp(x, 10), tiny_vp.eps_vp(x, 10))  # same seed-0 weights


def test_ve_folder_is_a_score_model(tiny_ve):
    assert isinstance(tiny_ve, VEScoreModel)
    assert tiny_ve.native_sde == "ve" and tiny_ve.sigma_max == pytest.approx(348.0)
    x = torch.randn(2, 3, 32, 32)
    assert tiny_ve.eps_ve(x, torch.tensor([1.0, 5.0])).shape == x.shape
    assert tiny_ve.eps_vp(x, 300).shape == x.shape  # the other SDE through the change of variables


def test_original_ddpm_ckpt_is_converted_exactly(tmp_path):
    sd, reference = ddpm_original_state_dict()
    assert "temb.dense.0.weight" in sd and "down.0.downsample.conv.weight" in sd and "mid.attn_1.q.weight" in sd
    path = tmp_path / "church.ckpt"
    torch.save(sd, path)
    model = load_model(str(path), "cpu")
    assert model.id == "church" and model.resolution == 32  # attention on level 1 of 3: a 32x32 network
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([3.0, 640.0])
    with torch.no_grad():
        torch.testing.assert_close(model.net(x, t).sample, reference(x, t).sample, rtol=1e-4, atol=1e-5)


def test_ckpt_in_sdedit_list_layout_with_module_prefix(tmp_path):
    sd, reference = ddpm_original_state_dict()
    wrapped = [{"module." + k: v for k, v in sd.items()}, {"step": 1}]
    torch.save(wrapped, tmp_path / "bedroom.ckpt")
    (tmp_path / "bedroom.json").write_text(json.dumps({"resolution": 32}))
    model = load_model(str(tmp_path / "bedroom.ckpt"), "cpu")
    assert model.resolution == 32
    out = edit(model, Image.new("RGB", (40, 30), (90, 120, 200)), t0=0.3, steps=3, seed=1).images[0]
    assert out.size == (40, 30)


def test_broken_checkpoints_give_one_sentence(tmp_path):
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="could not be read"):
        load_model(str(tmp_path / "junk.ckpt"), "cpu")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "empty.ckpt")
    with pytest.raises(InputError, match="no DDPM network"):
        load_model(str(tmp_path / "empty.ckpt"), "cpu")
    folder = make_vp_folder(tmp_path / "cut")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(InputError, match="could not be loaded"):
        load_model(str(folder), "cpu")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="not a model"):
        load_model(str(tmp_path / "plain"), "cpu")


def test_registry_lists_models_dir_and_default(tmp_path, monkeypatch, tiny_vp_dir, tiny_ve_dir):
    shutil.copytree(tiny_vp_dir, tmp_path / "church-small")
    shutil.copytree(tiny_ve_dir, tmp_path / "faces-ve")
    monkeypatch.setenv("SDEDIT_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("SDEDIT_DEFAULT_MODEL", "church-small")
    infos = {i.id: i for i in list_models()}
    assert infos["church-small"].default and infos["church-small"].resolution == 32
    assert infos["faces-ve"].sde == "ve" and not infos["faces-ve"].default
    assert load_model(None, "cpu").id == "church-small"
    with pytest.raises(InputError, match="Unknown model 'nope'.*church-small"):
        load_model("nope", "cpu")


def test_model_cache_returns_the_loaded_model(tiny_vp_dir):
    assert load_model(str(tiny_vp_dir), "cpu") is load_model(str(tiny_vp_dir), "cpu")


def test_unknown_device_is_an_input_error(tiny_vp_dir):
    with pytest.raises(InputError, match="device"):
        load_model(str(tiny_vp_dir), "tpu")
