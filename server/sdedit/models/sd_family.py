"""Which Stable Diffusion family a checkpoint belongs to, read from its tensor names and shapes (not its file name).

A single-file checkpoint (A1111/ComfyUI layout) carries no config: the family decides which of the configs
shipped in `sd_configs/` builds its networks, how its text is encoded and what it predicts. A sidecar JSON
beside the file (`model.safetensors` -> `model.json`) overrides any of it:
`{"family": "sd1|sd2|sd2v|sdxl", "prediction": "epsilon|v_prediction", "resolution": 768,
"config": "folder of diffusers configs", "description": "..."}`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from sdedit.errors import InputError

DEFAULT_SDE = "ode"  # DPM-Solver++(2M), 20 steps: what SD front-ends default to, and the fastest here

CONFIG_ROOT = Path(__file__).resolve().parent / "sd_configs"
UNET_PREFIX = "model.diffusion_model."
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")

# the tensor that tells each text-encoder layout apart (the names diffusers' single-file loader also keys on)
SD1_CLIP = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
SD1_CLIP_TOKENS = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
OPENCLIP_H_WIDTH = 1024  # SD 2.x's text encoder width (SD 1.x's CLIP-L is 768)
SD2_OPENCLIP = "cond_stage_model.model.token_embedding.weight"
SDXL_OPENCLIP = "conditioner.embedders.1.model.positional_embedding"
SDXL_REFINER = "conditioner.embedders.0.model.text_projection"
UNET_IN = UNET_PREFIX + "input_blocks.0.0.weight"
V_PRED_MARKER = "v_pred"  # an empty tensor some v-prediction files carry (ComfyUI's convention)

# Where the original layout keeps a CLIP text encoder in transformers' own key names. transformers 5 saves
# CLIPTextModel without its `text_model.` level, so diffusers' conversion script (and some early fine-tunes)
# write `cond_stage_model.transformer.embeddings.*`; diffusers' loader only reads the `text_model.` form.
HF_CLIP_PREFIXES = ("cond_stage_model.transformer.", "conditioner.embedders.0.transformer.")


@dataclass(frozen=True)
class Family:
    """What differs between the Stable Diffusion generations, beyond their network configs."""

    name: str
    title: str
    resolution: int  # the size it was trained at (pixels, square)
    prediction: str  # "epsilon" or "v_prediction"
    pad_tokens: tuple[str, ...]  # one per text encoder: CLIP pads with end-of-text, OpenCLIP with "!"
    guidance: float  # default classifier-free guidance scale
    config: Path = CONFIG_ROOT
    # how the prediction was settled: "config" (the family's or folder's own), "sidecar", "marker" (a v_pred
    # key), "weights" (told from the UNet's output, sd_prediction.py), "assumed" (the weights did not tell) or
    # "undecided" (an SD 2.x file not loaded yet: v assumed until then)
    prediction_source: str = "config"

    @property
    def is_xl(self) -> bool:
        return len(self.pad_tokens) == 2


EOT, BANG = "<|endoftext|>", "!"
FAMILIES = {
    "sd1": Family("sd1", "Stable Diffusion 1.x", 512, "epsilon", (EOT,), 7.5, CONFIG_ROOT / "sd1"),
    "sd2": Family("sd2", "Stable Diffusion 2.x (512, epsilon)", 512, "epsilon", (BANG,), 7.5, CONFIG_ROOT / "sd2"),
    "sd2v": Family("sd2v", "Stable Diffusion 2.x (768, v-prediction)", 768, "v_prediction", (BANG,), 7.5,
                   CONFIG_ROOT / "sd2v"),
    "sdxl": Family("sdxl", "Stable Diffusion XL", 1024, "epsilon", (EOT, BANG), 5.0, CONFIG_ROOT / "sdxl"),
}


def detect_family(shapes: dict[str, tuple[int, ...]]) -> str:
    """The family of an original-layout state dict, given its tensor names and shapes.

    SD 2.x files do not say whether they predict v or epsilon; like diffusers we take the common 768-v
    (2.0-v, 2.1) unless the file has a `v_pred` marker key or a sidecar JSON says otherwise.
    """
    unet_in = shapes.get(UNET_IN)
    if unet_in is None:
        raise InputError("This file holds no Stable Diffusion UNet (no model.diffusion_model.* tensors); is it a "
                         "LoRA, VAE or embedding? Give a full checkpoint.")
    if len(unet_in) == 4 and unet_in[1] != 4:
        raise InputError(f"This checkpoint's UNet takes {unet_in[1]} input channels (an inpainting or instruct "
                         "model); only ordinary 4-channel text-to-image checkpoints are supported.")
    if SDXL_OPENCLIP in shapes:
        return "sdxl"
    if SDXL_REFINER in shapes:
        raise InputError("This is an SDXL refiner checkpoint; use an SDXL base (or SD 1.x/2.x) checkpoint.")
    if SD2_OPENCLIP in shapes:
        return "sd2v"
    if SD1_CLIP in shapes:
        tokens = shapes.get(SD1_CLIP_TOKENS, ())
        # SD 2.x's OpenCLIP saved in transformers' layout (diffusers' conversion script under transformers 5)
        return "sd2v" if len(tokens) == 2 and tokens[1] == OPENCLIP_H_WIDTH else "sd1"
    raise InputError("This checkpoint has a UNet but no text encoder this program knows (SD 1.x CLIP, SD 2.x or "
                     "SDXL OpenCLIP); give a full SD 1.x, 2.x or SDXL checkpoint.")


def with_text_model_level(state: dict) -> dict:
    """The same mapping with every transformers-layout CLIP key under `text_model.` (both layouts load).

    Works on a state dict or on a dict of shapes; keys already in that form, and all others, are kept."""
    out = {}
    for key, value in state.items():
        for prefix in HF_CLIP_PREFIXES:
            if key.startswith(prefix) and not key.startswith(prefix + "text_model."):
                key = prefix + "text_model." + key[len(prefix):]
                break
        out[key] = value
    return out


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a checkpoint's tensors without reading the tensors (safetensors header, or a lazy
    memory-mapped torch.load with weights_only=True for .ckpt)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return with_text_model_level({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
        import torch

        state = _load_pickle(path)
    except Exception as exc:  # corrupt, truncated, or a pickle that needs code to run
        raise InputError(f"The checkpoint {path.name} could not be read ({type(exc).__name__}: {exc}); it may be "
                         "damaged or a pickle that is not plain weights.") from exc
    state = unwrap_state_dict(state)
    return with_text_model_level({k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")})


def _load_pickle(path: Path) -> object:
    """torch.load with weights_only=True: memory-mapped (lazy) for zip-format files, read whole for the
    legacy format older SD 1.x .ckpt files use."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "zipfile" not in str(exc) and "mmap" not in str(exc):
            raise
        return torch.load(str(path), map_location="cpu", weights_only=True)


def unwrap_state_dict(state: object) -> dict:
    """Lightning-era .ckpt files nest the tensors under "state_dict"."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError("The checkpoint does not hold a dictionary of tensors.")
    return state


def sidecar(path: Path) -> dict:
    """The optional JSON beside a checkpoint (model.safetensors -> model.json)."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"The sidecar file {side} is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise InputError(f"The sidecar file {side} must hold a JSON object.")
    return data


PREDICTION_NOTES = {"sidecar": "set by its sidecar", "marker": "marked in the file", "weights": "told from its weights",
                    "assumed": "assumed, its weights did not tell", "undecided": "assumed until it is first loaded"}


def family_for_file(path: Path, shapes: dict[str, tuple[int, ...]] | None = None, told: dict | None = None) -> Family:
    """The family of a single-file checkpoint: detected from its tensors, then the sidecar's overrides.

    SD 2.x files do not say whether they predict epsilon (2.x base, 512) or v (768): unless a sidecar or a
    `v_pred` key says so, the decision read from the weights on the first load (sd_prediction.py) is used,
    and v until then (`told`: a decision just made, {"prediction": ...}, used even if it could not be saved)."""
    from sdedit.models import sd_prediction

    side = sidecar(path)
    name, source = side.get("family"), "sidecar"
    if name is None:
        shapes = shapes if shapes is not None else tensor_shapes(path)
        name, source = detect_family(shapes), "config"
        if V_PRED_MARKER in shapes:
            name, source = ("sd2v" if name == "sd2" else name), "marker"
        elif name == "sd2v" and "prediction" not in side:
            told = told or sd_prediction.remembered(path)
            if told is None:
                source = "undecided"
            else:
                name = "sd2" if told["prediction"] == "epsilon" else "sd2v"
                source = "weights" if told["prediction"] else "assumed"
        elif name == "sd2v" and side.get("prediction") == "epsilon":
            name = "sd2"
    if name not in FAMILIES:
        raise InputError(f"The sidecar of {path.name} names family '{name}'; use one of {', '.join(FAMILIES)}.")
    family = replace(FAMILIES[name], prediction_source=source)
    if source == "marker":
        family = replace(family, prediction="v_prediction")
    return apply_overrides(family, side, path.parent)


def prediction_note(family: Family) -> str:
    """How the prediction was settled, for the model list ("" when it is the family's or folder's own)."""
    return PREDICTION_NOTES.get(family.prediction_source, "")


def apply_overrides(family: Family, side: dict, base: Path) -> Family:
    """A family with the sidecar's prediction, resolution and config folder (relative to the checkpoint)."""
    changes: dict = {}
    if "prediction" in side:
        if side["prediction"] not in ("epsilon", "v_prediction"):
            raise InputError("A sidecar's 'prediction' must be 'epsilon' or 'v_prediction'.")
        changes["prediction"] = side["prediction"]
        changes["prediction_source"] = "sidecar"
    if "resolution" in side:
        changes["resolution"] = int(side["resolution"])
    if "config" in side:
        folder = (base / str(side["config"])).resolve()
        if not (folder / "unet" / "config.json").is_file():
            raise InputError(f"The sidecar's config folder {folder} has no unet/config.json.")
        changes["config"] = folder
    return replace(family, **changes) if changes else family


def family_for_folder(folder: Path) -> Family:
    """The family of a diffusers pipeline folder, from model_index.json and the UNet's config."""
    try:
        index = json.loads((folder / "model_index.json").read_text())
        unet = json.loads((folder / "unet" / "config.json").read_text())
        sched_path = folder / "scheduler" / "scheduler_config.json"
        sched = json.loads(sched_path.read_text()) if sched_path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise InputError(f"The model folder {folder} has a missing or broken config ({exc}).") from exc
    if unet.get("in_channels", 4) != 4:
        raise InputError(f"The model at {folder} takes {unet['in_channels']} input channels (inpainting/instruct); "
                         "only ordinary text-to-image pipelines are supported.")
    if "text_encoder_2" in index and index.get("text_encoder_2", [None])[0] is not None:
        if index.get("text_encoder", [None])[0] is None:
            raise InputError(f"The model at {folder} is an SDXL refiner; use an SDXL base pipeline.")
        base = FAMILIES["sdxl"]
    elif unet.get("cross_attention_dim") == 1024 or _text_activation(folder) == "gelu":  # OpenCLIP-H, not CLIP-L
        base = FAMILIES["sd2"]
    else:
        base = FAMILIES["sd1"]
    size = unet.get("sample_size", base.resolution // 8)
    size = size[0] if isinstance(size, (list, tuple)) else size
    pred = sched.get("prediction_type", "epsilon")
    return replace(base, resolution=int(size) * 8, prediction=pred, config=folder,
                   name="sd2v" if base.name == "sd2" and pred == "v_prediction" else base.name)


def _text_activation(folder: Path) -> str:
    try:
        return json.loads((folder / "text_encoder" / "config.json").read_text()).get("hidden_act", "")
    except (OSError, ValueError):
        return ""


def is_sd_folder(folder: Path) -> bool:
    """A diffusers Stable Diffusion pipeline folder: model_index.json plus a text-conditioned UNet."""
    index = folder / "model_index.json"
    if not (index.is_file() and (folder / "unet" / "config.json").is_file()):
        return False
    try:
        return "UNet2DConditionModel" in (folder / "unet" / "config.json").read_text()
    except OSError:
        return False
