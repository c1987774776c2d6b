"""Fast tests of the embedded model's training pieces: scenes, strokes, network wrapper, metrics, loop."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sdedit.models.unshuffle_unet import UnshuffleEpsNet
from sdedit.synth import guides
from sdedit.train.__main__ import main as train_main
from sdedit.train.dataset import CropSampler, generate
from sdedit.synth.metrics import faithfulness_l2, kid, texture_features
from sdedit.synth.noise import fbm_1d, fbm_2d
from sdedit.synth.scenes import render_scene
from sdedit.synth.strokes import stroke_painting

TINY = dict(block_out_channels=(32, 32), layers_per_block=1, norm_num_groups=8,
            down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
REPO = Path(__file__).resolve().parent.parent


def test_fractal_noise_is_bounded_and_not_flat():
    rng = np.random.default_rng(0)
    n2 = fbm_2d(64, 96, 4, rng)
    n1 = fbm_1d(100, 3, rng, ridged=True)
    assert n2.shape == (64, 96) and n1.shape == (100,)
    assert np.abs(n2).max() <= 1.0 + 1e-5 and np.abs(n1).max() <= 1.0 + 1e-5
    assert n2.std() > 0.05 and n1.std() > 0.05


def test_scenes_are_deterministic_varied_and_textured():
    a, b, c = render_scene(7, 96), render_scene(7, 96), render_scene(8, 96)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 5  # another seed is another scene
    # texture: neighbouring pixels differ somewhere in the lower half (not flat colour fills)
    lower = a[48:].astype(int)
    assert np.abs(np.diff(lower, axis=1)).mean() > 0.5
    # sky above, usually brighter/bluer than the ground: at least it is not uniform top to bottom
    assert abs(a[:20].mean() - a[-20:].mean()) > 3


def test_stroke_painting_is_flat_few_colours_and_close_to_source():
    src = render_scene(1_000_003, 128)
    g = stroke_painting(src, colors=6, seed=0)
    assert g.shape == src.shape and g.dtype == np.uint8
    assert len(np.unique(g.reshape(-1, 3), axis=0)) <= 6
    assert faithfulness_l2(g[None], src[None])[0] < 60  # a simplification of the image, not another image
    # flat: most neighbouring pixels are identical
    assert (np.abs(np.diff(g.astype(int), axis=1)).sum(-1) == 0).mean() > 0.9


def test_unshuffle_net_shapes_and_size_multiple():
    net = UnshuffleEpsNet.new(**TINY).eval()
    assert net.size_multiple == 8  # 4x unshuffle, one downsampling
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 48), torch.tensor([10.0, 500.5]))
        out1 = net(torch.randn(1, 3, 40, 24), 3.25)
    assert out.shape == (2, 3, 32, 48) and out1.shape == (1, 3, 40, 24)
    with pytest.raises(ValueError, match="multiple of 8"):
        net(torch.randn(1, 3, 30, 32), 1.0)


def test_unshuffle_net_folder_roundtrip(tmp_path):
    net = UnshuffleEpsNet.new(**TINY).eval()
    net.save_folder(tmp_path / "m", extra={"description": "test"})
    meta = json.loads((tmp_path / "m" / "sdedit.json").read_text())
    assert meta["unshuffle"] == 4 and meta["prediction"] == "epsilon" and meta["size_multiple"] == 8
    assert set(meta["default_steps"]) == {"vp", "ve"} and meta["description"] == "test"
    assert (tmp_path / "m" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    sched = json.loads((tmp_path / "m" / "scheduler" / "scheduler_config.json").read_text())
    assert sched["beta_schedule"] == "linear" and sched["num_train_timesteps"] == 1000
    back = UnshuffleEpsNet.from_folder(tmp_path / "m")
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net(x, 100.0), back(x, 100.0), atol=2e-2)  # saved as float16


def test_metrics_behave():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    assert np.allclose(faithfulness_l2(a, a), 0)
    b = np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)
    assert faithfulness_l2(a, b).max() <= 10 + 1e-9
    scenes = np.stack([render_scene(s, 64) for s in range(24)])
    flat = np.stack([stroke_painting(s, seed=i) for i, s in enumerate(scenes[12:])])
    f_real, f_same, f_flat = texture_features(scenes[:12]), texture_features(scenes[12:]), texture_features(flat)
    same = kid(f_same, f_real, subsets=10, subset_size=12)[0]
    diff = kid(f_flat, f_real, subsets=10, subset_size=12)[0]
    assert diff > same  # stroke paintings look less like the real scenes than other real scenes do


def test_crop_sampler_range_and_shape():
    scenes = np.stack([render_scene(s, 64) for s in range(3)])
    x = CropSampler(scenes, 32, np.random.default_rng(0)).batch(5)
    assert x.shape == (5, 3, 32, 32) and x.min() >= -1 and x.max() <= 1


@pytest.mark.slow
def test_training_smoke_resume_and_export(tmp_path):
    (tmp_path / "data").mkdir()
    generate(tmp_path / "data" / "scenes_0.npy", 0, 3, size=64)
    args = ["--out", str(tmp_path), "--steps", "2", "--batch", "2", "--crop", "32", "--tiny", "--threads", "1",
            "--device", "cpu"]
    train_main(args + ["--export", str(tmp_path / "exported")])
    rows = list(csv.reader(open(tmp_path / "loss.csv")))
    assert rows[0][:2] == ["step", "loss"]
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ck["step"] == 2 and {"model", "ema", "opt"} <= set(ck)
    assert (tmp_path / "exported" / "sdedit.json").is_file()
    train_main(args + ["--resume"])
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["step"] == 4
    train_main(["--out", str(tmp_path), "--export-only", "--export", str(tmp_path / "again")])
    net = UnshuffleEpsNet.from_folder(tmp_path / "again")
    assert net(torch.zeros(1, 3, 32, 32), 5.0).shape == (1, 3, 32, 32)
    # a new machine: no checkpoint, only the exported folder
    train_main(["--out", str(tmp_path / "fresh"), "--data", str(tmp_path / "data"), "--steps", "1", "--batch", "2",
                "--crop", "32", "--tiny", "--threads", "1", "--init", str(tmp_path / "again")])
    assert torch.load(tmp_path / "fresh" / "ckpt.pt", weights_only=False)["step"] == 5


def test_bundled_examples_exist_and_match_the_generator():
    for name, fn in guides.EXAMPLES.items():
        path = REPO / "examples" / name
        assert path.is_file(), f"missing {path}; run python -m sdedit.synth.guides examples"
        from PIL import Image
        im = np.asarray(Image.open(path).convert("RGB"))
        assert im.shape[:2] == fn().size[::-1]
        assert len(np.unique(im.reshape(-1, 3), axis=0)) <= 16  # flat strokes, few colours


def test_eps_skip_gives_the_wiener_noise_guess_and_roundtrips(tmp_path):
    net = UnshuffleEpsNet.new(eps_skip=0.5, **TINY).eval()
    for p in net.unet.conv_out.parameters():
        p.data.zero_()  # residual F = 0: only the linear skip is left
    x0 = torch.rand(2, 3, 16, 16) - 0.5
    z = torch.randn(2, 3, 16, 16)
    ab = net.alphas_cumprod
    with torch.no_grad():
        t = 950
        xt = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * z
        assert ((net(xt, float(t)) - z) ** 2).mean() < 1e-3  # pure noise: the skip alone predicts it
        t = 5  # almost clean: the skip says "hardly any noise here"
        xt = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * z
        assert net(xt, float(t)).abs().mean() < 0.2
        assert torch.allclose(net._abar(torch.tensor([10.5])), (ab[10] + ab[11]) / 2)
    net.save_folder(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "sdedit.json").read_text())["eps_skip_sigma_data"] == 0.5
    back = UnshuffleEpsNet.from_folder(tmp_path / "m")
    assert back.eps_skip == 0.5
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net(x, 300.0), back(x, 300.0), atol=2e-2)


def test_device_crop_sampler_crops_are_scene_pixels_or_half_scale_views():
    from sdedit.train.dataset import DeviceCropSampler
    scenes = np.stack([render_scene(s, 64) for s in range(3)])
    sampler = DeviceCropSampler(scenes, 32, torch.device("cpu"), seed=1)
    batch = sampler.batch(64)
    assert batch.shape == (64, 3, 32, 32) and batch.min() >= -1 and batch.max() <= 1
    crops = np.rint((batch.permute(0, 2, 3, 1).numpy() + 1) * 127.5).astype(np.uint8)
    halves = [sc.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3)).astype(np.uint8) for sc in scenes]
    kinds = {"full": 0, "half": 0, "flipped": 0}
    for crop in crops:
        found = None
        for sc, half in zip(scenes, halves):
            if any(np.array_equal(half, v) for v in (crop, crop[:, ::-1])):
                found = "half"
            for y in range(33):
                for x in range(33):
                    win = sc[y:y + 32, x:x + 32]
                    if np.array_equal(win, crop):
                        found = found or "full"
                    elif np.array_equal(win[:, ::-1], crop):
                        found, kinds["flipped"] = found or "full", kinds["flipped"] + 1
        assert found, "a crop that is neither a window of a scene nor its half-scale view"
        kinds[found] += 1
    assert kinds["full"] > 20 and kinds["half"] > 3 and kinds["flipped"] > 5


def test_half_scale_kid_ignores_a_one_pixel_blur_that_texture_kid_punishes():
    from PIL import Image, ImageFilter

    from sdedit.synth.metrics import half_scale

    real = np.stack([render_scene(1_000_000 + s, 64) for s in range(24)])
    other = np.stack([render_scene(1_100_000 + s, 64) for s in range(24)])
    blurred = np.stack([np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(1))) for im in other])
    assert half_scale(real).shape == (24, 32, 32, 3) and half_scale(real).dtype == np.uint8
    full = kid(texture_features(blurred), texture_features(real), subset_size=12)[0]
    half = kid(texture_features(half_scale(blurred)), texture_features(half_scale(real)), subset_size=12)[0]
    assert half < full


def test_attention_grows_from_attention_free_weights_as_the_identity(tmp_path):
    """--attention with --init: today's weights load, the new mid-block attention starts at zero, so the
    grown network computes what the old one did; its export loads in plain torch (no diffusers)."""
    from sdedit.models.plain_unet import PlainUNet2D
    from sdedit.train.loop import load_grown

    torch.manual_seed(0)
    old = UnshuffleEpsNet.new(eps_skip=0.5, **TINY).eval()
    grown = UnshuffleEpsNet.new(eps_skip=0.5, **TINY, add_attention=True, attention_head_dim=16).eval()
    added = load_grown(grown.unet, old.unet.state_dict())
    assert added and all(".attentions." in k for k in added)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(grown(x, 300.0), old(x, 300.0), atol=1e-6)
    grown.save_folder(tmp_path / "m", dtype=torch.float32)
    loaded = UnshuffleEpsNet.from_folder(tmp_path / "m")
    assert isinstance(loaded.unet, PlainUNet2D) and hasattr(loaded.unet.mid_block, "attentions")
    with pytest.raises(SystemExit):  # weights of another shape are refused in one sentence
        load_grown(grown.unet, {"conv_in.weight": torch.zeros(1)})
