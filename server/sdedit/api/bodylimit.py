"""ASGI middleware that refuses request bodies over a size limit with 413, before any parsing, and lets only a
few large bodies in at once.

A 95 MiB body costs a few hundred MB while it is parsed and its images decoded; six at once took the server
from 1.5 to 3.9 GB. Requests that declare a large body wait for one of `max_large` slots before their body is
read: a waiting body stays in the client's and the kernel's buffers, not in ours. A body of unknown size
(chunked) is read without a slot until it passes `large_bytes`, then waits for one. Requests without a body
(a DELETE that cancels a job) and small ones never wait: two slow uploads must not hold up a cancel.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable, Dict, List

Scope = Dict[str, Any]
Message = Dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class BodyLimit:
    """Reads the whole body (at most `max_bytes`) first, then replays it to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int, large_bytes: int = 8 * 2**20, max_large: int = 2) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.large_bytes = large_bytes
        self._slots = asyncio.Semaphore(max_large)

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is None and not _chunked(scope):  # no body at all (HTTP/1.1: neither header)
            await self.app(scope, receive, send)
            return
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        if declared is not None and declared > self.large_bytes:
            async with self._slots:
                await self._read_and_run(scope, receive, send, holding=True)
            return
        await self._read_and_run(scope, receive, send, holding=False)

    async def _read_and_run(self, scope: Scope, receive, send, holding: bool) -> None:
        chunks: List[bytes] = []
        size, taken = 0, False
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    await self._refuse(send)
                    return
                chunks.append(chunk)
                if size > self.large_bytes and not holding:  # a chunked body grew large: wait for a slot now
                    await self._slots.acquire()
                    holding = True
                    taken = True
                if not message.get("more_body", False):
                    break
            await self._run(scope, receive, send, chunks)
        finally:
            if taken:
                self._slots.release()

    async def _run(self, scope: Scope, receive, send, chunks: List[bytes]) -> None:
        body: Any = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        chunks.clear()  # the caller's list too: only `body` holds the bytes now

        async def replay() -> Message:
            nonlocal body
            if body is not None:
                message = {"type": "http.request", "body": body, "more_body": False}
                body = None  # the app holds the only reference now
                return message
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send) -> None:
        mib = self.max_bytes / 2**20
        payload = json.dumps(
            {"detail": f"The request body is larger than the server's limit of {mib:g} MiB; send a smaller image."}
        ).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


def _chunked(scope: Scope) -> bool:
    return any(name == b"transfer-encoding" for name, _ in scope.get("headers", []))


def _content_length(scope: Scope):
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
