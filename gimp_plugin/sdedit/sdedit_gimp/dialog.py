"""The SDEdit dialog in GIMP, worded like the Krita plugin's: strength as faithful ↔ realistic with a sentence
for the current value, samples, "steps: automatic", "seed: random", the server's model list, and the prompt
fields enabled only for a model that takes text (with the reason when not).

It edits the procedure's config (the PDB arguments of options.py), so GIMP remembers the values for
Filters > Repeat and the next run, and scripts keep the same arguments.
"""

import os
import urllib.parse
from typing import Any, Dict, List, Optional

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import Gtk  # noqa: E402

from sdedit_client import Client, SDEditError, ServerUnavailable  # noqa: E402
from sdedit_client.client import _is_loopback, normalize_url  # noqa: E402
from sdedit_client.params import MAX_GUIDANCE, MAX_SAMPLES, MAX_STEPS, MIN_GUIDANCE, t0_words  # noqa: E402
from sdedit_client.settings import (  # noqa: E402
    connected_text,
    model_label,
    model_takes_text,
    models_hint,
    not_started_text,
    text_note,
)

from .options import MAX_GIMP_SEED, SDE_CHOICES  # noqa: E402

TITLE = "SDEdit"
AUTOMATIC = "automatic"  # what the steps field shows for 0: the model's default
RANDOM = "random"  # what the seed field shows for -1: a new seed each run
UNKNOWN_TEXT_NOTE = "The prompt fields open when the server says the chosen model takes text."


def t0_sentence(t0: float) -> str:
    """The line under the strength slider (the Krita dialog's words)."""
    return "t0 = %.2f — %s" % (t0, t0_words(t0))


def special_text(value: float, special: int, word: str) -> Optional[str]:
    """What a spin button shows: ``word`` for its special value (0 steps, -1 seed), else None (the number)."""
    return word if int(round(value)) == special else None


class SDEditDialog:
    """The dialog over a procedure ``config``; ``run()`` shows it and, on OK, writes the values back."""

    def __init__(self, config: Any, procedure_name: str) -> None:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi

        GimpUi.init(procedure_name)
        self.config = config
        self.models = None  # type: Optional[List[Dict[str, Any]]]
        get = config.get_property
        try:
            self.window = GimpUi.Dialog(title=TITLE, role=procedure_name)
        except TypeError:  # an older binding: a plain GTK dialog does the same job
            self.window = Gtk.Dialog(title=TITLE)
        self.window.add_button("_Cancel", Gtk.ResponseType.CANCEL)
        self.window.add_button("_OK", Gtk.ResponseType.OK)
        self.window.set_default_response(Gtk.ResponseType.OK)

        self.grid = Gtk.Grid(row_spacing=6, column_spacing=10, margin=12)
        self.window.get_content_area().pack_start(self.grid, True, True, 0)
        self._row = 0

        # strength: faithful <-> realistic, the exact value, and what it means
        self.t0 = Gtk.Adjustment(value=float(get("t0")), lower=0.01, upper=1.0, step_increment=0.01,
                                 page_increment=0.1)
        scale = Gtk.Scale(orientation=Gtk.Orientation.HORIZONTAL, adjustment=self.t0, digits=2, draw_value=False,
                          hexpand=True)
        scale.set_size_request(220, -1)
        self.t0_spin = Gtk.SpinButton(adjustment=self.t0, digits=2, climb_rate=0.01)
        strength = Gtk.Box(spacing=6)
        strength.pack_start(Gtk.Label(label="faithful"), False, False, 0)
        strength.pack_start(scale, True, True, 0)
        strength.pack_start(Gtk.Label(label="realistic"), False, False, 0)
        strength.pack_start(self.t0_spin, False, False, 0)
        self.t0_label = Gtk.Label(xalign=0.0)
        self.t0_label.set_line_wrap(True)
        self.t0.connect("value-changed", lambda _adj: self._update_t0())
        self._add("Strength (_t0):", strength, self.t0_spin)
        self._add("", self.t0_label)

        self.sde = Gtk.ComboBoxText()
        for nick, label in SDE_CHOICES:
            self.sde.append(nick, label)
        self.sde.set_active_id(str(get("sde")))
        if self.sde.get_active_id() is None:
            self.sde.set_active(0)
        self._add("_Sampler:", self.sde)

        self.samples = self._spin(int(get("samples")), 1, MAX_SAMPLES)
        self._add("Sa_mples:", self.samples)
        self.steps = self._spin(int(get("steps")), 0, MAX_STEPS, special=(0, AUTOMATIC))
        self.steps.set_tooltip_text("Sampler steps; fewer is faster and rougher. Automatic: the model's default.")
        self._add("St_eps:", self.steps)
        self.seed = self._spin(int(get("seed")), -1, MAX_GIMP_SEED, special=(-1, RANDOM))
        self.seed.set_tooltip_text("The same seed and settings give the same result. Random: a new one each run "
                                   "(it goes into the layer name).")
        self._add("See_d:", self.seed)

        self.model = Gtk.ComboBoxText()
        self.model.connect("changed", lambda _combo: self._update_text_fields())
        self._wanted_model = (get("model") or "").strip()
        self._add("_Model:", self.model)
        self.server_label = Gtk.Label(xalign=0.0)
        self.server_label.set_line_wrap(True)
        self._add("", self.server_label)

        self.prompt = Gtk.Entry(text=get("prompt") or "", hexpand=True)
        self.prompt.set_placeholder_text("what the picture shows, e.g. a lake below mountains at dusk")
        self.negative = Gtk.Entry(text=get("negative-prompt") or "")
        self.negative.set_placeholder_text("what to avoid, e.g. blurry, text")
        self.guidance = Gtk.SpinButton(adjustment=Gtk.Adjustment(
            value=float(get("guidance")), lower=MIN_GUIDANCE, upper=MAX_GUIDANCE, step_increment=0.5,
            page_increment=1.0), digits=1)
        self._add("_Prompt:", self.prompt)
        self._add("_Negative prompt:", self.negative)
        self._add("_Guidance:", self.guidance)
        self.loras = Gtk.Entry(text=get("loras") or "")
        self.loras.set_placeholder_text("LoRAs from loras/, e.g. ink-style:0.8, other")
        self._add("_LoRAs:", self.loras)
        self.text_note = Gtk.Label(xalign=0.0)
        self.text_note.set_line_wrap(True)
        self._add("", self.text_note)

        self.full_copy = Gtk.CheckButton.new_with_mnemonic(
            "_Full copy of the layer (else only the selection, transparent outside)")
        self.full_copy.set_active(bool(get("full-copy")))
        self._add("Result layer:", self.full_copy)

        self.url = Gtk.Entry(text=get("server-url") or "", hexpand=True)
        self.url.connect("activate", lambda _entry: self.refresh_models())
        refresh = Gtk.Button.new_with_mnemonic("_Refresh")
        refresh.set_tooltip_text("Ask the server again for its models")
        refresh.connect("clicked", lambda _button: self.refresh_models())
        url_row = Gtk.Box(spacing=6)
        url_row.pack_start(self.url, True, True, 0)
        url_row.pack_start(refresh, False, False, 0)
        self._add("Server _URL:", url_row, self.url)

        self._update_t0()
        self.refresh_models()

    # -- building ----------------------------------------------------------------------------------------
    def _add(self, label: str, widget: Gtk.Widget, focus: Optional[Gtk.Widget] = None) -> None:
        if label:
            text = Gtk.Label(xalign=1.0)
            text.set_text_with_mnemonic(label)
            text.set_mnemonic_widget(focus or widget)
            self.grid.attach(text, 0, self._row, 1, 1)
        self.grid.attach(widget, 1, self._row, 1, 1)
        self._row += 1

    @staticmethod
    def _spin(value: int, lower: int, upper: int, special=None) -> Gtk.SpinButton:
        """A whole-number field; ``special`` = (value, word) shows the word for that value ("automatic")."""
        spin = Gtk.SpinButton(adjustment=Gtk.Adjustment(value=value, lower=lower, upper=upper, step_increment=1,
                                                        page_increment=10), digits=0)
        spin.set_width_chars(12)
        if special is not None:
            number, word = special
            # typed text that is not a number (the word itself) keeps the value instead of reading as 0
            spin.set_update_policy(Gtk.SpinButtonUpdatePolicy.IF_VALID)

            def show(widget: Gtk.SpinButton) -> bool:
                text = special_text(widget.get_value(), number, word)
                if text is None:
                    return False
                widget.set_text(text)
                return True

            spin.connect("output", show)
            show(spin)
        return spin

    # -- behaviour ---------------------------------------------------------------------------------------
    def _update_t0(self) -> None:
        self.t0_label.set_text(t0_sentence(self.t0.get_value()))

    def refresh_models(self) -> None:
        """Ask the server for its models (a few seconds at most) and fill the model list."""
        url = self.url.get_text().strip()
        current = self.model.get_active_id() if self.models is not None else self._wanted_model
        try:
            client = Client(url, token=os.environ.get("SDEDIT_TOKEN") or None, timeout=3.0)
            health, models = client.health(), client.models()
            self.models = [m for m in models if isinstance(m, dict)]
            self.server_label.set_text(connected_text(models, health) + models_hint(models))
        except ServerUnavailable as error:  # a local one is started by the edit itself
            self.models = None
            base = normalize_url(url)
            local = _is_loopback(urllib.parse.urlsplit(base).hostname)
            self.server_label.set_text(not_started_text(base) if local else str(error))
        except SDEditError as error:  # a bad URL, or not an SDEdit server
            self.models = None
            self.server_label.set_text(str(error))
        self._fill_models(current or "")

    def _fill_models(self, wanted: str) -> None:
        self.model.remove_all()
        self.model.append("", "Server default")
        ids = [""]
        for model in self.models or []:
            self.model.append(str(model.get("id")), model_label(model))
            ids.append(str(model.get("id")))
        if wanted and wanted not in ids:  # remembered, but the server does not list it (yet)
            self.model.append(wanted, wanted)
        self.model.set_active_id(wanted)
        self._update_text_fields()

    def takes_text(self) -> Optional[bool]:
        """Whether the chosen model takes a prompt; None while the server has not said."""
        if self.models is None:
            return None
        return model_takes_text(self.models, self.model.get_active_id() or "")

    def _update_text_fields(self) -> None:
        takes = self.takes_text()
        for widget in (self.prompt, self.negative, self.guidance, self.loras):
            widget.set_sensitive(bool(takes))
        self.text_note.set_text(UNKNOWN_TEXT_NOTE if takes is None else text_note(takes))

    def values(self) -> Dict[str, Any]:
        """The chosen values under the procedure's argument names."""
        for spin in (self.t0_spin, self.samples, self.steps, self.seed, self.guidance):
            spin.update()  # a typed number counts even without leaving the field
        return {
            "t0": round(self.t0.get_value(), 2),
            "sde": self.sde.get_active_id() or SDE_CHOICES[0][0],
            "samples": int(self.samples.get_value()),
            "steps": int(self.steps.get_value()),
            "seed": int(self.seed.get_value()),
            "model": self.model.get_active_id() or "",
            "prompt": self.prompt.get_text().strip(),
            "negative-prompt": self.negative.get_text().strip(),
            "guidance": round(self.guidance.get_value(), 2),
            "loras": " ".join(self.loras.get_text().split()),
            "full-copy": self.full_copy.get_active(),
            "server-url": self.url.get_text().strip(),
        }

    def apply(self) -> None:
        """Write the values into the config (what the run uses and GIMP remembers)."""
        for name, value in self.values().items():
            self.config.set_property(name, value)

    def run(self) -> bool:
        """Show the dialog; True (and the config updated) when OK was pressed."""
        self.window.show_all()
        try:
            if self.window.run() != Gtk.ResponseType.OK:
                return False
            self.apply()
            return True
        finally:
            self.window.destroy()
