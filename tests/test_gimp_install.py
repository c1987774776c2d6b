"""install_gimp: the GIMP 3 plug-in folder lands where GIMP looks, runnable, and comes out again."""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "gimp_plugin"))
import install_gimp  # noqa: E402


def test_install_copies_plugin_and_client(tmp_path):
    message = install_gimp.install(str(tmp_path))
    target = tmp_path / "sdedit"
    assert str(target) in message
    script = target / "sdedit.py"
    assert script.is_file() and script.stat().st_mode & stat.S_IXUSR
    assert (target / "sdedit_gimp" / "edit.py").is_file()
    assert (target / "sdedit_client" / "client.py").is_file()
    assert not list(target.rglob("__pycache__"))
    assert not (tmp_path / "sdedit.installing").exists()


def test_reinstall_replaces_stale_files_and_uninstall_removes(tmp_path):
    install_gimp.install(str(tmp_path))
    stale = tmp_path / "sdedit" / "old_module.py"
    stale.write_text("# from an older version")
    install_gimp.install(str(tmp_path))
    assert not stale.exists()
    message = install_gimp.install(str(tmp_path), uninstall=True)
    assert "Removed" in message and not (tmp_path / "sdedit").exists()
    assert "not installed" in install_gimp.install(str(tmp_path), uninstall=True)


def test_installed_client_is_importable_next_to_the_plugin(tmp_path):
    install_gimp.install(str(tmp_path))
    import subprocess

    code = ("import sys; sys.path.insert(0, %r); import sdedit_client, sdedit_gimp.options as o; "
            "print(sdedit_client.__file__); print(o.PROCEDURE_NAME)" % str(tmp_path / "sdedit"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": os.environ.get("PATH", "")}).stdout.split()
    assert out[0].startswith(str(tmp_path / "sdedit")) and out[1] == "plug-in-sdedit"


@pytest.mark.parametrize("platform, env, expected", [
    ("linux", {"HOME": "/home/ann"}, "/home/ann/.config/GIMP/3.0/plug-ins"),
    ("linux", {"HOME": "/home/ann", "XDG_CONFIG_HOME": "/cfg"}, "/cfg/GIMP/3.0/plug-ins"),
    ("darwin", {"HOME": "/Users/ann"}, "/Users/ann/Library/Application Support/GIMP/3.0/plug-ins"),
    ("win32", {"HOME": "/h", "APPDATA": "/AppData/Roaming"}, "/AppData/Roaming/GIMP/3.0/plug-ins"),
    ("linux", {"HOME": "/h", "GIMP3_DIRECTORY": "/portable/gimp"}, "/portable/gimp/plug-ins"),
])
def test_default_plugin_folder_per_platform(monkeypatch, platform, env, expected):
    for name in ("XDG_CONFIG_HOME", "APPDATA", "GIMP3_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert install_gimp.plugin_dirs(platform) == [Path(expected)]


def test_existing_3x_profiles_all_get_the_plugin(monkeypatch, tmp_path):
    monkeypatch.delenv("GIMP3_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for series in ("2.10", "3.0", "3.2"):
        (tmp_path / "GIMP" / series).mkdir(parents=True)
    assert install_gimp.plugin_dirs("linux") == [tmp_path / "GIMP" / s / "plug-ins" for s in ("3.0", "3.2")]
    message = install_gimp.install()
    assert (tmp_path / "GIMP" / "3.2" / "plug-ins" / "sdedit" / "sdedit.py").is_file()
    assert not (tmp_path / "GIMP" / "2.10" / "plug-ins").exists()
    assert message.count("plug-ins") == 2


def test_unwritable_destination_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError) as info:
        install_gimp.install(str(blocker / "plug-ins"))
    assert "Cannot install the GIMP plug-in into" in str(info.value)
