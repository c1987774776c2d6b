"""Edit parameters shared by both plugins: defaults, validation, the t0 trade-off in words, layer names.

Kept here so the Krita and GIMP plugins name things and check ranges the same way, and stay thin.
"""

import random
from typing import Any, Dict, Mapping, Optional

from .errors import InvalidParameter

SDES = ("vp", "ve", "ode", "ddim", "lcm", "euler_a")  # the server's samplers: the two SDEs, two fast deterministic
#                                                       ones, and two for few-step (LCM, Turbo) checkpoints
#: Names that mean "no sde field: the model's declared default sampler" (docs/design.md §3).
MODEL_DEFAULT_SDE = ("", "default", "auto", "model default")
MAX_SAMPLES = 16
MAX_STEPS = 1000
MAX_SEED = 2**63 - 1  # the server engine's limit

MAX_PROMPT_CHARS = 2000
MIN_GUIDANCE, MAX_GUIDANCE = 0.0, 50.0
DEFAULT_GUIDANCE = 7.5

#: This client's copy of the limits a server publishes (GET /v1/health "limits", sdedit/params.py on the
#: server), used until a server has been asked and for servers that publish none.
FALLBACK_LIMITS = {
    "t0_min_exclusive": 0.0, "t0_max": 1.0, "max_samples": MAX_SAMPLES, "max_steps": MAX_STEPS,
    "max_seed": MAX_SEED, "min_guidance": MIN_GUIDANCE, "max_guidance": MAX_GUIDANCE,
    "max_prompt_chars": MAX_PROMPT_CHARS, "samplers": list(SDES),
}


def limits_from(health: Any) -> Dict[str, Any]:
    """The limits a server published in its health answer, over this client's copy: a value the server does
    not send, or sends in a form this client does not understand, keeps the copy's."""
    limits = dict(FALLBACK_LIMITS)
    published = health.get("limits") if isinstance(health, dict) else None
    if not isinstance(published, dict):
        return limits
    for key, value in published.items():
        if key == "samplers":
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                limits[key] = [v.lower() for v in value]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            limits[key] = value
    return limits

#: The dialog's starting values (the paper's t0 0.5, the model's own default sampler, one sample).
DEFAULTS = {
    "t0": 0.5,
    "sde": None,  # None = no "sde" field: the server uses the model's declared default sampler
    "steps": None,  # None (shown as 0 / "auto") = the model's default
    "samples": 1,
    "seed": None,  # None = a random seed per run
    "model": None,  # None = the server's default model
}


class EditParams(dict):
    """A validated parameter set (a plain dict, so it can go straight into JSON or ``Client.submit``)."""


def validate_params(
    t0: Any = 0.5,
    sde: Any = None,
    steps: Any = None,
    samples: Any = 1,
    seed: Any = None,
    model: Any = None,
    limits: Optional[Mapping[str, Any]] = None,
) -> EditParams:
    """Check and normalise request parameters; raise :class:`InvalidParameter` with one sentence.

    ``sde`` None (or "", "default") means the model's declared default sampler; ``steps`` 0 or None
    means "the model's default"; ``seed`` None means random on the server; ``model`` None or "" means
    the server's default model. ``limits``: the server's (``Client.limits``), else this client's copy.
    """
    lim = FALLBACK_LIMITS if limits is None else limits
    max_steps, max_samples, max_seed = int(lim["max_steps"]), int(lim["max_samples"]), int(lim["max_seed"])
    try:
        t0 = float(t0)
    except (TypeError, ValueError):
        raise InvalidParameter("t0 must be a number between 0 and 1 (for example 0.5), not %r." % (t0,))
    if not (lim["t0_min_exclusive"] < t0 <= lim["t0_max"]):
        raise InvalidParameter("t0 must be above %g and at most %g (0.3-0.6 suits rough strokes), not %g."
                               % (lim["t0_min_exclusive"], lim["t0_max"], t0))
    sde_name = None if sde is None else str(sde).strip().lower()
    if sde_name is None or sde_name in MODEL_DEFAULT_SDE:
        sde_name = None
    elif sde_name not in lim["samplers"]:
        raise InvalidParameter("The SDE must be one of %s (or empty for the model's default), not %r."
                               % (", ".join(lim["samplers"]), sde))
    steps = _optional_int(steps, "steps")
    if steps == 0:
        steps = None
    if steps is not None and not (1 <= steps <= max_steps):
        raise InvalidParameter("steps must be between 1 and %d, or 0 for the model's default." % max_steps)
    samples_n = _optional_int(samples, "samples")
    if samples_n is None:
        samples_n = 1
    if not (1 <= samples_n <= max_samples):
        raise InvalidParameter("samples must be between 1 and %d, not %d." % (max_samples, samples_n))
    seed = _optional_int(seed, "seed")
    if seed is not None and not (0 <= seed <= max_seed):
        raise InvalidParameter("The seed must be between 0 and %d, or empty for a random one." % max_seed)
    model_id = None if model is None or str(model).strip() == "" else str(model).strip()
    return EditParams(t0=t0, sde=sde_name, steps=steps, samples=samples_n, seed=seed, model=model_id)


def validate_text(prompt: Any = None, negative_prompt: Any = None, guidance: Any = None,
                  limits: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The text fields of a request for a model that takes a prompt (docs/design.md §3), checked.

    Returns only the fields to send: ``prompt`` and ``negative_prompt`` as given ("" = the paper's
    unconditional edit), ``guidance`` when not None. Raises :class:`InvalidParameter` with one sentence.
    ``limits``: the server's (``Client.limits``), else this client's copy.
    """
    lim = FALLBACK_LIMITS if limits is None else limits
    max_chars, low, high = int(lim["max_prompt_chars"]), lim["min_guidance"], lim["max_guidance"]
    out: Dict[str, Any] = {}
    for name, value in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        if value is None:
            continue
        text = " ".join(str(value).split())  # one line: a prompt field is not a document
        if len(text) > max_chars:
            raise InvalidParameter("The %s is %d characters long: shorten it to at most %d."
                                   % (name.replace("_", " "), len(text), max_chars))
        out[name] = text
    if guidance is not None and not (isinstance(guidance, str) and not guidance.strip()):
        try:
            scale = float(guidance)
        except (TypeError, ValueError):
            raise InvalidParameter("The guidance must be a number (7.5 is usual), not %r." % (guidance,))
        if not (low <= scale <= high):
            raise InvalidParameter("The guidance must be between %g and %g (7.5 is usual), not %g."
                                   % (low, high, scale))
        out["guidance"] = scale
    return out


MAX_SESSION_CHARS = 128


def validate_session(session: Any) -> str:
    """A live-mode session key (the server's limit: 1-128 characters)."""
    key = str(session).strip()
    if not 1 <= len(key) <= MAX_SESSION_CHARS:
        raise InvalidParameter("A live session key must be 1 to %d characters long." % MAX_SESSION_CHARS)
    return key


def new_session_key() -> str:
    """A random live-mode session key, one per live canvas (another client cannot guess it)."""
    return "live-%032x" % random.SystemRandom().getrandbits(128)


def _optional_int(value: Any, name: str) -> Optional[int]:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        raise InvalidParameter("%s must be a whole number, not %r." % (name, value))
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise InvalidParameter("%s must be a whole number, not %r." % (name, value))
    if as_float != int(as_float):
        raise InvalidParameter("%s must be a whole number, not %r." % (name, value))
    return int(as_float)


def random_seed() -> int:
    """A fresh seed the plugin can show and put in layer names, so a result can be reproduced."""
    return random.SystemRandom().randint(0, MAX_SEED)


def t0_words(t0: float) -> str:
    """The faithful-realistic trade-off of a t0 value, in words for the dialog."""
    if t0 < 0.2:
        return "very faithful: barely changes your strokes"
    if t0 < 0.4:
        return "faithful: keeps shapes and colours, cleans the strokes"
    if t0 < 0.6:
        return "balanced: keeps the layout, adds realistic detail"
    if t0 < 0.8:
        return "realistic: free with colours and shapes"
    return "very realistic: keeps little of your strokes"


def short_prompt(prompt: Optional[str], limit: int = 24) -> str:
    """The first words of a prompt for a layer name (cut at a word, with an ellipsis), "" for none."""
    text = " ".join(str(prompt or "").split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(",.;:") + "\u2026"


def _head(t0: float, sde: Optional[str], prompt: Optional[str]) -> str:
    head = "SDEdit t0=%.2f" % float(t0)
    if sde:
        head += " " + str(sde).upper()
    words = short_prompt(prompt)
    if words:
        head += " \u201c%s\u201d" % words
    return head


def layer_name(t0: float, sde: Optional[str], index: int, seed: Optional[int] = None,
               prompt: Optional[str] = None) -> str:
    """Name of the ``index``-th result layer (1-based), e.g. ``SDEdit t0=0.50 VP “a lake” #2 seed=1234``.

    ``sde`` None (the model's default sampler) leaves the sampler out; a prompt adds its first words.
    """
    name = "%s #%d" % (_head(t0, sde, prompt), int(index))
    if seed is not None:
        name += " seed=%d" % int(seed)
    return name


def group_name(t0: float, sde: Optional[str], samples: int, prompt: Optional[str] = None) -> str:
    """Name of the group holding the K result layers of one edit, e.g. ``SDEdit t0=0.50 VP x3``."""
    return "%s x%d" % (_head(t0, sde, prompt), int(samples))


def summary(params: Dict[str, Any]) -> str:
    """One line describing a parameter set, for progress dialogs."""
    steps = params.get("steps") or "auto"
    sde = str(params["sde"]).upper() if params.get("sde") else "model's sampler"
    text = ""
    if params.get("prompt"):
        text = ", \u201c%s\u201d" % short_prompt(params["prompt"], 40)
    return "t0=%.2f %s, %s sample(s), steps %s%s" % (params["t0"], sde, params["samples"], steps, text)
