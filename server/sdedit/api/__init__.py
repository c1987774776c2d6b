"""The HTTP server of docs/design.md §3: FastAPI app, job queue and worker, auth and limits.

    from sdedit.api import create_app, run_server
    run_server(host="127.0.0.1", port=8765)      # what `sdedit serve` calls
"""
from .app import create_app
from .limits import Limits
from .server import run_server

__all__ = ["Limits", "create_app", "run_server"]
