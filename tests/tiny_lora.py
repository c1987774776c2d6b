"""Tiny random LoRAs for the tiny SD models, in the two formats artists have.

`diffusers` (PEFT) format: what `save_lora_weights` writes (`unet.…to_q.lora_A.weight`, `text_encoder.…`).
`kohya` format (A1111/kohya-ss sd-scripts, SD 1.x): `lora_unet_down_blocks_0_…_to_q.lora_down.weight`,
`lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight` and a `.alpha` per module.
"""
from __future__ import annotations

from pathlib import Path

import torch

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def lora_layers(family: str, seed: int = 1, rank: int = 4) -> dict:
    """PEFT state dicts {"unet": ..., "text_encoder": ..., ["text_encoder_2": ...]} with random A and B."""
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    from tiny_sd import tiny_components

    c = tiny_components(family, seed=seed + 100)
    torch.manual_seed(seed)
    out = {}
    unet = inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=UNET_TARGETS,
                                              init_lora_weights=False), c["unet"])
    out["unet"] = {k: v * 2 for k, v in get_peft_model_state_dict(unet).items()}
    for i, enc in enumerate(c["text_encoders"]):
        enc = inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=TEXT_TARGETS,
                                                 init_lora_weights=False), enc)
        out["text_encoder" if i == 0 else "text_encoder_2"] = get_peft_model_state_dict(enc)
    return out


def write_diffusers_lora(folder: Path, family: str, seed: int = 1) -> Path:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    layers = lora_layers(family, seed)
    folder.mkdir(parents=True, exist_ok=True)
    if family == "sdxl":
        StableDiffusionXLPipeline.save_lora_weights(str(folder), unet_lora_layers=layers["unet"],
                                                    text_encoder_lora_layers=layers["text_encoder"],
                                                    text_encoder_2_lora_layers=layers["text_encoder_2"])
    else:
        StableDiffusionPipeline.save_lora_weights(str(folder), unet_lora_layers=layers["unet"],
                                                  text_encoder_lora_layers=layers["text_encoder"])
    return folder / "pytorch_lora_weights.safetensors"


def write_kohya_lora(path: Path, family: str = "sd1", seed: int = 2, alpha: float = 2.0) -> Path:
    """An SD 1.x LoRA in kohya-ss/A1111 naming (its UNet names are diffusers' with '_' for '.')."""
    from safetensors.torch import save_file

    layers = lora_layers(family, seed)
    state = {}
    for part, prefix in (("unet", "lora_unet_"), ("text_encoder", "lora_te_text_model_")):
        for key, value in layers[part].items():
            module, which = key.rsplit(".lora_", 1)
            name = prefix + module.removeprefix("text_model.").replace(".", "_")
            state[name + (".lora_down.weight" if which.startswith("A") else ".lora_up.weight")] = value.contiguous()
            state[name + ".alpha"] = torch.tensor(alpha)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path
