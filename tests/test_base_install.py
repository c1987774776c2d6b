"""A plain install (base dependencies only) can import every module of sdedit (issue 20: scipy was [dev] only)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "import_all.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "server"), str(ROOT / "shared")]))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


@pytest.mark.slow
def test_every_module_imports_with_only_base_dependencies():
    res = _run("--only-base")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("imported "), res.stdout


def test_the_guard_refuses_what_only_dev_brings():
    """The check can fail: pytest is a [dev] package, so the guard must refuse it."""
    code = ("import sys; sys.path.insert(0, %r); import import_all as ia; "
            "sys.meta_path.insert(0, ia._OnlyBase(ia.closure(ia.base_requirements()) | {'sdedit'}));\n"
            "try:\n import pytest\nexcept ModuleNotFoundError as e:\n print('refused', e.name)\n" % str(ROOT / "tests"))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "refused pytest" in res.stdout, res.stdout + res.stderr
