"""Textual-inversion embeddings from embeddings/: the text encoding is exactly what diffusers'
load_textual_inversion gives on the same components (A1111 .pt and .safetensors, one and several vectors,
SDXL's clip_l/clip_g); a prompt without the name is unchanged; an embedding of another family is refused."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tiny_sd import write_single_file


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    root = tmp_path_factory.mktemp("emb")
    for fam in ("sd1", "sdxl"):
        write_single_file(root / f"tiny-{fam}.safetensors", fam, config_folder=f"config-{fam}")
    emb = root / "models" / "embeddings"
    emb.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    torch.save({"string_to_param": {"*": torch.randn(2, 32, generator=g)}, "name": "inkwash"}, emb / "inkwash.pt")
    from safetensors.torch import save_file

    save_file({"emb_params": torch.randn(1, 32, generator=g)}, str(emb / "glowzq.safetensors"))
    save_file({"emb_params": torch.randn(1, 32, generator=g)}, str(emb / "glow.safetensors"))  # a CLIP word too
    save_file({"clip_l": torch.randn(1, 32, generator=g), "clip_g": torch.randn(1, 64, generator=g)},
              str(emb / "xlstyle.safetensors"))
    save_file({"emb_params": torch.randn(1, 48, generator=g)}, str(emb / "wide.safetensors"))
    return root


def load(path: Path):
    from sdedit.models.sd_loader import load_sd

    return load_sd(path.stem, path, torch.device("cpu"), torch.float32)


def reference_embeds(model, family: str, files: list[tuple[Path, str]], prompt: str) -> torch.Tensor:
    from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
    from safetensors.torch import load_file

    common = dict(vae=model.vae, unet=model.unet, scheduler=DDIMScheduler(), tokenizer=model.tokenizers[0],
                  text_encoder=model.text_encoders[0])
    if family == "sdxl":
        pipe = StableDiffusionXLPipeline(text_encoder_2=model.text_encoders[1], tokenizer_2=model.tokenizers[1],
                                         **common)
        for path, token in files:
            state = load_file(str(path))
            pipe.load_textual_inversion(state["clip_l"], token=token, text_encoder=pipe.text_encoder,
                                        tokenizer=pipe.tokenizer)
            pipe.load_textual_inversion(state["clip_g"], token=token, text_encoder=pipe.text_encoder_2,
                                        tokenizer=pipe.tokenizer_2)
        embeds = pipe.encode_prompt(prompt, device="cpu", num_images_per_prompt=1,
                                    do_classifier_free_guidance=False)[0]
    else:
        pipe = StableDiffusionPipeline(safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                                       **common)
        for path, token in files:
            pipe.load_textual_inversion(str(path), token=token)
        embeds = pipe.encode_prompt(prompt, "cpu", 1, False)[0]
    return embeds


@pytest.mark.parametrize("family,prompt,names", [
    ("sd1", "a lake in inkwash style, glowzq", ["inkwash", "glowzq"]),
    ("sdxl", "a lake, xlstyle", ["xlstyle"]),
])
def test_embedding_changes_the_text_encoding_exactly_as_diffusers(sd, monkeypatch, family, prompt, names):
    from sdedit.models.embeddings import use_embeddings

    monkeypatch.setenv("SDEDIT_MODELS_DIR", str(sd / "models"))
    ckpt = sd / f"tiny-{family}.safetensors"
    ours_model = load(ckpt)
    plain = ours_model.encode_text(prompt, "", 1.0).cond
    expanded = use_embeddings(ours_model, prompt)
    ours = ours_model.encode_text(expanded, "", 1.0).cond
    emb = sd / "models" / "embeddings"
    files = [(next(emb.glob(n + ".*")), n) for n in names]
    theirs = reference_embeds(load(ckpt), family, files, prompt)
    assert torch.equal(ours, theirs.to(ours.dtype))
    assert not torch.allclose(ours, plain)  # the embedding did change the encoding
    if family == "sd1":
        assert "<inkwash>_1" in expanded  # two vectors: the name stands for two tokens, as in diffusers
    untouched = "a lake at dawn"
    assert use_embeddings(ours_model, untouched) == untouched
    assert torch.equal(ours_model.encode_text(untouched, "", 1.0).cond, load(ckpt).encode_text(untouched, "", 1.0).cond)


def test_an_embedding_of_another_family_is_refused_with_one_sentence(sd, monkeypatch):
    from sdedit.errors import InputError
    from sdedit.models.embeddings import use_embeddings

    monkeypatch.setenv("SDEDIT_MODELS_DIR", str(sd / "models"))
    model = load(sd / "tiny-sd1.safetensors")
    for prompt, words in (("a wide lake", "does not fit"), ("xlstyle lake", "Stable Diffusion XL")):
        with pytest.raises(InputError) as err:
            use_embeddings(model, prompt)
        assert words in str(err.value) and "\n" not in str(err.value)


def test_an_embedding_named_like_a_word_works(sd, monkeypatch):
    from sdedit.models.embeddings import use_embeddings

    monkeypatch.setenv("SDEDIT_MODELS_DIR", str(sd / "models"))
    model = load(sd / "tiny-sd1.safetensors")
    prompt = "a lake with a soft glow"
    plain = model.encode_text(prompt, "", 1.0).cond
    expanded = use_embeddings(model, prompt)
    assert expanded == "a lake with a soft <glow>"
    assert not torch.allclose(model.encode_text(expanded, "", 1.0).cond, plain)
    assert use_embeddings(model, "a glowing lake") == "a glowing lake"  # a word of its own only
