"""The SDEdit engine: samplers and the whole-image edit. Knows nothing of HTTP or files."""
from sdedit.engine.edit import MAX_SAMPLES, MAX_STEPS, EditResult, edit, resolve_steps, validate
from sdedit.engine.samplers import SAMPLERS

__all__ = ["MAX_SAMPLES", "MAX_STEPS", "SAMPLERS", "EditResult", "edit", "resolve_steps", "validate"]
