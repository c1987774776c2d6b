"""Where models live on disk: the models folder downloads go to, and its `loras/` and `embeddings/` subfolders.

The models folder is the first entry of $SDEDIT_MODELS_DIR, else ~/.local/share/sdedit/models (the folders the
registry lists models from). LoRAs and embeddings are looked up in the `loras/` and `embeddings/` subfolder of
every models folder, in the same order.
"""
from __future__ import annotations

import os
from pathlib import Path

LORA_DIR = "loras"
EMBEDDING_DIR = "embeddings"
DOWNLOADS_DIR = ".downloads"  # unfinished downloads: never listed as a model
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def user_models_dir() -> Path:
    return Path.home() / ".local" / "share" / "sdedit" / "models"


def extra_models_dirs() -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get("SDEDIT_MODELS_DIR", "").split(os.pathsep) if p]


def models_folder() -> Path:
    """The folder `sdedit models pull` writes to and `sdedit models remove` removes from."""
    extra = extra_models_dirs()
    return extra[0] if extra else user_models_dir()


def all_models_dirs() -> list[Path]:
    return [*extra_models_dirs(), user_models_dir()]


def find_in_subfolder(kind: str, suffixes: tuple[str, ...] = WEIGHT_SUFFIXES) -> dict[str, Path]:
    """Files (or diffusers LoRA folders) in the `kind` subfolder of every models folder, by stem; first wins."""
    found: dict[str, Path] = {}
    for base in all_models_dirs():
        folder = base / kind
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_file() and entry.suffix in suffixes:
                found.setdefault(entry.stem, entry)
            elif entry.is_dir() and any((entry / n).is_file() for n in ("pytorch_lora_weights.safetensors",
                                                                          "pytorch_lora_weights.bin")):
                found.setdefault(entry.name, entry)
    return found
