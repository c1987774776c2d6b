"""Install the SDEdit Krita plugin (plus a copy of sdedit_client) and enable it; standard library only.

    python krita_plugin/install_krita.py            # install for this user
    python krita_plugin/install_krita.py --uninstall

install.py at the repository root imports this module and calls ``install()``.
"""

import argparse
import configparser
import os
import shutil
import sys
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_SRC = os.path.join(HERE, "pykrita")
CLIENT_SRC = os.path.join(os.path.dirname(HERE), "shared", "sdedit_client")
PLUGIN_NAME = "sdedit"
INSTALLED = ("sdedit.desktop", "sdedit", "sdedit_client")


def default_pykrita_dir() -> str:
    """Krita's per-user Python plugin folder on this platform."""
    if sys.platform.startswith("win"):
        base = os.environ.get("APPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Roaming")
        return os.path.join(base, "krita", "pykrita")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~"), "Library", "Application Support", "krita", "pykrita")
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "krita", "pykrita")


def default_kritarc() -> str:
    """Krita's settings file (where plugins are enabled) on this platform."""
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
        return os.path.join(base, "kritarc")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~"), "Library", "Preferences", "kritarc")
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "kritarc")


def set_enabled(kritarc: str, name: str, enabled: bool) -> None:
    """Set ``enable_<name>`` in the [python] group of kritarc, keeping every other line as it is.

    Edited line by line (not with configparser) because kritarc has keys configparser would rewrite.
    """
    key = "enable_%s" % name
    lines = []
    if os.path.exists(kritarc):
        with open(kritarc, "r", encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    out, in_python, done = [], False, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if in_python and not done and enabled:
                out.append("%s=true" % key)
                done = True
            in_python = stripped == "[python]"
        elif in_python and stripped.split("=", 1)[0].strip() == key:
            if enabled and not done:
                out.append("%s=true" % key)
                done = True
            continue
        out.append(line)
    if enabled and not done:
        if in_python:
            out.append("%s=true" % key)
        else:
            if out and out[-1].strip():
                out.append("")
            out.extend(["[python]", "%s=true" % key])
    os.makedirs(os.path.dirname(os.path.abspath(kritarc)), exist_ok=True)
    with open(kritarc, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write("\n".join(out) + "\n")


def is_enabled(kritarc: str, name: str = PLUGIN_NAME) -> bool:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read(kritarc, encoding="utf-8")
    except configparser.Error:
        return False
    return parser.get("python", "enable_%s" % name, fallback="false").strip().lower() == "true"


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def install(dest: Optional[str] = None, uninstall: bool = False, *, kritarc: Optional[str] = None,
            client_src: str = CLIENT_SRC) -> str:
    """Copy (or remove) the plugin and sdedit_client in Krita's pykrita folder; returns a one-line summary.

    ``dest`` is the pykrita folder (default: this platform's); ``kritarc`` the settings file to enable
    the plugin in (default: this platform's).
    """
    dest = os.path.abspath(dest or default_pykrita_dir())
    kritarc = kritarc or default_kritarc()
    if uninstall:
        for name in INSTALLED:
            _remove(os.path.join(dest, name))
        if os.path.exists(kritarc):
            set_enabled(kritarc, PLUGIN_NAME, False)
        return "Removed the SDEdit Krita plugin from %s; restart Krita." % dest
    if not os.path.isdir(client_src):
        raise FileNotFoundError("sdedit_client was not found at %s: run this from the SDEdit repository." % client_src)
    os.makedirs(dest, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in INSTALLED:
        _remove(os.path.join(dest, name))
    shutil.copy2(os.path.join(PLUGIN_SRC, "sdedit.desktop"), os.path.join(dest, "sdedit.desktop"))
    shutil.copytree(os.path.join(PLUGIN_SRC, "sdedit"), os.path.join(dest, "sdedit"), ignore=ignore)
    shutil.copytree(client_src, os.path.join(dest, "sdedit_client"), ignore=ignore)
    set_enabled(kritarc, PLUGIN_NAME, True)
    return ("Installed the SDEdit Krita plugin in %s and enabled it in %s; restart Krita and use "
            "Filters → SDEdit…" % (dest, kritarc))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Install the SDEdit plugin into Krita.")
    parser.add_argument("--dest", help="Krita's pykrita folder (default: %s)" % default_pykrita_dir())
    parser.add_argument("--kritarc", help="Krita's settings file (default: %s)" % default_kritarc())
    parser.add_argument("--uninstall", action="store_true", help="remove the plugin instead")
    args = parser.parse_args(argv)
    try:
        print(install(args.dest, args.uninstall, kritarc=args.kritarc))
    except OSError as error:
        print("Could not install the Krita plugin: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
