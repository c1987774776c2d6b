"""Who may call the server: anyone on loopback, a bearer-token holder when a token is set.

Rule: a token is required whenever one is configured; the server refuses to start on a non-loopback
address without one (see server.py). Loopback means 127.0.0.0/8, ::1 and "localhost".
"""
from __future__ import annotations

import hmac
import ipaddress
import os
from typing import Optional

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


class BearerAuth:
    """FastAPI dependency: 401 unless `Authorization: Bearer <token>` matches (constant-time)."""

    def __init__(self, token: Optional[str]) -> None:
        self._token = token.encode("utf-8") if token else None
        self._scheme = HTTPBearer(auto_error=False, description="Required when the server has a token.")

    async def __call__(self, request: Request) -> None:
        if self._token is None:
            return
        credentials: Optional[HTTPAuthorizationCredentials] = await self._scheme(request)
        offered = credentials.credentials.encode("utf-8") if credentials else b""
        if not credentials or not hmac.compare_digest(offered, self._token):
            what = "a wrong token" if credentials else "no token"
            raise HTTPException(
                status_code=401,
                detail=f"This server needs its access token (the request had {what}); "
                "send the header 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
