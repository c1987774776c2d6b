"""Bad input is refused before torch or diffusers are imported (so in well under a second).

The real check is which modules a refusal loaded, not a timing: each case runs `sdedit.cli.main` in a fresh
interpreter and reports whether torch or diffusers ended up in sys.modules.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, sys
from sdedit.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "torch": "torch" in sys.modules, "diffusers": "diffusers" in sys.modules}))
"""


def run_probe(*args: str, cwd: Path) -> tuple[dict, str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'server'}{os.pathsep}{ROOT / 'shared'}")
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, cwd=cwd,
                         timeout=120)
    assert res.stdout.strip(), res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1]), res.stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("refusal")
    Image.new("RGB", (40, 30), (90, 140, 200)).save(folder / "guide.png")
    Image.new("L", (10, 10)).save(folder / "small_mask.png")
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    Image.new("RGB", (8, 8)).save(folder / "pic.gif", format="GIF")
    return folder


CASES = {
    "corrupt input": (["bad.png"], "not a valid PNG"),
    "missing input": (["nope.png"], "could not be opened"),
    "gif input": (["pic.gif"], "send PNG, JPEG or WebP"),
    "mask size": (["guide.png", "--mask", "small_mask.png"], "same size"),
    "missing mask": (["guide.png", "--mask", "nope.png"], "could not be opened"),
    "t0": (["guide.png", "--t0", "1.5"], "t0 must be"),
    "steps": (["guide.png", "--steps", "5000"], "steps must be"),
    "samples": (["guide.png", "--samples", "0"], "samples must be"),
    "seed": (["guide.png", "--seed", "-3"], "seed must be"),
    "sde": (["guide.png", "--sde", "langevin"], "Unknown SDE"),
    "model": (["guide.png", "--model", "no-such-model"], "Unknown model"),
    "device": (["guide.png", "--device", "tpu"], "Unknown device"),
    "precision": (["guide.png", "--precision", "fp8"], "Unknown precision"),
    "output folder": (["guide.png", "-o", "no/dir/o.png"], "does not exist"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_without_importing_torch(files, case):
    args, words = CASES[case]
    out = [] if "-o" in args else ["-o", "out.png"]
    report, stderr = run_probe("edit", *args, *out, cwd=files)
    assert report["rc"] == 2 and words in stderr, stderr
    assert not report["torch"] and not report["diffusers"], (case, report)
    assert not (files / "out.png").exists()


def test_samplers_and_the_torch_free_names_agree():
    from sdedit.engine import SAMPLERS
    from sdedit.params import SDE_NAMES

    assert tuple(SAMPLERS) == SDE_NAMES
