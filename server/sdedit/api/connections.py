"""Slow and idle clients: header and body read timeouts, a connection cap, one log line per cause.

uvicorn times out only idle keep-alive connections: a client that opens a connection and sends half a request
line, or headers and then no body, is kept forever, and enough of them exhaust the process's files (then
every accept fails and logs a traceback). This subclass of uvicorn's h11 protocol adds:

- a header deadline: a request's headers must be complete `header_timeout_s` after its first byte (or after
  the connection opened); trickling bytes does not extend it;
- a body deadline: while the app waits for body bytes, `body_timeout_s` may pass between two chunks, and
  every `body_timeout_s` window must bring at least `min_body_rate` bytes a second (one byte every few
  seconds never trips a gap timer, and held connections forever); a body the app has not read yet (it is
  busy, or waits for a memory slot) never counts against the client;
- a connection cap below the open-file limit: at the cap, a new connection pushes out the oldest one that has
  no request being served (a stalled or idle one), so `/v1/health` and real clients still get in; when every
  connection is busy the newcomer may still ask `GET /v1/health` (a few connections are kept in reserve for
  it, closed after the answer); anything else gets 503.

Each cause is logged once, then counted and summed up in one line per minute (`CauseLog`).
"""
from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Dict, Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("sdedit.api.connections")

FILE_RESERVE = 64  # open files kept free for models, logs and the server itself
HEALTH_RESERVE = 8  # connections over the cap that may ask GET /v1/health only
HEALTH_REQUEST = b"GET /v1/health"
SUMMARY_S = 60.0


class CauseLog:
    """The first event of a cause is logged at once; later ones are counted and summed up every minute."""

    def __init__(self, logger: logging.Logger, every_s: float = SUMMARY_S) -> None:
        self.logger, self.every_s = logger, every_s
        self._counts: Dict[str, int] = {}
        self._seen: set = set()
        self._flush_at: Optional[float] = None

    def note(self, cause: str) -> None:
        if cause not in self._seen:
            self._seen.add(cause)
            self.logger.warning("%s (more of these are counted and summed up once a minute)", cause)
            return
        self._counts[cause] = self._counts.get(cause, 0) + 1
        now = time.monotonic()
        if self._flush_at is None:
            self._flush_at = now + self.every_s
            try:
                asyncio.get_running_loop().call_later(self.every_s, self.flush)
            except RuntimeError:  # no loop (tests of this class): summed up on a later note
                pass
        elif now >= self._flush_at:
            self.flush()

    def flush(self) -> None:
        self._flush_at = None
        counts, self._counts = self._counts, {}
        for cause, count in counts.items():
            self.logger.warning("%d more in the last minute: %s", count, cause)


class RepeatFilter(logging.Filter):
    """For uvicorn's and asyncio's per-connection warnings: one record per message per minute, with a count.

    uvicorn's records that carry a traceback (an app crash) pass untouched; asyncio's (an `accept()` that failed
    for lack of files, once per attempt) lose it: the message says all.
    """

    def __init__(self, every_s: float = SUMMARY_S) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: Dict[str, float] = {}
        self._dropped: Dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or (record.exc_info and record.name != "asyncio"):
            return True
        key = f"{record.name}:{str(record.msg).splitlines()[0] if record.msg else ''}"
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.every_s:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._last[key] = now
        dropped = self._dropped.pop(key, 0)
        if dropped:
            record.msg = f"{record.msg} (and {dropped} more like it in the last minute)"
        if record.name == "asyncio":
            record.exc_info = None
            record.exc_text = None
        return True


def connection_cap(wanted: int) -> int:
    """`wanted`, lowered to fit the open-file limit (raising the soft limit towards the hard one first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FILE_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need and (hard == resource.RLIM_INFINITY or hard > soft):
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(4, min(wanted, soft - FILE_RESERVE))


def guarded_protocol(header_timeout_s: float, body_timeout_s: float, max_connections: int,
                     min_body_rate: float = 0.0) -> type:
    """An H11Protocol class with these limits, for `uvicorn.run(..., http=...)`."""
    causes = CauseLog(log)
    window_bytes = min_body_rate * body_timeout_s

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._header_timer: Optional[asyncio.TimerHandle] = None
            self._body_timer: Optional[asyncio.TimerHandle] = None
            self._rate_timer: Optional[asyncio.TimerHandle] = None
            self._window_bytes = 0
            self._opened = time.monotonic()
            self._health_only: Optional[bytearray] = None  # over the cap: the first bytes, until the request is known
            self._close_after_response = False
            if len(self.server_state.connections) >= max_connections and not _push_out_one(self):
                if len(self.server_state.connections) >= max_connections + HEALTH_RESERVE:
                    causes.note(f"refused connections: all {max_connections} allowed connections are serving "
                                "requests (503)")
                    _write_503(transport)
                    transport.close()
                    return
                self._health_only = bytearray()
            super().connection_made(transport)
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_late)

        def connection_lost(self, exc: Optional[Exception]) -> None:
            if self.transport is None:  # refused in connection_made
                return
            self._cancel_timers()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._health_only is not None:
                self._health_only += data
                head = bytes(self._health_only)
                if len(head) < len(HEALTH_REQUEST) + 1 and HEALTH_REQUEST.startswith(head[:len(HEALTH_REQUEST)]):
                    return  # not enough bytes yet to tell
                if not (head.startswith(HEALTH_REQUEST) and head[len(HEALTH_REQUEST):][:1] in (b" ", b"?")):
                    causes.note(f"refused requests: all {max_connections} allowed connections are serving "
                                "requests; only GET /v1/health is answered beyond them (503)")
                    self._cancel_timers()
                    _write_503(self.transport)
                    self.transport.close()
                    return
                self._health_only, self._close_after_response = None, True
                data = head
            if state_is_send_body(self) and self._rate_timer is not None:
                self._window_bytes += len(data)
            super().data_received(data)
            if self.transport.is_closing():
                self._cancel_timers()
                return
            state = self.conn.their_state
            if state is h11.IDLE:  # a request has begun but its headers are not complete
                if self._header_timer is None:
                    self._header_timer = self.loop.call_later(header_timeout_s, self._headers_late)
                return
            self._cancel(self._header_timer)
            self._header_timer = None
            self._cancel(self._body_timer)
            self._body_timer = None
            if state is h11.SEND_BODY:
                self._body_timer = self.loop.call_later(body_timeout_s, self._body_late)
                if self._rate_timer is None and window_bytes > 0:
                    self._window_bytes = 0
                    self._rate_timer = self.loop.call_later(body_timeout_s, self._rate_check)
            elif self._rate_timer is not None:
                self._cancel(self._rate_timer)
                self._rate_timer = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._close_after_response and self.transport is not None and not self.transport.is_closing():
                self.transport.close()  # a health answer over the cap: give the reserve place back

        # -- deadlines --------------------------------------------------------------------------------------
        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE or not _waiting_for_request(self):
                return
            causes.note(f"closed connections that did not send complete request headers within "
                        f"{header_timeout_s:g} s (slow or stalled clients)")
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
            self.transport.close()

        def _body_late(self) -> None:
            self._body_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
                return
            if self.cycle is not None and (self.cycle.body or self.flow.read_paused or self.cycle.waiting_for_100_continue):
                # bytes (or a 100-continue) wait for the app: the delay is ours, not the client's
                self._body_timer = self.loop.call_later(body_timeout_s, self._body_late)
                return
            causes.note(f"closed connections whose request body stalled for {body_timeout_s:g} s")
            self.transport.close()

        def _rate_check(self) -> None:
            """Every window of a body the server waits for must bring `min_body_rate` bytes a second."""
            self._rate_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
                return
            waiting_on_us = self.cycle is not None and (self.cycle.body or self.flow.read_paused
                                                        or self.cycle.waiting_for_100_continue)
            if not waiting_on_us and self._window_bytes < window_bytes:
                causes.note(f"closed connections whose request body came slower than {min_body_rate:g} bytes/s "
                            f"over {body_timeout_s:g} s")
                self.transport.close()
                return
            self._window_bytes = 0
            self._rate_timer = self.loop.call_later(body_timeout_s, self._rate_check)

        def _cancel_timers(self) -> None:
            self._cancel(self._header_timer)
            self._cancel(self._body_timer)
            self._cancel(self._rate_timer)
            self._header_timer = self._body_timer = self._rate_timer = None

        @staticmethod
        def _cancel(timer: Optional[asyncio.TimerHandle]) -> None:
            if timer is not None:
                timer.cancel()

    def state_is_send_body(protocol: H11Protocol) -> bool:
        return protocol.conn.their_state is h11.SEND_BODY

    def _waiting_for_request(protocol: H11Protocol) -> bool:
        """No request of this connection is being served (none yet, or the last one answered)."""
        cycle = protocol.cycle
        return cycle is None or cycle.response_complete

    def _push_out_one(newcomer: H11Protocol) -> bool:
        """Close the oldest connection that is not being served; False when every one is busy."""
        idle = [c for c in newcomer.server_state.connections
                if isinstance(c, GuardedH11Protocol) and c.transport is not None and not c.transport.is_closing()
                and c.conn.their_state is h11.IDLE and _waiting_for_request(c)]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._opened)
        causes.note(f"closed the oldest idle or stalled connection to admit a new one (at most {max_connections} "
                    "connections)")
        oldest.transport.close()
        oldest.connections.discard(oldest)  # counted out now; connection_lost follows on the next loop turn
        return True

    return GuardedH11Protocol


def _write_503(transport: asyncio.BaseTransport) -> None:
    transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
                    b"content-length: 40\r\nretry-after: 5\r\n\r\nThe server has too many connections now.\n")
