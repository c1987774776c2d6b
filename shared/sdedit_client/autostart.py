"""Start the local SDEdit server from the editor when nothing answers (standard library only).

    from sdedit_client.autostart import ensure_server
    started = ensure_server(url, on_status=lambda text, fraction: ..., cancel=lambda: user_pressed_cancel)

Only a server on this computer (127.0.0.1, localhost, ::1) is ever started, from the installation that
install.py recorded (see :mod:`sdedit_client.server_record`), as a detached process that outlives the
editor, logging to a file in the user's cache folder. A lock file makes two editors that start at the same
moment share one server: the second waits for the first one's server instead of spawning its own.
Blocking: call it off the GUI thread.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from typing import Callable, Dict, Mapping, Optional

from .client import _is_loopback, normalize_url
from .errors import JobCancelled, ServerStopped, ServerUnavailable
from .server_record import cache_dir, private_dir, private_file, read_record, record_path

StatusCallback = Callable[[str, float], None]
CancelCheck = Callable[[], bool]

STARTING = "Starting the SDEdit server…"
WAITING = "Waiting for the SDEdit server another editor is starting…"
READY = "The SDEdit server is ready."
EXPECTED_START_S = 30.0  # progress-bar guess for the very first start; later starts use the last one's time
POLL_S = 0.25
LOG_ROTATE_BYTES = 2 * 1024 * 1024
# Variables an editor sets for its own embedded Python that would break the server's virtual environment.
_EDITOR_PYTHON_VARS = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__")


def ensure_server(url: str, on_status: Optional[StatusCallback] = None, timeout: float = 120.0,
                  cancel: Optional[CancelCheck] = None, *, probe_timeout: float = 2.0,
                  record: Optional[str] = None) -> bool:
    """Make sure an SDEdit server answers at ``url``.

    Returns False when one already answers (nothing was started, or another editor started it meanwhile),
    True when this call started one and it now answers ``/v1/health``. ``on_status(text, fraction)`` gets
    "Starting the SDEdit server…" and a fraction in [0, 1] while it waits; ``cancel()`` turning true stops
    the start (the half-started server is ended) with :class:`JobCancelled`. Every failure is a
    :class:`ServerUnavailable` with one sentence (a failed start quotes the last line of the server's log).
    ``record`` is the install record's path (default :func:`server_record.record_path`).
    """
    base = normalize_url(url)
    parts = urllib.parse.urlsplit(base)
    state = probe(base, probe_timeout)
    if state == "up":
        return False
    if not _is_loopback(parts.hostname):
        raise ServerUnavailable("The SDEdit server at %s does not answer, and it is not on this computer, so it "
                                "cannot be started from here: start it on that machine or correct the server URL."
                                % base)
    if state == "foreign":
        raise ServerUnavailable("Something other than an SDEdit server answers at %s: put another port in the "
                                "server URL." % base)
    if parts.scheme != "http":
        raise ServerUnavailable("The local SDEdit server speaks plain http, not %s: change the server URL to "
                                "http://%s." % (parts.scheme, parts.netloc))
    port = parts.port or 80
    python, env = _installation(record)
    deadline = time.monotonic() + max(1.0, float(timeout))
    report = on_status or (lambda text, fraction: None)
    lock = _StartLock(os.path.join(cache_dir(), "server-%d.lock" % port))
    while not lock.try_acquire():  # another editor is starting it: wait for that server, never spawn a second
        _check_cancel(cancel)
        if probe(base, probe_timeout) == "up":
            report(READY, 1.0)
            return False
        if time.monotonic() > deadline:
            raise ServerUnavailable("Another program has been starting the SDEdit server for over %g s and it still "
                                    "does not answer at %s; see its log %s." % (timeout, base, server_log_path(port)))
        report(WAITING, 0.0)
        time.sleep(POLL_S)
    try:
        if probe(base, probe_timeout) == "up":  # started by another editor just before we got the lock
            return False
        host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
        return _start_and_wait(base, host, port, python, env, deadline, timeout, probe_timeout, report, cancel)
    finally:
        lock.release()


def probe(base_url: str, timeout: float = 2.0) -> str:
    """"up" (an SDEdit server answers /v1/health), "foreign" (something else answers) or "down"."""
    host = urllib.parse.urlsplit(base_url).hostname
    opener = urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if _is_loopback(host) else []))
    try:
        with opener.open(base_url + "/v1/health", timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError:
        return "foreign"
    except (urllib.error.URLError, HTTPException, OSError, ValueError):
        return "down"
    try:
        answer = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "foreign"
    return "up" if isinstance(answer, dict) and answer.get("status") == "ok" else "foreign"


def server_log_path(port: int) -> str:
    """The log file of the server this module starts on ``port``."""
    return os.path.join(cache_dir(), "server-%d.log" % port)


def server_state_path(port: int) -> str:
    """A small JSON file about the last server started on ``port``: its process id, URL and log."""
    return os.path.join(cache_dir(), "server-%d.json" % port)


def last_log_line(path: str) -> str:
    """The last non-empty line of a log file ("" when there is none)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# -- a server that stopped mid-job -------------------------------------------------------------------------
def started_server(url: str) -> Optional[Dict]:
    """What :func:`ensure_server` recorded about the server it started for ``url`` (pid, url, log), when that
    process is still running; None when no editor started the server that answers there now."""
    try:
        base = normalize_url(url)
    except ValueError:  # InvalidParameter: no URL to speak of
        return None
    port = urllib.parse.urlsplit(base).port or 80
    try:
        with open(server_state_path(port), "r", encoding="utf-8") as handle:
            state = json.load(handle)
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if state.get("url") != base or not _running(pid):
        return None
    return state


def stopped_error(url: str, started: Optional[Dict]) -> Optional[ServerStopped]:
    """Why a job's local server no longer answers, as a :class:`ServerStopped` to raise; None when it is not
    that (a remote server, or one that answers again).

    ``started`` is :func:`started_server` taken when the job began: then the message quotes the last line
    of the log the server wrote, which usually says why it stopped (killed, out of memory, a crash).
    """
    base = normalize_url(url)
    if not _is_loopback(urllib.parse.urlsplit(base).hostname) or probe(base) != "down":
        return None
    if started and started.get("log"):
        log_path = str(started["log"])
        line = last_log_line(log_path)
        return ServerStopped("The SDEdit server stopped during the edit; the last line of its log %s is: %s"
                             % (log_path, _quoted_last_line(log_path)), line, log_path)
    return ServerStopped("The SDEdit server at %s stopped during the edit." % base)


def _running(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, killed but not yet reaped, does not count)."""
    if pid <= 0:
        return False
    if sys.platform.startswith("win"):
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        with open("/proc/%d/stat" % pid, "r") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): alive as far as we can tell


# -- the start itself ----------------------------------------------------------------------------------------
def _installation(record: Optional[str]):
    """(python, extra environment) from the install record, or one sentence saying what to do."""
    path = record or record_path()
    try:
        found = read_record(path)
    except (OSError, ValueError) as error:
        raise ServerUnavailable("Cannot start the SDEdit server: %s; run install.py again." % error)
    if found is None:
        raise ServerUnavailable("Cannot start the SDEdit server: no installation is recorded in %s; run "
                                "python3 install.py in the SDEdit folder once, or start the server yourself "
                                "with: sdedit serve." % path)
    python = found["python"]
    if not os.path.isfile(python):
        raise ServerUnavailable("Cannot start the SDEdit server: the recorded Python %s no longer exists; run "
                                "install.py again." % python)
    env = {str(k): str(v) for k, v in found["env"].items()}
    return python, env


def _start_and_wait(base, host, port, python, extra_env, deadline, timeout, probe_timeout, report, cancel) -> bool:
    log_path = server_log_path(port)
    private_dir(os.path.dirname(log_path))
    started = time.monotonic()
    expected = _expected_seconds()
    report(STARTING, 0.0)
    process = _spawn(python, host, port, extra_env, log_path)
    _write_json(server_state_path(port), {"pid": process.pid, "url": base, "log": log_path,
                                          "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    try:
        while True:
            if cancel is not None and cancel():
                _end(process)
                raise JobCancelled("Starting the SDEdit server was cancelled.")
            code = process.poll()
            if code is not None:
                if probe(base, probe_timeout) == "up":  # lost a race for the port to another server: use it
                    return False
                raise ServerUnavailable("The SDEdit server did not start (it stopped with exit code %d); the last "
                                        "line of its log %s is: %s" % (code, log_path, _quoted_last_line(log_path)))
            if probe(base, probe_timeout) == "up":
                _remember_seconds(time.monotonic() - started)
                report(READY, 1.0)
                return True
            elapsed = time.monotonic() - started
            if time.monotonic() > deadline:
                _end(process)
                raise ServerUnavailable("The SDEdit server did not answer within %g s and was stopped; the last "
                                        "line of its log %s is: %s" % (timeout, log_path, _quoted_last_line(log_path)))
            report(STARTING, min(0.95, elapsed / (expected * 1.2)))
            time.sleep(POLL_S)
    except BaseException:
        if process.poll() is None:
            _end(process)  # a cancel, or an error in a callback, must not leave a half-started server behind
        raise


def _spawn(python: str, host: str, port: int, extra_env: dict, log_path: str) -> subprocess.Popen:
    """``python -m sdedit serve`` detached from the editor: own session (or process group on Windows),
    no console window, stdin closed, stdout and stderr appended to the log."""
    env = server_environment(os.environ, extra_env)
    command = [python, "-m", "sdedit", "serve", "--host", host, "--port", str(port)]
    _rotate(log_path)
    with private_file(log_path, "ab") as log:
        log.write(("\n--- %s: %s (started by process %d)\n" % (
            time.strftime("%Y-%m-%d %H:%M:%S"), " ".join(command), os.getpid())).encode("utf-8"))
        log.flush()
        options = dict(stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, close_fds=True,
                       cwd=os.path.expanduser("~"))
        if sys.platform.startswith("win"):
            options["creationflags"] = (getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
                                        | getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000))
        else:
            options["start_new_session"] = True
        try:
            return subprocess.Popen(command, **options)
        except OSError as error:
            raise ServerUnavailable("Cannot run the recorded Python %s (%s); run install.py again."
                                    % (python, error.strerror or error))


def _rotate(log_path: str) -> None:
    """Keep one older log (``.1``) once the log passes LOG_ROTATE_BYTES, so it never grows without bound."""
    try:
        if os.path.getsize(log_path) > LOG_ROTATE_BYTES:
            os.replace(log_path, log_path + ".1")
    except OSError:
        pass


def server_environment(editor_env: Mapping[str, str], extra: Mapping[str, str]) -> Dict[str, str]:
    """The server's environment: the editor's, less what the editor set up for its own embedded Python
    (PYTHONHOME, PYTHONPATH, ...) and, inside an AppImage (Krita's Linux build), less the image's own library
    folders in LD_LIBRARY_PATH; plus the record's ``env``."""
    env = {k: v for k, v in editor_env.items() if k not in _EDITOR_PYTHON_VARS}
    appdir = env.get("APPDIR")
    if appdir and env.get("LD_LIBRARY_PATH"):
        inside = os.path.join(os.path.abspath(appdir), "")
        kept = [p for p in env["LD_LIBRARY_PATH"].split(os.pathsep)
                if p and not os.path.join(os.path.abspath(p), "").startswith(inside)]
        if kept:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(kept)
        else:
            del env["LD_LIBRARY_PATH"]
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _end(process: subprocess.Popen) -> None:
    try:
        process.terminate()
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    except OSError:
        pass


def _quoted_last_line(log_path: str) -> str:
    line = last_log_line(log_path)
    if not line:
        return "(nothing)."
    line = line if len(line) <= 300 else line[:297] + "..."
    return "'%s'." % line


def _check_cancel(cancel: Optional[CancelCheck]) -> None:
    if cancel is not None and cancel():
        raise JobCancelled("Starting the SDEdit server was cancelled.")


def _expected_seconds() -> float:
    try:
        with open(os.path.join(cache_dir(), "server-start.json"), "r", encoding="utf-8") as handle:
            seconds = float(json.load(handle)["seconds"])
        return min(600.0, max(2.0, seconds))
    except (OSError, ValueError, KeyError, TypeError):
        return EXPECTED_START_S


def _remember_seconds(seconds: float) -> None:
    _write_json(os.path.join(cache_dir(), "server-start.json"), {"seconds": round(seconds, 2)})


def _write_json(path: str, data: dict) -> None:
    try:
        private_dir(os.path.dirname(path))
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with private_file(tmp, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except OSError:
        pass  # only a progress hint / bookkeeping: never a reason to fail the start


class _StartLock:
    """An exclusive OS file lock (flock / msvcrt.locking): freed by the OS if its holder dies, so a crashed
    editor never leaves a stale lock behind. The server process does not inherit it (close_fds)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._handle = None

    def try_acquire(self) -> bool:
        private_dir(os.path.dirname(self.path))
        handle = private_file(self.path, "a+b")
        try:
            if sys.platform.startswith("win"):
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            if sys.platform.startswith("win"):
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        except OSError:
            pass
        finally:
            handle.close()
