"""Who may call the server: anyone on loopback, a bearer-token holder when a token is set.

Rule: a token is required whenever one is configured; the server refuses to start on a non-loopback
address without one (see server.py). Loopback means 127.0.0.0/8, ::1 and "localhost".
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import os
import stat
import sys
from typing import Any, Dict, Optional

from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

TOKEN_ENV = "SDEDIT_TOKEN"


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(token: Optional[str]) -> Optional[str]:
    """The flag's token, else $SDEDIT_TOKEN; empty means none."""
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    token = (token or "").strip()
    return token or None


def serve_token(flag: Optional[str], token_file: Optional[str]) -> Optional[str]:
    """`sdedit serve`'s token: --token-file, else --token (with a warning: `ps` shows it), else $SDEDIT_TOKEN."""
    from ..errors import InputError

    if flag is not None and token_file is not None:
        raise InputError("Give the token once: --token or --token-file, not both.")
    if token_file is not None:
        return read_token_file(token_file)
    if flag is not None:
        print(f"sdedit serve: warning: --token is shown to every user of this machine by `ps`; set {TOKEN_ENV} "
              "or use --token-file instead.", file=sys.stderr)
    return resolve_token(flag)


def read_token_file(path: str) -> str:
    """The token in `path` (first line, UTF-8, surrounding whitespace dropped); an InputError if unusable."""
    from ..errors import InputError

    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            raw = handle.read(64 * 1024)
    except OSError as err:
        raise InputError(f"Cannot read the token file {path} ({err.strerror}); pass a readable file.") from None
    try:
        lines = raw.decode("utf-8-sig").strip().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"The token file {path} is not UTF-8 text; write the token as one line of text.") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise InputError(f"The token file {path} is empty; write the token on its first line.")
    if not sys.platform.startswith("win") and mode & 0o077:
        print(f"sdedit serve: warning: the token file {path} can be read by other users (mode "
              f"{stat.S_IMODE(mode):o}); make it private: chmod 600 {path}", file=sys.stderr)
    return token


def header_bytes(value: str) -> bytes:
    """The raw bytes of a header value: ASGI servers hand them over decoded as latin-1, byte for byte."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire; compare what we were given
        return value.encode("utf-8")


OPEN_PATHS = ("/v1/health", "/v1/handoff")  # answered without the token (the hand-off proof comes before it)


def refusal_detail(had_credentials: bool) -> str:
    what = "a wrong token" if had_credentials else "no token"
    return (f"This server needs its access token (the request had {what}); "
            "send the header 'Authorization: Bearer <token>'.")


def token_matches(header: Optional[str], token: bytes) -> tuple[bool, bool]:
    """(matches, credentials were sent) for an Authorization header value, compared in constant time."""
    if not header:
        return False, False
    scheme, _, offered = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not offered.strip():
        return False, False
    return hmac.compare_digest(header_bytes(offered.strip()), token), True


class TokenGate:
    """ASGI middleware: on a token server every path but OPEN_PATHS (the API docs and /openapi.json included)
    needs the token, checked from the headers before a byte of the body is read: off loopback, a stranger must
    not make the server read and hold 96 MiB bodies."""

    def __init__(self, app: Any, token: Optional[str]) -> None:
        self.app = app
        self._token = token.encode("utf-8") if token else None

    async def __call__(self, scope: Dict[str, Any], receive, send) -> None:
        if self._token is None or scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        ok, sent = token_matches(header, self._token)
        if ok:
            await self.app(scope, receive, send)
            return
        payload = json.dumps({"detail": refusal_detail(sent)}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"www-authenticate", b"Bearer"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


class BearerAuth:
    """FastAPI dependency: 401 unless `Authorization: Bearer <token>` matches (constant-time)."""

    def __init__(self, token: Optional[str]) -> None:
        self._token = token.encode("utf-8") if token else None
        self._scheme = HTTPBearer(auto_error=False, description="Required when the server has a token.")

    async def __call__(self, request: Request) -> None:
        if self._token is None:
            return
        credentials: Optional[HTTPAuthorizationCredentials] = await self._scheme(request)
        offered = header_bytes(credentials.credentials) if credentials else b""  # a UTF-8 token stays UTF-8
        if not credentials or not hmac.compare_digest(offered, self._token):
            raise HTTPException(status_code=401, detail=refusal_detail(bool(credentials)),
                                headers={"WWW-Authenticate": "Bearer"})
