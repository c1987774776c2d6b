"""`run_server`: start uvicorn with the app, refusing unsafe or impossible setups with one sentence."""
from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from typing import Any, Callable, Optional, Sequence

from ..errors import InputError
from .auth import TOKEN_ENV, is_loopback, resolve_token


def run_server(
    host: str = "127.0.0.1",
    port: int = 8765,
    token: Optional[str] = None,
    device: str = "auto",
    models_dir: Optional[str] = None,
    default_model: Optional[str] = None,
    allow_hosts: Sequence[str] = (),
    backend_factory: Optional[Callable[[], Any]] = None,
) -> None:
    """Serve the HTTP API until interrupted. Off loopback a bearer token (argument or $SDEDIT_TOKEN) is required.

    `backend_factory` (called once the checks passed) supplies another backend, e.g. sdedit.cluster's Ray pool.
    """
    token = resolve_token(token)
    if not is_loopback(host) and token is None:
        raise InputError(f"Serving on {host} (not loopback) needs an access token: set {TOKEN_ENV} or pass --token-file.")
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
    from .connections import connection_cap, guarded_protocol
    from .limits import Limits

    _configure_logging()
    limits = Limits.from_env()
    backend = backend_factory() if backend_factory is not None else None
    if backend is not None:  # starting it took a while (a Ray pool: a minute): is the port still free?
        _check_port_free(host, int(port))
    app = create_app(token=token, device=device, limits=limits, bind_host=host, allow_hosts=allow_hosts,
                     backend=backend)
    cap = connection_cap(limits.max_connections)
    shown = f"[{host}]" if ":" in host else host
    logger = logging.getLogger("sdedit.api")
    logger.info("SDEdit server at http://%s:%d (%s)", shown, int(port),
                "bearer token required on every call but /v1/health" if token else "no token: loopback clients only")
    logger.info("at most %d connections; request headers within %g s, body chunks at most %g s apart and at "
                "least %g bytes/s", cap, limits.header_timeout_s, limits.body_timeout_s, limits.min_body_rate)
    uvicorn.run(app, host=host, port=int(port), log_level="info", access_log=False, timeout_graceful_shutdown=10,
                http=guarded_protocol(limits.header_timeout_s, limits.body_timeout_s, cap, limits.min_body_rate))


def _check_port_free(host: str, port: int) -> None:
    """Turn 'address in use' into one sentence before uvicorn prints its own error.

    Every family is checked, for every host: a client may reach the other family's server instead of this one
    (`localhost` can mean ::1 or 127.0.0.1; a server on `::` serves no IPv4 client, so a server already on
    127.0.0.1 would answer those). The other family's wildcard address is probed for a wildcard host, its
    loopback address otherwise.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InputError(f"Cannot serve on '{host}': it is not an address of this machine.") from None
    family, _, _, _, address = infos[0]
    _probe(family, address, host, port, required=True)
    wildcard = ipaddress_is_unspecified(address[0])
    others = {socket.AF_INET: ("0.0.0.0" if wildcard else "127.0.0.1", port),
              socket.AF_INET6: ("::" if wildcard else "::1", port, 0, 0)}
    for other_family, other in others.items():
        if other_family != family:
            _probe(other_family, other, other[0], port, required=False, for_host=host)


def ipaddress_is_unspecified(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address.split("%")[0]).is_unspecified
    except ValueError:
        return False


def _probe(family: int, address: tuple, host: str, port: int, required: bool, for_host: str = "") -> None:
    """Bind a throw-away socket; `required` False: an address this machine lacks (no IPv6) is not an error."""
    try:
        probe = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        if required:
            raise InputError(f"Cannot serve on {host}: this machine has no such network family.") from None
        return
    with probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE and required:
                raise InputError(f"Port {port} on {host} is already in use; pass another --port.") from None
            if err.errno == errno.EADDRINUSE:
                shown = f"[{host}]" if ":" in host else host
                raise InputError(f"Port {port} is already in use on {shown}, which clients of {for_host} may reach "
                                 "instead of this server (localhost can mean either family); pass another --port.") \
                    from None
            if required:
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
    from .connections import RepeatFilter

    for name in ("uvicorn.error", "asyncio"):  # per-connection warnings: one line per message per minute
        logging.getLogger(name).addFilter(RepeatFilter())
