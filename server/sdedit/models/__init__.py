"""Model loading: the registry of known models and the adapters that give the engine one view of them."""
from sdedit.models.base import DiffusionModel, ModelInfo
from sdedit.models.registry import DEFAULT_MODEL_ID, list_models, load_model, pick_device, resolve

__all__ = ["DEFAULT_MODEL_ID", "DiffusionModel", "ModelInfo", "list_models", "load_model", "pick_device", "resolve"]
