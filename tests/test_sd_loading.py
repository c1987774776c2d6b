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
