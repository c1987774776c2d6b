"""One headless GIMP 3 run of a batch script from this folder, in the GIMP root, with a fresh profile."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

import gimproot

sys.path.append(str(gimproot.REPO / "gimp_plugin"))
from install_gimp import install  # noqa: E402

GIMP_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GimpRun:
    """One headless GIMP run of a batch script from this folder, with a fresh profile holding the plug-in."""

    def __init__(self, root: Path, script: str, params: dict, display: Optional[str] = None) -> None:
        self.root = root
        self.work = Path(tempfile.mkdtemp(prefix="sdedit-e2e-", dir=root / "tmp"))
        self.inside = "/" + str(self.work.relative_to(root))
        install(str(self.work / "home" / ".config" / "GIMP" / "3.0" / "plug-ins"))
        shutil.copy(Path(__file__).with_name(script), self.work / "batch.py")
        params = dict(params, report=self.inside + "/report.json")
        (self.work / "params.json").write_text(json.dumps(params))
        code = "SDEDIT_E2E_PARAMS=%r; exec(open(%r).read())" % (self.inside + "/params.json",
                                                                 self.inside + "/batch.py")
        self.log = self.work / "gimp.log"
        self.env = {"DISPLAY": display} if display else {}
        self.started = time.monotonic()
        self.process = gimproot.start_gimp_batch(root, self.inside + "/home", code, self.log, self.env)

    def path(self, name: str) -> Path:
        """A file of this run, as seen from outside the root."""
        return self.work / name

    def inner(self, name: str) -> str:
        """The same file as GIMP inside the root sees it."""
        return self.inside + "/" + name

    def finish(self, during: Optional[Callable[[], None]] = None) -> dict:
        """Wait for GIMP (running ``during()`` first, while it works) and return the batch script's report."""
        try:
            if during is not None:
                during()
            rc = self.process.wait(timeout=max(1.0, GIMP_TIMEOUT_S - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("GIMP did not finish within %d s; its output ends:\n%s"
                        % (GIMP_TIMEOUT_S, self.log.read_text()[-3000:]))
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        print("GIMP batch run: %.1f s, exit %d" % (time.monotonic() - self.started, rc))
        report_file = self.work / "report.json"
        if not report_file.exists():
            pytest.fail("GIMP wrote no report (exit %d); its output ends:\n%s" % (rc, self.log.read_text()[-3000:]))
        report = json.loads(report_file.read_text())
        assert report["ok"], report.get("traceback")
        return report

    def cleanup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
