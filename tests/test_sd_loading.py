"""Stable Diffusion loading, round 2 (issue 22, items 11-16): files as diffusers' conversion script writes them
under transformers 5, folders saved by transformers 5, SD 2.x epsilon vs v from the weights, the VAE tiled only
when the size needs it, one meaning of t0 for DDIM, and a one-sentence refusal of non-standard shapes.

Every model is tiny and random (tests/tiny_sd.py), loaded with the network blocked.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from test_sd_models import guide_image, load, no_network  # noqa: F401 (no_network is a fixture)
from tiny_sd import original_state_dict, tiny_components, write_configs, write_single_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- 11: CLIP keys without `text_model.` ---------------------------------------------------------------------
@pytest.mark.parametrize("family,suffix", [("sd1", ".safetensors"), ("sd1", ".ckpt"), ("sdxl", ".safetensors")])
def test_clip_keys_without_text_model_level_load(tmp_path, family, suffix, no_network):
    """diffusers' conversion script under transformers 5 writes `cond_stage_model.transformer.embeddings.*`."""
    path = tmp_path / f"flat-{family}{suffix}"
    made = write_single_file(path, family, seed=5, text_model_level=False)
    flat = original_state_dict(made, family, text_model_level=False)
    assert not any(".text_model." in k for k in flat if ".transformer." in k)
    model = load(path)
    assert model.family.name == family
    for ours, theirs in zip(made["text_encoders"], model.text_encoders):
        assert same_weights(ours, theirs)
    assert same_weights(made["unet"], model.unet)


def test_transformers_layout_sd2_text_encoder_is_sd2():
    """SD 2.x converted by the same script under transformers 5: OpenCLIP-H (1024 wide) in CLIP key names."""
    from sdedit.models.sd_family import detect_family, with_text_model_level

    shapes = with_text_model_level({
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
        "cond_stage_model.transformer.embeddings.position_embedding.weight": (77, 1024),
        "cond_stage_model.transformer.embeddings.token_embedding.weight": (49408, 1024),
    })
    assert detect_family(shapes) == "sd2v"
    shapes["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"] = (49408, 768)
    assert detect_family(shapes) == "sd1"
