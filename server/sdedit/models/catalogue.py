"""The small built-in list of models `sdedit models pull NAME` knows by name (no torch, no network).

Each entry names a public Hugging Face repository and the one file of it to fetch, as artists use them
(single-file checkpoints in the A1111/ComfyUI layout, which sdedit loads offline; LoRAs for `loras/`). Sizes
are what the Hub shows, for the listing; the download itself checks the exact size and the SHA-256 the Hub
publishes for each file. Licences are the repositories' own: read them before use (the SD 1.5 and 2.x ones
carry use restrictions, the Turbo ones are non-commercial).
"""
from __future__ import annotations

from dataclasses import dataclass

GB, MB = 10**9, 10**6


@dataclass(frozen=True)
class CatalogueEntry:
    """One downloadable model: where it lives, what it is, and what it is good for."""

    name: str  # the id it gets in the models folder (`sdedit models`, --model / --lora)
    repo: str  # Hugging Face repository id
    file: str  # the file in that repository
    size: int  # bytes, as the Hub lists it (approximate; the download checks the exact size)
    licence: str
    kind: str  # "checkpoint" or "lora"
    family: str  # sd1, sd2v, sdxl
    good_for: str
    sha256: str | None = None  # only where checked against a public source; the Hub's hash is checked anyway
    sidecar: dict | None = None  # written beside the file as NAME.json (what the tensors do not tell)

    @property
    def source(self) -> str:
        return f"{self.repo}/{self.file}"

    def as_dict(self) -> dict:
        return {"name": self.name, "repo": self.repo, "file": self.file, "size": self.size, "licence": self.licence,
                "kind": self.kind, "family": self.family, "good_for": self.good_for}


CATALOGUE: dict[str, CatalogueEntry] = {e.name: e for e in (
    CatalogueEntry("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "v1-5-pruned-emaonly.safetensors",
                   int(4.27 * GB), "creativeml-openrail-m", "checkpoint", "sd1",
                   "the SD 1.5 base at 512 px: the widest choice of LoRAs and embeddings; fast on modest GPUs"),
    CatalogueEntry("sd21", "stabilityai/stable-diffusion-2-1", "v2-1_768-ema-pruned.safetensors",
                   int(5.21 * GB), "openrail++", "checkpoint", "sd2v",
                   "SD 2.1 at 768 px (v-prediction): more detail than 1.5, fewer add-ons"),
    CatalogueEntry("sdxl-base", "stabilityai/stable-diffusion-xl-base-1.0", "sd_xl_base_1.0.safetensors",
                   int(6.94 * GB), "openrail++", "checkpoint", "sdxl",
                   "SDXL 1.0 base at 1024 px: the most realistic of these; needs a GPU with 8 GB or more",
                   sha256="31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b"),
    CatalogueEntry("sd-turbo", "stabilityai/sd-turbo", "sd_turbo.safetensors", int(5.21 * GB),
                   "sai-nc-community (non-commercial)", "checkpoint", "sd2",
                   "SD 2.1 distilled to 1-4 steps at 512 px: quick previews and live editing (guidance 0)",
                   sidecar={"resolution": 512}),
    CatalogueEntry("sdxl-turbo", "stabilityai/sdxl-turbo", "sd_xl_turbo_1.0_fp16.safetensors", int(6.94 * GB),
                   "sai-nc-community (non-commercial)", "checkpoint", "sdxl",
                   "SDXL distilled to 1-4 steps at 512 px: live editing with SDXL quality (guidance 0)",
                   sidecar={"resolution": 512}),
    CatalogueEntry("lcm-lora-sd15", "latent-consistency/lcm-lora-sdv1-5", "pytorch_lora_weights.safetensors",
                   int(135 * MB), "openrail++", "lora", "sd1",
                   "a LoRA that makes any SD 1.5 checkpoint sample in 4-8 steps (LCM-LoRA)"),
    CatalogueEntry("lcm-lora-sdxl", "latent-consistency/lcm-lora-sdxl", "pytorch_lora_weights.safetensors",
                   int(394 * MB), "openrail++", "lora", "sdxl",
                   "the same for SDXL checkpoints (LCM-LoRA)"),
)}


def human_size(n: int | None) -> str:
    if n is None:
        return "unknown size"
    for unit, scale in (("GB", GB), ("MB", MB), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"
