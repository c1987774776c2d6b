"""When a live-mode client sends the newest canvas: now (superseding the job in flight) or after its result.

The server lets a newer job of a session supersede the older one, so the queue never grows. Superseding on
every change, though, shows nothing at all while the artist keeps painting faster than a job takes: each
job is cancelled before it ends. So a client supersedes only a job that costs little to throw away (still
queued, or running but less than half done) and only once in a row; otherwise it holds the newest canvas and
sends it the moment the current result is in. A stroke then waits at most about two jobs' time for its
preview, and a preview comes at least every job or two while painting goes on. benchmarks/live.py measures it.
"""

from typing import Optional

YOUNG = 0.5  # a running job less than this far along is cheap enough to throw away for a newer canvas
FINAL = ("done", "failed", "cancelled")


def send_now(state: Optional[str], progress: float, restarts: int) -> bool:
    """Whether to send a newer canvas now.

    ``state``/``progress``: the job in flight's last known status (None: there is none); ``restarts``: how
    many jobs in a row were superseded since the last result was shown.
    """
    if state is None or state in FINAL or state == "queued":
        return True
    return restarts == 0 and progress < YOUNG


LCM_LORA_LIVE = {"sde": "lcm", "steps": 4, "guidance": 1.0}  # LCM-LoRA's recipe: LCMScheduler, 2-8 steps, w 1-2


def is_lcm_lora(name: str) -> bool:
    """An LCM-LoRA by the name artists install it under (lcm-lora-sd15, lcm-lora-sdxl, LCM_LoRA_Weights_SD15,
    pytorch_lora_weights of latent-consistency/lcm-lora-sdv1-5): "lcm" as one word of the name."""
    words = name.lower().replace("_", "-").replace("/", "-").replace(".", "-").split("-")
    return "lcm" in words


def live_with_loras(live: dict, loras: list) -> dict:
    """A model's live defaults (GET /v1/models "live") with an LCM-LoRA among the chosen LoRAs: it turns any
    Stable Diffusion checkpoint into a few-step model, so the preview runs its recipe (lcm, 4 steps, no
    classifier-free guidance) instead of the checkpoint's own 8-step ode with full guidance."""
    if not any(is_lcm_lora(str(item.get("id", ""))) and float(item.get("scale", 1.0)) > 0 for item in loras or []):
        return dict(live)
    out = dict(live)
    out.update(LCM_LORA_LIVE)
    return out
