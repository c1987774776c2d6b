"""Whether an SD 2.x single file predicts epsilon (2.x base, 512 px) or v (2.x 768 px), told from its weights.

The two have the same tensors and the file carries no marker. One UNet call answers it: noise the latent of a
flat-coloured picture at a few known levels with known noise eps; an epsilon model returns about eps, a v
model about sqrt(abar) eps - sqrt(1 - abar) x0, and the two differ by far more than a trained model's error.
The answer is remembered per file (path, size, modification time) in the user's cache folder, so that the
model list can say what was chosen without loading anything. A sidecar `{"prediction": ...}` overrides it.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

PROBE_STEPS = (300, 500, 700)
PROBE_COLOUR = (0.35, -0.25, 0.55)  # a flat colour in [-1, 1]
PROBE_LATENT_SIDE = 32  # 256 px for SD's VAE: one cheap UNet call
MARGIN = 2.0  # the other reading's error must be this many times larger to decide
CACHE_NAME = "sd_prediction.json"


def probe(model) -> tuple[str | None, dict[str, float]]:
    """("epsilon" | "v_prediction" | None when the weights do not tell, the mean squared error of each reading)
    for a loaded LatentModel, from one unconditional UNet call on a noised flat picture."""
    import torch

    with torch.inference_mode():
        return _probe(model, torch)


def _probe(model, torch) -> tuple[str | None, dict[str, float]]:
    side = 8 * min(PROBE_LATENT_SIDE, int(model.unet.config.sample_size))
    image = torch.tensor(PROBE_COLOUR, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, side, side)
    x0 = model.encode_image(image)
    eps = torch.randn((len(PROBE_STEPS), *x0.shape[1:]), generator=torch.Generator().manual_seed(0)).to(x0.device)
    abar = model.alphas_cumprod[list(PROBE_STEPS)].float().view(-1, 1, 1, 1).to(x0.device)
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    view = model.conditioned(model.encode_text("", "", 1.0))
    out = view.model_output(x_t, torch.tensor(PROBE_STEPS, dtype=torch.float32)).float()
    v = abar.sqrt() * eps - (1 - abar).sqrt() * x0
    errors = {"epsilon": float((out - eps).pow(2).mean()), "v_prediction": float((out - v).pow(2).mean())}
    if errors["epsilon"] * MARGIN < errors["v_prediction"]:
        return "epsilon", errors
    if errors["v_prediction"] * MARGIN < errors["epsilon"]:
        return "v_prediction", errors
    return None, errors


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sdedit" / CACHE_NAME


def _key(path: Path) -> tuple[str, list[int]]:
    st = path.stat()
    return str(path.resolve()), [st.st_size, st.st_mtime_ns]


def _read() -> dict:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered(path: Path) -> dict | None:
    """The decision recorded for this very file ({"prediction": str | None, "errors": {...}}), if any."""
    try:
        name, stamp = _key(path)
    except OSError:
        return None
    entry = _read().get(name)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return entry
    return None


def remember(path: Path, prediction: str | None, errors: dict[str, float]) -> None:
    """Record the decision (a private file, replaced atomically; a cache that cannot be written is skipped)."""
    try:
        name, stamp = _key(path)
        data = _read()
        data[name] = {"stamp": stamp, "prediction": prediction, "errors": errors}
        target = cache_file()
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".sd_prediction.", dir=target.parent)  # created 0600
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, target)
    except OSError:
        pass
