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
        models[family] = (load_sd(path.stem, path, torch.device("cpu"), torch.float32), components, path)
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

    model, components, _ = sd_models[family]
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

    model, components, _ = sd_models[family]
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
    assert np.array_equal(out[:, :8], np.asarray(image)[:, :8])  # kept side exact (engine/seam.py blends the edge)
    assert np.abs(out[:, 18:].astype(int) - np.asarray(image)[:, 18:]).mean() > 1
    again = edit(tiny_vp, image, Image.fromarray(mask), t0=0.5, sde=sampler, steps=2, seed=3)
    assert np.array_equal(np.asarray(again.images[0]), out)  # same seed, same bytes


# -- live defaults, declared per model like default_sde ---------------------------------------------------------
def test_embedded_model_declares_its_live_defaults():
    from sdedit.models.registry import list_models

    embedded = next(i for i in list_models() if i.id == "landscape")
    assert embedded.live.as_dict() == {"sde": "ode", "steps": 3, "size": 256, "guidance": None}
    assert embedded.as_dict()["live"]["steps"] == 3


def test_pixel_folder_live_defaults_and_overrides(tmp_path, tiny_vp_dir):
    import json
    import shutil

    from sdedit.errors import InputError
    from sdedit.models.layout import describe_folder

    plain = describe_folder(tiny_vp_dir, "tiny-vp")
    assert plain.live.sde == "ode" and plain.live.size == 32  # never above the size it was trained at
    folder = tmp_path / "declared"
    shutil.copytree(tiny_vp_dir, folder)
    (folder / "sdedit.json").write_text(json.dumps({"native_size": 128, "live": {"sde": "lcm", "steps": 2}}))
    declared = describe_folder(folder, "declared")
    assert (declared.live.sde, declared.live.steps, declared.live.size) == ("lcm", 2, 128)
    (folder / "sdedit.json").write_text(json.dumps({"live": {"sde": "warp", "steps": 2}}))
    with pytest.raises(InputError, match="live \"sde\" must be one of"):
        describe_folder(folder, "declared")


def test_turbo_and_lcm_checkpoints_get_few_step_defaults(tmp_path, sd_models):
    import json
    import shutil

    from diffusers import LCMScheduler

    from sdedit.models.sd_loader import load_sd
    from sdedit.models.sd_lookup import describe_sd

    source = sd_models["sd1"][2]  # the module fixture's single file, with its sidecar
    turbo = tmp_path / "sd_turbo.safetensors"
    shutil.copy(source, turbo)
    shutil.copy(source.with_suffix(".json"), turbo.with_suffix(".json"))
    side = json.loads(turbo.with_suffix(".json").read_text())
    side["config"] = str((source.parent / side["config"]).resolve())
    turbo.with_suffix(".json").write_text(json.dumps(side))
    info = describe_sd("sd_turbo", turbo)
    assert info.default_sde == "euler_a"
    assert info.live.as_dict() == {"sde": "euler_a", "steps": 2, "size": 512, "guidance": 1.0}
    model = load_sd("sd_turbo", turbo, torch.device("cpu"), torch.float32)
    assert model.default_sde == "euler_a" and model.default_guidance == 1.0

    plain = describe_sd("tiny-sd1", source)
    assert plain.default_sde == "ode" and plain.live.as_dict() == {"sde": "ode", "steps": 8, "size": 512,
                                                                   "guidance": 7.5}
    side["live"] = {"steps": 1, "size": 384}  # a sidecar overrides key by key
    turbo.with_suffix(".json").write_text(json.dumps(side))
    assert describe_sd("sd_turbo", turbo).live.as_dict() == {"sde": "euler_a", "steps": 1, "size": 384,
                                                             "guidance": 1.0}


def test_lcm_pipeline_folder_is_recognised_by_its_scheduler(tmp_path):
    import json

    from tiny_sd import make_sd_folder

    from sdedit.models.sd_lookup import describe_sd

    folder = make_sd_folder(tmp_path / "dreamshaper-distilled", "sd1")
    config = folder / "scheduler" / "scheduler_config.json"
    sched = json.loads(config.read_text())
    sched["_class_name"] = "LCMScheduler"
    config.write_text(json.dumps(sched))
    info = describe_sd(folder.name, folder)
    assert info.default_sde == "lcm" and info.live.sde == "lcm" and info.live.guidance == 1.0


def test_loaded_models_declare_the_same_live_defaults_as_their_listing(tiny_vp, sd_models):
    """Live defaults are one of a model's declared facts (models/facts.py), the same as GET /v1/models lists."""
    from sdedit.models import load_model
    from sdedit.models.facts import facts_of
    from sdedit.models.registry import list_models

    embedded = load_model("landscape", device="cpu")
    listed = next(i for i in list_models() if i.id == "landscape")
    assert facts_of(embedded).live == listed.live and embedded.info().live.steps == 3
    assert facts_of(tiny_vp).live.sde == "ode" and facts_of(tiny_vp).live.size == 32
    sd1 = sd_models["sd1"][0]
    assert facts_of(sd1).live.as_dict() == {"sde": "ode", "steps": 8, "size": 512, "guidance": 7.5}


@pytest.fixture(scope="module")
def distilled_lcm(tmp_path_factory):
    """A full LCM pipeline folder in LCM_Dreamshaper_v7's layout: LatentConsistencyModelPipeline, LCMScheduler,
    a UNet with `time_cond_proj_dim` (guidance-distilled: it takes w - 1 as an embedding, no second call)."""
    import json

    from diffusers import UNet2DConditionModel
    from tiny_sd import make_sd_folder, unet_config

    from sdedit.models.sd_loader import load_sd

    folder = make_sd_folder(tmp_path_factory.mktemp("lcm") / "lcm-dreamshaper-tiny", "sd1")
    torch.manual_seed(3)
    unet = UNet2DConditionModel(**unet_config("sd1"), time_cond_proj_dim=16)
    with torch.no_grad():
        for p in unet.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "LatentConsistencyModelPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    config = folder / "scheduler" / "scheduler_config.json"
    sched = json.loads(config.read_text())
    sched["_class_name"] = "LCMScheduler"
    config.write_text(json.dumps(sched))
    return folder, load_sd(folder.name, folder, torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("t0,steps,guidance", [(0.5, 2, 8.5), (0.75, 3, 4.0), (0.5, 1, 1.0)])
def test_full_lcm_takes_guidance_as_an_embedding_like_diffusers(distilled_lcm, t0, steps, guidance):
    """A guidance-distilled UNet gets diffusers' guidance embedding of w - 1 and one call per step."""
    from diffusers import LCMScheduler

    folder, model = distilled_lcm
    assert model.guidance_dim == 16
    z = guide_latent(model)
    sched = LCMScheduler.from_pretrained(folder / "scheduler")
    theirs = diffusers_img2img(model, sched, z, prompt="a castle", strength=t0, total_steps=round(steps / t0),
                               guidance=guidance)
    mine = ours(model, "lcm", z, prompt="a castle", t0=t0, steps=steps, guidance=guidance)
    torch.testing.assert_close(mine, theirs, rtol=2e-4, atol=2e-4)
    other = ours(model, "lcm", z, prompt="a castle", t0=t0, steps=steps, guidance=guidance + 3.0)
    assert (other - mine).abs().max() > 1e-4  # the scale reaches the network


def test_full_lcm_folder_declares_embedded_guidance_for_live(distilled_lcm):
    from sdedit.models.sd_lookup import describe_sd

    folder, model = distilled_lcm
    info = describe_sd(folder.name, folder)
    assert info.default_sde == "lcm" and info.live.as_dict()["guidance"] == 8.5 and info.live.steps == 4
    calls = []
    model.unet.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    view = model.conditioned(model.encode_text("a castle", "", 8.5, (64, 64)))
    view.eps_vp(guide_latent(model), 500)
    assert calls == [1], "one UNet call of batch 1: no classifier-free guidance pair"


def test_lcm_lora_with_lcm_matches_diffusers(sd_models, tmp_path):
    """LCM-LoRA's recipe on any SD 1.x checkpoint: the LoRA (kohya naming, UNet only, as latent-consistency's
    lcm-lora-sdv1-5 file) loaded our way, then `lcm` in 4 steps, guidance 1; against diffusers'
    load_lora_weights + LCMScheduler img2img. The live panel picks that recipe by the LoRA's name."""
    from diffusers import LCMScheduler
    from safetensors.torch import load_file, save_file
    from tiny_lora import write_kohya_lora

    from sdedit.models.lora import LoraChoice, apply_loras
    from sdedit.models.sd_loader import load_sd
    from sdedit_client.live import live_with_loras

    _, components, path = sd_models["sd1"]
    lora = tmp_path / "lcm-lora-sdv1-5.safetensors"
    write_kohya_lora(lora, "sd1")
    save_file({k: v for k, v in load_file(str(lora)).items() if k.startswith("lora_unet_")}, str(lora))
    live = live_with_loras({"sde": "ode", "steps": 8, "size": 512, "guidance": 7.5}, [{"id": lora.stem, "scale": 1}])
    assert live == {"sde": "lcm", "steps": 4, "size": 512, "guidance": 1.0}

    model = load_sd(path.stem, path, torch.device("cpu"), torch.float32)
    apply_loras(model, [LoraChoice(str(lora), 1.0)])
    z = guide_latent(model)
    mine = ours(model, live["sde"], z, prompt="a red barn", t0=0.5, steps=live["steps"], guidance=live["guidance"])
    reference = load_sd(path.stem, path, torch.device("cpu"), torch.float32)
    sched = LCMScheduler.from_config(components["scheduler"].config)
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline(vae=reference.vae, unet=reference.unet, scheduler=sched,
                                          tokenizer=reference.tokenizers[0], text_encoder=reference.text_encoders[0],
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(lora), adapter_name="lcm")
    theirs = pipe(prompt="a red barn", image=z, strength=0.5, num_inference_steps=8, guidance_scale=1.0,
                  generator=torch.Generator().manual_seed(7), output_type="latent").images
    torch.testing.assert_close(mine, theirs, rtol=2e-4, atol=2e-4)
    plain = ours(load_sd(path.stem, path, torch.device("cpu"), torch.float32), "lcm", z, prompt="a red barn",
                 t0=0.5, steps=4, guidance=1.0)
    assert (plain - mine).abs().max() > 1e-3  # the LoRA did change the result


def test_lcm_lora_names_and_live_override():
    from sdedit_client.live import is_lcm_lora, live_with_loras

    assert all(is_lcm_lora(n) for n in ("lcm-lora-sd15", "lcm-lora-sdxl", "LCM_LoRA_Weights_SD15",
                                          "latent-consistency/lcm-lora-sdv1-5", "lcm"))
    assert not any(is_lcm_lora(n) for n in ("film-grain", "alcmist", "watercolor_v2", ""))
    base = {"sde": "euler_a", "steps": 2, "size": 512, "guidance": 1.0}
    assert live_with_loras(base, [{"id": "film-grain", "scale": 0.8}]) == base
    assert live_with_loras(base, [{"id": "lcm-lora-sd15", "scale": 0}]) == base  # switched off
    assert live_with_loras(base, [{"id": "lcm-lora-sd15", "scale": 1.0}])["sde"] == "lcm"
