"""The procedure's arguments: one table used to register them and to turn a config into a request.

Kept free of GIMP imports so the mapping ("default" sampler = the model's own, 0 steps = model default,
seed -1 = random, "" model = server default) is tested without GIMP. New arguments go at the end, so
scripts that pass the old ones by position keep working.
"""

from typing import Any, Callable, Dict, List, NamedTuple, Optional

from sdedit_client import DEFAULT_URL, validate_params
from sdedit_client.model_manager import parse_loras
from sdedit_client.params import DEFAULT_GUIDANCE, MAX_GUIDANCE, MIN_GUIDANCE, validate_text

PROCEDURE_NAME = "plug-in-sdedit"
MENU_LABEL = "SDEdit…"
MENU_PATH = "<Image>/Filters/Generic"
#: Indexed images are accepted: they are converted to RGB with the results (one undo step), because a
#: result forced into the image's palette bands badly.
IMAGE_TYPES = "RGB*, GRAY*, INDEXED*"

#: GIMP int arguments are 32-bit signed, so a fixed seed tops out lower than the server's limit.
MAX_GIMP_SEED = 2**31 - 1

#: The sampler choice: the model's declared default first (no "sde" sent), the paper's two SDEs, and the
#: server's two fast deterministic samplers.
MODEL_DEFAULT = "default"
SDE_CHOICES = (
    (MODEL_DEFAULT, "Model default"),
    ("vp", "VP (DDPM sampler)"),
    ("ve", "VE (NCSN sampler)"),
    ("ode", "ODE (fast, deterministic)"),
    ("ddim", "DDIM (fast, deterministic)"),
    ("lcm", "LCM (LCM / LCM-LoRA models, 2-8 steps)"),
    ("euler_a", "Euler a, trailing (Turbo models, 1-4 steps)"),
)


class Argument(NamedTuple):
    """One procedure argument: ``kind`` is double, int, string or choice."""

    name: str
    kind: str
    label: str
    blurb: str
    default: Any
    minimum: Any = None
    maximum: Any = None


ARGUMENTS: List[Argument] = [
    Argument("t0", "double", "_t0 (strength)",
             "How far to noise the layer before denoising: low keeps your strokes, high adds realism "
             "(0.3-0.6 suits rough strokes)", 0.5, 0.01, 1.0),
    Argument("sde", "choice", "_SDE", "The sampler: the model's default, VP (DDPM) or VE (NCSN) SDE, or a "
             "fast deterministic ODE/DDIM", MODEL_DEFAULT),
    Argument("samples", "int", "Sa_mples", "How many results; each becomes a new layer", 1, 1, 16),
    Argument("steps", "int", "S_teps", "Denoising steps; 0 uses the model's default", 0, 0, 1000),
    Argument("seed", "int", "S_eed", "Random seed for repeatable results; -1 picks a new one each run",
             -1, -1, MAX_GIMP_SEED),
    Argument("model", "string", "_Model", "Model id or folder on the server; empty uses the server's default",
             ""),
    Argument("server-url", "string", "Server _URL", "Address of the SDEdit server (a local one is started "
             "when it is not running)", DEFAULT_URL),
    # Added later: only at the end, so positional scripts keep working.
    Argument("prompt", "string", "_Prompt", "What the picture shows; only for models that take text "
             "(Stable Diffusion); empty = the plain edit", ""),
    Argument("negative-prompt", "string", "_Negative prompt", "What to avoid; only for models that take text", ""),
    Argument("guidance", "double", "_Guidance", "How strongly the prompt steers (classifier-free guidance); "
             "only for models that take text", DEFAULT_GUIDANCE, MIN_GUIDANCE, MAX_GUIDANCE),
    Argument("full-copy", "bool", "_Full copy of the layer", "With a selection: each result is a full copy of "
             "the layer instead of only the edited selection (transparent outside)", False),
    Argument("loras", "string", "_LoRAs", "Stable Diffusion models only: LoRAs from the models folder's loras/, "
             "as NAME or NAME:SCALE separated by commas (e.g. ink-style:0.8)", ""),
]


class EditRequest(NamedTuple):
    """What one run asks the server for."""

    server_url: str
    params: Dict[str, Any]  # keyword arguments for Client.submit / Client.run
    text: Dict[str, Any]  # prompt fields: added to params only when the model takes text
    full_copy: bool  # with a selection, a full copy of the layer instead of only the selection


def request_from_config(get: Callable[[str], Any]) -> EditRequest:
    """Validated request from ``get(argument_name)`` (the procedure config's values).

    Raises ``sdedit_client.InvalidParameter`` with one sentence when a value is out of range.
    """
    seed = int(get("seed"))
    steps = int(get("steps"))
    sde = get("sde")
    params = validate_params(
        t0=get("t0"),
        sde=None if sde == MODEL_DEFAULT else sde,
        steps=steps if steps > 0 else None,
        samples=get("samples"),
        seed=seed if seed >= 0 else None,
        model=(get("model") or "").strip() or None,
    )
    url = (get("server-url") or "").strip() or DEFAULT_URL
    text = validate_text(prompt=get("prompt") or "", negative_prompt=get("negative-prompt") or "",
                         guidance=get("guidance"))
    loras = parse_loras(get("loras") or "")
    if loras:  # like the prompt: sent only to a Stable Diffusion (text) model
        text["loras"] = loras
    return EditRequest(url, dict(params), text, bool(get("full-copy")))


def progress_text(fraction: float, samples: int) -> str:
    """Status-bar text while the server works."""
    what = "1 sample" if samples == 1 else "%d samples" % samples
    return "SDEdit: %d%% of %s" % (int(round(100 * max(0.0, min(1.0, fraction)))), what)


def default_of(name: str) -> Optional[Any]:
    """The registered default of an argument (None if unknown)."""
    for arg in ARGUMENTS:
        if arg.name == name:
            return arg.default
    return None
