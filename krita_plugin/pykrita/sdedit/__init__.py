"""SDEdit for Krita: Filters → SDEdit… repaints the active layer (or the selection) with SDEdit.

The heavy lifting runs in a separate SDEdit server (sdedit serve); this plugin only moves pixels,
shows a dialog (or the SDEdit docker) and progress, and adds the results as layers. A local server that is
not running is started from the installation install.py recorded. Scripts can call ``sdedit.run_edit``.
"""

from krita import Krita

from . import docker
from .extension import ACTION_ID, MENU_LOCATION, SDEditExtension, make_dialog, run_edit

__all__ = ["ACTION_ID", "MENU_LOCATION", "SDEditExtension", "make_dialog", "run_edit"]

Krita.instance().addExtension(SDEditExtension(Krita.instance()))
docker.register()  # Settings → Dockers → SDEdit
