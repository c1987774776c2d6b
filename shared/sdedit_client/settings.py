"""Remembered dialog values, stored by the host editor as strings (Krita's kritarc, GIMP's own store).

The plugins read and write plain strings; this module turns them into typed values and back, and falls
back to the defaults for anything missing or damaged, so a broken config never breaks the dialog.
"""

from typing import Any, Callable, Dict, List, Optional

from .errors import InvalidParameter
from .model_manager import parse_loras
from .params import DEFAULT_GUIDANCE, DEFAULTS, validate_params, validate_text

DEFAULT_URL = "http://127.0.0.1:8765"

#: Keys and default values of everything the dialogs remember.
DEFAULT_SETTINGS = {
    "server_url": DEFAULT_URL,
    "t0": DEFAULTS["t0"],
    "sde": "",  # "" = the model's declared default sampler (no "sde" field is sent)
    "steps": 0,  # 0 = model default
    "samples": DEFAULTS["samples"],
    "seed_mode": "random",  # "random" | "fixed"
    "seed": 0,
    "model": "",  # "" = server default
    "prompt": "",  # sent only to a model that takes text (GET /v1/models "text": true)
    "negative_prompt": "",
    "guidance": DEFAULT_GUIDANCE,
    "loras": "",  # "name:0.8, other" (Stable Diffusion models only; sent with the text fields)
    "result_layer": "selection",  # with a selection: "selection" = only the edited area, "full" = a full copy
}

#: Values of "result_layer".
RESULT_LAYER_MODES = ("selection", "full")


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
    for key in ("prompt", "negative_prompt"):
        try:
            out[key] = validate_text(**{key: raw.get(key) or ""})[key]
        except InvalidParameter:
            pass
    try:
        out["guidance"] = validate_text(guidance=raw.get("guidance")).get("guidance", DEFAULT_GUIDANCE)
    except InvalidParameter:
        pass
    try:
        parse_loras(raw.get("loras") or "")
        out["loras"] = " ".join((raw.get("loras") or "").split())
    except InvalidParameter:
        pass
    if raw.get("result_layer") in RESULT_LAYER_MODES:
        out["result_layer"] = raw["result_layer"]
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


def request_params(settings: Dict[str, Any], takes_text: bool = False) -> Dict[str, Any]:
    """The validated request parameters a settings dict asks for (seed None when random).

    The prompt, negative prompt and guidance go in only when ``takes_text``: the chosen model takes a
    prompt (``model_takes_text`` on GET /v1/models). A model without text would refuse them.
    """
    seed = settings.get("seed") if settings.get("seed_mode") == "fixed" else None
    params = validate_params(t0=settings["t0"], sde=settings.get("sde") or None,
                             steps=settings.get("steps") or None, samples=settings["samples"], seed=seed,
                             model=settings.get("model") or None)
    if takes_text:
        params.update(text_params(settings))
    return params


def text_params(settings: Dict[str, Any]) -> Dict[str, Any]:
    """The checked prompt, negative prompt and guidance of a settings dict (all three, for text models), and its
    LoRAs ([{"id", "scale"}]) when it names any: they, too, go only to Stable Diffusion (text) models."""
    out = validate_text(prompt=settings.get("prompt") or "", negative_prompt=settings.get("negative_prompt") or "",
                        guidance=settings.get("guidance", DEFAULT_GUIDANCE))
    loras = parse_loras(settings.get("loras") or "")
    if loras:
        out["loras"] = loras
    return out


def model_takes_text(models: List[Dict[str, Any]], model_id: Optional[str]) -> bool:
    """Whether the model ``model_id`` ("" or None = the server's default) takes a prompt, per GET /v1/models.

    A server that does not say (older than docs/design.md §3's ``text`` field) takes none.
    """
    wanted = (model_id or "").strip()
    for model in models or []:
        if not isinstance(model, dict):
            continue
        if (wanted and str(model.get("id")) == wanted) or (not wanted and model.get("default")):
            return bool(model.get("text"))
    return False


def remembered_summary(settings: Dict[str, Any]) -> str:
    """What the dialog reuses from the last run, in one line, so nothing is reused silently."""
    steps = int(settings.get("steps") or 0)
    parts = ["%d steps" % steps if steps else "steps auto"]
    if settings.get("seed_mode") == "fixed":
        parts.append("fixed seed %d" % int(settings.get("seed") or 0))
    else:
        parts.append("a new random seed each run")
    parts.append("%d sample%s" % (int(settings.get("samples") or 1), "" if settings.get("samples") == 1 else "s"))
    parts.append(str(settings["sde"]).upper() if settings.get("sde") else "the model's sampler")
    if settings.get("model"):
        parts.append("model %s" % settings["model"])
    return "Remembered from your last run: %s." % ", ".join(parts)


def default_values(current: Dict[str, Any]) -> Dict[str, Any]:
    """What the dialogs' "Defaults" button sets: every default, but the server URL and prompts stay."""
    out = dict(DEFAULT_SETTINGS)
    for key in ("server_url", "prompt", "negative_prompt"):
        if current.get(key):
            out[key] = current[key]
    return out


# -- what the dialogs say about the server and its models (the same words in Krita and GIMP) -----------------
def model_label(model: Dict[str, Any]) -> str:
    """A model list entry, e.g. ``tiny-vp (VP, 256px, default)`` or ``sd15 (VP, 512px, prompt)``."""
    extras = []
    if model.get("default_sde") or model.get("sde"):
        extras.append(str(model.get("default_sde") or model.get("sde")).upper())
    if model.get("resolution"):
        extras.append("%spx" % model["resolution"])
    if model.get("text"):
        extras.append("prompt")
    if model.get("default"):
        extras.append("default")
    return "%s (%s)" % (model.get("id"), ", ".join(extras)) if extras else str(model.get("id"))


def text_note(takes_text: bool, compact: bool = False) -> str:
    """The line under the prompt fields: why they are enabled, or why not."""
    if takes_text:
        return "This model takes a prompt; empty = the plain (unconditional) edit."
    if compact:
        return "Prompts: only for models that take text."
    return "The prompt fields are for models that take text (Stable Diffusion); this one does not."


def connected_text(models: List[Any], health: Dict[str, Any]) -> str:
    """The server line once the server answered."""
    return "Connected: %d model(s), running on %s." % (len(models), health.get("device", "an unknown device"))


def models_hint(models: List[Any]) -> str:
    """A sentence for the dialogs when only the built-in (pixel) model is installed: how to get a realistic one."""
    if any(isinstance(m, dict) and m.get("kind") == "latent" for m in models or []):
        return ""
    return (" Only the built-in model is installed; for realistic results get a Stable Diffusion model with "
            "`sdedit models pull sd15` (`sdedit models catalogue` lists others), or Krita's Models panel.")


def not_started_text(base_url: str) -> str:
    """The server line for a local server that is not running: the edit starts it, nobody else has to."""
    return "No SDEdit server answers at %s yet: it is started when the edit begins." % base_url
