"""The result JSON written in pieces: base64 of each PNG encoded a slice at a time while it is sent.

Building `{"images": [<base64>...]}` whole costs the base64 text, the JSON text and its bytes at once
(about four times the PNGs) per client; eight clients fetching a 120 MB result took the server from 1.1 to
2.7 GB. Streamed, a client costs one slice, and the socket's flow control paces the encoding.
"""
from __future__ import annotations

import base64
import json
from typing import Iterator, List, Optional, Sequence

from starlette.responses import StreamingResponse

SLICE = 3 * 2**20  # bytes of PNG per piece: a multiple of 3, so the pieces' base64 joins without padding


def _tail(seeds: Sequence[int], steps: Optional[int], sde: Optional[str], mask: Optional[bytes] = None) -> bytes:
    """Everything after the images: the seeds, the steps and sampler that ran when known, and the mask the
    edit used when the job had one (small: one channel, mostly flat)."""
    tail = b'],"seeds":' + json.dumps([int(s) for s in seeds]).encode()
    if steps is not None:
        tail += b',"steps":' + json.dumps(int(steps)).encode()
    if sde is not None:
        tail += b',"sde":' + json.dumps(str(sde)).encode()
    if mask is not None:
        tail += b',"mask":"' + base64.b64encode(mask) + b'"'
    return tail + b"}"


def _pieces(pngs: Sequence[bytes], seeds: Sequence[int], steps: Optional[int] = None,
            sde: Optional[str] = None, mask: Optional[bytes] = None) -> Iterator[bytes]:
    yield b'{"images":['
    for index, png in enumerate(pngs):
        yield b',"' if index else b'"'
        view = memoryview(png)
        for start in range(0, len(png), SLICE):
            yield base64.b64encode(view[start:start + SLICE])
        yield b'"'
    yield _tail(seeds, steps, sde, mask)


def _length(pngs: Sequence[bytes], seeds: Sequence[int], steps: Optional[int] = None,
            sde: Optional[str] = None, mask: Optional[bytes] = None) -> int:
    head = len(b'{"images":[') + sum(2 + 4 * -(-len(png) // 3) for png in pngs) + max(0, len(pngs) - 1)
    return head + len(_tail(seeds, steps, sde, mask))


def result_response(pngs: List[bytes], seeds: List[int], steps: Optional[int] = None,
                    sde: Optional[str] = None, mask: Optional[bytes] = None) -> StreamingResponse:
    """200 with `{"images": [...], "seeds": [...], "steps", "sde", "mask"?}` (docs/design.md §3), a
    known Content-Length, built while sent. `steps` and `sde` say what ran when the request left them out;
    `mask` is the mask the edit used, when the job had one."""
    return StreamingResponse(_pieces(pngs, seeds, steps, sde, mask), media_type="application/json",
                             headers={"content-length": str(_length(pngs, seeds, steps, sde, mask))})
