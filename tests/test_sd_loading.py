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


# -- 12: a folder's tokenizer in either format; ids beyond the encoder's vocabulary ---------------------------
SMALL_MERGES = 300


def small_tokenizer():
    """A CLIP-style BPE tokenizer with a vocabulary of 814 tokens (another model's vocabulary, not CLIP's)."""
    from transformers import CLIPTokenizer

    from sdedit.models.clip_tokenizer import _vocab_and_merges

    vocab, merges = _vocab_and_merges()
    kept = merges[:SMALL_MERGES]
    words = list(vocab)[:512] + ["".join(m.split()) for m in kept] + ["<|startoftext|>", "<|endoftext|>"]
    tok = CLIPTokenizer(vocab={w: i for i, w in enumerate(words)}, merges=[tuple(m.split()) for m in kept])
    tok.model_max_length = 77
    return tok


def folder_with_own_vocabulary(path: Path, tokenizer) -> Path:
    """An SD 1.x pipeline folder whose text encoder has the small vocabulary, saved with `tokenizer`."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    from tiny_sd import text_config

    c = tiny_components("sd1", seed=8)
    cfg = text_config(32, "sd1")
    cfg.vocab_size, cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = 814, 812, 813, 813
    torch.manual_seed(8)
    encoder = CLIPTextModel(cfg).eval()
    pipe = StableDiffusionPipeline(vae=c["vae"], text_encoder=encoder, tokenizer=tokenizer, unet=c["unet"],
                                   scheduler=c["scheduler"], safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def old_tokenizer_format(sub: Path) -> None:
    """Rewrite a tokenizer folder as transformers 4 saved it: vocab.json and merges.txt, no tokenizer.json."""
    data = json.loads((sub / "tokenizer.json").read_text())
    (sub / "vocab.json").write_text(json.dumps(data["model"]["vocab"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    (sub / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (sub / "tokenizer.json").unlink()


@pytest.mark.parametrize("layout", ["tokenizer.json", "vocab.json"])
def test_folder_tokenizer_is_used_in_either_format(tmp_path, layout, no_network):
    folder = folder_with_own_vocabulary(tmp_path / "own-vocab", small_tokenizer())
    sub = folder / "tokenizer"
    assert (sub / "tokenizer.json").is_file() and not (sub / "vocab.json").exists()  # what transformers 5 saves
    if layout == "vocab.json":
        old_tokenizer_format(sub)
    model = load(folder)
    expected = small_tokenizer()("a red barn", padding="max_length", max_length=77).input_ids
    ours = model.tokenizers[0]("a red barn", padding="max_length", max_length=77).input_ids
    assert ours == expected and max(ours) == 813
    condition = model.encode_text("a red barn", "fog", 5.0)  # before: IndexError: index out of range in self
    assert condition.cond.shape == (1, 77, 32) and torch.isfinite(condition.cond).all()


def test_token_ids_beyond_the_encoders_vocabulary_are_one_sentence(tmp_path, no_network):
    from sdedit.engine import edit
    from sdedit.errors import InputError
    from sdedit.models.clip_tokenizer import clip_tokenizer

    model = load(folder_with_own_vocabulary(tmp_path / "mismatch", clip_tokenizer()))  # CLIP's 49408 tokens
    with pytest.raises(InputError) as err:
        edit(model, guide_image(64, 64), t0=0.5, sde="ddim", steps=2, seed=1, prompt="a lake")
    message = str(err.value)
    assert "vocabulary has 814 tokens" in message and "does not fit" in message and "\n" not in message


# -- 15: one meaning of t0 for every sampler ------------------------------------------------------------------
@pytest.fixture(scope="module")
def sd1_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sd1") / "tiny-sd1.safetensors"
    return path, write_single_file(path, "sd1", seed=2)


def test_ddim_starts_where_vp_and_ode_start(sd1_file):
    """t0 0.6 with 6 steps: DDIM starts at step 599 like vp and ode (it started at 501, t about 0.5)."""
    from sdedit.engine.samplers import ode_plan, vp_plan

    model = load(sd1_file[0])
    for t0, steps in ((0.6, 6), (0.5, 20), (0.3, 7), (1.0, 4), (0.05, 3)):
        ddim = model.ddim_sigmas(t0, steps)
        start = vp_plan(t0, steps, 1000)[0]
        assert ddim[0] == pytest.approx(float(model.table_sigmas[start])) == pytest.approx(ode_plan(model, t0, steps)[0])
        assert len(ddim) == steps + 1 and ddim[-1] == 0.0 and all(a > b for a, b in zip(ddim, ddim[1:]))
    assert model.ddim_sigmas(0.6, 6)[:-1] == [float(model.table_sigmas[t]) for t in (599, 499, 399, 299, 199, 99)]


@pytest.mark.parametrize("t0,steps", [(0.6, 6), (0.25, 5)])
def test_ddim_matches_diffusers_trailing_img2img(sd1_file, t0, steps):
    """Where the two coincide (diffusers' "trailing" spacing, num_inference_steps = steps / t0 dividing 1000),
    our DDIM ends on diffusers' img2img latents."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    from sdedit import imaging
    from sdedit.engine.noise import NoiseSource
    from sdedit.engine.samplers import SamplerInput, sample_ddim

    path, made = sd1_file
    model = load(path)
    z = model.encode_image(imaging.to_tensor(np.asarray(guide_image(64, 64))))
    view = model.conditioned(model.encode_text("a lake", "", 6.0))
    ours = sample_ddim(view, SamplerInput(z, None, NoiseSource([3], tuple(z.shape[1:]), z.device), t0, steps),
                       lambda: None)
    sched = DDIMScheduler.from_config(made["scheduler"].config, set_alpha_to_one=True, timestep_spacing="trailing")
    pipe = StableDiffusionImg2ImgPipeline(vae=model.vae, unet=model.unet, scheduler=sched, tokenizer=model.tokenizers[0],
                                          text_encoder=model.text_encoders[0], safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(prompt="a lake", image=z, strength=t0, num_inference_steps=round(steps / t0), guidance_scale=6.0,
                  generator=torch.Generator().manual_seed(3), output_type="latent").images
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


# -- 14: the VAE in one piece unless the size needs tiles --------------------------------------------------
@pytest.mark.parametrize("width,height", [(512, 512), (200, 136)])
def test_vae_is_untiled_where_one_piece_fits(sd1_file, width, height):
    """Pixels equal diffusers' plain VAE (0.0 difference) where one piece fits in memory; the VAE was always
    tiled (64 px tiles for the tiny VAE, 512 px for SD's), which differs by up to 0.29 at 512 px."""
    from diffusers import AutoencoderKL

    from sdedit import imaging

    path, made = sd1_file
    model = load(path)
    plain = AutoencoderKL.from_config(model.vae.config)
    plain.load_state_dict(made["vae"].state_dict())
    plain.eval()
    image = imaging.to_tensor(np.asarray(guide_image(width, height, seed=3)))
    with torch.inference_mode():
        z = model.encode_image(image)
        assert torch.equal(z, plain.encode(image).latent_dist.mode() * model.scaling_factor)
        ours = model.decode_latent(z)
        theirs = plain.decode(z / model.scaling_factor).sample.clamp(-1, 1)
    assert torch.equal(ours, theirs)


def test_vae_tiles_above_the_one_piece_side(sd1_file, monkeypatch):
    from sdedit import imaging
    from sdedit.models.vae_tiling import tile_only_above

    model = load(sd1_file[0])
    image = imaging.to_tensor(np.asarray(guide_image(200, 136, seed=3)))
    with torch.inference_mode():
        whole = model.decode_latent(model.encode_image(image))
        tile_only_above(model.vae, 64)
        calls = []
        monkeypatch.setattr(model.vae, "tiled_decode", lambda z, **kw: calls.append(z.shape) or
                            type(model.vae).tiled_decode(model.vae, z, **kw))
        tiled = model.decode_latent(model.encode_image(image))
    assert calls and tiled.shape == whole.shape and not torch.equal(tiled, whole)
    assert torch.isfinite(tiled).all()


def test_one_piece_side_follows_device_memory():
    from types import SimpleNamespace

    from sdedit.models.vae_tiling import device_memory, one_piece_side

    sd_vae = SimpleNamespace(config=SimpleNamespace(block_out_channels=[128, 256, 512, 512]))
    gib = 1 << 30
    assert one_piece_side(sd_vae, torch.float32, 24 * gib) == 1024  # SD 1.x's largest working size in one piece
    assert one_piece_side(sd_vae, torch.float32, 8 * gib) == 576  # 512 px still in one piece on an 8 GB machine
    assert one_piece_side(sd_vae, torch.bfloat16, 8 * gib) == 832
    assert one_piece_side(sd_vae, torch.bfloat16, 80 * gib) >= 2048  # SDXL at 2048 px, bf16 VAE, 80 GB GPU
    assert device_memory(torch.device("cpu")) > gib


# -- 16: shapes that fit no shipped config -----------------------------------------------------------------
def one_sentence(text: str) -> bool:
    return "\n" not in text.strip() and text.count(". ") == 0 and "Traceback" not in text


@pytest.mark.parametrize("family", ["sd1", "sd2v", "sdxl"])
def test_nonstandard_shapes_are_one_sentence_naming_the_sidecar(tmp_path, family, no_network):
    """The tiny files without their sidecar fit none of the shipped (real-size) configs."""
    from sdedit.errors import InputError

    path = tmp_path / f"odd-{family}.safetensors"
    write_single_file(path, family, config_folder=None)
    with pytest.raises(InputError) as err:
        load(path)
    message = str(err.value)
    assert "is not a standard Stable Diffusion 1.x, 2.x or XL checkpoint" in message
    assert f"odd-{family}.json" in message and '"config"' in message and one_sentence(message), message
    assert len(message) < 600


def test_sidecar_config_that_does_not_fit_names_it(tmp_path, no_network):
    from sdedit.errors import InputError

    path = tmp_path / "odd.safetensors"
    write_single_file(path, "sd1", config_folder=None)
    write_configs(tmp_path / "xl-config", "sdxl")
    path.with_suffix(".json").write_text(json.dumps({"config": "xl-config", "family": "sd1"}))
    with pytest.raises(InputError) as err:
        load(path)
    message = str(err.value)
    assert "does not fit the configs its sidecar odd.json names" in message and one_sentence(message), message


def test_cli_refuses_a_nonstandard_file_in_one_line(tmp_path):
    from test_sd_models import run_cli

    path = tmp_path / "odd-sd1.safetensors"
    write_single_file(path, "sd1", config_folder=None)
    sketch = tmp_path / "sketch.png"
    guide_image(64, 64).save(sketch)
    res = run_cli("edit", str(sketch), "--model", str(path), "--prompt", "a lake", "-o", str(tmp_path / "o.png"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "not a standard Stable Diffusion" in res.stderr and "odd-sd1.json" in res.stderr


# -- 13: SD 2.x epsilon or v, told from the weights ------------------------------------------------------------
@pytest.fixture(scope="module")
def sd2_fitted(tmp_path_factory):
    """Two SD 2.x-shaped single files without any marker: one UNet fitted to predict epsilon, one v."""
    from tiny_sd import fit_prediction

    root = tmp_path_factory.mktemp("sd2fit")
    files = {}
    for kind in ("epsilon", "v_prediction"):
        made = fit_prediction(tiny_components("sd2v", seed=1), kind, steps=60)
        files[kind] = root / f"sd2-{kind}.safetensors"
        write_single_file(files[kind], "sd2v", config_folder="config-sd2", components=made)
    return root, files


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
def test_sd2_prediction_is_told_from_the_weights(sd2_fitted, kind, private_cache, no_network):
    from sdedit.models.sd_lookup import describe_sd
    from sdedit.models.sd_prediction import cache_file, remembered

    path = sd2_fitted[1][kind]
    before = describe_sd("m", path)
    assert before.prediction == "v_prediction" and before.prediction_note == "assumed until it is first loaded"
    model = load(path)
    assert model.prediction == kind  # the file says nothing: before, every SD 2.x file ran as v
    assert model.family.name == ("sd2" if kind == "epsilon" else "sd2v")
    assert model.native_resolution == (512 if kind == "epsilon" else 768)
    assert model.description.endswith("prediction told from its weights")
    after = describe_sd("m", path)
    assert (after.prediction, after.resolution, after.prediction_note) == (
        kind, model.native_resolution, "told from its weights")
    assert cache_file().stat().st_mode & 0o077 == 0
    errors = remembered(path)["errors"]
    other = "v_prediction" if kind == "epsilon" else "epsilon"
    assert errors[other] > 3 * errors[kind], errors  # not a close call
    again = load(path)  # remembered: no second probe needed, same answer
    assert again.prediction == kind


@pytest.mark.slow
def test_sd2_decision_holds_when_the_cache_cannot_be_written(sd2_fitted, tmp_path, monkeypatch, no_network):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # the cache folder cannot be made
    model = load(sd2_fitted[1]["epsilon"])
    assert model.prediction == "epsilon" and model.native_resolution == 512


@pytest.mark.slow
def test_sidecar_prediction_overrides_the_weights(sd2_fitted, private_cache, monkeypatch, no_network):
    from sdedit.models import sd_prediction

    path = sd2_fitted[1]["epsilon"]
    side = path.with_suffix(".json")
    saved = side.read_text()
    monkeypatch.setattr(sd_prediction, "probe", lambda model: pytest.fail("probed despite the sidecar"))
    try:
        side.write_text(json.dumps({**json.loads(saved), "prediction": "v_prediction"}))
        model = load(path)
        assert model.prediction == "v_prediction" and "set by its sidecar" in model.description
    finally:
        side.write_text(saved)


@pytest.mark.slow
def test_models_list_and_api_say_which_prediction_was_chosen(sd2_fitted, private_cache, tmp_path):
    from test_sd_models import run_cli
    from test_server_support import ServerProcess, server_env

    root, files = sd2_fitted
    env = {"SDEDIT_MODELS_DIR": str(root), "XDG_CACHE_HOME": str(private_cache)}
    listed = run_cli("models", env_extra=env)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("sd2-epsilon "))
    assert "v (assumed until it is first loaded)" in row and "768" in row, listed.stdout
    load(files["epsilon"])  # the first load tells (same cache)
    listed = run_cli("models", env_extra=env)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("sd2-epsilon "))
    assert "epsilon (told from its weights)" in row and " 512 " in row, listed.stdout
    proc = ServerProcess(server_env(root, files["v_prediction"], XDG_CACHE_HOME=str(private_cache)),
                         tmp_path / "server.log").wait_ready()
    try:
        with proc.client() as http:
            entries = {m["id"]: m for m in http.get("/v1/models").json()}
        assert entries["sd2-epsilon"]["prediction"] == "epsilon" and entries["sd2-epsilon"]["resolution"] == 512
        assert entries["sd2-v_prediction"]["prediction"] == "v_prediction"
    finally:
        assert proc.stop() == 0, proc.log()[-2000:]
