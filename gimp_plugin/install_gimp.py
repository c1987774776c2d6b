"""Install or remove the SDEdit GIMP 3 plug-in (standard library only; install.py calls ``install``).

GIMP 3 loads a Python plug-in from ``plug-ins/NAME/NAME.py`` (executable) in its user folder; the plug-in
needs its own copy of ``sdedit_client``, since GIMP's Python knows nothing of this repository.
"""

import os
import shutil
import stat
import sys
from pathlib import Path
from typing import List, Optional

PLUGIN_NAME = "sdedit"
HERE = Path(__file__).resolve().parent
PLUGIN_SOURCE = HERE / PLUGIN_NAME
CLIENT_SOURCE = HERE.parent / "shared" / "sdedit_client"
GIMP_SERIES = "3.0"  # the user folder of GIMP 3.0.x; later 3.x series have their own folders

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def gimp_config_root(platform: Optional[str] = None) -> Path:
    """The folder holding GIMP's per-series user folders (``.../GIMP``) on this platform."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "GIMP"
    if platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "GIMP"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "GIMP"


def plugin_dirs(platform: Optional[str] = None) -> List[Path]:
    """Every GIMP 3 plug-ins folder to install into.

    ``GIMP3_DIRECTORY`` (GIMP's own override of its user folder) wins; otherwise each existing 3.x user
    folder, or the 3.0 one when GIMP has not been started yet.
    """
    override = os.environ.get("GIMP3_DIRECTORY")
    if override:
        return [Path(override) / "plug-ins"]
    root = gimp_config_root(platform)
    series = sorted(p for p in root.glob("3.*") if p.is_dir()) if root.is_dir() else []
    return [p / "plug-ins" for p in (series or [root / GIMP_SERIES])]


def _copy_plugin(target: Path) -> None:
    """Copy the plug-in folder and the client into ``target`` (replacing an older copy), then mark the
    entry script executable; built in a side folder first so a failed copy leaves no broken plug-in."""
    staging = target.with_name(target.name + ".installing")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(PLUGIN_SOURCE, staging, ignore=_IGNORE)
    shutil.copytree(CLIENT_SOURCE, staging / "sdedit_client", ignore=_IGNORE)
    script = staging / (PLUGIN_NAME + ".py")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def install(dest: Optional[str] = None, uninstall: bool = False) -> str:
    """Install (or with ``uninstall=True`` remove) the plug-in; return one line saying what was done.

    ``dest`` is a plug-ins folder (GIMP's "Folders > Plug-ins" preference); by default GIMP 3's user
    plug-ins folder(s) on Linux, Windows or macOS. Raises OSError with a clear message on failure.
    """
    if not uninstall:
        for source in (PLUGIN_SOURCE / (PLUGIN_NAME + ".py"), CLIENT_SOURCE / "__init__.py"):
            if not source.is_file():
                raise OSError("Cannot install the GIMP plug-in: %s is missing from this checkout." % source)
    folders = [Path(dest).expanduser()] if dest else plugin_dirs()
    done = []
    for folder in folders:
        target = folder / PLUGIN_NAME
        if uninstall:
            if target.exists():
                shutil.rmtree(target)
                done.append(str(target))
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _copy_plugin(target)
        except OSError as error:
            raise OSError("Cannot install the GIMP plug-in into %s: %s" % (folder, error.strerror or error))
        done.append(str(target))
    if uninstall:
        return ("Removed the SDEdit GIMP plug-in from %s; restart GIMP." % ", ".join(done)) if done else \
            "The SDEdit GIMP plug-in was not installed in " + ", ".join(str(f) for f in folders)
    return ("Installed the SDEdit GIMP plug-in in %s; restart GIMP and use Filters → Generic → SDEdit…"
            % ", ".join(done))


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Install the SDEdit plug-in into GIMP 3.")
    parser.add_argument("dest", nargs="?", help="a GIMP plug-ins folder (default: GIMP 3's user folder)")
    parser.add_argument("--uninstall", action="store_true", help="remove the plug-in instead")
    args = parser.parse_args(argv)
    try:
        print(install(args.dest, uninstall=args.uninstall))
    except OSError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
