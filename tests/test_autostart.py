"""sdedit_client.autostart: the editors start the local server themselves (issue 16, item 1).

Real processes throughout: the installation is recorded as install.py records it (here with the test's
Python and the tiny model), `ensure_server` spawns the real `python -m sdedit serve`, and two "editors" are
two separate Python processes calling it at the same moment.
"""
from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sdedit_client import JobCancelled, ServerUnavailable
from sdedit_client.autostart import ensure_server, probe, server_environment, server_log_path, server_state_path
from sdedit_client.server_record import read_record, write_record
from test_server_support import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def install(tmp_path, monkeypatch, tiny_vp_dir):
    """A recorded installation (this Python, the tiny model as default) and a private cache folder."""
    cache = tmp_path / "cache"
    record = tmp_path / "config" / "server.json"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("SDEDIT_SERVER_RECORD", str(record))
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "server"), str(ROOT / "shared")]),
           "SDEDIT_DEFAULT_MODEL": str(tiny_vp_dir), "OMP_NUM_THREADS": "1", "SDEDIT_TOKEN": ""}
    write_record(sys.executable, root=str(ROOT), env=env, path=str(record))
    started = []
    yield {"record": record, "cache": cache, "started": started}
    for port in started:  # end the servers the tests started (by the pid ensure_server wrote down)
        _stop_started_server(port)


def _stop_started_server(port: int) -> None:
    try:
        pid = json.loads(Path(server_state_path(port)).read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child (the in-process calls)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


EDITOR = """
import json, sys
from sdedit_client.autostart import ensure_server
seen = []
started = ensure_server(sys.argv[1], on_status=lambda text, fraction: seen.append((text, fraction)), timeout=240)
print(json.dumps({"started": started, "seen": seen}))
"""


def test_record_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("SDEDIT_SERVER_RECORD", str(tmp_path / "sub" / "server.json"))
    path = write_record("/opt/venv/bin/python", root="/opt/sdedit")
    record = read_record()
    assert path == str(tmp_path / "sub" / "server.json")
    assert record["python"] == "/opt/venv/bin/python" and record["sdedit"] == "/opt/venv/bin/sdedit"
    assert record["env"] == {} and record["root"] == "/opt/sdedit"
    Path(path).write_text("{not json")
    with pytest.raises(ValueError, match="damaged"):
        read_record()


def test_install_py_records_the_venv(tmp_path, monkeypatch):
    """install.py's record_server writes what ensure_server reads (loaded as install.py loads it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("install_under_test", ROOT / "install.py")
    installer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installer)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("SDEDIT_SERVER_RECORD", raising=False)
    path = installer.record_server(tmp_path / "venv" / "bin" / "python")
    assert path == str(tmp_path / "cfg" / "sdedit" / "server.json")
    assert read_record(path)["python"] == str(tmp_path / "venv" / "bin" / "python")


@pytest.mark.slow
def test_two_editors_at_once_start_one_server(install):
    """Both calls find nothing, exactly one spawns `sdedit serve`; the other waits for it and reports False.
    The server outlives both (detached), and a later call finds it running."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    install["started"].append(port)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "shared"))
    editors = [subprocess.Popen([sys.executable, "-c", EDITOR, url], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    answers = []
    for editor in editors:
        out, err = editor.communicate(timeout=300)
        assert editor.returncode == 0, err
        answers.append(json.loads(out))
    assert sorted(a["started"] for a in answers) == [False, True]
    starter = next(a for a in answers if a["started"])
    texts = [text for text, _ in starter["seen"]]
    fractions = [fraction for _, fraction in starter["seen"]]
    assert texts[0] == "Starting the SDEdit server…" and texts[-1] == "The SDEdit server is ready."
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 <= fractions[0] < 1
    log = Path(server_log_path(port)).read_text()
    assert log.count("-m sdedit serve --host 127.0.0.1 --port %d" % port) == 1, log  # one spawn, not two
    assert probe(url) == "up"  # the editors' processes are gone; the server is not
    assert ensure_server(url) is False


def test_remote_url_is_never_started(install):
    """A URL that is not this computer is only probed: no process, no log, one sentence."""
    with pytest.raises(ServerUnavailable) as caught:
        ensure_server("http://192.0.2.7:8765", probe_timeout=0.5)
    message = str(caught.value)
    assert "not on this computer" in message and "192.0.2.7" in message and "\n" not in message
    assert not install["cache"].exists()  # no lock, no log: nothing was even prepared


def test_no_recorded_installation_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SDEDIT_SERVER_RECORD", str(tmp_path / "missing.json"))
    with pytest.raises(ServerUnavailable, match="no installation is recorded.*install.py"):
        ensure_server(f"http://127.0.0.1:{free_port()}")


def test_something_else_on_the_port_is_not_replaced(install):
    """An HTTP program that is not SDEdit answers on the port: say so, start nothing."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(ServerUnavailable, match="Something other than an SDEdit server"):
            ensure_server(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert not Path(server_log_path(server.server_address[1])).exists()


@pytest.mark.slow
def test_failed_start_is_one_sentence_with_the_logs_last_line(install):
    """The port is held by a socket that never answers HTTP: the spawned server cannot bind and exits; the
    error quotes the last line of its log."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(8)
        port = squatter.getsockname()[1]
        old_log = Path(server_log_path(port))
        old_log.parent.mkdir(parents=True, exist_ok=True)
        old_log.write_bytes(b"an old run\n" * 300_000)  # 3.3 MB: rotated to .1 before this start
        with pytest.raises(ServerUnavailable) as caught:
            ensure_server(f"http://127.0.0.1:{port}", timeout=180, probe_timeout=0.5)
    message = str(caught.value)
    last = [line for line in Path(server_log_path(port)).read_text().splitlines() if line.strip()][-1].strip()
    assert "already in use" in last
    assert Path(server_log_path(port) + ".1").stat().st_size > 3_000_000
    assert Path(server_log_path(port)).stat().st_size < 100_000
    assert message.startswith("The SDEdit server did not start") and message.endswith("'%s'." % last), message
    assert "\n" not in message and message.count(". ") == 0  # one sentence


@pytest.mark.slow
def test_cancel_ends_the_half_started_server(install):
    port = free_port()
    install["started"].append(port)
    begun = time.monotonic()
    with pytest.raises(JobCancelled):
        ensure_server(f"http://127.0.0.1:{port}", cancel=lambda: time.monotonic() - begun > 1.0)
    pid = json.loads(Path(server_state_path(port)).read_text())["pid"]
    assert not _alive(pid)
    assert probe(f"http://127.0.0.1:{port}") == "down"


def test_server_environment_drops_the_editors_python_setup():
    """Krita's AppImage runs plugins with its own PYTHONHOME/PYTHONPATH and library folder; the server's
    virtual environment must see none of them, but everything else (and the record's env) passes."""
    editor = {"PYTHONHOME": "/tmp/.mount_krita/usr", "PYTHONPATH": "/tmp/.mount_krita/usr/lib/krita-python-libs",
              "APPDIR": "/tmp/.mount_krita", "LD_LIBRARY_PATH": "/tmp/.mount_krita/usr/lib:/opt/cuda/lib64",
              "HOME": "/home/ann", "CUDA_VISIBLE_DEVICES": "0"}
    env = server_environment(editor, {"SDEDIT_MODELS_DIR": "/models"})
    assert "PYTHONHOME" not in env and "PYTHONPATH" not in env
    assert env["LD_LIBRARY_PATH"] == "/opt/cuda/lib64"
    assert env["HOME"] == "/home/ann" and env["CUDA_VISIBLE_DEVICES"] == "0" and env["SDEDIT_MODELS_DIR"] == "/models"
    only_appimage = server_environment(dict(editor, LD_LIBRARY_PATH="/tmp/.mount_krita/usr/lib"), {})
    assert "LD_LIBRARY_PATH" not in only_appimage
    outside = server_environment({"LD_LIBRARY_PATH": "/opt/lib"}, {})  # not in an AppImage: untouched
    assert outside["LD_LIBRARY_PATH"] == "/opt/lib"


@pytest.mark.slow
def test_a_started_server_killed_mid_job_is_reported_with_its_logs_last_line(install):
    """Issue 20, item 6: the server an editor started is killed while it runs a job. The job's error says the
    server stopped and quotes its log's last line (not "start it by running sdedit serve"); a server nobody
    started from here gets no stale log quoted, and a remote or running server is not called stopped."""
    from sdedit_client import Client, ServerStopped
    from sdedit_client.autostart import started_server, stopped_error
    from test_server_support import image_bytes, random_image

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    install["started"].append(port)
    assert ensure_server(url, timeout=240) is True
    started = started_server(url)
    assert started and started["url"] == url and _alive(int(started["pid"]))
    assert stopped_error(url, started) is None  # it answers: not stopped
    client = Client(url)
    failure = []

    def edit() -> None:
        try:
            client.run(image_bytes(random_image(48, 40, seed=1)), t0=1.0, steps=1000, samples=2)
        except ServerUnavailable as error:
            failure.append(error)

    thread = threading.Thread(target=edit)
    thread.start()
    time.sleep(3.0)  # the job is submitted and running (2 x 1000 steps take far longer)
    os.kill(int(started["pid"]), signal.SIGKILL)
    thread.join(60)
    assert failure and "sdedit serve" in str(failure[0])  # what the client alone can say
    assert started_server(url) is None  # the recorded process is gone
    error = stopped_error(url, started)
    assert isinstance(error, ServerStopped)
    last = [line for line in Path(server_log_path(port)).read_text().splitlines() if line.strip()][-1].strip()
    assert error.log_line == last
    assert str(error) == "The SDEdit server stopped during the edit; the last line of its log %s is: '%s'." % (
        server_log_path(port), last)
    assert str(stopped_error(url, None)) == "The SDEdit server at %s stopped during the edit." % url
    assert stopped_error("http://192.0.2.7:8765", started) is None  # not this computer: no such claim
