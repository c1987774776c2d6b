"""One SDEdit run inside GIMP: layer + selection -> server job with progress -> result layers."""

import os
from typing import Any, Callable, List, Optional

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp  # noqa: E402

import sdedit_client  # noqa: E402
from sdedit_client import Client, SDEditError, layer_name  # noqa: E402
from sdedit_client.autostart import ensure_server, started_server, stopped_error  # noqa: E402
from sdedit_client.mask import cut_to_selection, grown_mask, mask_needed, mask_png, require_visible  # noqa: E402
from sdedit_client.png import encode_png  # noqa: E402
from sdedit_client.settings import model_takes_text  # noqa: E402

from . import pixels, watchdog  # noqa: E402
from .pngcodec import decode_rgba  # noqa: E402
from .options import EditRequest, progress_text  # noqa: E402

CLIENT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(sdedit_client.__file__)))


class WatchedClient(Client):
    """A client whose submitted job is cancelled on the server if GIMP kills this process meanwhile."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watchdog: Optional[watchdog.Watchdog] = None
        self.job_id: Optional[str] = None

    def submit(self, *args: Any, **kwargs: Any) -> str:
        job_id = self.job_id = super().submit(*args, **kwargs)
        self.watchdog = watchdog.start(self.base_url, job_id, CLIENT_DIR, self.token)
        return job_id

    def release(self) -> None:
        if self.watchdog is not None:
            self.watchdog.release()
            self.watchdog = None


def _progress(samples: int, client: WatchedClient, window=None) -> Callable[[float], None]:
    """Status bar text and fraction; with a preview window, the job's preview too (when it changed)."""
    last = [-1, None]

    def update(fraction: float) -> None:
        percent = int(fraction * 100)
        text = progress_text(fraction, samples)
        if percent != last[0]:
            last[0] = percent
            Gimp.progress_set_text(text)
        Gimp.progress_update(min(1.0, max(0.0, fraction)))
        if window is not None:
            png = None
            if client.job_id is not None and fraction < 1.0:
                try:
                    png = client.preview(client.job_id)
                except SDEditError:  # a preview is a courtesy: the job goes on without it
                    png = None
                if png == last[1]:
                    png = None
                else:
                    last[1] = png
            window.update(fraction, text, png)

    return update


def _server_status(window=None) -> Callable[[str, float], None]:
    """"Starting the SDEdit server…" with progress while a local server starts."""

    def update(text: str, fraction: float) -> None:
        Gimp.progress_set_text(text)
        Gimp.progress_update(min(1.0, max(0.0, fraction)))
        if window is not None:
            window.update(fraction, text)

    return update


def run_edit(image: Gimp.Image, layer: Gimp.Layer, request: EditRequest, window=None) -> List[Gimp.Layer]:
    """Edit ``layer`` (inside the selection, if any) and add the results above it; return the new layers.

    A group is edited as its merged picture (its buffer), as in Krita; a layer that is fully transparent
    where the edit goes is refused before anything is sent.

    A local server that does not answer is started first. ``window`` (interactive runs) shows the live
    preview and has a Cancel button. Raises ``SDEditError`` (one-sentence message) for anything the user
    can fix.
    """
    rect = pixels.drawable_rect(layer)
    width, height = rect[2], rect[3]
    if width <= 0 or height <= 0:
        raise sdedit_client.InvalidParameter("The active layer is empty.")
    params = request.params
    samples = int(params.get("samples") or 1)

    Gimp.progress_init("SDEdit: sending the layer to the server…")
    source_rgba = pixels.read_rgba(layer)
    image_png = encode_png(width, height, source_rgba, channels=4)
    selection = pixels.read_selection(image, rect)
    mask = mask_png(selection, width, height)
    partial = mask_needed(selection, width, height)
    kind = "group" if layer.is_group() else "layer"
    require_visible(source_rgba, selection if partial else None, "The %s \u201c%s\u201d" % (kind, layer.get_name()))
    only_selection = not request.full_copy and partial

    client = WatchedClient(request.server_url, token=os.environ.get("SDEDIT_TOKEN") or None)
    cancelled = (lambda: window.cancelled) if window is not None else None
    try:
        ensure_server(client.base_url, on_status=_server_status(window), cancel=cancelled)
        started = started_server(client.base_url)  # a plug-in started it: its log says why it stops
        try:
            if request.text and model_takes_text(client.models(), params.get("model")):
                params = dict(params, **request.text)
            result = client.run(image_png, mask, on_progress=_progress(samples, client, window), grow=True,
                                should_cancel=cancelled, poll_interval=0.25 if window is None else 0.1, **params)
        except sdedit_client.ServerUnavailable as error:  # it answered a moment ago: did it stop?
            stopped = stopped_error(client.base_url, started)
            if stopped is None:
                raise
            raise SDEditError("%s. Run Filters \u2192 SDEdit\u2026 again: the plug-in starts the server and "
                              "repeats the edit." % str(stopped).rstrip(".")) from error
    finally:
        client.release()
    images, seeds = result
    if only_selection:  # the server grew the selection: the layer keeps its fade, not just the selection
        selection = grown_mask(getattr(result, "mask", None), selection, width, height, decode_rgba)

    Gimp.progress_set_text("SDEdit: adding %d layer(s)…" % len(images))
    results = []
    for index, png in enumerate(images):
        w, h, rgba = decode_rgba(png)
        if (w, h) != (width, height):
            raise SDEditError("The server returned a %dx%d image for a %dx%d layer; update the server."
                              % (w, h, width, height))
        seed = seeds[index] if index < len(seeds) else None
        if only_selection:
            rgba = cut_to_selection(rgba, selection, source_rgba)
        results.append((layer_name(params["t0"], params.get("sde"), index + 1, seed, params.get("prompt")), rgba))
    if not results:
        raise SDEditError("The server returned no images; try again or check the server's log.")
    added = pixels.add_layers(image, layer, results)
    Gimp.progress_update(1.0)
    Gimp.progress_end()
    return added
