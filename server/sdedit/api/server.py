"""`run_server`: start uvicorn with the app, refusing unsafe or impossible setups with one sentence."""
from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from typing import Any, Callable, Optional

from ..errors import InputError
from .auth import TOKEN_ENV, is_loopback, resolve_token


def run_server(
    host: str = "127.0.0.1",
    port: int = 8765,
    token: Optional[str] = None,
    device: str = "auto",
    models_dir: Optional[str] = None,
    default_model: Optional[str] = None,
    backend_factory: Optional[Callable[[], Any]] = None,
) -> None:
    """Serve the HTTP API until interrupted. Off loopback a bearer token (argument or $SDEDIT_TOKEN) is required.

    `backend_factory` (called once the checks passed) supplies another backend, e.g. sdedit.cluster's Ray pool.
    """
    token = resolve_token(token)
    if not is_loopback(host) and token is None:
        raise InputError(f"Serving on {host} (not loopback) needs an access token: pass --token or set {TOKEN_ENV}.")
    if not 0 < int(port) < 65536:
        raise InputError(f"The port must be between 1 and 65535, not {port}.")
    if models_dir:
        if not os.path.isdir(models_dir):
            raise InputError(f"The models folder {models_dir} does not exist; pass an existing folder.")
        extra = os.environ.get("SDEDIT_MODELS_DIR")
        os.environ["SDEDIT_MODELS_DIR"] = os.pathsep.join(p for p in (models_dir, extra) if p)
    if default_model:
        os.environ["SDEDIT_DEFAULT_MODEL"] = default_model
    _check_port_free(host, int(port))

    import uvicorn

    from .app import create_app
    from .limits import Limits

    _configure_logging()
    backend = backend_factory() if backend_factory is not None else None
    app = create_app(token=token, device=device, limits=Limits.from_env(), backend=backend)
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("sdedit.api").info(
        "SDEdit server at http://%s:%d (%s)", shown, int(port),
        "bearer token required on every call but /v1/health" if token else "no token: loopback clients only")
    uvicorn.run(app, host=host, port=int(port), log_level="info", access_log=False,
                timeout_graceful_shutdown=10)


def _check_port_free(host: str, port: int) -> None:
    """Turn 'address in use' into one sentence before uvicorn prints its own error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InputError(f"Cannot serve on '{host}': it is not an address of this machine.") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise InputError(f"Port {port} on {host} is already in use; pass another --port.") from None
            raise InputError(f"Cannot serve on {host}:{port} ({err.strerror}).") from None


def _configure_logging() -> None:
    """sdedit.api logs (one line per job) go to stderr next to uvicorn's own lines."""
    logger = logging.getLogger("sdedit")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
