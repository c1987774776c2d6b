"""The running job's live preview: the engine hands over small RGB arrays, GET /v1/jobs/{id}/preview
answers the newest one as PNG (encoded once per new preview, on the request's thread, not the worker's)."""
from __future__ import annotations

import io
from typing import Optional

import numpy as np
from PIL import Image

from .jobs import Job


def store_preview(job: Job, rgb: np.ndarray) -> None:
    """Keep the newest preview (uint8 (h, w, 3)); one tuple assignment, so readers never see half of it."""
    version = job.preview[0] + 1 if job.preview else 1
    job.preview = (version, rgb)


def preview_png(job: Job) -> Optional[bytes]:
    """PNG bytes of the job's newest preview, or None while there is none."""
    snapshot = job.preview
    if snapshot is None:
        return None
    version, rgb = snapshot
    cached = job.preview_png
    if cached is not None and cached[0] == version:
        return cached[1]
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", compress_level=1)
    png = buf.getvalue()
    job.preview_png = (version, png)
    return png
