"""GIMP 3 end to end: the real plug-in in real GIMP (headless) against the real server with a tiny model.

GIMP runs in a Debian trixie root (see gimproot.py); the server runs here on a free loopback port. The
batch script (gimp_batch_edit.py) creates images with strokes and a selection, calls plug-in-sdedit
non-interactively and reports the layers and pixel statistics; this side asserts on them.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gimproot  # noqa: E402

sys.path.append(str(gimproot.REPO / "gimp_plugin"))
from install_gimp import install  # noqa: E402

pytestmark = pytest.mark.e2e

GIMP_TIMEOUT_S = 600
SERVER_START_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gimp_root() -> Path:
    try:
        return gimproot.ensure_root()
    except gimproot.RootUnavailable as why:
        print("GIMP e2e skipped: %s" % why)
        pytest.skip("GIMP 3 root unavailable: %s" % why)


@pytest.fixture(scope="module")
def server(tiny_vp_dir, tmp_path_factory):
    """`sdedit serve` on a free loopback port with the tiny random model as its default."""
    port = free_port()
    log = tmp_path_factory.mktemp("gimp-server") / "server.log"
    env = dict(os.environ, SDEDIT_DEFAULT_MODEL=str(tiny_vp_dir), PYTHONPATH=os.pathsep.join(
        [str(gimproot.REPO / "server"), str(gimproot.REPO / "shared")]))
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sdedit", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--device", "cpu"], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + SERVER_START_S
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/v1/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the server did not start: %s" % log.read_text()[-2000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def gimp_report(gimp_root, server):
    """Install the plug-in into a fresh GIMP profile inside the root, run the batch script, read its report."""
    work = Path(tempfile.mkdtemp(prefix="sdedit-e2e-", dir=gimp_root / "tmp"))
    inside = "/" + str(work.relative_to(gimp_root))
    try:
        home = work / "home"
        install(str(home / ".config" / "GIMP" / "3.0" / "plug-ins"))
        shutil.copy(Path(__file__).with_name("gimp_batch_edit.py"), work / "batch.py")
        (work / "params.json").write_text(json.dumps({
            "server_url": server, "dead_url": "http://127.0.0.1:%d" % free_port(),
            "report": inside + "/report.json", "cancel_marker": inside + "/cancel-started"}))
        code = "SDEDIT_E2E_PARAMS=%r; exec(open(%r).read())" % (inside + "/params.json", inside + "/batch.py")
        log = work / "gimp.log"
        started = time.monotonic()
        gimp = gimproot.start_gimp_batch(gimp_root, inside + "/home", code, log)
        killed = kill_plugin_during_last_case(gimp, work / "cancel-started")
        try:
            rc = gimp.wait(timeout=max(1.0, GIMP_TIMEOUT_S - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            gimp.kill()
            pytest.fail("GIMP did not finish within %d s; its output ends:\n%s"
                        % (GIMP_TIMEOUT_S, log.read_text()[-3000:]))
        print("GIMP batch run: %.1f s, exit %d" % (time.monotonic() - started, rc))
        report_file = work / "report.json"
        if not report_file.exists():
            pytest.fail("GIMP wrote no report (exit %d); its output ends:\n%s" % (rc, log.read_text()[-3000:]))
        report = json.loads(report_file.read_text())
        assert report["ok"], report.get("traceback")
        cases = {case["case"]: case for case in report["cases"]}
        cases["killed"]["watchdog"] = killed
        yield cases
    finally:
        shutil.rmtree(work, ignore_errors=True)


def kill_plugin_during_last_case(gimp: subprocess.Popen, marker: Path) -> dict:
    """Once the batch script reaches its last case, wait for the plug-in's watchdog (the job is on the
    server), then kill the plug-in as GIMP's Cancel would. Returns what was found: job id, server URL."""
    found: dict = {}
    deadline = time.monotonic() + GIMP_TIMEOUT_S
    while gimp.poll() is None and time.monotonic() < deadline:
        if marker.exists():
            seen = gimproot.find_watchdog()
            if seen:
                plugin_pid, url, job = seen
                gimproot.kill_like_gimp_cancel(plugin_pid)
                found = {"job": job, "url": url}
                break
        time.sleep(0.05)
    return found


def job_state(url: str, job: str) -> str:
    with urllib.request.urlopen("%s/v1/jobs/%s" % (url, job), timeout=5) as answer:
        return json.loads(answer.read())["state"]


def test_selection_edit_adds_k_layers_above_source(gimp_report):
    case = gimp_report["selection"]
    assert case["status"] == "success", case["error"]
    new = case["new_layers"]
    assert len(new) == 2
    assert [layer["name"] for layer in new] == ["SDEdit t0=0.60 VP #1 seed=123", "SDEdit t0=0.60 VP #2 seed=124"]
    # Directly above the source, first result on top, same place and size as the source.
    assert [layer["position"] for layer in new] == [0, 1]
    assert case["source"]["position"] == 2
    for layer in new:
        assert layer["offsets"] == case["source"]["offsets"] == [8, 6]
        assert layer["size"] == case["source"]["size"] == [64, 48]
        assert layer["parent"] is None


def test_selection_edit_keeps_outside_and_changes_inside(gimp_report):
    case = gimp_report["selection"]
    assert case["checks"], "no result layers to check"
    for stats in case["checks"]:
        # Selection x 0..40, y 20..50 on a layer at (8, 6) sized 64x48: 32x30 selected pixels.
        assert stats["inside"] == 32 * 30
        assert stats["outside"] == 64 * 48 - 32 * 30
        assert stats["outside_equal"] == stats["outside"], "pixels outside the selection changed"
        assert stats["inside_changed"] >= 0.5 * stats["inside"], "the selected area barely changed"
        assert stats["inside_abs_diff"] / stats["inside"] > 10  # mean |diff| summed over RGB, 0..765


def test_no_server_gives_one_clear_error_and_no_layers(gimp_report):
    case = gimp_report["no-server"]
    assert case["status"] == "execution-error"
    assert case["new_layers"] == []
    error = case["error"] or ""
    assert "Cannot reach the SDEdit server" in error and "sdedit serve" in error
    assert "Traceback" not in error and "\n" not in error.strip()


def test_high_precision_image_whole_layer(gimp_report):
    case = gimp_report["u16-whole-layer"]
    assert case["status"] == "success", case["error"]
    assert case["precision"] == "u16-non-linear"
    assert [layer["name"] for layer in case["new_layers"]] == ["SDEdit t0=0.50 VE #1 seed=7"]
    stats = case["checks"][0]
    assert stats["inside"] == 40 * 30  # no selection: the whole layer is the edit area
    assert stats["inside_changed"] >= 0.5 * stats["inside"]


def test_killed_plugin_cancels_the_server_job_and_adds_nothing(gimp_report, server):
    case = gimp_report["killed"]
    assert case["watchdog"].get("job"), "the plug-in never started its watchdog during the job"
    assert case["watchdog"]["url"] == server
    assert case["status"] != "success"
    assert case["new_layers"] == []
    deadline = time.monotonic() + 30
    state = job_state(server, case["watchdog"]["job"])
    while state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        state = job_state(server, case["watchdog"]["job"])
    assert state == "cancelled"
