"""The server under load and attack: concurrent clients, bad inputs, stalled connections, memory (issue 12).

    .venv/bin/python benchmarks/server_load.py [--reference SRC_TREE] [--clients 20] [--stalled 150]
    .venv/bin/python benchmarks/server.py --load ...        (the same)

Starts a real `sdedit serve` on a free loopback port for this source tree and, with --reference, one for
another tree (e.g. `git archive <old commit> | tar -x -C /tmp/ref`), side by side in the same run, both with
a tiny random model (tests/tiny_models.py) as default, one torch thread, and at most 128 open files (as on
the machine where the issue was found). For each server:
  concurrent clients  N threads each submit a small edit, wait (long poll) and fetch it: done / failed, seconds
  bad inputs          each of a list of hostile or broken requests: answered 4xx with one short sentence?
  stalled connections S connections send half a request and stop; /v1/health latency while they are held,
                      how many the server closed after 4 s, log lines written meanwhile
  memory              peak RSS growth (Linux VmHWM, reset before each) with 6 large bodies posted at once,
                      and with 8 clients fetching a large result at once
  body trickle        as many connections as the server allows each declare a small body and send a byte
                      every 2 s (under the gap timer): is /v1/health answered while they are held, how many
                      are still open after 15 s (issue 22, item 3)
  slow-upload cancel  two 50 MiB uploads trickle; DELETE /v1/jobs/{id} without a body (what the client sends):
                      seconds to the answer (issue 22, item 2)
  fake-server hand-off `sdedit edit --samples 2` with $SDEDIT_TOKEN against an impostor on loopback that
                      answers health like ours and returns one 300x20 red PNG: did it get the token, the
                      picture, what was written (issue 22, item 1)
  huge flat PNG       a 4096x4096 flat PNG (~50 KB) for the embedded model with SDEDIT_MAX_JOB_MEMORY_MB=2048:
                      the answer, peak RSS growth within 20 s, and a 2048x2048 job cancelled in its detail
                      pass: seconds from DELETE to 'cancelled' (issue 22, items 4 and 5)
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
HEADER_TIMEOUT_S = 3  # the server's default is 10 s; shorter here to keep the run short
BODY_TIMEOUT_S = 5  # the default is 30 s (also the minimum-rate window): shorter here to keep the run short
MAX_JOB_MEMORY_MB = 2048  # the per-job memory limit (a tree without one ignores it)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """`sdedit serve` from source tree `src` with the tiny model, its log in a temporary file."""

    def __init__(self, name: str, src: Path, models: Path) -> None:
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix=f"sdedit-load-{name}-", suffix=".log")[1])
        env = dict(os.environ, PYTHONPATH=f"{src / 'server'}{os.pathsep}{src / 'shared'}", OMP_NUM_THREADS="1",
                   SDEDIT_MODELS_DIR=str(models), SDEDIT_DEFAULT_MODEL=str(models / "tiny-vp"),
                   SDEDIT_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S), PYTHONUNBUFFERED="1",
                   SDEDIT_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S), SDEDIT_MAX_JOB_MEMORY_MB=str(MAX_JOB_MEMORY_MB))
        env.pop("SDEDIT_TOKEN", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sdedit", "serve", "--port", str(self.port), "--device", "cpu"], env=env,
            stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT, cwd=str(src),
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)))

    def wait(self) -> "Served":
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name}: the server exited; its log: {self.log_path}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2, trust_env=False).status_code == 200:
                    return self._warm()
            except httpx.HTTPError:
                time.sleep(0.3)
        sys.exit(f"{self.name}: not ready; its log: {self.log_path}")

    def _warm(self) -> "Served":
        """One small job to the end: the model is loaded before anything is measured."""
        with httpx.Client(base_url=self.url, trust_env=False, timeout=300) as client:
            job = client.post("/v1/jobs", json={"image": b64(png_bytes(16, 0, 6)), "steps": 1}).json()["id"]
            while client.get(f"/v1/jobs/{job}", params={"wait": 30}).json()["state"] not in ("done", "failed"):
                pass
        return self

    def connection_cap(self) -> int:
        """The cap the server logged at start (at most N connections), else the file limit's share."""
        import re

        found = re.search(r"at most (\d+) connections", self.log_path.read_text(errors="replace"))
        return int(found.group(1)) if found else 64

    def log_lines(self) -> int:
        return len(self.log_path.read_bytes().splitlines())

    def status_kb(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def peak_growth(self, action: Callable[[], None]) -> float:
        """MiB the peak RSS grows over the current RSS while `action` runs."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        before = self.status_kb("VmRSS")
        action()
        return (self.status_kb("VmHWM") - before) / 1024

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def png_bytes(side: int, seed: int, level: int = 0) -> bytes:
    arr = np.random.RandomState(seed).randint(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", compress_level=level)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the four measures ----------------------------------------------------------------------------------------
def concurrent_clients(server: Served, n: int) -> Dict[str, float]:
    outcomes: List[str] = []

    def one(i: int) -> None:
        try:
            with httpx.Client(base_url=server.url, trust_env=False, timeout=300) as client:
                job = client.post("/v1/jobs", json={"image": b64(png_bytes(24 + i, i, 6)), "steps": 3, "seed": i})
                job.raise_for_status()
                job_id = job.json()["id"]
                while (state := client.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json()["state"]) not in (
                        "done", "failed", "cancelled"):
                    pass
                if state == "done":
                    client.get(f"/v1/jobs/{job_id}/result").raise_for_status()
                outcomes.append(state)
        except Exception as err:  # noqa: BLE001 - counted, not fatal
            outcomes.append(type(err).__name__)

    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"done": outcomes.count("done"), "not done": n - outcomes.count("done"),
            "seconds": time.monotonic() - started}


def bad_inputs(server: Served) -> Dict[str, object]:
    good = b64(png_bytes(20, 0, 6))
    flat = io.BytesIO()
    Image.new("RGB", (4096, 4096), (90, 120, 200)).save(flat, "PNG")  # a real 4096x4096 picture, 50 kB
    huge = b64(flat.getvalue())
    json_ct = {"Content-Type": "application/json"}
    cases = [
        ("Host rebinding", "GET", "/v1/models", None, {"Host": "evil.example"}),
        ("Origin of another site", "POST", "/v1/jobs", {"image": good, "steps": 1}, {"Origin": "http://evil.example"}),
        ("JSON as text/plain", "POST", "/v1/jobs", ('{"image": "%s"}' % good).encode(), {"Content-Type": "text/plain"}),
        ("JSON without Content-Type", "POST", "/v1/jobs", ('{"image": "%s"}' % good).encode(), {}),
        ("4300-digit seed", "POST", "/v1/jobs", ('{"image": "%s", "seed": %s}' % (good, "9" * 4300)).encode(), json_ct),
        ("4302-digit number", "POST", "/v1/jobs", ('{"image": "%s", "seed": %s}' % (good, "9" * 4302)).encode(), json_ct),
        ("JSON 100000 deep", "POST", "/v1/jobs", ("[" * 100000 + "]" * 100000).encode(), json_ct),
        ("not base64", "POST", "/v1/jobs", {"image": "not base64!"}, {}),
        ("GIF image", "POST", "/v1/jobs", {"image": b64(_gif())}, {}),
        ("pixel bomb 30000^2", "POST", "/v1/jobs", {"image": b64(_png_header_only(30000, 30000))}, {}),
        ("days of work (4096^2 x16 x1000)", "POST", "/v1/jobs",
         {"image": huge, "t0": 1.0, "steps": 1000, "samples": 16, "model": "landscape"}, {}),
        ("t0 out of range", "POST", "/v1/jobs", {"image": good, "t0": 2}, {}),
        ("unknown model / a path", "POST", "/v1/jobs", {"image": good, "model": "/etc/passwd"}, {}),
        ("body over the size limit", "POST", "/v1/jobs", b"{" + b" " * (97 * 2**20) + b"}", json_ct),
        ("invalid UTF-8", "POST", "/v1/jobs", b"\xff\xfe", json_ct),
        ("unknown job", "GET", "/v1/jobs/nope/result", None, {}),
    ]
    rows = []
    for name, method, path, body, headers in cases:
        started = time.monotonic()
        try:
            kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
            answer = httpx.request(method, server.url + path, headers=headers, timeout=30, trust_env=False, **kwargs)
            if answer.status_code == 202:  # accepted what it should have refused: do not leave it running
                httpx.delete(f"{server.url}/v1/jobs/{answer.json()['id']}", timeout=30, trust_env=False)
            detail = _detail(answer)
            good_refusal = 400 <= answer.status_code < 500 and _one_sentence(detail)
            rows.append((name, answer.status_code, good_refusal, time.monotonic() - started, detail))
        except httpx.HTTPError as err:
            rows.append((name, type(err).__name__, False, time.monotonic() - started, ""))
    job_error = _bad_checkpoint_job(server, good)
    rows.append(("job on a bad .ckpt", "failed", _one_sentence(job_error) and "/" not in job_error, 0.0, job_error))
    return {"rows": rows, "refused well": sum(1 for r in rows if r[2]), "tried": len(rows)}


def stalled_connections(server: Served, count: int) -> Dict[str, object]:
    lines_before = server.log_lines()
    socks = []
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=3)
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(sock)
        except OSError:
            break
    latencies = []
    for _ in range(5):
        started = time.monotonic()
        try:
            ok = httpx.get(server.url + "/v1/health", timeout=3, trust_env=False).status_code == 200
        except httpx.HTTPError:
            ok = False
        latencies.append(time.monotonic() - started if ok else float("inf"))
        time.sleep(0.2)
    time.sleep(HEADER_TIMEOUT_S + 1.0)
    still_open = sum(1 for sock in socks if not _closed(sock))
    for sock in socks:
        sock.close()
    time.sleep(0.5)
    return {"held": len(socks), "health answered": sum(1 for x in latencies if x != float("inf")),
            "health max s": max(latencies), "still open after 4 s": still_open,
            "log lines": server.log_lines() - lines_before}


def memory(server: Served, big_png: bytes) -> Dict[str, float]:
    truncated = big_png[:-4096]  # every check and the full decode run, then 422: nothing is queued
    body = ('{"image": "%s", "steps": 1}' % b64(truncated)).encode()

    def post_six() -> None:
        _together(6, lambda: httpx.post(server.url + "/v1/jobs", content=body, timeout=300, trust_env=False,
                                        headers={"Content-Type": "application/json"}))

    bodies = server.peak_growth(post_six)
    # one large result (a 3000x3000 noise picture, a 64x64 corner edited), fetched by 8 clients at once
    with httpx.Client(base_url=server.url, trust_env=False, timeout=600) as client:
        side = Image.open(io.BytesIO(big_png)).width
        mask = Image.new("L", (side, side), 0)
        mask.paste(255, (0, 0, 64, 64))  # a small edit: the kept noise makes the result PNG as big as the input
        mask_buf = io.BytesIO()
        mask.save(mask_buf, "PNG")
        job = client.post("/v1/jobs", json={"image": b64(big_png), "mask": b64(mask_buf.getvalue()), "steps": 1,
                                            "seed": 1}).json()["id"]
        while client.get(f"/v1/jobs/{job}", params={"wait": 30}).json()["state"] not in ("done", "failed"):
            pass
        sizes: List[int] = []

        def fetch() -> None:
            with httpx.stream("GET", f"{server.url}/v1/jobs/{job}/result", timeout=600, trust_env=False) as answer:
                sizes.append(sum(len(chunk) for chunk in answer.iter_bytes()))

        results = server.peak_growth(lambda: _together(8, fetch))
    return {"body MiB": len(body) / 2**20, "6 bodies: peak growth MiB": bodies,
            "result MiB": (sizes[0] if sizes else 0) / 2**20, "8 result fetches: peak growth MiB": results}


def _upload(server: "Served", declared: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall((f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {declared}\r\n\r\n{{").encode())
    return sock


def _trickle(socks: List[socket.socket], seconds: float, every: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and socks:
        for sock in list(socks):
            try:
                sock.sendall(b" ")
            except OSError:
                socks.remove(sock)
        time.sleep(every)


def body_trickle(server: "Served") -> Dict[str, object]:
    cap = server.connection_cap()
    socks = []
    for _ in range(cap):
        try:
            socks.append(_upload(server, 4000))
        except OSError:
            break
    _trickle(list(socks), 1.0, 0.5)
    answered = 0
    for _ in range(3):
        try:
            answered += httpx.get(server.url + "/v1/health", timeout=3, trust_env=False).status_code == 200
        except httpx.HTTPError:
            pass
    live = list(socks)
    _trickle(live, 15.0, 2.0)
    for sock in socks:
        sock.close()
    time.sleep(0.5)
    return {"held": len(socks), "health answered (of 3)": answered, "still open after 15 s": len(live)}


def slow_upload_cancel(server: "Served") -> Dict[str, object]:
    uploads = [_upload(server, 50 * 2**20) for _ in range(2)]
    _trickle(list(uploads), 1.0, 0.5)
    # they keep trickling (a byte a second, under the gap timer) while the job is cancelled
    keep = threading.Thread(target=_trickle, args=(list(uploads), 25.0, 1.0), daemon=True)
    keep.start()
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
        job = client.post("/v1/jobs", json={"image": b64(png_bytes(96, 3)), "t0": 1.0, "sde": "vp", "steps": 1000,
                                            "samples": 4}).json()["id"]
        started = time.monotonic()
        try:
            answer = httpx.request("DELETE", f"{server.url}/v1/jobs/{job}", timeout=20, trust_env=False)
            state = answer.json().get("state", answer.status_code)
        except httpx.HTTPError as error:
            state = type(error).__name__
        seconds = time.monotonic() - started
    for sock in uploads:
        sock.close()
    keep.join()
    return {"DELETE answered in s": seconds, "job state": state}


def fake_handoff(server: "Served", src: Path, models: Path) -> Dict[str, object]:
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_sdedit_server import FakeServer

    with tempfile.TemporaryDirectory() as tmp:
        guide = Path(tmp) / "in.png"
        Image.fromarray(np.random.RandomState(3).randint(0, 256, (64, 64, 3), np.uint8)).save(guide)
        env = dict(os.environ, PYTHONPATH=f"{src / 'server'}{os.pathsep}{src / 'shared'}", OMP_NUM_THREADS="1",
                   SDEDIT_MODELS_DIR=str(models), SDEDIT_TOKEN="user-token-123")
        env.pop("SDEDIT_DEFAULT_MODEL", None)
        with FakeServer() as fake:
            env["SDEDIT_SERVER_URL"] = fake.url
            run = subprocess.run([sys.executable, "-m", "sdedit", "edit", str(guide), "--model", "tiny-vp", "--steps",
                                  "2", "--seed", "7", "--samples", "2", "-o", str(Path(tmp) / "out.png")],
                                 capture_output=True, text=True, env=env, timeout=600, cwd=tmp)
        written = []
        for k in range(2):
            path = Path(tmp) / f"out-{k}.png"
            if path.exists():
                with Image.open(path) as img:
                    written.append(f"{img.width}x{img.height}")
            else:
                written.append("missing")
        real_before = server.log_path.read_text(errors="replace").count("state=done")
        env["SDEDIT_SERVER_URL"] = server.url
        real = subprocess.run([sys.executable, "-m", "sdedit", "edit", str(guide), "--model", "tiny-vp", "--steps",
                               "2", "--seed", "7", "-o", str(Path(tmp) / "real.png")],
                              capture_output=True, text=True, env=env, timeout=600, cwd=tmp)
        handed = server.log_path.read_text(errors="replace").count("state=done") > real_before
    return {"impostor got the token": fake.got_token(), "impostor got the picture": fake.got_picture(),
            "exit code": run.returncode, "files written": " ".join(written),
            "real server still gets the job": handed and real.returncode == 0}


def huge_flat_png(server: "Served") -> Dict[str, object]:
    flat = io.BytesIO()
    Image.new("RGB", (4096, 4096), (90, 120, 200)).save(flat, "PNG")
    out: Dict[str, object] = {"4096 flat PNG KB": len(flat.getvalue()) / 1024}
    with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as client:
        def submit_and_hold() -> None:
            answer = client.post("/v1/jobs", json={"image": b64(flat.getvalue()), "model": "landscape", "seed": 1})
            out["4096: answer"] = answer.status_code
            if answer.status_code == 202:
                job = answer.json()["id"]
                time.sleep(20)
                client.delete(f"/v1/jobs/{job}")
                _until_final(client, job, 120)

        out["4096: peak growth MiB (20 s)"] = server.peak_growth(submit_and_hold)
        mid = io.BytesIO()
        Image.fromarray(np.random.RandomState(5).randint(0, 256, (2048, 2048, 3), np.uint8)).save(mid, "PNG")
        answer = client.post("/v1/jobs", json={"image": b64(mid.getvalue()), "model": "landscape", "seed": 1})
        if answer.status_code != 202:
            out["2048: cancel in detail pass s"] = f"HTTP {answer.status_code}"
            return out
        job = answer.json()["id"]
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and client.get(f"/v1/jobs/{job}").json()["progress"] < 0.9:
            time.sleep(0.2)
        started = time.monotonic()
        client.delete(f"/v1/jobs/{job}")
        state = _until_final(client, job, 300)
        out["2048: cancel in detail pass s"] = time.monotonic() - started
        out["2048: state"] = state
    return out


def _until_final(client: httpx.Client, job: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    state = "?"
    while time.monotonic() < deadline:
        state = client.get(f"/v1/jobs/{job}").json()["state"]
        if state in ("done", "failed", "cancelled"):
            break
        time.sleep(0.05)
    return state


# -- helpers --------------------------------------------------------------------------------------------------
def _together(n: int, action: Callable[[], object]) -> None:
    threads = [threading.Thread(target=lambda: _quiet(action)) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _quiet(action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - what the server did is measured, not the client's luck
        pass


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        while sock.recv(4096):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail", "")
        return detail if isinstance(detail, str) else json.dumps(detail)
    except (ValueError, AttributeError):
        return answer.text[:300]


def _one_sentence(text: str) -> bool:
    return bool(text) and "\n" not in text and len(text) <= 300 and "Traceback" not in text \
        and "weights_only" not in text


def _bad_checkpoint_job(server: Served, good: str) -> str:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as client:
        job = client.post("/v1/jobs", json={"image": good, "model": "bad", "steps": 1})
        if job.status_code != 202:
            return _detail(job)
        job_id = job.json()["id"]
        while (status := client.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json())["state"] not in (
                "done", "failed"):
            pass
        return status.get("error") or ""


def _png_header_only(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "GIF")
    return buf.getvalue()


def make_models(folder: Path) -> Path:
    import pickle

    from bench import use_tests

    use_tests()
    from tiny_models import make_vp_folder

    make_vp_folder(folder / "tiny-vp")
    (folder / "bad.ckpt").write_bytes(pickle.dumps({"state_dict": os.system}))
    (folder / "bad.json").write_text('{"resolution": 32}')
    return folder


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=None, help="another source tree to run side by side")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--stalled", type=int, default=150)
    ap.add_argument("--big", type=int, default=3000, help="side of the large image (noise PNG, level 0)")
    ap.add_argument("--skip-huge", action="store_true", help="leave out the 4096/2048 px cases (minutes on CPU)")
    ap.add_argument("--only-new", action="store_true", help="only the issue 22 cases (trickle, cancel, hand-off, huge)")
    a = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        models = make_models(Path(tmp))
        trees = {"this tree": ROOT, **({"reference": a.reference.resolve()} if a.reference else {})}
        servers = {name: Served(name.replace(" ", "-"), src, models) for name, src in trees.items()}
        big_png = png_bytes(a.big, 7)
        results: Dict[str, Dict[str, object]] = {}
        try:
            for name, server in servers.items():
                server.wait()
            for name, server in servers.items():
                results[name] = {"_bad_rows": []}
                if not a.only_new:
                    results[name].update({f"clients: {k}": v
                                          for k, v in concurrent_clients(server, a.clients).items()})
                    bad = bad_inputs(server)
                    results[name]["bad inputs refused with one sentence"] = f"{bad['refused well']} / {bad['tried']}"
                    results[name]["_bad_rows"] = bad["rows"]
                    results[name].update({f"stalled: {k}": v
                                          for k, v in stalled_connections(server, a.stalled).items()})
                    results[name].update({f"memory: {k}": v for k, v in memory(server, big_png).items()})
                results[name].update({f"trickle: {k}": v for k, v in body_trickle(server).items()})
                results[name].update({f"slow uploads: {k}": v for k, v in slow_upload_cancel(server).items()})
                results[name].update({f"hand-off: {k}": v
                                      for k, v in fake_handoff(server, trees[name], models).items()})
                if not a.skip_huge:
                    results[name].update({f"huge: {k}": v for k, v in huge_flat_png(server).items()})
        finally:
            for server in servers.values():
                server.stop()

    names = list(results)
    print(f"machine: {os.cpu_count()} CPUs; servers: {', '.join(f'{n} ({trees[n]})' for n in names)}; "
          f"{a.clients} clients, {a.stalled} stalled connections, 128 open files, header deadline {HEADER_TIMEOUT_S} s, "
          f"body timeout {BODY_TIMEOUT_S} s, job memory limit {MAX_JOB_MEMORY_MB} MiB; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
    print()
    print(f"{'measure':<46}" + "".join(f"{n:>18}" for n in names))
    print("-" * (46 + 18 * len(names)))
    for key in results[names[0]]:
        if key.startswith("_"):
            continue
        print(f"{key:<46}" + "".join(f"{_fmt(results[n].get(key)):>18}" for n in names))
    for name in names:
        if not results[name]["_bad_rows"]:
            continue
        print()
        print(f"bad inputs, {name}:")
        for case, status, ok, seconds, detail in results[name]["_bad_rows"]:
            print(f"  {'ok ' if ok else 'BAD'} {case:<34} {status!s:>5} {seconds * 1000:6.0f} ms  {detail[:110]}")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "inf" if value == float("inf") else f"{value:.2f}"
    return str(value)


if __name__ == "__main__":
    main()
