"""The `sdedit` command as a user runs it: files in, files out, exit codes and one-line errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'server'}{os.pathsep}{ROOT / 'shared'}", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "sdedit", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def guide(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "guide.png"
    arr = np.zeros((40, 56, 3), np.uint8)
    arr[:20] = (110, 160, 230)
    arr[20:] = (50, 120, 50)
    Image.fromarray(arr).save(path)
    return path


def test_edit_writes_k_outputs_deterministically(tmp_path, guide, tiny_vp_dir):
    out = tmp_path / "out.png"
    common = [str(guide), "--model", str(tiny_vp_dir), "--steps", "4", "--samples", "2", "--seed", "11", "--t0", "0.4"]
    res = run_cli("edit", *common, "-o", str(out))
    assert res.returncode == 0, res.stderr
    files = [tmp_path / "out-0.png", tmp_path / "out-1.png"]
    assert all(f.is_file() for f in files) and not out.exists()
    assert Image.open(files[0]).size == (56, 40)
    first = [f.read_bytes() for f in files]
    assert first[0] != first[1]
    res = run_cli("edit", *common, "-o", str(out))
    assert res.returncode == 0 and [f.read_bytes() for f in files] == first  # same seed: byte-identical files
    assert "wrote" in res.stderr


def test_edit_with_mask_keeps_black_pixels(tmp_path, guide, tiny_vp_dir):
    mask = np.zeros((40, 56), np.uint8)
    mask[:, 28:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    res = run_cli("edit", str(guide), "--mask", str(tmp_path / "mask.png"), "-o", str(tmp_path / "o.png"),
                  "--model", str(tiny_vp_dir), "--steps", "3", "--seed", "1", "--sde", "ve", "--quiet")
    assert res.returncode == 0, res.stderr
    out, src = np.asarray(Image.open(tmp_path / "o.png")), np.asarray(Image.open(guide))
    assert np.array_equal(out[:, :28], src[:, :28])


@pytest.mark.parametrize("case, words", [
    ("corrupt", "not a valid PNG"), ("missing", "could not be opened"), ("mask_size", "same size"),
    ("t0", "t0 must be"), ("model", "Unknown model"), ("sde", "Unknown SDE"), ("outdir", "does not exist"),
    ("usage", "required"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, guide, case, words):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    Image.new("L", (10, 10)).save(tmp_path / "small_mask.png")
    out = str(tmp_path / "o.png")
    args = {
        "corrupt": ["edit", str(bad), "-o", out],
        "missing": ["edit", str(tmp_path / "nope.png"), "-o", out],
        "mask_size": ["edit", str(guide), "--mask", str(tmp_path / "small_mask.png"), "-o", out],
        "t0": ["edit", str(guide), "--t0", "1.5", "-o", out],
        "model": ["edit", str(guide), "--model", "no-such-model", "-o", out],
        "sde": ["edit", str(guide), "--sde", "xyz", "-o", out],
        "outdir": ["edit", str(guide), "-o", str(tmp_path / "no" / "dir" / "o.png")],
        "usage": ["edit", str(guide)],
    }[case]
    res = run_cli(*args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not Path(out).exists()


def test_models_lists_the_models_dir(tmp_path, tiny_vp_dir):
    res = run_cli("models", env_extra={"SDEDIT_MODELS_DIR": str(tiny_vp_dir.parent)})
    assert res.returncode == 0 and tiny_vp_dir.name in res.stdout and "size" in res.stdout
    landscape = next(line for line in res.stdout.splitlines() if line.startswith("landscape "))
    assert "256 px native, any size" in landscape  # the README says 256 px native; "any" alone hid it
    tiny = next(line for line in res.stdout.splitlines() if line.startswith(tiny_vp_dir.name + " "))
    assert "32 px fixed" in tiny, res.stdout
