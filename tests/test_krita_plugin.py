"""Pure-Python parts of the Krita plugin (no Krita needed): pixel helpers, the installer, py3.8 syntax."""
from __future__ import annotations

import ast
import configparser
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "krita_plugin" / "pykrita" / "sdedit"


def _load(name: str, path: Path):
    """Load a plugin module by path: the plugin package is also called `sdedit`, like the server's."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pixels = _load("krita_sdedit_pixels", PLUGIN / "pixels.py")
install_krita = _load("krita_install", ROOT / "krita_plugin" / "install_krita.py")


def test_swap_red_blue_is_bgra_rgba_and_its_own_inverse():
    bgra = bytes([1, 2, 3, 4, 10, 20, 30, 40])
    assert pixels.swap_red_blue(bgra) == bytes([3, 2, 1, 4, 30, 20, 10, 40])
    assert pixels.swap_red_blue(pixels.swap_red_blue(bgra)) == bgra
    with pytest.raises(ValueError):
        pixels.swap_red_blue(b"\x00" * 6)


def test_intersect_and_native_space():
    assert pixels.intersect((0, 0, 10, 10), (5, 5, 10, 10)) == (5, 5, 5, 5)
    assert pixels.intersect((-4, -4, 8, 8), (0, 0, 100, 100)) == (0, 0, 4, 4)
    assert pixels.intersect((0, 0, 3, 3), (3, 0, 3, 3)) is None
    assert pixels.is_native_srgb8("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc")
    assert pixels.is_native_srgb8("RGBA", "U8", "sRGB built-in")
    assert not pixels.is_native_srgb8("RGBA", "U16", "sRGB-elle-V2-srgbtrc.icc")
    assert not pixels.is_native_srgb8("RGBA", "U8", "sRGB-elle-V2-g10.icc")  # linear
    assert not pixels.is_native_srgb8("RGBA", "U8", "Rec2020-elle-V4-g10.icc")
    assert not pixels.is_native_srgb8("CMYKA", "U8", "sRGB")


def test_changed_fraction_counts_pixels_inside_the_mask():
    a = bytes(16)
    b = bytes([0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9])
    assert pixels.changed_fraction(a, b) == 0.5
    assert pixels.changed_fraction(a, b, mask=bytes([0, 255, 255, 0])) == 0.5
    assert pixels.changed_fraction(a, b, mask=bytes([255, 0, 255, 0])) == 0.0


def _read_rc(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(path)
    return parser


def test_install_copies_plugin_and_client_and_enables_it(tmp_path):
    dest, rc = tmp_path / "pykrita", tmp_path / "config" / "kritarc"
    rc.parent.mkdir()
    rc.write_text("[General]\nSomeKey=a=b\n\n[python]\nenable_other=true\nenable_sdedit=false\n\n[MainWindow]\nState=xyz\n")
    message = install_krita.install(str(dest), kritarc=str(rc))
    assert "Filters" in message and str(dest) in message
    desktop = (dest / "sdedit.desktop").read_text()
    assert "X-KDE-Library=sdedit" in desktop and "ServiceTypes=Krita/PythonPlugin" in desktop
    for module in ("__init__.py", "extension.py", "dialog.py", "worker.py", "layer_io.py", "pixels.py"):
        assert (dest / "sdedit" / module).is_file(), module
    for module in ("__init__.py", "client.py", "png.py", "params.py", "settings.py", "mask.py", "errors.py"):
        assert (dest / "sdedit_client" / module).is_file(), module
    assert not list(dest.rglob("__pycache__"))
    parsed = _read_rc(rc)
    assert parsed["python"]["enable_sdedit"] == "true" and parsed["python"]["enable_other"] == "true"
    assert parsed["General"]["SomeKey"] == "a=b" and parsed["MainWindow"]["State"] == "xyz"
    assert rc.read_text().count("enable_sdedit") == 1
    install_krita.install(str(dest), kritarc=str(rc))  # again: still one line, still enabled
    assert rc.read_text().count("enable_sdedit") == 1 and install_krita.is_enabled(str(rc))

    message = install_krita.install(str(dest), uninstall=True, kritarc=str(rc))
    assert "Removed" in message
    assert not (dest / "sdedit").exists() and not (dest / "sdedit.desktop").exists()
    assert not (dest / "sdedit_client").exists()
    assert not install_krita.is_enabled(str(rc)) and _read_rc(rc)["python"]["enable_other"] == "true"


def test_install_creates_kritarc_when_there_is_none(tmp_path):
    rc = tmp_path / "new" / "kritarc"
    install_krita.install(str(tmp_path / "pykrita"), kritarc=str(rc))
    assert rc.read_text() == "[python]\nenable_sdedit=true\n"


def test_installed_client_is_importable_on_its_own(tmp_path):
    dest = tmp_path / "pykrita"
    install_krita.install(str(dest), kritarc=str(tmp_path / "kritarc"))
    code = ("import sys; sys.path.insert(0, %r); import sdedit_client, sdedit_client.png; "
            "print(sdedit_client.__file__)" % str(dest))
    import subprocess

    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().startswith(str(dest))


@pytest.mark.parametrize("platform,env,expected", [
    ("linux", {"HOME": "/home/ann", "XDG_DATA_HOME": "", "XDG_CONFIG_HOME": ""},
     ("/home/ann/.local/share/krita/pykrita", "/home/ann/.config/kritarc")),
    ("linux", {"HOME": "/home/ann", "XDG_DATA_HOME": "/xdg/data", "XDG_CONFIG_HOME": "/xdg/cfg"},
     ("/xdg/data/krita/pykrita", "/xdg/cfg/kritarc")),
    ("darwin", {"HOME": "/Users/ann"},
     ("/Users/ann/Library/Application Support/krita/pykrita", "/Users/ann/Library/Preferences/kritarc")),
])
def test_default_locations_per_platform(monkeypatch, platform, env, expected):
    monkeypatch.setattr(sys, "platform", platform)
    for key, value in env.items():
        if value:
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)
    assert (install_krita.default_pykrita_dir(), install_krita.default_kritarc()) == expected


def test_default_locations_on_windows(monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", "C:/Users/ann/AppData/Roaming")
    monkeypatch.setenv("LOCALAPPDATA", "C:/Users/ann/AppData/Local")
    assert Path(install_krita.default_pykrita_dir()) == Path("C:/Users/ann/AppData/Roaming/krita/pykrita")
    assert Path(install_krita.default_kritarc()) == Path("C:/Users/ann/AppData/Local/kritarc")


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in list(PLUGIN.glob("*.py"))
                                        + list((ROOT / "shared" / "sdedit_client").glob("*.py"))
                                        + [ROOT / "krita_plugin" / "install_krita.py"]))
def test_plugin_and_client_parse_as_python_3_8(path):
    """Krita builds ship their own Python (3.8 on older Windows/macOS builds): no newer syntax."""
    source = (ROOT / path).read_text(encoding="utf-8")
    tree = ast.parse(source, filename=path, feature_version=(3, 8))
    for node in ast.walk(tree):
        # builtin generics in annotations (list[int]) fail at runtime on 3.8 without __future__ annotations
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                and node.value.id in ("list", "dict", "tuple", "set") and "from __future__ import annotations" not in source:
            pytest.fail("%s:%d uses %s[...], which Python 3.8 cannot evaluate" % (path, node.lineno, node.value.id))


def test_client_uses_only_the_standard_library():
    allowed = set(sys.stdlib_module_names) | {"sdedit_client"}
    for path in (ROOT / "shared" / "sdedit_client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, "%s imports %s" % (path.name, name)


def test_node_kinds_in_words_for_messages():
    assert pixels.node_kind_words("grouplayer") == "a group"
    assert pixels.node_kind_words("vectorlayer") == "a vector layer"
    assert pixels.node_kind_words("transparencymask") == "a transparency mask"
    assert pixels.node_kind_words("newfancylayer") == "a newfancy layer"
    assert pixels.node_kind_words(None) == "nothing"
