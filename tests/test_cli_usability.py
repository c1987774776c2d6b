"""Small things a new user trips on: sampler names in any case, what --steps 0 means, the documented API."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'server'}{os.pathsep}{ROOT / 'shared'}")
    return subprocess.run([sys.executable, "-m", "sdedit", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.parametrize("name", ["ODE", "Ve"])
def test_sde_name_in_any_case(tmp_path, tiny_vp_dir, name):
    Image.new("RGB", (32, 32), (90, 140, 200)).save(tmp_path / "in.png")
    res = run_cli("edit", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", str(tiny_vp_dir),
                  "--sde", name, "--steps", "2", "--seed", "1")
    assert res.returncode == 0, res.stderr
    assert f" {name.lower()} steps" in res.stderr and (tmp_path / "out.png").is_file()


def test_help_says_what_steps_0_means():
    res = run_cli("edit", "--help")
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert re.search(r"--steps STEPS .*0 or not given = the model's default", text), text
    assert "any case" in text


def test_readme_lists_the_http_endpoints_beside_serve():
    readme = (ROOT / "README.md").read_text()
    serve_section = readme[readme.index("sdedit serve"):readme.index("## In the editors")]
    for endpoint in ("GET /v1/health", "GET /v1/models", "POST /v1/jobs", "GET /v1/jobs/{id}",
                     "GET /v1/jobs/{id}/preview", "GET /v1/jobs/{id}/result", "DELETE /v1/jobs/{id}"):
        assert endpoint in serve_section, endpoint
        rows = readme.count(f"| `{endpoint}`") + readme.count(f"| `{endpoint}[")
        assert rows == 1, f"{endpoint} is listed in {rows} table rows: one HTTP API table"
    models_row = next(line for line in readme.splitlines() if line.startswith("| `GET /v1/models`"))
    assert "trained with" in models_row and "sends no `sde`" in models_row  # sde vs default_sde, both explained
