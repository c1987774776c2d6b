"""LoRA: the same latents as diffusers' own load_lora_weights + img2img on the same components, in both file
formats and all three families; scale 0 = no LoRA; switching LoRAs keeps the loaded checkpoint; a LoRA of
another family is refused with one sentence; --lora on the command line."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_lora import write_diffusers_lora, write_kohya_lora
from tiny_sd import write_single_file

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ["sd1", "sd2v", "sdxl"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    made = {}
    for fam in FAMILIES:
        ckpt = root / f"tiny-{fam}.safetensors"
        made[fam] = {"ckpt": ckpt, "components": write_single_file(ckpt, fam, config_folder=f"config-{fam}"),
                     "diffusers": write_diffusers_lora(root / f"lora-{fam}", fam)}
    made["sd1"]["kohya"] = write_kohya_lora(root / "kohya-sd1.safetensors", "sd1")
    return made


def load(path: Path):
    from sdedit.models.sd_loader import load_sd

    return load_sd(path.stem, path, torch.device("cpu"), torch.float32)


def ddim_latents(model, prompt="a lake at dawn", seed=7):
    from sdedit import imaging
    from sdedit.engine.noise import NoiseSource
    from sdedit.engine.samplers import SamplerInput, sample_ddim

    rng = np.random.default_rng(0)
    guide = imaging.to_tensor(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8))
    z = model.encode_image(guide)
    view = model.conditioned(model.encode_text(prompt, "", 6.0, (64, 64)))
    return z, sample_ddim(view, SamplerInput(z, None, NoiseSource([seed], tuple(z.shape[1:]), z.device), 0.5, 5),
                          lambda: None)


def diffusers_latents(model, z, family, scheduler_config, lora: Path, scale: float, prompt="a lake at dawn", seed=7):
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

    sched = DDIMScheduler.from_config(scheduler_config, set_alpha_to_one=True, timestep_spacing="trailing")
    common = dict(vae=model.vae, unet=model.unet, scheduler=sched, tokenizer=model.tokenizers[0],
                  text_encoder=model.text_encoders[0])
    if family == "sdxl":
        pipe = StableDiffusionXLImg2ImgPipeline(text_encoder_2=model.text_encoders[1], tokenizer_2=model.tokenizers[1],
                                                **common)
    else:
        pipe = StableDiffusionImg2ImgPipeline(safety_checker=None, feature_extractor=None,
                                              requires_safety_checker=False, **common)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(lora), adapter_name="theirs")
    pipe.set_adapters(["theirs"], adapter_weights=[scale])
    return pipe(prompt=prompt, image=z, strength=0.5, num_inference_steps=10, guidance_scale=6.0,
                generator=torch.Generator().manual_seed(seed), output_type="latent").images


@pytest.mark.slow
@pytest.mark.parametrize("family,fmt", [("sd1", "diffusers"), ("sd1", "kohya"), ("sd2v", "diffusers"),
                                        ("sdxl", "diffusers")])
def test_lora_latents_match_diffusers_load_lora_weights(files, family, fmt):
    from sdedit.models.lora import LoraChoice, apply_loras

    lora = files[family][fmt]
    plain = load(files[family]["ckpt"])
    _, without = ddim_latents(plain)
    ours_model = load(files[family]["ckpt"])
    apply_loras(ours_model, [LoraChoice(str(lora), 0.7)])
    z, ours = ddim_latents(ours_model)
    reference = load(files[family]["ckpt"])
    theirs = diffusers_latents(reference, z, family, files[family]["components"]["scheduler"].config, lora, 0.7)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert (ours - without).abs().max() > 1e-3  # the LoRA did change the result


def test_scale_zero_equals_no_lora_and_switching_keeps_the_checkpoint(files):
    from sdedit.models.lora import LoraChoice, active_loras, apply_loras

    model = load(files["sd1"]["ckpt"])
    unet, encoder = model.unet, model.text_encoders[0]
    _, plain = ddim_latents(model)
    a, b = LoraChoice(str(files["sd1"]["diffusers"]), 1.0), LoraChoice(str(files["sd1"]["kohya"]), 0.5)
    apply_loras(model, [a])
    _, with_a = ddim_latents(model)
    apply_loras(model, [b])
    _, with_b = ddim_latents(model)
    apply_loras(model, [LoraChoice(a.ref, 0.0), LoraChoice(b.ref, 0.0)])
    _, zero = ddim_latents(model)
    apply_loras(model, [])
    _, none = ddim_latents(model)
    apply_loras(model, [a])
    _, a_again = ddim_latents(model)
    assert torch.equal(zero, plain) and torch.equal(none, plain)
    assert not torch.allclose(with_a, plain) and not torch.allclose(with_b, with_a)
    assert torch.equal(a_again, with_a)
    assert model.unet is unet and model.text_encoders[0] is encoder  # the checkpoint stayed loaded
    assert len(active_loras(model)) == 2  # each LoRA was read once


@pytest.mark.parametrize("lora_family,model_family", [("sdxl", "sd1"), ("sd1", "sdxl")])
def test_a_lora_of_another_family_is_refused_with_one_sentence(files, lora_family, model_family):
    from sdedit.errors import InputError
    from sdedit.models.lora import LoraChoice, apply_loras

    model = load(files[model_family]["ckpt"])
    with pytest.raises(InputError) as err:
        apply_loras(model, [LoraChoice(str(files[lora_family]["diffusers"]), 1.0)])
    message = str(err.value)
    assert "does not fit" in message and "\n" not in message
    assert not any("lora" in n for n, _ in model.unet.named_modules())  # nothing was injected


def test_lora_spec_parsing():
    from sdedit.errors import InputError
    from sdedit.models.lora import parse_lora

    assert parse_lora("style") == parse_lora("style:1")
    assert parse_lora("style:0.6").scale == 0.6
    assert parse_lora("C:\\loras\\x.safetensors").ref == "C:\\loras\\x.safetensors"
    assert parse_lora("/a/b:c.safetensors:-0.5").scale == -0.5
    with pytest.raises(InputError):
        parse_lora("style:9")


def cli(env_extra: dict, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "server"), str(ROOT / "shared")]),
               SDEDIT_SERVER_URL="off", **env_extra)
    return subprocess.run([sys.executable, "-m", "sdedit", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=str(ROOT))


@pytest.mark.slow
def test_cli_lora_from_the_loras_folder(files, tmp_path, tiny_vp_dir):
    from PIL import Image

    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    shutil.copy(files["sd1"]["kohya"], models / "loras" / "ink.safetensors")
    for p in (files["sd1"]["ckpt"], files["sd1"]["ckpt"].with_suffix(".json")):
        shutil.copy(p, models / p.name)
    shutil.copytree(files["sd1"]["ckpt"].parent / "config-sd1", models / "config-sd1")
    Image.new("RGB", (64, 64), (40, 90, 160)).save(tmp_path / "in.png")
    env = {"SDEDIT_MODELS_DIR": str(models)}
    listing = cli(env, "models")
    assert "ink" in listing.stdout.split("LoRAs")[1]
    common = [str(tmp_path / "in.png"), "--model", "tiny-sd1", "--prompt", "ink", "--steps", "2", "--seed", "3",
              "--quiet", "--sde", "ddim"]
    out = cli(env, "edit", *common, "-o", str(tmp_path / "a.png"), "--lora", "ink:0.8")
    assert out.returncode == 0, out.stderr
    out = cli(env, "edit", *common, "-o", str(tmp_path / "b.png"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    missing = cli(env, "edit", *common, "-o", str(tmp_path / "c.png"), "--lora", "nothing")
    assert missing.returncode == 2 and "Unknown LoRA 'nothing'" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    pixel = cli(env, "edit", str(tmp_path / "in.png"), "-o", str(tmp_path / "d.png"), "--model", str(tiny_vp_dir),
                "--lora", "ink", "--quiet")
    assert pixel.returncode == 2 and "not a Stable Diffusion model" in pixel.stderr
