"""Stable Diffusion checkpoints (issue 13): offline loading of both layouts, latent SDEdit, text, masks.

Every model is tiny and random, built here in the exact layouts artists have (tests/tiny_sd.py). All loading
runs with the network blocked: HF_HUB_OFFLINE and a socket guard that fails any connection attempt.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tiny_sd import original_state_dict, tiny_components, write_single_file, make_sd_folder

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ["sd1", "sd2v", "sdxl"]
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (loading must be entirely local)."""
    def refuse(self, *args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, *a))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


@pytest.fixture(scope="module")
def sd_files(tmp_path_factory):
    """Each family as a single .safetensors file (with its sidecar config) and as a diffusers folder."""
    root = tmp_path_factory.mktemp("sd")
    made = {}
    for fam in FAMILIES:
        made[fam] = {
            "file": root / f"tiny-{fam}.safetensors",
            "components": write_single_file(root / f"tiny-{fam}.safetensors", fam, config_folder=f"config-{fam}"),
            "folder": make_sd_folder(root / f"tiny-{fam}-diffusers", fam),
        }
    write_single_file(root / "pickled" / "tiny-sd1-ckpt.ckpt", "sd1")
    return root, made


def load(path: Path):
    from sdedit.models.sd_loader import load_sd

    return load_sd(path.stem if path.is_file() else path.name, path, torch.device("cpu"), torch.float32)


def guide_image(width=96, height=80, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.zeros((height, width, 3), np.float32)
    base[: height // 2] = (90, 140, 220)
    base[height // 2:] = (60, 120, 50)
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))


# -- loading -------------------------------------------------------------------------------------------------
def test_tokenizer_from_shipped_vocabulary_gives_clip_ids():
    from sdedit.models.clip_tokenizer import clip_tokenizer

    ids = clip_tokenizer()("a photograph of an astronaut riding a horse").input_ids
    assert ids == [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]  # openai/clip-vit-large-patch14's
    padded = clip_tokenizer("!")("a lake", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[4:6] == [0, 0]  # OpenCLIP pads with "!" (id 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_single_file_loads_offline_with_the_exact_weights(sd_files, family, no_network):
    _, made = sd_files
    model = load(made[family]["file"])
    original = made[family]["components"]
    pairs = [(original["unet"], model.unet), (original["vae"], model.vae),
             *zip(original["text_encoders"], model.text_encoders)]
    assert len(model.text_encoders) == (2 if family == "sdxl" else 1)
    for ours, theirs in pairs:
        a, b = ours.state_dict(), theirs.state_dict()
        assert set(a) == set(b)
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert model.prediction == ("v_prediction" if family == "sd2v" else "epsilon")
    assert model.native_size == {"sd1": 512, "sd2v": 768, "sdxl": 1024}[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_diffusers_folder_loads_offline(sd_files, family, no_network):
    _, made = sd_files
    model = load(made[family]["folder"])
    assert model.prediction == ("v_prediction" if family == "sd2v" else "epsilon")
    assert model.family.is_xl == (family == "sdxl")
    a, b = made[family]["components"]["unet"].state_dict(), model.unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_folder_with_only_the_fp16_variant_loads(tmp_path, no_network):
    from diffusers import StableDiffusionPipeline

    from sdedit.models.sd_loader import is_sd_model

    folder = make_sd_folder(tmp_path / "plain", "sd1", seed=3)
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), local_files_only=True, safety_checker=None)
    pipe.save_pretrained(tmp_path / "half", variant="fp16")
    assert not list((tmp_path / "half" / "unet").glob("diffusion_pytorch_model.safetensors"))
    assert is_sd_model(tmp_path / "half")
    a, b = load(folder).unet.state_dict(), load(tmp_path / "half").unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ckpt_pickle_loads_with_weights_only(sd_files, no_network):
    root, _ = sd_files
    model = load(root / "pickled" / "tiny-sd1-ckpt.ckpt")
    assert model.family.name == "sd1"


def test_legacy_format_ckpt_loads(tmp_path, no_network):
    """Older SD 1.x .ckpt files predate torch's zip format (no memory map): still read with weights_only."""
    from tiny_sd import write_configs

    components = tiny_components("sd1", seed=4)
    path = tmp_path / "old-sd1.ckpt"
    torch.save({"state_dict": original_state_dict(components, "sd1")}, str(path), _use_new_zipfile_serialization=False)
    write_configs(tmp_path / "cfg", "sd1")
    path.with_suffix(".json").write_text(json.dumps({"config": "cfg"}))
    model = load(path)
    a, b = components["unet"].state_dict(), model.unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ckpt_that_needs_code_is_refused(tmp_path):
    from sdedit.errors import InputError
    from sdedit.models.sd_family import tensor_shapes

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": Payload()}}, str(path))
    with pytest.raises(InputError, match="could not be read"):
        tensor_shapes(path)


def test_family_detected_from_tensor_names_and_shapes():
    from sdedit.errors import InputError
    from sdedit.models.sd_family import detect_family

    for fam in FAMILIES:
        shapes = {k: tuple(v.shape) for k, v in original_state_dict(tiny_components(fam), fam).items()}
        assert detect_family(shapes) == fam
    inpaint = dict(shapes, **{"model.diffusion_model.input_blocks.0.0.weight": (32, 9, 3, 3)})
    with pytest.raises(InputError, match="9 input channels"):
        detect_family(inpaint)
    with pytest.raises(InputError, match="LoRA"):
        detect_family({"lora_unet_down.alpha": ()})


def test_sidecar_overrides_family_and_prediction(tmp_path, sd_files):
    from sdedit.models.sd_family import family_for_file

    _, made = sd_files
    src = made["sd2v"]["file"]
    shapes = {"model.diffusion_model.input_blocks.0.0.weight": (32, 4, 3, 3),
              "cond_stage_model.model.token_embedding.weight": (49408, 32)}
    assert family_for_file(src, shapes).prediction == "v_prediction"
    side = tmp_path / "m.safetensors"
    side.with_suffix(".json").write_text(json.dumps({"prediction": "epsilon", "resolution": 512}))
    fam = family_for_file(side, shapes)
    assert (fam.prediction, fam.resolution) == ("epsilon", 512)


# -- the method ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_ddim_matches_diffusers_img2img_latents(sd_files, family):
    """Same components, same seed: our deterministic sampler ends on diffusers' img2img latents (DDIM, eta 0,
    strength = t0, num_inference_steps = steps / t0, "trailing" spacing; diffusers told to end at alpha 1 as we do)."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

    from sdedit import imaging
    from sdedit.engine.noise import NoiseSource
    from sdedit.engine.samplers import SamplerInput, sample_ddim

    _, made = sd_files
    model = load(made[family]["file"])
    guide = imaging.to_tensor(np.asarray(guide_image(64, 64)))
    z = model.encode_image(guide)
    view = model.conditioned(model.encode_text("a lake at dawn", "", 6.0, (64, 64)))
    ours = sample_ddim(view, SamplerInput(z, None, NoiseSource([7], tuple(z.shape[1:]), z.device), 0.5, 5), lambda: None)

    sched = DDIMScheduler.from_config(made[family]["components"]["scheduler"].config, set_alpha_to_one=True,
                                      timestep_spacing="trailing")  # where diffusers' plan starts at SDEdit's t0
    common = dict(vae=model.vae, unet=model.unet, scheduler=sched, tokenizer=model.tokenizers[0],
                  text_encoder=model.text_encoders[0])
    if family == "sdxl":
        pipe = StableDiffusionXLImg2ImgPipeline(text_encoder_2=model.text_encoders[1], tokenizer_2=model.tokenizers[1],
                                                **common)
    else:
        pipe = StableDiffusionImg2ImgPipeline(safety_checker=None, feature_extractor=None,
                                              requires_safety_checker=False, **common)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(prompt="a lake at dawn", image=z, strength=0.5, num_inference_steps=10, guidance_scale=6.0,
                  generator=torch.Generator().manual_seed(7), output_type="latent").images
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert (ours - z).abs().mean() > 1e-2  # it did edit


def test_guidance_one_is_the_conditional_prediction_and_cfg_is_batched(sd_files):
    _, made = sd_files
    model = load(made["sd1"]["file"])
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([300.0, 300.0])
    cond = model.encode_text("a red barn", "fog", 1.0)
    assert cond.uncond is None
    direct = model.unet(x, t, encoder_hidden_states=cond.cond.expand(2, -1, -1)).sample
    torch.testing.assert_close(model.conditioned(cond).model_output(x, t), direct, rtol=0, atol=0)

    calls = []
    hook = model.unet.register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape[0]))
    guided = model.conditioned(model.encode_text("a red barn", "fog", 4.0)).model_output(x, t)
    hook.remove()
    assert calls == [4]  # unconditional and conditional halves in one call
    neg = model.encode_text("fog", "", 1.0).cond
    uncond = model.unet(x, t, encoder_hidden_states=neg.expand(2, -1, -1)).sample
    torch.testing.assert_close(guided, uncond + 4.0 * (direct - uncond), rtol=1e-4, atol=1e-5)


def test_no_prompt_is_one_unconditional_call(sd_files):
    _, made = sd_files
    model = load(made["sd1"]["file"])
    cond = model.encode_text("", "", 7.5)
    assert cond.uncond is None  # the paper's unconditional edit: no guidance doubling


def test_v_prediction_converts_on_the_closed_form(sd_files):
    """A network that outputs the exact v of a known x0 must give back the exact noise, at VP steps and at
    VE noise levels between the steps."""
    _, made = sd_files
    model = load(made["sd2v"]["file"])
    abar_table = model.alphas_cumprod
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))

    class ExactV(torch.nn.Module):
        def forward(self, x, t, encoder_hidden_states=None, added_cond_kwargs=None):
            abar = float(np.interp(float(t[0]), np.arange(len(abar_table)), abar_table.numpy()))
            v = abar**0.5 * eps - (1 - abar) ** 0.5 * x0
            return type("Out", (), {"sample": v.expand_as(x)})()

    model.unet = ExactV()
    for step in (0, 250, 999):
        a = float(abar_table[step])
        x_t = a**0.5 * x0 + (1 - a) ** 0.5 * eps
        torch.testing.assert_close(model.eps_vp(x_t, step), eps, rtol=1e-4, atol=1e-4)
    sigma = float(model.table_sigmas[400])
    torch.testing.assert_close(model.eps_ve(x0 + sigma * eps, torch.tensor([sigma])), eps, rtol=1e-4, atol=1e-4)


def test_latent_mask_covers_every_latent_touching_an_edited_pixel():
    from sdedit.engine.latent_edit import latent_mask

    mask = torch.zeros(1, 1, 32, 32)
    mask[0, 0, 7, 8] = 0.5  # one pixel at the corner of four 8x8 cells: touches only cell (0, 1)
    mask[0, 0, 16:24, 16:24] = 1.0
    lat = latent_mask(mask)[0, 0]
    expected = torch.zeros(4, 4)
    expected[0, 1], expected[2, 2] = 0.5, 1.0
    assert torch.equal(lat, expected)


@pytest.mark.parametrize("sde", ["vp", "ve", "ode", "ddim"])
def test_masked_latent_edit_keeps_mask0_pixels_exact(sd_files, sde):
    from sdedit.engine import edit

    _, made = sd_files
    model = load(made["sd1"]["file"])
    image = guide_image(100, 72, seed=3).convert("RGBA")
    mask = np.zeros((72, 100), np.uint8)
    mask[20:50, 30:70] = 255
    mask[50:54, 30:70] = 128  # a soft edge
    result = edit(model, image, Image.fromarray(mask), t0=0.6, sde=sde, steps=3, samples=2, seed=11,
                  prompt="a boat")
    before = np.asarray(image)
    for out in result.images:
        after = np.asarray(out)
        assert out.size == image.size and out.mode == "RGBA"
        assert np.array_equal(after[mask == 0], before[mask == 0])
        assert np.abs(after[mask == 255].astype(int) - before[mask == 255]).mean() > 1
    assert not np.array_equal(np.asarray(result.images[0]), np.asarray(result.images[1]))


def test_same_seed_same_bytes_and_samples_are_independent(sd_files):
    from sdedit.engine import edit

    _, made = sd_files
    model = load(made["sdxl"]["file"])
    image = guide_image(64, 64, seed=4)
    kw = dict(t0=0.5, sde="vp", steps=3, prompt="a lake", negative_prompt="blur", guidance=5.0)
    two = edit(model, image, samples=2, seed=100, **kw)
    again = edit(model, image, samples=2, seed=100, **kw)
    alone = edit(model, image, samples=1, seed=101, **kw)
    assert [im.tobytes() for im in two.images] == [im.tobytes() for im in again.images]
    assert two.images[1].tobytes() == alone.images[0].tobytes()


def test_large_canvas_uses_tiled_vae(sd_files):
    """With a 64 px one-piece limit, a 200x136 edit goes through diffusers' tiled encode/decode."""
    from sdedit.engine import edit
    from sdedit.models.vae_tiling import tile_only_above

    _, made = sd_files
    model = load(made["sd1"]["file"])
    tile_only_above(model.vae, 64)
    image = guide_image(200, 136, seed=5)
    out = edit(model, image, t0=0.4, sde="ddim", steps=2, seed=1, prompt="hills").images[0]
    assert out.size == (200, 136)
    assert np.abs(np.asarray(out).astype(int) - np.asarray(image)).mean() < 120


def test_text_options_refused_for_a_model_without_text(tiny_vp):
    from sdedit.engine import edit
    from sdedit.errors import InputError

    with pytest.raises(InputError, match="takes no text"):
        edit(tiny_vp, guide_image(32, 32), t0=0.3, steps=2, prompt="a lake")
    with pytest.raises(InputError, match="guidance must be"):
        from sdedit.engine.latent_edit import validate_text

        validate_text(type("M", (), {"takes_text": True, "id": "x"})(), None, None, float("nan"))


# -- the command line and the server ----------------------------------------------------------------------
GUARDED_CLI = ("import socket, sys\n"
               "def refuse(*a, **k): raise SystemExit('network access attempted')\n"
               "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
               "from sdedit.cli import main\nsys.exit(main(sys.argv[1:]))\n")


def run_cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE",)}
    env.update({"PYTHONPATH": os.pathsep.join([str(ROOT / "server"), str(ROOT / "shared")]),
                "SDEDIT_MODELS_DIR": "", "HTTPS_PROXY": "http://127.0.0.9:9", **(env_extra or {})})
    return subprocess.run([sys.executable, "-c", GUARDED_CLI, *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_cli_edit_with_a_prompt_on_a_single_file_with_network_blocked(sd_files, tmp_path):
    root, made = sd_files
    sketch = tmp_path / "sketch.png"
    guide_image(96, 64).save(sketch)
    out = tmp_path / "out.png"
    res = run_cli("edit", str(sketch), "--model", str(made["sd1"]["file"]), "--prompt", "a lake", "-o", str(out),
                  "--steps", "3", "--seed", "5", "--quiet")
    assert res.returncode == 0, res.stderr
    assert Image.open(out).size == (96, 64)
    listed = run_cli("models", env_extra={"SDEDIT_MODELS_DIR": str(root)})
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("tiny-sd1 "))
    assert "latent" in row and "yes" in row and "512" in row and "ode" in row
    assert any(line.startswith("tiny-sdxl-diffusers ") for line in listed.stdout.splitlines())


def test_cli_prompt_to_a_pixel_model_is_exit_2(tiny_vp_dir, tmp_path):
    sketch = tmp_path / "sketch.png"
    guide_image(32, 32).save(sketch)
    res = run_cli("edit", str(sketch), "--model", str(tiny_vp_dir), "--prompt", "a lake", "-o", str(tmp_path / "o.png"))
    assert res.returncode == 2
    assert "takes no text" in res.stderr and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_server_lists_latent_models_and_runs_a_prompted_job(sd_files, tiny_vp_dir, tmp_path):
    import shutil

    from test_server_support import ServerProcess, b64, image_bytes, run_job, server_env

    root, made = sd_files
    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(tiny_vp_dir, models / "tiny-vp")
    for name in ("tiny-sd1.safetensors", "tiny-sd1.json"):
        shutil.copy(root / name, models / name)
    shutil.copytree(root / "config-sd1", models / "config-sd1")
    proc = ServerProcess(server_env(models, models / "tiny-vp"), tmp_path / "server.log").wait_ready()
    try:
        with proc.client() as http:
            listed = {m["id"]: m for m in http.get("/v1/models").json()}
            assert listed["tiny-sd1"]["kind"] == "latent" and listed["tiny-sd1"]["text"] is True
            assert listed["tiny-sd1"]["resolution"] == 512 and listed["tiny-sd1"]["default_sde"] == "ode"
            assert listed["tiny-vp"]["kind"] == "pixel" and listed["tiny-vp"]["text"] is False
            image = b64(image_bytes(guide_image(64, 48)))
            refused = http.post("/v1/jobs", json={"image": image, "prompt": "a lake"})
            assert refused.status_code == 422 and "takes no text" in refused.json()["detail"]
            body = {"image": image, "model": "tiny-sd1", "prompt": "a lake", "negative_prompt": "fog",
                    "guidance": 5.0, "steps": 2, "seed": 3}
            status, result = run_job(http, body)
            assert status["state"] == "done" and len(result["images"]) == 1
    finally:
        assert proc.stop() == 0, proc.log()[-2000:]


# -- any canvas size (issue 14): two stages for latent models too ---------------------------------------------
def staged_model(sd_files, family="sd1", native=32):
    """A tiny checkpoint that declares a 32 px native size, so a 96x80 picture is edited in two stages."""
    _, made = sd_files
    model = load(made[family]["file"])
    model.native_size = native
    return model


def test_latent_canvas_above_native_size_runs_two_stages(sd_files):
    from sdedit.engine import edit, native_scale

    model = staged_model(sd_files)
    seen = []
    image = guide_image(96, 80, seed=6)
    res = edit(model, image, t0=0.5, sde="ode", steps=5, seed=7, prompt="a lake",
               progress=lambda d, t: seen.append((d, t)))
    first, second = res.params["stages"]
    assert max(first["size"]) < 96 and first["t0"] == 0.5 and first["steps"] == 5
    assert second == {"size": list(res.working_size), "t0": native_scale.REFINE_T0, "steps": second["steps"]}
    assert res.steps == 5 + second["steps"] and seen == [(k, res.steps) for k in range(1, res.steps + 1)]
    assert res.images[0].size == (96, 80)
    again = edit(model, image, t0=0.5, sde="ode", steps=5, seed=7, prompt="a lake")
    assert again.images[0].tobytes() == res.images[0].tobytes()
    one = edit(staged_model(sd_files, native=None), image, t0=0.5, sde="ode", steps=5, seed=7, prompt="a lake")
    assert "stages" not in one.params and one.images[0].tobytes() != res.images[0].tobytes()


def test_latent_two_stages_keep_mask0_pixels_and_each_sample_its_seed(sd_files):
    from sdedit.engine import edit

    model = staged_model(sd_files, "sdxl")
    image = guide_image(96, 80, seed=8).convert("RGBA")
    mask = np.zeros((80, 96), np.uint8)
    mask[16:64, 20:80] = 255
    two = edit(model, image, Image.fromarray(mask), t0=0.6, sde="vp", steps=4, samples=2, seed=30, prompt="hills",
               max_batch=1)
    alone = edit(model, image, Image.fromarray(mask), t0=0.6, sde="vp", steps=4, samples=1, seed=31, prompt="hills")
    assert len(two.params["stages"]) == 2
    for out in two.images:
        assert np.array_equal(np.asarray(out)[mask == 0], np.asarray(image)[mask == 0])
    assert two.images[1].tobytes() == alone.images[0].tobytes()
    assert two.images[0].tobytes() != two.images[1].tobytes()


def test_latent_two_stage_previews_have_the_canvas_shape(sd_files):
    from sdedit.engine import edit

    model = staged_model(sd_files)
    seen = []
    edit(model, guide_image(96, 64, seed=9), t0=0.5, sde="ode", steps=6, seed=1, preview=seen.append,
         preview_every=1)
    assert len(seen) >= 6 and len({p.shape for p in seen}) == 1
    h, w = seen[0].shape[:2]
    assert abs(w / h - 1.5) < 0.1


def test_budget_counts_a_staged_latent_job_as_the_engine_reports_it(sd_files):
    from sdedit.api.budget import Budget
    from sdedit.engine import edit

    model = staged_model(sd_files)
    budget = Budget("cpu")
    budget.learn_model(model)
    for w, h in ((96, 80), (20, 20)):
        res = edit(model, guide_image(w, h), t0=0.5, sde="ode", steps=5, seed=2)
        work = budget.estimate(model.id, None, w, h, 0.5, "ode", 5, 1)
        assert (work.width, work.height, work.steps) == (*res.working_size, res.steps)
