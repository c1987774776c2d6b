"""Remembered dialog values, stored by the host editor as strings (Krita's kritarc, GIMP's own store).

The plugins read and write plain strings; this module turns them into typed values and back, and falls
back to the defaults for anything missing or damaged, so a broken config never breaks the dialog.
"""

from typing import Any, Callable, Dict

from .errors import InvalidParameter
from .params import DEFAULTS, validate_params

DEFAULT_URL = "http://127.0.0.1:8765"

#: Keys and default values of everything the dialogs remember.
DEFAULT_SETTINGS = {
    "server_url": DEFAULT_URL,
    "t0": DEFAULTS["t0"],
    "sde": DEFAULTS["sde"],
    "steps": 0,  # 0 = model default
    "samples": DEFAULTS["samples"],
    "seed_mode": "random",  # "random" | "fixed"
    "seed": 0,
    "model": "",  # "" = server default
}


def load_settings(read: Callable[[str, str], str]) -> Dict[str, Any]:
    """Typed settings from ``read(key, default_string)``; invalid stored values become the defaults."""
    out = dict(DEFAULT_SETTINGS)
    raw = {key: read(key, _to_str(value)) for key, value in DEFAULT_SETTINGS.items()}
    url = (raw.get("server_url") or "").strip()
    if url.startswith("http://") or url.startswith("https://"):
        out["server_url"] = url.rstrip("/")
    for key, value in (("t0", raw["t0"]), ("sde", raw["sde"]), ("steps", raw["steps"]),
                       ("samples", raw["samples"]), ("seed", raw["seed"])):
        try:
            checked = validate_params(**{key: value})
        except InvalidParameter:
            continue
        out[key] = checked[key] if checked[key] is not None else DEFAULT_SETTINGS[key]
    if raw["seed_mode"] in ("random", "fixed"):
        out["seed_mode"] = raw["seed_mode"]
    out["model"] = (raw.get("model") or "").strip()
    return out


def dump_settings(values: Dict[str, Any]) -> Dict[str, str]:
    """The strings to store for ``values`` (only known keys)."""
    merged = dict(DEFAULT_SETTINGS)
    merged.update({k: v for k, v in values.items() if k in DEFAULT_SETTINGS})
    return {key: _to_str(value) for key, value in merged.items()}


def _to_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "%.4g" % value
    return str(value)


def request_params(settings: Dict[str, Any]) -> Dict[str, Any]:
    """The validated request parameters a settings dict asks for (seed None when random)."""
    seed = settings.get("seed") if settings.get("seed_mode") == "fixed" else None
    return validate_params(t0=settings["t0"], sde=settings["sde"], steps=settings.get("steps") or None,
                           samples=settings["samples"], seed=seed, model=settings.get("model") or None)
