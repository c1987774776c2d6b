"""SDEdit for Krita: Filters → SDEdit… repaints the active layer (or the selection) with SDEdit.

The heavy lifting runs in a separate SDEdit server (`sdedit serve`); this plugin only moves pixels,
shows a dialog and progress, and adds the results as layers. Scripts can call ``sdedit.run_edit``.
"""

from krita import Krita

from .extension import ACTION_ID, MENU_LOCATION, SDEditExtension, make_dialog, run_edit

__all__ = ["ACTION_ID", "MENU_LOCATION", "SDEditExtension", "make_dialog", "run_edit"]

Krita.instance().addExtension(SDEditExtension(Krita.instance()))
