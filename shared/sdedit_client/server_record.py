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
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as handle:
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
