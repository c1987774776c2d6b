"""Unexpected errors in a request: one 500 with one sentence, and a log that cannot be flooded.

Starlette's own handler for `Exception` logs nothing itself but re-raises after answering, so uvicorn logs a
second traceback; a client repeating a request that crashes wrote ~184 lines per request. Here the first
crash of each kind (exception type and place) is logged with its traceback, later ones are counted and summed
up in one line a minute (connections.CauseLog), and nothing is re-raised.
"""
from __future__ import annotations

import json
import logging
import os
import traceback
from typing import Any, Dict

from .connections import CauseLog

log = logging.getLogger("sdedit.api")


class CrashGuard:
    """ASGI middleware: an exception from the app becomes a 500 JSON answer (when no answer has started)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._seen: set = set()
        self._causes = CauseLog(log)

    async def __call__(self, scope: Dict[str, Any], receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as err:  # noqa: BLE001 - the server answers and keeps serving
            self._log(scope, err)
            if started:
                return  # part of an answer is out: uvicorn closes the connection
            payload = json.dumps({"detail": f"The server hit an internal error ({type(err).__name__}); see its log."})
            body = payload.encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

    def _log(self, scope: Dict[str, Any], err: BaseException) -> None:
        frames = traceback.extract_tb(err.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        kind = f"{type(err).__name__} at {where}"
        what = f"internal error on {scope.get('method', '?')} {scope.get('path', '?')}: {kind}"
        if kind not in self._seen:
            self._seen.add(kind)
            if os.environ.get("SDEDIT_DEBUG"):
                log.error("%s", what, exc_info=err)
                return
            log.error("%s (the same error again is counted and summed up once a minute; SDEDIT_DEBUG=1 shows "
                      "library frames too)\nTraceback (sdedit frames):\n%s", what, _our_frames(frames, err))
            return
        self._causes.note(what)


def _our_frames(frames: traceback.StackSummary, err: BaseException) -> str:
    """The traceback's frames outside installed libraries (and the innermost one): ~10 lines, not ~90."""
    ours = [f for f in frames[:-1] if "site-packages" not in f.filename and "/lib/python" not in f.filename]
    kept = traceback.StackSummary.from_list(ours + list(frames[-1:]))
    return ("".join(kept.format()) + "".join(traceback.format_exception_only(type(err), err))).rstrip()
