"""Textual-inversion embeddings from the models folder's `embeddings/`: write the file's name in the prompt.

A1111 files (`.pt` with `string_to_param`, `.safetensors` with `emb_params`; SDXL ones with `clip_l` and
`clip_g`) and diffusers' `learned_embeds` files are read by diffusers' own `load_textual_inversion`, through the
same pipeline object the LoRAs use (lora.py), so the text encoding is exactly diffusers'. An embedding is loaded
into a model the first time a prompt names it and stays (a new token in the tokenizer); the prompt is then
expanded as diffusers expands it. The token is `<name>` (a name that is also a word, "glow", would clash with
CLIP's vocabulary): `name` in a prompt becomes `<name>`, and `<name> <name>_1 ...` for a multi-vector one.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

from sdedit.errors import InputError
from sdedit.models.facts import facts_of
from sdedit.models.folders import EMBEDDING_DIR, find_in_subfolder

EMBEDDING_SUFFIXES = (".pt", ".safetensors", ".bin")
_lock = threading.Lock()


def list_embeddings() -> dict[str, Path]:
    return find_in_subfolder(EMBEDDING_DIR, EMBEDDING_SUFFIXES)


def _word(name: str) -> str:
    return rf"(?<![\w<-]){re.escape(name)}(?![\w>-])"


def token_of(name: str) -> str:
    """The tokenizer's token for an embedding: `<name>`, so that a name that is also a word (glow, ink) works."""
    return f"<{name}>"


def named_in(text: str | None, names) -> list[str]:
    """The embedding names written in a prompt as words of their own (or as <name>)."""
    if not text:
        return []
    return [n for n in names if re.search(_word(n), text) or token_of(n) in text]


def use_embeddings(model, text: str | None) -> str | None:
    """Load the embeddings `text` names into `model` (once) and return the prompt as the tokenizer must see it."""
    if not text or facts_of(model).kind != "latent":
        return text
    known = list_embeddings()
    wanted = named_in(text, known)
    if not wanted:
        return text
    from sdedit.models.lora import _pipeline

    with _lock:
        pipe = _pipeline(model)
        loaded: dict = model.__dict__.setdefault("_embeddings_loaded", {})
        for name in wanted:
            if name not in loaded:
                _load(model, pipe, name, known[name])
                loaded[name] = known[name]
            text = re.sub(_word(name), lambda _m, n=name: token_of(n), text)
        return pipe.maybe_convert_prompt(text, pipe.tokenizer)


def _load(model, pipe, name: str, path: Path) -> None:
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    state = _read(path)
    widths = [enc.get_input_embeddings().weight.shape[1] for enc in model.text_encoders]
    try:
        if model.family.is_xl:
            if not (isinstance(state, dict) and "clip_l" in state and "clip_g" in state):
                raise InputError(f"The embedding {path.name} is not an SDXL embedding (it has no clip_l and clip_g); "
                                 f"'{model.id}' is Stable Diffusion XL.")
            _fits(path, model, state["clip_l"], widths[0])
            _fits(path, model, state["clip_g"], widths[1])
            pipe.load_textual_inversion(state["clip_l"], token=token_of(name), text_encoder=pipe.text_encoder,
                                        tokenizer=pipe.tokenizer)
            pipe.load_textual_inversion(state["clip_g"], token=token_of(name), text_encoder=pipe.text_encoder_2,
                                        tokenizer=pipe.tokenizer_2)
            return
        if isinstance(state, dict) and "clip_l" in state:
            raise InputError(f"The embedding {path.name} was made for Stable Diffusion XL and does not fit "
                             f"'{model.id}' ({model.family.title}).")
        _fits(path, model, _vectors(state), widths[0])
        pipe.load_textual_inversion(str(path), token=token_of(name))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"The embedding {path.name} could not be loaded ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:150] if str(exc) else ''}).") from exc


def _read(path: Path):
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        import torch

        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"The embedding {path.name} could not be read ({type(exc).__name__}); it may be damaged or "
                         "a pickle that is not plain weights.") from exc


def _vectors(state):
    import torch

    if isinstance(state, torch.Tensor):
        return state
    if isinstance(state, dict):
        if "string_to_param" in state:
            return next(iter(state["string_to_param"].values()))
        if "emb_params" in state:
            return state["emb_params"]
        if len(state) == 1:
            return next(iter(state.values()))
    raise InputError("This file is not a textual-inversion embedding (no string_to_param, emb_params or single "
                     "tensor).")


def _fits(path: Path, model, vectors, width: int) -> None:
    got = int(vectors.shape[-1])
    if got != width:
        family = {768: "Stable Diffusion 1.x", 1024: "Stable Diffusion 2.x"}.get(got, "another model")
        raise InputError(f"The embedding {path.name} was made for {family} ({got}-wide vectors) and does not fit "
                         f"'{model.id}' ({model.family.title}, {width}-wide).")
