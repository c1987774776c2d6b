"""Edit parameters shared by both plugins: defaults, validation, the t0 trade-off in words, layer names.

Kept here so the Krita and GIMP plugins name things and check ranges the same way, and stay thin.
"""

import random
from typing import Any, Dict, Optional

from .errors import InvalidParameter

SDES = ("vp", "ve", "ode", "ddim")  # the server's samplers: the two SDEs and two fast deterministic ones
MAX_SAMPLES = 16
MAX_STEPS = 1000
MAX_SEED = 2**63 - 1  # the server engine's limit

#: The dialog's starting values (the paper's defaults: t0 0.5 with the VP SDE, one sample).
DEFAULTS = {
    "t0": 0.5,
    "sde": "vp",
    "steps": None,  # None (shown as 0 / "auto") = the model's default
    "samples": 1,
    "seed": None,  # None = a random seed per run
    "model": None,  # None = the server's default model
}


class EditParams(dict):
    """A validated parameter set (a plain dict, so it can go straight into JSON or ``Client.submit``)."""


def validate_params(
    t0: Any = 0.5,
    sde: Any = "vp",
    steps: Any = None,
    samples: Any = 1,
    seed: Any = None,
    model: Any = None,
) -> EditParams:
    """Check and normalise request parameters; raise :class:`InvalidParameter` with one sentence.

    ``steps`` 0 or None means "the model's default"; ``seed`` None means random on the server;
    ``model`` None or "" means the server's default model.
    """
    try:
        t0 = float(t0)
    except (TypeError, ValueError):
        raise InvalidParameter("t0 must be a number between 0 and 1 (for example 0.5), not %r." % (t0,))
    if not (0.0 < t0 <= 1.0):
        raise InvalidParameter("t0 must be above 0 and at most 1 (0.3-0.6 suits rough strokes), not %g." % t0)
    sde_name = None if sde is None else str(sde).strip().lower()  # None: the model's own default sampler
    if sde_name is not None and sde_name not in SDES:
        raise InvalidParameter("The SDE must be one of %s, not %r." % (", ".join(SDES), sde))
    steps = _optional_int(steps, "steps")
    if steps == 0:
        steps = None
    if steps is not None and not (1 <= steps <= MAX_STEPS):
        raise InvalidParameter("steps must be between 1 and %d, or 0 for the model's default." % MAX_STEPS)
    samples_n = _optional_int(samples, "samples")
    if samples_n is None:
        samples_n = 1
    if not (1 <= samples_n <= MAX_SAMPLES):
        raise InvalidParameter("samples must be between 1 and %d, not %d." % (MAX_SAMPLES, samples_n))
    seed = _optional_int(seed, "seed")
    if seed is not None and not (0 <= seed <= MAX_SEED):
        raise InvalidParameter("The seed must be between 0 and %d, or empty for a random one." % MAX_SEED)
    model_id = None if model is None or str(model).strip() == "" else str(model).strip()
    return EditParams(t0=t0, sde=sde_name, steps=steps, samples=samples_n, seed=seed, model=model_id)


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


def layer_name(t0: float, sde: str, index: int, seed: Optional[int] = None) -> str:
    """Name of the ``index``-th result layer (1-based), e.g. ``SDEdit t0=0.50 VP #2 seed=1234``."""
    name = "SDEdit t0=%.2f %s #%d" % (float(t0), str(sde).upper(), int(index))
    if seed is not None:
        name += " seed=%d" % int(seed)
    return name


def group_name(t0: float, sde: str, samples: int) -> str:
    """Name of the group holding the K result layers of one edit, e.g. ``SDEdit t0=0.50 VP x3``."""
    return "SDEdit t0=%.2f %s x%d" % (float(t0), str(sde).upper(), int(samples))


def summary(params: Dict[str, Any]) -> str:
    """One line describing a parameter set, for progress dialogs."""
    steps = params.get("steps") or "auto"
    return "t0=%.2f %s, %s sample(s), steps %s" % (
        params["t0"], str(params["sde"]).upper(), params["samples"], steps)
