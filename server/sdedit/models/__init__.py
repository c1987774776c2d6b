"""Model loading: the registry of known models and the adapters that give the engine one view of them.

Importing this package does not import torch (looking up or listing models must stay fast); DiffusionModel
is imported on first use.
"""
from sdedit.models.info import ModelInfo
from sdedit.models.registry import DEFAULT_MODEL_ID, list_models, load_model, pick_device, resolve

__all__ = ["DEFAULT_MODEL_ID", "DiffusionModel", "ModelInfo", "list_models", "load_model", "pick_device", "resolve"]


def __getattr__(name: str):
    if name == "DiffusionModel":
        from sdedit.models.base import DiffusionModel

        return DiffusionModel
    raise AttributeError(f"module 'sdedit.models' has no attribute {name!r}")
