"""GIMP 3 end to end, interactive: the plug-in's dialog opens on an X display, takes a typed value, runs on
OK, and GIMP remembers the values for "Repeat" (WITH_LAST_VALS).

GIMP runs headless (gimp-console) but the plug-in's GTK dialog needs a display: a private Xvfb here, driven
with xdotool inside the GIMP root (both reach it through the shared abstract X socket).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import gimproot
from gimprun import GimpRun

pytestmark = pytest.mark.e2e

DIALOG_TIMEOUT_S = 240


def answer_dialog(root, display: str, gimp) -> bool:
    """Wait for the "SDEdit" dialog, type t0 = 0.35 (Alt+T is its mnemonic) and press OK (Alt+O)."""
    env = {"DISPLAY": display}
    deadline = time.monotonic() + DIALOG_TIMEOUT_S
    while gimp.poll() is None and time.monotonic() < deadline:
        window = gimproot.run_in_root(root, ["xdotool", "search", "--name", "^SDEdit$"], env).split()
        if window:
            script = ("xdotool windowfocus --sync {w} && sleep 0.5 && xdotool key --clearmodifiers alt+t "
                      "&& xdotool key --clearmodifiers ctrl+a && xdotool type --delay 40 0.35 "
                      "&& xdotool key --clearmodifiers Tab && sleep 0.3 && xdotool key --clearmodifiers alt+o"
                      ).format(w=window[0])
            gimproot.run_in_root(root, ["sh", "-c", script], env)
            return True
        time.sleep(0.5)
    return False


def watch_preview_window(root, display: str, gimp, seen: dict) -> None:
    """While the job runs: the plug-in's "SDEdit preview" window appears. With ImageMagick's import on this
    machine the screen is grabbed while the window is up; the last grab with the window still there is kept."""
    env = {"DISPLAY": display}
    out = Path(os.environ.get("SDEDIT_E2E_OUT") or "/tmp")
    deadline = time.monotonic() + DIALOG_TIMEOUT_S
    shots = 0
    while gimp.poll() is None and time.monotonic() < deadline:
        window = gimproot.run_in_root(root, ["xdotool", "search", "--name", "^SDEdit preview$"], env).split()
        if not window:
            if seen.get("window"):
                return  # it came and went: the job is over
            time.sleep(0.1)
            continue
        seen["window"] = window[0]
        if not shutil.which("import"):
            time.sleep(0.2)
            continue
        shot = out / ("gimp-preview-%d.png" % (shots % 2))
        subprocess.run(["import", "-display", display, "-window", "root", str(shot)], timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if gimproot.run_in_root(root, ["xdotool", "search", "--name", "^SDEdit preview$"], env).split():
            shutil.copy(shot, out / "gimp-preview-window.png")  # taken while the window was still up
            seen["screenshot"] = str(out / "gimp-preview-window.png")
            seen["shots"] = seen.get("shots", 0) + 1
        shots += 1
        time.sleep(0.3)


def test_dialog_runs_with_typed_values_and_remembers_them(gimp_root, server, xdisplay):
    if not gimproot.run_in_root(gimp_root, ["sh", "-c", "command -v xdotool"]):
        pytest.skip("xdotool is missing from the GIMP root; rebuild it with .ci/gimp_root.sh")
    run = GimpRun(gimp_root, "gimp_batch_dialog.py", {"server_url": server}, display=xdisplay)
    try:
        answered = []
        seen: dict = {}

        def during():
            answered.append(answer_dialog(gimp_root, xdisplay, run.process))
            watch_preview_window(gimp_root, xdisplay, run.process, seen)

        report = run.finish(during=during)
    finally:
        run.cleanup()
    assert answered == [True], "the SDEdit dialog never appeared"
    assert seen.get("window"), "the live preview window never appeared during the interactive run"
    if seen.get("screenshot"):  # the window showed a picture (the preview), not an empty frame
        from PIL import Image

        with Image.open(seen["screenshot"]) as shot:
            area = shot.convert("RGB").crop((0, 0, 280, 260))
            colours = len(area.getcolors(1 << 20) or [])
            if os.environ.get("SDEDIT_UPDATE_DOCS") == "1":
                shot.crop((0, 0, 280, 350)).save(str(gimproot.REPO / "docs" / "gimp-preview.png"))
        assert colours > 50, "the preview window shows no picture (%d colours)" % colours
    interactive, repeat = report["runs"]
    assert interactive["status"] == "success", interactive["error"]
    # The dialog showed the caller's steps/seed and the typed t0; the layer name records what ran.
    # No sampler given: the model's default, so none in the name.
    assert interactive["new_layers"] == ["SDEdit t0=0.35 #1 seed=11"]
    assert repeat["status"] == "success", repeat["error"]
    # Same values again; GIMP makes the repeated layer name unique by appending " #1".
    assert repeat["new_layers"] == ["SDEdit t0=0.35 #1 seed=11 #1"]
