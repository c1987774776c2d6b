"""The GIMP plug-in's watchdog: GIMP's Cancel kills the plug-in, and the watchdog then cancels the job.

A small stdlib HTTP server stands in for the SDEdit server's DELETE endpoint (the watchdog's only call), and
a separate Python process plays the plug-in: it starts the watchdog and is then killed the way GIMP kills a
cancelled plug-in (SIGKILL), or finishes normally.
"""
from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR = REPO / "gimp_plugin" / "sdedit"
CLIENT_DIR = REPO / "shared"

pytestmark = pytest.mark.skipif(os.name != "posix", reason="kills a process with SIGKILL")


@pytest.fixture
def recorder():
    """An HTTP server on loopback recording DELETE paths."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_DELETE(self):  # noqa: N802
            seen.append(self.path)
            body = b'{"id": "x", "state": "cancelled"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1], seen
    server.shutdown()
    server.server_close()


def plugin_stand_in(url: str, job: str, then: str) -> subprocess.Popen:
    code = (
        "import sys, time; sys.path[:0] = [%r, %r]\n"
        "from sdedit_gimp import watchdog\n"
        "w = watchdog.start(%r, %r, %r)\n"
        "print(w.pid, flush=True)\n"
        "if %r == 'release':\n"
        "    w.release()\n"
        "else:\n"
        "    time.sleep(120)\n" % (str(PLUGIN_DIR), str(CLIENT_DIR), url, job, str(CLIENT_DIR), then))
    # Its own process group, as GIMP gives a plug-in: GIMP then kills the whole group.
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_killed_plugin_cancels_its_job(recorder):
    url, seen = recorder
    plugin = plugin_stand_in(url, "job-42", "sleep")
    watchdog_pid = int(plugin.stdout.readline())
    os.killpg(plugin.pid, signal.SIGKILL)  # what GIMP does when the user presses Cancel
    plugin.wait(timeout=10)
    deadline = time.monotonic() + 15
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen == ["/v1/jobs/job-42"]
    assert gone(watchdog_pid, 10), "the watchdog outlived its job"


def test_released_watchdog_leaves_the_job_alone(recorder):
    url, seen = recorder
    plugin = plugin_stand_in(url, "job-7", "release")
    watchdog_pid = int(plugin.stdout.readline())
    assert plugin.wait(timeout=15) == 0
    assert gone(watchdog_pid, 10)
    time.sleep(0.2)
    assert seen == []


def test_unstartable_watchdog_is_inert(monkeypatch):
    sys.path.append(str(PLUGIN_DIR))
    from sdedit_gimp import watchdog

    monkeypatch.setattr(watchdog.sys, "executable", "/nonexistent/python")
    dog = watchdog.start("http://127.0.0.1:1", "job", str(CLIENT_DIR))
    assert dog.pid is None
    dog.release()  # no error
