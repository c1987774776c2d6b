"""A small window for interactive runs: the job's live preview, its progress, and a Cancel button.

GIMP 3's own progress (the image window's status bar) carries text and a fraction only, no picture, so the
plug-in shows the server's preview (GET /v1/jobs/{id}/preview, at most 256 px) in a window of its own. GTK
events are handled on every poll, so the window stays responsive while the plug-in waits for the server.
Scripts (non-interactive runs) get no window.
"""

from typing import Optional

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf, GLib, Gtk  # noqa: E402

TITLE = "SDEdit preview"
SIZE = 256


class PreviewWindow:
    """``update(fraction, text, png)`` while the job runs; ``cancelled`` once Cancel was pressed."""

    def __init__(self, procedure_name: str) -> None:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi

        GimpUi.init(procedure_name)
        self.cancelled = False
        self.previews = 0
        self.window = Gtk.Window(title=TITLE)
        self.window.set_default_size(SIZE + 24, SIZE + 90)
        self.window.connect("delete-event", self._on_cancel)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6, margin=10)
        self.image = Gtk.Image()
        self.image.set_size_request(SIZE, SIZE)
        self.label = Gtk.Label(label="Sending the layer to the server…")
        self.label.set_line_wrap(True)
        self.bar = Gtk.ProgressBar()
        button = Gtk.Button(label="Cancel")
        button.connect("clicked", self._on_cancel)
        for widget in (self.image, self.label, self.bar, button):
            box.pack_start(widget, False, False, 0)
        self.window.add(box)
        self.window.show_all()
        self.pump()

    def _on_cancel(self, *_args) -> bool:
        self.cancelled = True
        self.label.set_text("Cancelling…")
        return True  # the window stays until the job has stopped

    def update(self, fraction: float, text: str, png: Optional[bytes] = None) -> None:
        self.bar.set_fraction(max(0.0, min(1.0, fraction)))
        if not self.cancelled:
            self.label.set_text(text)
        if png:
            try:
                loader = GdkPixbuf.PixbufLoader.new_with_type("png")
                loader.write(png)
                loader.close()
                pixbuf = loader.get_pixbuf()
            except (GLib.Error, TypeError, ValueError):
                pixbuf = None
            if pixbuf is not None:
                scale = SIZE / max(pixbuf.get_width(), pixbuf.get_height())
                pixbuf = pixbuf.scale_simple(max(1, int(pixbuf.get_width() * scale)),
                                             max(1, int(pixbuf.get_height() * scale)),
                                             GdkPixbuf.InterpType.BILINEAR)
                self.image.set_from_pixbuf(pixbuf)
                self.previews += 1
        self.pump()

    def pump(self) -> None:
        """Handle pending GTK events (drawing, the Cancel button)."""
        while Gtk.events_pending():
            Gtk.main_iteration_do(False)

    def close(self) -> None:
        self.window.destroy()
        self.pump()


def open_window(procedure_name: str) -> Optional[PreviewWindow]:
    """The window, or None where none can be shown (no display): the run goes on without it."""
    try:
        return PreviewWindow(procedure_name)
    except Exception:  # a preview is a courtesy, never a reason to fail the edit
        return None
