"""The embedded model runs without diffusers: plain_unet rebuilds its UNet2DModel layer for layer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from sdedit.models.plain_unet import PlainUNet2D, load_plain_unet, supports
from sdedit.models.registry import EMBEDDED_DIR
from sdedit.models.unshuffle_unet import linear_alphas_cumprod_f32, make_scheduler

ROOT = Path(__file__).resolve().parent.parent
UNET = EMBEDDED_DIR / "landscape" / "unet"


def test_plain_unet_gives_diffusers_outputs_on_the_shipped_weights():
    from diffusers import UNet2DModel

    plain = load_plain_unet(UNET)
    reference = UNet2DModel.from_pretrained(str(UNET)).eval()
    x, t = torch.randn(2, 48, 16, 24), torch.tensor([3.0, 640.5])
    with torch.no_grad():
        assert torch.equal(plain(x, t).sample, reference(x, t).sample)
    assert set(plain.state_dict()) == set(reference.state_dict())


def test_other_configurations_are_left_to_diffusers(tmp_path):
    config = json.loads((UNET / "config.json").read_text())
    assert supports(config)
    for change in ({"down_block_types": ["AttnDownBlock2D"] + config["down_block_types"][1:]},
                   {"time_embedding_type": "fourier"}, {"resnet_time_scale_shift": "scale_shift"}, {"new_option": 1}):
        assert not supports({**config, **change}), change
    (tmp_path / "config.json").write_text(json.dumps({**config, "time_embedding_type": "fourier"}))
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    assert load_plain_unet(tmp_path) is None


def test_tiny_configuration_matches_diffusers_too():
    from diffusers import UNet2DModel

    config = dict(in_channels=3, out_channels=3, block_out_channels=[16, 32, 48], layers_per_block=1,
                  down_block_types=["DownBlock2D"] * 3, up_block_types=["UpBlock2D"] * 3, norm_num_groups=8,
                  add_attention=False, flip_sin_to_cos=False, freq_shift=1)
    torch.manual_seed(0)
    reference = UNet2DModel(**config).eval()
    plain = PlainUNet2D(config).eval()
    plain.load_state_dict(reference.state_dict(), strict=True)
    x, t = torch.randn(1, 3, 24, 40), torch.tensor([17.25])
    with torch.no_grad():
        torch.testing.assert_close(plain(x, t).sample, reference(x, t).sample, rtol=0, atol=1e-6)


def test_mid_block_attention_matches_diffusers_bit_for_bit():
    """The v3 embedded model attends over the whole picture at the lowest resolution (add_attention)."""
    from diffusers import UNet2DModel

    base = json.loads((UNET / "config.json").read_text())
    for head in (64, None, 8):
        config = {k: v for k, v in base.items() if not k.startswith("_")}
        config.update(add_attention=True, attention_head_dim=head, block_out_channels=[32, 32, 64, 64],
                      norm_num_groups=16, in_channels=48, out_channels=48)
        assert supports(config)
        torch.manual_seed(1)
        reference = UNet2DModel(**config).eval()
        plain = PlainUNet2D(config).eval()
        plain.load_state_dict(reference.state_dict(), strict=True)
        assert set(plain.state_dict()) == set(reference.state_dict())
        x, t = torch.randn(2, 48, 32, 24), torch.tensor([5.0, 812.5])
        with torch.no_grad():
            assert torch.equal(plain(x, t).sample, reference(x, t).sample), head


def test_schedule_buffer_is_the_ddpm_schedulers():
    assert torch.equal(linear_alphas_cumprod_f32(), make_scheduler().alphas_cumprod)


def test_a_default_edit_never_imports_diffusers(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 32), (90, 140, 200)).save(tmp_path / "in.png")
    probe = ("import sys; from sdedit.cli import main; rc = main(sys.argv[1:]); "
             "print(rc, 'torch' in sys.modules, 'diffusers' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'server'}{os.pathsep}{ROOT / 'shared'}")
    res = subprocess.run([sys.executable, "-c", probe, "edit", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"),
                          "--no-server", "--quiet", "--sde", "ode", "--steps", "2", "--seed", "0"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.stdout.split() == ["0", "True", "False"], res.stdout + res.stderr
