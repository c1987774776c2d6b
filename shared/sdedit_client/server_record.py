"""Where the installation is recorded, so the editor plugins can start the server themselves.

``install.py`` writes a small JSON file (the *server record*) naming the virtual environment's Python;
the plugins, which only have a copy of ``sdedit_client``, read it to run ``python -m sdedit serve``.

This module imports nothing but the standard library and nothing from its own package, so install.py
(standard library only, run before any virtual environment exists) can load it by file path.
"""

import json
import os
import sys
import time
from typing import Any, Dict, Optional

RECORD_ENV = "SDEDIT_SERVER_RECORD"  # overrides the record's path (tests, portable setups)
RECORD_VERSION = 1


def config_dir(platform: Optional[str] = None) -> str:
    """The per-user settings folder of sdedit: %APPDATA%\\sdedit, ~/Library/Application Support/sdedit
    or $XDG_CONFIG_HOME/sdedit (~/.config/sdedit)."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        base = os.environ.get("APPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Roaming")
    elif platform == "darwin":
        base = os.path.join(os.path.expanduser("~"), "Library", "Application Support")
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "sdedit")


def cache_dir(platform: Optional[str] = None) -> str:
    """The per-user cache folder (server logs, start lock): %LOCALAPPDATA%\\sdedit\\cache,
    ~/Library/Caches/sdedit or $XDG_CACHE_HOME/sdedit (~/.cache/sdedit)."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
        return os.path.join(base, "sdedit", "cache")
    if platform == "darwin":
        return os.path.join(os.path.expanduser("~"), "Library", "Caches", "sdedit")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sdedit")


def private_dir(path: str) -> str:
    """Create ``path`` (and its parents) for this user only (0700) and tighten it if it already exists and is
    ours; returns it. Logs, locks, the server record and the hand-off key live in such folders."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    if not sys.platform.startswith("win"):
        try:
            info = os.stat(path)
            if info.st_uid == os.getuid() and info.st_mode & 0o077:
                os.chmod(path, 0o700)
        except OSError:
            pass
    return path


def private_file(path: str, mode: str = "w", encoding: Optional[str] = "utf-8"):
    """``open(path, mode)`` for a file only this user may read (created 0600; an existing one made 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    if "+" in mode:
        flags = (flags & ~os.O_WRONLY) | os.O_RDWR
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0), 0o600)
    if not sys.platform.startswith("win"):
        try:
            os.fchmod(fd, 0o600)
        except OSError:
            pass
    return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)


def record_path() -> str:
    """The server record's path: $SDEDIT_SERVER_RECORD, else ``server.json`` in :func:`config_dir`."""
    return os.environ.get(RECORD_ENV) or os.path.join(config_dir(), "server.json")


def write_record(python: str, root: str = "", env: Optional[Dict[str, str]] = None,
                 path: Optional[str] = None) -> str:
    """Record that ``python`` (a virtual environment's interpreter) runs ``-m sdedit``; returns the file.

    ``env`` holds extra environment variables for the server process (tests use it; install.py does not).
    Written through a temporary file, so a reader never sees half a record.
    """
    path = path or record_path()
    python = os.path.abspath(python)
    scripts = os.path.dirname(python)
    record = {
        "version": RECORD_VERSION,
        "python": python,
        "sdedit": os.path.join(scripts, "sdedit.exe" if os.name == "nt" else "sdedit"),
        "root": os.path.abspath(root) if root else "",
        "env": dict(env or {}),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    private_dir(os.path.dirname(os.path.abspath(path)))
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with private_file(tmp, "w") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def read_record(path: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The record as a dict, or None when there is none; a damaged record raises ValueError."""
    path = path or record_path()
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        raise ValueError("the file %s is damaged (not JSON)" % path)
    if not isinstance(record, dict) or not isinstance(record.get("python"), str) or not record["python"]:
        raise ValueError("the file %s names no Python" % path)
    if not isinstance(record.get("env"), dict):
        record["env"] = {}
    return record
