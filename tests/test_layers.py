"""The client and plugin tests need neither torch nor the server package: they run where only pytest and
Pillow are installed (what a plugin developer has). CI runs them in such a venv:

    python3 -m venv /tmp/notorch && /tmp/notorch/bin/pip install pytest pillow
    /tmp/notorch/bin/python -m pytest -q -p no:cacheprovider $(/tmp/notorch/bin/python tests/test_layers.py)

Here the same is checked inside the full environment by making `import torch` fail in a child process.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: test modules of the layers that must not need torch (client, plugins, installer)
WITHOUT_TORCH = ("test_client.py", "test_plugin_settings.py", "test_krita_plugin.py", "test_gimp_options.py",
                 "test_gimp_watchdog.py", "test_gimp_install.py", "test_install.py")

_BLOCK_TORCH = """
import sys
for name in ("torch", "diffusers", "transformers", "fastapi", "httpx"):
    sys.modules[name] = None  # `import torch` raises ImportError, as where it is not installed
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


def test_conftest_imports_no_torch():
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import conftest; "
            "bad = [m for m in ('torch', 'diffusers', 'sdedit') if m in sys.modules]; "
            "sys.exit(f'conftest imported {bad}' if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_client_and_plugin_tests_pass_without_torch():
    args = ["-q", "-p", "no:cacheprovider", "-x", *[str(HERE / name) for name in WITHOUT_TORCH]]
    done = subprocess.run([sys.executable, "-c", _BLOCK_TORCH, *args], capture_output=True, text=True,
                          timeout=600, cwd=HERE.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


if __name__ == "__main__":  # the module list, for the CI command above
    print(" ".join(f"tests/{name}" for name in WITHOUT_TORCH))
