"""LoRAs on a loaded Stable Diffusion model: `--lora NAME_OR_FILE[:SCALE]`, `"loras": [{"id", "scale"}]`.

The loading is diffusers' own (`load_lora_weights`, which reads kohya/A1111 and diffusers/PEFT files and injects
PEFT adapters into the UNet and text encoders), done through a pipeline object that merely points at the
model's networks. Each LoRA is loaded once per model as a named adapter; an edit then only switches which
adapters are active and at what scale (`set_adapters`), so changing LoRAs never reloads the checkpoint, and no
LoRA (or every scale 0) gives exactly the model without them.

A LoRA made for another family (an SDXL LoRA on SD 1.5, say) is refused with one sentence before anything is
injected: every module it targets must exist in this model with the same shape.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from sdedit.errors import InputError
from sdedit.models.facts import facts_of
from sdedit.models.folders import LORA_DIR, WEIGHT_SUFFIXES, find_in_subfolder

MAX_LORAS = 8
MAX_SCALE = 4.0
_lock = threading.Lock()
# cross-attention widths of the real families: name the family a LoRA was made for in the refusal
CROSS_WIDTHS = {768: "Stable Diffusion 1.x", 1024: "Stable Diffusion 2.x", 2048: "Stable Diffusion XL"}


@dataclass(frozen=True)
class LoraChoice:
    """One LoRA of a request: its id (or path, from the command line) and scale."""

    ref: str
    scale: float = 1.0


def parse_lora(spec: str) -> LoraChoice:
    """NAME_OR_FILE[:SCALE]; a Windows drive letter (C:\\...) is not a scale."""
    spec = spec.strip()
    match = re.match(r"^(.*):([-+]?[0-9]*\.?[0-9]+)$", spec)
    if match and match.group(1) and not re.fullmatch(r"[A-Za-z]", match.group(1)):
        return check_choice(LoraChoice(match.group(1), float(match.group(2))))
    return check_choice(LoraChoice(spec, 1.0))


def check_choice(choice: LoraChoice) -> LoraChoice:
    if not choice.ref:
        raise InputError("A LoRA needs a name: --lora NAME[:SCALE] (see `sdedit models`).")
    if not -MAX_SCALE <= choice.scale <= MAX_SCALE:
        raise InputError(f"The LoRA scale of '{choice.ref}' must be from {-MAX_SCALE:g} to {MAX_SCALE:g}, "
                         f"got {choice.scale:g}.")
    return choice


def check_choices(choices: list[LoraChoice]) -> list[LoraChoice]:
    if len(choices) > MAX_LORAS:
        raise InputError(f"At most {MAX_LORAS} LoRAs can be used at once, got {len(choices)}.")
    ids = [c.ref for c in choices]
    if len(set(ids)) != len(ids):
        raise InputError("Each LoRA may be named once; give one scale for it.")
    return [check_choice(c) for c in choices]


def list_loras() -> dict[str, Path]:
    return find_in_subfolder(LORA_DIR)


def resolve_lora(ref: str, paths: bool = True) -> tuple[str, Path]:
    """(adapter id, path) of a LoRA named by id (the `loras/` folders) or, from the command line, by path."""
    known = list_loras()
    if ref in known:
        return ref, known[ref]
    if paths:
        path = Path(ref).expanduser()
        if path.is_file() and path.suffix in WEIGHT_SUFFIXES or path.is_dir():
            return _adapter_name(path), path.resolve()
    choices = ", ".join(sorted(known)) or "none installed (put LoRA files in the models folder's loras/)"
    where = ", or give the path of a LoRA file" if paths else ""
    raise InputError(f"Unknown LoRA '{ref}': choose one of {choices}{where}.")


def _adapter_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", path.stem if path.is_file() else path.name)


def check_loras_exist(choices: list[LoraChoice], paths: bool = True) -> None:
    """Before any model is loaded: every LoRA named must exist."""
    for choice in check_choices(choices):
        resolve_lora(choice.ref, paths)


def apply_loras(model, choices: list[LoraChoice], paths: bool = True) -> None:
    """Make exactly these LoRAs active on `model` at these scales (none: the plain model)."""
    choices = check_choices(list(choices))
    if choices and facts_of(model).kind != "latent":
        raise InputError(f"The model '{model.id}' is not a Stable Diffusion model, so LoRAs cannot be used with it.")
    if not choices and not getattr(model, "_lora_loaded", None):
        return
    with _lock:
        pipe = _pipeline(model)
        loaded: dict[str, Path] = model.__dict__.setdefault("_lora_loaded", {})
        names = []
        for choice in choices:
            name, path = resolve_lora(choice.ref, paths)
            if name not in loaded:
                _load(model, pipe, name, path)
                loaded[name] = path
            names.append(name)
        if not names:
            pipe.disable_lora()
            return
        pipe.enable_lora()
        pipe.set_adapters(names, adapter_weights=[c.scale for c in choices])


def active_loras(model) -> list[str]:
    return list(getattr(model, "_lora_loaded", {}) or {})


def _pipeline(model):
    """A diffusers pipeline over the model's own networks (no copies): the door to its LoRA loader."""
    pipe = model.__dict__.get("_lora_pipe")
    if pipe is not None:
        return pipe
    from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    common = dict(vae=model.vae, unet=_unwrapped(model.unet), scheduler=DDIMScheduler(),
                  tokenizer=model.tokenizers[0], text_encoder=model.text_encoders[0])
    if model.family.is_xl:
        pipe = StableDiffusionXLPipeline(text_encoder_2=model.text_encoders[1], tokenizer_2=model.tokenizers[1],
                                         **common)
    else:
        pipe = StableDiffusionPipeline(safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                                       **common)
    pipe.set_progress_bar_config(disable=True)
    model.__dict__["_lora_pipe"] = pipe
    return pipe


def _unwrapped(net):
    return getattr(net, "_orig_mod", net)  # torch.compile's wrapper: the adapters go into the real module


def _load(model, pipe, name: str, path: Path) -> None:
    """Read, check against this model, and inject one LoRA as adapter `name`."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    try:
        state, alphas = pipe.lora_state_dict(str(path))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"The LoRA {path.name} could not be read as a LoRA ({type(exc).__name__}: "
                         f"{_short(exc)}).") from exc
    _check_fits(model, pipe, state, path)
    try:
        pipe.load_lora_weights(str(path), adapter_name=name)
    except Exception as exc:
        raise InputError(f"The LoRA {path.name} could not be applied to '{model.id}' ({type(exc).__name__}: "
                         f"{_short(exc)}).") from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if len(text) < 160 else text[:157] + "..."


def _check_fits(model, pipe, state: dict, path: Path) -> None:
    """Every module the LoRA targets exists in this model with matching in/out sizes; else one sentence that
    says which family it was made for."""
    import torch

    parts = {"unet": pipe.unet, "text_encoder": pipe.text_encoder,
             "text_encoder_2": getattr(pipe, "text_encoder_2", None)}
    if any(k.startswith("text_encoder_2.") for k in state) and parts["text_encoder_2"] is None:
        _refuse(model, path, "Stable Diffusion XL")
    modules = {part: dict(net.named_modules()) for part, net in parts.items() if net is not None}
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or tensor.ndim < 2 or "alpha" in key.rsplit(".", 1)[-1]:
            continue
        part, _, rest = key.partition(".")
        if part not in modules:
            continue
        target, down = _target_of(rest)
        if target is None:
            continue
        module = _find_module(modules[part], target)
        if module is None:
            _refuse(model, path, _guess_family(state))
        width = _module_width(module, down)
        if width is not None and width != (tensor.shape[1] if down else tensor.shape[0]):
            _refuse(model, path, _guess_family(state))


def _target_of(rest: str) -> tuple[str | None, bool]:
    """The module path a LoRA tensor adapts, and whether it is the down (A, input side) matrix."""
    for pattern, down in ((".lora_A.", True), (".lora.down.", True), (".lora_linear_layer.down.", True),
                          ("_lora.down.", True), (".lora_B.", False), (".lora.up.", False),
                          (".lora_linear_layer.up.", False), ("_lora.up.", False)):
        if pattern in rest:
            target = rest.split(pattern)[0]
            if pattern.startswith("_lora"):  # attention processors: attn1.processor.to_q_lora -> attn1.to_q
                target = target.replace(".processor.", ".").replace("to_out", "to_out.0")
            return target, down
    return None, False


def _find_module(modules: dict, target: str):
    """The module a LoRA key names, allowing for the spellings of the formats (CLIP's q_proj as to_q, with or
    without the text_model. prefix)."""
    renamed = (target.replace("to_q", "q_proj").replace("to_k", "k_proj").replace("to_v", "v_proj")
               .replace("to_out.0", "out_proj").replace("to_out", "out_proj"))
    for name in (target, renamed):
        for alt in (name, name.removeprefix("text_model."), "text_model." + name):
            if alt in modules:
                return modules[alt]
    return None


def _module_width(module, down: bool) -> int | None:
    for attr_in, attr_out in (("in_features", "out_features"), ("in_channels", "out_channels")):
        if hasattr(module, attr_in):
            return getattr(module, attr_in) if down else getattr(module, attr_out)
    base = getattr(module, "base_layer", None)  # already wrapped by PEFT
    return _module_width(base, down) if base is not None else None


def _guess_family(state: dict) -> str | None:
    if any(k.startswith("text_encoder_2.") for k in state):
        return "Stable Diffusion XL"
    for key, tensor in state.items():
        if "attn2" in key and ("to_k" in key) and ("down" in key or "lora_A" in key) and hasattr(tensor, "shape"):
            return CROSS_WIDTHS.get(int(tensor.shape[1]))
    return None


def _refuse(model, path: Path, made_for: str | None) -> None:
    family = model.family.title
    made = f"made for {made_for}" if made_for and made_for != family else "made for another kind of model"
    raise InputError(f"The LoRA {path.name} was {made} and does not fit '{model.id}' ({family}); choose a LoRA "
                     f"made for {family}.")
