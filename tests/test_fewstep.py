"""Few-step samplers of live mode (`lcm`, `euler_a`) against diffusers' own img2img on tiny SD components.

Same UNet, VAE and text encoder, same seed: our sampler on the encoded guide must end on the latents of
StableDiffusionImg2ImgPipeline with LCMScheduler (LCM / LCM-LoRA) or EulerAncestralDiscreteScheduler with
timestep_spacing="trailing" (SD-Turbo), strength = t0 and num_inference_steps = steps / t0. The noise streams
line up because both draw from one generator per sample in the same order (start noise, then one per step).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tiny_sd import write_single_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def sd_models(tmp_path_factory):
    from sdedit.models.sd_loader import load_sd

    root = tmp_path_factory.mktemp("fewstep")
    models = {}
    for family in ("sd1", "sd2v"):
        path = root / f"tiny-{family}.safetensors"
        components = write_single_file(path, family, config_folder=f"config-{family}")
        models[family] = (load_sd(path.stem, path, torch.device("cpu"), torch.float32), components)
    return models


def guide_latent(model):
    from sdedit import imaging

    rng = np.random.default_rng(0)
    base = np.zeros((64, 64, 3), np.float32)
    base[:32] = (90, 140, 220)
    base[32:] = (60, 120, 50)
    pixels = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    return model.encode_image(imaging.to_tensor(np.asarray(pixels)))


def diffusers_img2img(model, scheduler, z, *, prompt, strength, total_steps, guidance):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline(vae=model.vae, unet=model.unet, scheduler=scheduler,
                                          tokenizer=model.tokenizers[0], text_encoder=model.text_encoders[0],
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt=prompt, image=z, strength=strength, num_inference_steps=total_steps, guidance_scale=guidance,
                generator=torch.Generator().manual_seed(7), output_type="latent").images


def ours(model, sampler, z, *, prompt, t0, steps, guidance):
    from sdedit.engine.noise import NoiseSource
    from sdedit.engine.samplers import SAMPLERS, SamplerInput

    view = model.conditioned(model.encode_text(prompt, "", guidance, (64, 64)))
    calls = []
    out = SAMPLERS[sampler](view, SamplerInput(z, None, NoiseSource([7], tuple(z.shape[1:]), z.device), t0, steps),
                            lambda: calls.append(1))
    assert len(calls) == steps, "one network step per requested step"
    return out


@pytest.mark.parametrize("family", ["sd1", "sd2v"])
@pytest.mark.parametrize("t0,steps", [(0.5, 1), (0.5, 2), (0.75, 3), (1.0, 4)])
def test_euler_a_trailing_matches_turbo_img2img(sd_models, family, t0, steps):
    """SD-Turbo's recipe: trailing timesteps, no classifier-free guidance (diffusers' guidance_scale 0 is one
    conditional call: our guidance 1), steps x t0 >= 1 in diffusers' terms."""
    from diffusers import EulerAncestralDiscreteScheduler

    model, components = sd_models[family]
    z = guide_latent(model)
    sched = EulerAncestralDiscreteScheduler.from_config(components["scheduler"].config, timestep_spacing="trailing")
    total = round(steps / t0)
    theirs = diffusers_img2img(model, sched, z, prompt="a lake at dawn", strength=t0, total_steps=total, guidance=0.0)
    mine = ours(model, "euler_a", z, prompt="a lake at dawn", t0=t0, steps=steps, guidance=1.0)
    assert mine.shape == theirs.shape
    torch.testing.assert_close(mine, theirs, rtol=2e-4, atol=2e-4)
    assert (mine - z).abs().mean() > 1e-2  # it did edit


@pytest.mark.parametrize("family", ["sd1", "sd2v"])
@pytest.mark.parametrize("t0,steps,guidance", [(0.5, 2, 1.0), (1.0, 4, 1.0), (0.6, 3, 2.0), (0.25, 1, 1.0)])
def test_lcm_matches_lcm_scheduler_img2img(sd_models, family, t0, steps, guidance):
    """LCM-LoRA's recipe: the stock img2img pipeline with LCMScheduler, guidance 1-2."""
    from diffusers import LCMScheduler

    model, components = sd_models[family]
    z = guide_latent(model)
    sched = LCMScheduler.from_config(components["scheduler"].config)
    total = round(steps / t0)
    theirs = diffusers_img2img(model, sched, z, prompt="a red barn", strength=t0, total_steps=total,
                               guidance=guidance)
    mine = ours(model, "lcm", z, prompt="a red barn", t0=t0, steps=steps, guidance=guidance)
    torch.testing.assert_close(mine, theirs, rtol=2e-4, atol=2e-4)
    assert (mine - z).abs().mean() > 1e-2


def test_timestep_plans_follow_diffusers():
    """The plans themselves, on diffusers' schedulers (no network call)."""
    from diffusers import EulerAncestralDiscreteScheduler, LCMScheduler

    from sdedit.engine.fewstep import lcm_timesteps, trailing_timesteps

    for t0, steps in [(0.5, 1), (0.25, 1), (0.5, 2), (0.8, 4), (1.0, 1), (0.3, 3)]:
        total = round(steps / t0)
        euler = EulerAncestralDiscreteScheduler(timestep_spacing="trailing")
        euler.set_timesteps(total)
        assert trailing_timesteps(t0, steps) == [int(t) for t in euler.timesteps[total - steps:]], (t0, steps)
        lcm = LCMScheduler()
        lcm.set_timesteps(total)
        assert lcm_timesteps(t0, steps) == [int(t) for t in lcm.timesteps[total - steps:]], (t0, steps)
    assert trailing_timesteps(1.0, 1) == [999]  # Turbo's one-step text-to-image level


@pytest.mark.parametrize("sampler", ["lcm", "euler_a"])
def test_few_step_samplers_edit_pixel_models_and_keep_masked_pixels(tiny_vp, sampler):
    """Any model can be driven by them (they only ask for the noise at a DDPM step); masks hold exactly."""
    from sdedit.engine import edit

    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    mask = np.zeros((32, 32), np.uint8)
    mask[:, 16:] = 255
    result = edit(tiny_vp, image, Image.fromarray(mask), t0=0.5, sde=sampler, steps=2, seed=3)
    out = np.asarray(result.images[0])
    assert result.steps == 2 and result.evaluations == 2
    assert np.array_equal(out[:, :14], np.asarray(image)[:, :14])  # kept side exact (a seam blends at the edge)
    assert np.abs(out[:, 18:].astype(int) - np.asarray(image)[:, 18:]).mean() > 1
    again = edit(tiny_vp, image, Image.fromarray(mask), t0=0.5, sde=sampler, steps=2, seed=3)
    assert np.array_equal(np.asarray(again.images[0]), out)  # same seed, same bytes
