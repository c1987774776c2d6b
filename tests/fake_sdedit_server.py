"""A small impostor on a loopback port that answers like `sdedit serve` (health, jobs, results) and records
what it received: the stand-in for "whatever listens on the port" (issue 22, item 1). Used by the tests and by
benchmarks/server_load.py."""
from __future__ import annotations

import base64
import io
import json
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, List, Optional

from PIL import Image


def red_png(width: int = 300, height: int = 20) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


class FakeServer:
    """`models`: what health lists; `images`: the PNGs every result returns; `handoff`: None = 404 on
    /v1/handoff (an impostor, or an sdedit from before the proof), or a function nonce -> JSON answer."""

    def __init__(self, models=("tiny-vp", "landscape"), images: Optional[List[bytes]] = None,
                 handoff: Optional[Callable[[str], dict]] = None, seeds: Optional[List[int]] = None) -> None:
        self.requests: List[dict] = []
        self.models, self.images, self.handoff = list(models), images or [red_png()], handoff
        self.seeds = seeds
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _answer(self, status: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body: bytes = b"") -> None:
                fake.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                      "body": body})

            def do_GET(self) -> None:  # noqa: N802
                self._record()
                path = urllib.parse.urlsplit(self.path)
                if path.path == "/v1/health":
                    self._answer(200, {"status": "ok", "device": "cpu", "models": fake.models})
                elif path.path == "/v1/handoff":
                    if fake.handoff is None:
                        self._answer(404, {"detail": "Not Found"})
                    else:
                        nonce = urllib.parse.parse_qs(path.query).get("nonce", [""])[0]
                        self._answer(200, fake.handoff(nonce))
                elif path.path.endswith("/result"):
                    seeds = fake.seeds if fake.seeds is not None else list(range(len(fake.images)))
                    self._answer(200, {"images": [base64.b64encode(p).decode() for p in fake.images], "seeds": seeds})
                elif path.path.startswith("/v1/jobs/"):
                    self._answer(200, {"id": "j1", "state": "done", "progress": 1.0, "error": None})
                else:
                    self._answer(404, {"detail": "Not Found"})

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._record(body)
                self._answer(202, {"id": "j1", "state": "queued"})

            def do_DELETE(self) -> None:  # noqa: N802
                self._record()
                self._answer(200, {"id": "j1", "state": "cancelled", "progress": 0.0})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def got_token(self) -> bool:
        return any("Authorization" in r["headers"] or "authorization" in r["headers"] for r in self.requests)

    def got_picture(self) -> bool:
        return any(r["method"] == "POST" for r in self.requests)


def relay_to(real_url: str) -> Callable[[str], dict]:
    """A handoff answer that forwards the client's nonce to the real server and passes its proof on."""

    def answer(nonce: str) -> dict:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{real_url}/v1/handoff?nonce={nonce}", timeout=5) as response:
            return json.loads(response.read())

    return answer
