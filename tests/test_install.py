"""install.py as a user runs it: plugins copied where the editors look, and removed again."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_install(*args: str, home: Path, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share"))
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, str(ROOT / "install.py"), *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_plugins_install_and_uninstall(tmp_path):
    krita, gimp = tmp_path / "pykrita", tmp_path / "gimp-plug-ins"
    res = run_install("--plugins-only", "--krita-dir", str(krita), "--gimp-dir", str(gimp), home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (krita / "sdedit.desktop").is_file() and (krita / "sdedit" / "__init__.py").is_file()
    assert (krita / "sdedit_client" / "__init__.py").is_file()
    plug = gimp / "sdedit" / "sdedit.py"
    assert plug.is_file() and os.access(plug, os.X_OK)
    assert "Krita" in res.stdout and "GIMP" in res.stdout
    res = run_install("--uninstall", "--krita-dir", str(krita), "--gimp-dir", str(gimp), home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not (krita / "sdedit").exists() and not (gimp / "sdedit").exists()


def test_installer_is_standard_library_only():
    """install.py must run on a bare Python: it may import nothing outside the standard library."""
    import ast

    tree = ast.parse((ROOT / "install.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names


def test_missing_editors_are_named_instead_of_restart_advice(tmp_path):
    """No krita/gimp program and no settings folders: say the editor is not installed, not 'restart Krita'."""
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    dirs = ["--krita-dir", str(tmp_path / "pykrita"), "--gimp-dir", str(tmp_path / "gimp-plug-ins")]
    res = run_install("--plugins-only", *dirs, home=home, path=str(bin_dir))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and "restart" not in res.stdout, res.stdout
    assert "Krita is not installed" in lines[0] and "GIMP is not installed" in lines[1]
    assert (tmp_path / "pykrita" / "sdedit.desktop").is_file()  # ready for when the editor comes
    for program in ("krita", "gimp-3.0"):  # now both editors are on PATH
        exe = bin_dir / program
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    res = run_install("--plugins-only", *dirs, home=tmp_path / "home2", path=str(bin_dir))
    assert "restart Krita" in res.stdout and "restart GIMP" in res.stdout and "not installed" not in res.stdout
