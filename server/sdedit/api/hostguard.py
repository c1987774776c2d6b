"""ASGI middleware against DNS rebinding: answer only requests addressed to this server (docs/design.md §3).

A web page in the artist's browser can make its own host name resolve to 127.0.0.1 and then call the local
server as if it were its own site. The browser still sends that name in `Host` (and the page's site in
`Origin`), so a request is answered only when both name this server: a loopback name or address, the
address it is bound to or was reached at, or a name given with `--allow-host` (a reverse proxy).
`/v1/health` stays open so a plugin (or a monitor) can always tell that the server runs.
"""
from __future__ import annotations

import ipaddress
import json
import urllib.parse
from typing import Any, Dict, Iterable, Optional

OPEN_PATHS = ("/v1/health",)
LOOPBACK_NAMES = ("localhost",)


def split_host(value: str) -> str:
    """'name:port', '[v6]:port' or a bare name/address -> the lower-case name or address."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.index("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value  # a bare IPv6 address (no brackets) or a name without port


def is_loopback_name(name: str) -> bool:
    name = name.rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):  # RFC 6761: never resolved through DNS
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostGuard:
    """403 with one sentence unless Host (and Origin, when sent) name this server."""

    def __init__(self, app: Any, bind_host: Optional[str] = None, allow_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {split_host(h) for h in allow_hosts if h and h.strip()}
        if bind_host and bind_host not in ("0.0.0.0", "::", ""):
            self.allowed.add(split_host(bind_host))

    async def __call__(self, scope: Dict[str, Any], receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        payload = json.dumps({"detail": problem}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    def _ours(self, name: str, scope: Dict[str, Any]) -> bool:
        if not name:
            return False
        if is_loopback_name(name) or name in self.allowed:
            return True
        server = scope.get("server") or ()
        return bool(server) and name == str(server[0]).lower()  # the address the client connected to

    def _problem(self, scope: Dict[str, Any]) -> Optional[str]:
        host = origin = None
        for key, value in scope.get("headers", ()):
            if key == b"host":
                host = value.decode("latin-1")
            elif key == b"origin":
                origin = value.decode("latin-1")
        if host is not None and not self._ours(split_host(host), scope):
            name = _shown(split_host(host))
            return (f"This server answers only requests addressed to itself (localhost, 127.0.0.1, ::1 or its own "
                    f"address), not to '{name}'; behind a reverse proxy, start it with --allow-host {name}.")
        if origin is not None:
            origin_host = urllib.parse.urlsplit(origin.strip()).hostname or ""
            if not self._ours(origin_host.lower(), scope):
                return (f"This server does not answer web pages from other sites (Origin '{_shown(origin)}'); "
                        "open its pages through localhost, or start it with --allow-host for that site's name.")
        return None


def _shown(text: str) -> str:
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 80 else text[:77] + "..."
