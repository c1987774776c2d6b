"""Run the real Krita (under Xvfb) with the SDEdit plugin and the e2e harness in a throw-away profile."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def krita_missing_reason() -> Optional[str]:
    """None when Krita and xvfb-run are there; else why the e2e test cannot run (one sentence)."""
    if os.environ.get("SDEDIT_KRITA_SKIP_REASON"):  # set by .ci/krita.sh when apt-get could not install Krita
        return "Krita could not be installed: " + os.environ["SDEDIT_KRITA_SKIP_REASON"]
    missing = [tool for tool in ("krita", "xvfb-run") if shutil.which(tool) is None]
    if missing:
        return ("%s not installed: run .ci/krita.sh (it installs Debian's krita, python3-pyqt5 and xvfb)"
                % " and ".join(missing) + (" is" if len(missing) == 1 else " are"))
    return None


def prepare_profile(home: Path) -> Dict[str, str]:
    """A fresh HOME with the SDEdit plugin installed by install_krita.py plus the harness; returns the env."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("install_krita", ROOT / "krita_plugin" / "install_krita.py")
    install_krita = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(install_krita)

    config_home = home / ".config"
    data_home = home / ".local" / "share"
    runtime = home / "runtime"
    for folder in (config_home, data_home, home / ".cache", runtime):
        folder.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    pykrita = data_home / "krita" / "pykrita"
    kritarc = config_home / "kritarc"
    install_krita.install(str(pykrita), kritarc=str(kritarc))
    shutil.copy2(HERE / "harness" / "sdedit_e2e.desktop", pykrita / "sdedit_e2e.desktop")
    shutil.copytree(HERE / "harness" / "sdedit_e2e", pykrita / "sdedit_e2e",
                    ignore=shutil.ignore_patterns("__pycache__"))
    install_krita.set_enabled(str(kritarc), "sdedit_e2e", True)
    env = dict(os.environ)
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(config_home), "XDG_DATA_HOME": str(data_home),
                "XDG_CACHE_HOME": str(home / ".cache"), "XDG_RUNTIME_DIR": str(runtime)})
    for leak in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # Krita must use its own Python, not the venv's
        env.pop(leak, None)
    return env


def run_krita(home: Path, config: Dict, timeout: float = 420.0) -> Tuple[Dict, str, float]:
    """Start Krita with the harness; returns (report, log text, seconds). Report is {} if none was written."""
    out_dir = Path(config["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    env = prepare_profile(home)
    config_path = home / "sdedit_e2e.json"
    config_path.write_text(json.dumps(config))
    env["SDEDIT_E2E_CONFIG"] = str(config_path)
    log_path = out_dir / "krita.log"
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "krita", "--nosplash"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(home),
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    seconds = time.monotonic() - start
    report_path = out_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return report, log_path.read_text(errors="replace"), seconds
