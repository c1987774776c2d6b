"""A fake Hugging Face Hub and a plain static file server on loopback, for the download tests (no internet here).

The Hub part answers what huggingface_hub asks (`GET /api/models/{repo}[/revision/{rev}]?blobs=true`: the file
list with sizes, git blob ids and LFS SHA-256s) and serves `/{repo}/resolve/{rev}/{path}` with the Hub's
headers (X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size). The static part serves `/files/{name}`. Both honour
HTTP Range, can drop the connection part-way through a response (`drops`), and record every request.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.files: dict[str, bytes] = {}
        self.digest_files: set[str] = set()  # static files served with a Repr-Digest header
        self.lie_sha256: dict[str, str] = {}  # path -> the (wrong) SHA-256 the Hub claims
        self.drops: list[int] = []  # each GET of a file takes the next: close the connection after that many bytes
        self.throttle = 0.0  # seconds between 4 KiB pieces of a body (a slow download, to cancel)
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeHub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_repo_folder(self, repo: str, folder: Path) -> None:
        self.repos[repo] = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
                            if p.is_file()}

    def ranges(self, path_part: str) -> list[str | None]:
        return [r for m, p, r in self.requests if m == "GET" and path_part in p]

    # -- the handler ---------------------------------------------------------------------------------------
    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_GET(self) -> None:
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                with hub.lock:
                    hub.requests.append((self.command, path, self.headers.get("Range")))
                m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?$", path)
                if m:
                    return self._api(m.group(1))
                m = re.match(r"^/([^/]+/[^/]+)/resolve/[^/]+/(.+)$", path)
                if m:
                    repo, rpath = m.groups()
                    data = hub.repos.get(repo, {}).get(rpath)
                    if data is None:
                        return self._json({"error": "Entry not found"}, 404, {"X-Error-Code": "EntryNotFound"})
                    extra = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
                    if rpath.endswith(LFS_SUFFIXES):
                        extra["X-Linked-Etag"] = f'"{hashlib.sha256(data).hexdigest()}"'
                        extra["X-Linked-Size"] = str(len(data))
                    return self._send(data, head, extra)
                m = re.match(r"^/files/(.+)$", path)
                if m and m.group(1) in hub.files:
                    data = hub.files[m.group(1)]
                    extra = {}
                    if m.group(1) in hub.digest_files:
                        extra["Repr-Digest"] = "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
                    return self._send(data, head, extra)
                self._json({"error": "not found"}, 404)

            def _api(self, repo: str) -> None:
                files = hub.repos.get(repo)
                if files is None:
                    return self._json({"error": "Repository not found"}, 404, {"X-Error-Code": "RepoNotFound"})
                siblings = []
                for name, data in files.items():
                    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                    entry = {"rfilename": name, "size": len(data), "blobId": blob}
                    if name.endswith(LFS_SUFFIXES):
                        sha = hub.lie_sha256.get(name) or hashlib.sha256(data).hexdigest()
                        entry["lfs"] = {"size": len(data), "sha256": sha, "pointerSize": 134}
                    siblings.append(entry)
                self._json({"id": repo, "modelId": repo, "sha": COMMIT, "private": False, "siblings": siblings})

            def _json(self, obj, status: int = 200, extra: dict | None = None) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _send(self, data: bytes, head: bool, extra: dict) -> None:
                start = 0
                rng = self.headers.get("Range")
                m = re.match(r"bytes=(\d+)-$", rng or "")
                if m and int(m.group(1)) < len(data):
                    start = int(m.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                elif m:
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                if head:
                    return
                drop = None
                with hub.lock:
                    if hub.drops:
                        drop = hub.drops.pop(0)
                if drop is None and hub.throttle:
                    for i in range(0, len(body), 4096):
                        self.wfile.write(body[i:i + 4096])
                        self.wfile.flush()
                        time.sleep(hub.throttle)
                    return
                if drop is None:
                    self.wfile.write(body)
                    return
                self.wfile.write(body[:drop])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # cut mid-body: the client sees fewer bytes than Content-Length

        return Handler
