"""The Debian trixie root with GIMP 3 that the GIMP end-to-end tests run in (bookworm has no GIMP 3).

``.ci/gimp_root.sh`` builds it once (debootstrap + apt) and caches it outside the repository; these helpers
find or build it, install the plug-in into a throwaway GIMP profile inside it, and run GIMP there headless.
The chroot shares this machine's network, so GIMP's plug-in reaches a server on 127.0.0.1 outside.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO / ".ci" / "gimp_root.sh"
DEFAULT_ROOT = Path("/var/cache/sdedit-ci/trixie-gimp")
BUILD_TIMEOUT_S = 1800


class RootUnavailable(Exception):
    """The GIMP 3 root cannot be had on this machine; str() says why, in one sentence."""


def root_path() -> Path:
    return Path(os.environ.get("SDEDIT_GIMP_ROOT") or DEFAULT_ROOT)


def ensure_root() -> Path:
    """The path of a working GIMP 3 root, building it if needed; RootUnavailable with the reason if not."""
    reason = os.environ.get("SDEDIT_GIMP_UNAVAILABLE")
    if reason:
        raise RootUnavailable(reason)
    if os.name != "posix" or os.geteuid() != 0:
        raise RootUnavailable("the GIMP 3 end-to-end test runs GIMP in a Debian trixie chroot, which needs root")
    try:
        done = subprocess.run(["sh", str(BUILD_SCRIPT), str(root_path())], capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RootUnavailable("building the Debian trixie root with GIMP 3 took over %d s" % BUILD_TIMEOUT_S)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RootUnavailable(lines[-1] if lines else "%s failed (exit %d)" % (BUILD_SCRIPT, done.returncode))
    return Path(done.stdout.strip().splitlines()[-1])


def in_root_command(root: Path, argv: Sequence[str], env: Optional[dict] = None) -> List[str]:
    """``argv`` run inside ``root`` with /proc and /dev mounted in a private mount namespace (the mounts
    vanish with the process, even if it is killed)."""
    script = 'r="$1"; shift; mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && exec chroot "$r" "$@"'
    env_args = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"]
    env_args += ["%s=%s" % item for item in (env or {}).items()]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(root),
            *env_args, *argv]


def start_gimp_batch(root: Path, home: str, code: str, log: Path, env: Optional[dict] = None) -> subprocess.Popen:
    """Start ``code`` in GIMP 3's headless python-fu-eval batch interpreter; output goes to ``log``."""
    argv = ["gimp-console-3.0", "-i", "--quit", "--batch-interpreter=python-fu-eval", "-b", code]
    with open(log, "wb") as out:
        return subprocess.Popen(in_root_command(root, argv, dict(env or {}, HOME=home)), stdout=out,
                                stderr=subprocess.STDOUT)


def run_in_root(root: Path, argv: Sequence[str], env: Optional[dict] = None, timeout: float = 30) -> str:
    """Run a short command inside the root (e.g. xdotool); its stdout, or "" when it fails."""
    try:
        done = subprocess.run(in_root_command(root, argv, env), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return ""
    return done.stdout if done.returncode == 0 else ""


def find_watchdog(url: Optional[str] = None) -> Optional[Tuple[int, str, str]]:
    """(plug-in pid, server URL, job id) of a running SDEdit watchdog process, if any (Linux /proc).

    ``url``: only a watchdog for that server (other test runs on this machine have watchdogs of their own,
    and killing their plug-in's process group would kill someone else's work)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in argv if a]
        if len(argv) >= 5 and argv[-4].endswith("sdedit_gimp/watchdog.py") and (url is None or argv[-2] == url):
            parent_pid = int(stat.rsplit(")", 1)[1].split()[1])
            return parent_pid, argv[-2], argv[-1]
    return None


def kill_like_gimp_cancel(plugin_pid: int) -> None:
    """What GIMP does to a plug-in when the user cancels its progress: SIGKILL, to its process group when
    the plug-in has one of its own (app/plug-in/gimpplugin.c, gimp_plug_in_close)."""
    try:
        stat = Path("/proc/%d/stat" % plugin_pid).read_text()
        gimp_pid = int(stat.rsplit(")", 1)[1].split()[1])
        if os.getpgid(gimp_pid) != os.getpgid(plugin_pid):
            os.killpg(os.getpgid(plugin_pid), signal.SIGKILL)
        else:
            os.kill(plugin_pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
