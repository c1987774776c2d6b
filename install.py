#!/usr/bin/env python3
"""One-command setup of SDEdit for Krita and GIMP (Python standard library only).

    python3 install.py                 # server in ./.venv + the Krita and GIMP plugins for this user
    python3 install.py --dev           # also the test tools (pytest, httpx, schemathesis, ...)
    python3 install.py --no-plugins    # only the server
    python3 install.py --uninstall     # remove the plugins (the .venv folder can simply be deleted)

A torch that the running Python can already import (a CUDA build, say) is kept: the virtual environment
then sees the system's packages. Otherwise torch is installed (--torch picks the requirement).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_TORCH = os.environ.get("SDEDIT_TORCH_SPEC", "torch==2.13.0")


def venv_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def has_torch(python: Path | str) -> bool:
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    return probe.returncode == 0


def setup_server(env_dir: Path, dev: bool, torch_spec: str) -> Path:
    """Create the virtual environment and install the `sdedit` package with its dependencies."""
    system_torch = importlib.util.find_spec("torch") is not None
    python = venv_python(env_dir)
    if not python.exists():
        print(f"Creating the virtual environment {env_dir}" + (" (keeping this Python's torch)" if system_torch else ""))
        venv.EnvBuilder(with_pip=True, system_site_packages=system_torch).create(env_dir)
    if not has_torch(python):
        run([str(python), "-m", "pip", "install", "--disable-pip-version-check", torch_spec])
    extra = "[dev]" if dev else ""
    run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-e", f"{ROOT}{extra}"])
    return python


def record_server(python: Path) -> str:
    """Write where the server's Python is (shared/sdedit_client/server_record.py), so the Krita and GIMP
    plugins can start `sdedit serve` themselves; returns the record's path."""
    records = load_installer(ROOT / "shared" / "sdedit_client" / "server_record.py")
    return records.write_record(str(python), root=str(ROOT))


def load_installer(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Where an installed editor shows itself: programs on PATH (flatpak exports included), application
# folders, and the per-user settings folders it creates on first start.
EDITOR_SIGNS = {
    "Krita": dict(programs=("krita", "org.kde.krita"), version="5", url="https://krita.org",
                  paths=("/Applications/krita.app", r"C:\Program Files\Krita (x64)\bin\krita.exe",
                         "~/.var/app/org.kde.krita", "$XDG_DATA_HOME/krita", "$XDG_CONFIG_HOME/kritarc",
                         "$APPDATA/krita", "$LOCALAPPDATA/kritarc", "~/Library/Application Support/krita")),
    "GIMP": dict(programs=("gimp", "gimp-3.0", "gimp-console-3.0", "org.gimp.GIMP"), version="3",
                 url="https://www.gimp.org", paths=("/Applications/GIMP.app", r"C:\Program Files\GIMP 3\bin",
                                                   "~/.var/app/org.gimp.GIMP", "$XDG_CONFIG_HOME/GIMP",
                                                   "$APPDATA/GIMP", "~/Library/Application Support/GIMP")),
}
FLATPAK_BINS = ("/var/lib/flatpak/exports/bin", "~/.local/share/flatpak/exports/bin")


def _expand(path: str) -> str | None:
    """A sign's path with ~ and $XDG_*/$APPDATA filled in (XDG defaults as the spec gives); None if unset."""
    defaults = {"XDG_DATA_HOME": "~/.local/share", "XDG_CONFIG_HOME": "~/.config"}
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "APPDATA", "LOCALAPPDATA"):
        if f"${var}" in path:
            value = os.environ.get(var) or defaults.get(var)
            if not value:
                return None
            path = path.replace(f"${var}", value)
    return os.path.expanduser(path)


def editor_installed(name: str) -> bool:
    """Whether the editor seems installed: a program on PATH (or a flatpak export), or its folders."""
    signs = EDITOR_SIGNS[name]
    search = os.pathsep.join([os.environ.get("PATH", "")] + [os.path.expanduser(p) for p in FLATPAK_BINS])
    if any(shutil.which(program, path=search) for program in signs["programs"]):
        return True
    return any((p := _expand(path)) and os.path.exists(p) for path in signs["paths"])


def setup_plugins(uninstall: bool, krita_dir: str | None, gimp_dir: str | None) -> list[str]:
    """Copy (or remove) both editor plugins where Krita and GIMP look for them; one line per editor.

    An editor that is not installed still gets its plugin (ready for when it is), but the line says so
    instead of asking the user to restart a program they don't have.
    """
    lines = []
    for name, installer, dest in (("Krita", ROOT / "krita_plugin" / "install_krita.py", krita_dir),
                                  ("GIMP", ROOT / "gimp_plugin" / "install_gimp.py", gimp_dir)):
        installed = uninstall or editor_installed(name)  # looked at before the installer creates folders
        try:
            line = load_installer(installer).install(dest, uninstall=uninstall)
        except (OSError, ValueError) as exc:
            line = f"{name}: {exc}"
        else:
            if not installed:
                signs = EDITOR_SIGNS[name]
                line = (f"{name} is not installed on this machine (no `{signs['programs'][0]}` program, no {name} "
                        f"settings folder); its plugin was put in place anyway: install {name} {signs['version']} "
                        f"({signs['url']}) and it will be there.")
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=str(ROOT / ".venv"), help="virtual environment folder (default ./.venv)")
    parser.add_argument("--dev", action="store_true", help="also install the test tools")
    parser.add_argument("--no-plugins", action="store_true", help="do not install the Krita and GIMP plugins")
    parser.add_argument("--plugins-only", action="store_true", help="only (re)install the plugins")
    parser.add_argument("--uninstall", action="store_true", help="remove the Krita and GIMP plugins")
    parser.add_argument("--krita-dir", help="Krita pykrita folder (default: Krita's per-user folder)")
    parser.add_argument("--gimp-dir", help="GIMP 3 plug-ins folder (default: GIMP's per-user folder)")
    parser.add_argument("--torch", default=DEFAULT_TORCH, help=f"torch requirement when none is importable (default {DEFAULT_TORCH})")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 9):
        print("install.py: Python 3.9 or newer is needed.", file=sys.stderr)
        return 2
    try:
        if not (args.uninstall or args.plugins_only):
            python = setup_server(Path(args.venv), args.dev, args.torch)
            print(f"Server ready: {python.parent / 'sdedit'} serve   (or: {python} -m sdedit serve)")
            try:
                print(f"The editors start it themselves when needed (installation recorded in {record_server(python)}).")
            except OSError as exc:
                print(f"install.py: could not record the installation for the editors' auto-start ({exc}); "
                      "start the server yourself.", file=sys.stderr)
        if not args.no_plugins or args.uninstall or args.plugins_only:
            for line in setup_plugins(args.uninstall, args.krita_dir, args.gimp_dir):
                print(line)
    except subprocess.CalledProcessError as exc:
        print(f"install.py: a setup step failed ({' '.join(exc.cmd)}); see the output above.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
