"""Model lookup: known ids first, paths only from the command line, never from a client of the server."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sdedit.api.backend import EngineBackend
from sdedit.errors import InputError
from sdedit.models import list_models, resolve
from sdedit.models.registry import EMBEDDED_DIR

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def stray_folder(tmp_path, monkeypatch):
    """A working folder holding files named like the default model and like a listed model."""
    (tmp_path / "landscape").write_text("notes about a landscape, not a model\n")
    (tmp_path / "church-small").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SDEDIT_DEFAULT_MODEL", raising=False)
    return tmp_path


def test_a_stray_file_does_not_shadow_the_default_model(stray_folder):
    model_id, path = resolve(None)
    assert model_id == "landscape" and path == EMBEDDED_DIR / "landscape"
    default = [info for info in list_models() if info.default]
    assert [info.id for info in default] == ["landscape"] and Path(default[0].path) == EMBEDDED_DIR / "landscape"
    EngineBackend("cpu").check_model(None)  # the server has its default model


def test_known_ids_win_over_paths_in_the_working_folder(stray_folder, tmp_path_factory, monkeypatch, tiny_vp_dir):
    models = tmp_path_factory.mktemp("models")
    shutil.copytree(tiny_vp_dir, models / "church-small")
    monkeypatch.setenv("SDEDIT_MODELS_DIR", str(models))
    assert resolve("church-small") == ("church-small", models / "church-small")


def test_paths_are_for_the_command_line_only(stray_folder, tiny_vp_dir):
    assert resolve(str(tiny_vp_dir))[1] == tiny_vp_dir.resolve()  # the CLI may name a folder
    with pytest.raises(InputError, match="Unknown model"):
        resolve(str(tiny_vp_dir), paths=False)
    with pytest.raises(InputError, match="Unknown model 'church-small'"):
        resolve("church-small", paths=False)  # the empty folder of that name in the cwd is not looked at


def test_a_default_given_as_a_path_is_found_by_its_id_from_the_api(stray_folder, monkeypatch, tiny_vp_dir):
    monkeypatch.setenv("SDEDIT_DEFAULT_MODEL", str(tiny_vp_dir))
    assert resolve(tiny_vp_dir.name, paths=False) == (tiny_vp_dir.name, tiny_vp_dir.resolve())


def test_a_default_given_as_a_path_is_flagged_when_a_models_folder_links_to_it(stray_folder, monkeypatch,
                                                                              tmp_path_factory, tiny_vp_dir):
    models = tmp_path_factory.mktemp("linked")
    (models / tiny_vp_dir.name).symlink_to(tiny_vp_dir, target_is_directory=True)
    monkeypatch.setenv("SDEDIT_MODELS_DIR", str(models))
    monkeypatch.setenv("SDEDIT_DEFAULT_MODEL", str(tiny_vp_dir))
    assert [info.id for info in list_models() if info.default] == [tiny_vp_dir.name]


def test_cli_default_edit_works_beside_a_stray_file(stray_folder):
    Image.new("RGB", (48, 40), (90, 140, 200)).save(stray_folder / "guide.png")
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'server'}{os.pathsep}{ROOT / 'shared'}")
    env.pop("SDEDIT_DEFAULT_MODEL", None)
    res = subprocess.run([sys.executable, "-m", "sdedit", "edit", "guide.png", "-o", "out.png", "--sde", "ode",
                          "--steps", "2", "--seed", "3", "--quiet"], cwd=stray_folder, capture_output=True,
                         text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert Image.open(stray_folder / "out.png").size == (48, 40)
