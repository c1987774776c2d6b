"""Cancel the server job if GIMP kills the plug-in.

GIMP's Cancel button on a plug-in's progress bar kills the plug-in process outright, so the plug-in
cannot tell the server to stop. Before polling, the plug-in starts this script as a separate process
holding one end of a pipe: when the plug-in finishes normally it writes ``done``; when the plug-in dies,
the pipe closes without it and this script sends ``DELETE /v1/jobs/{id}``, so the server stops within one
sampler step instead of computing results nobody will see.

Run as: ``python watchdog.py CLIENT_DIR BASE_URL JOB_ID`` (token, if any, in ``SDEDIT_TOKEN``).
"""

import os
import subprocess
import sys
from typing import IO, List, Optional

DONE = b"done\n"


class Watchdog:
    """Handle on a running watchdog process; ``release()`` tells it the job needs no cancelling."""

    def __init__(self, process: Optional["subprocess.Popen[bytes]"]) -> None:
        self._process = process

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    def release(self) -> None:
        """The plug-in is done with the job (finished, failed or cancelled by itself): stand down."""
        process, self._process = self._process, None
        if process is None:
            return
        stdin: Optional[IO[bytes]] = process.stdin
        try:
            if stdin is not None:
                stdin.write(DONE)
                stdin.close()
            process.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass


def command(base_url: str, job_id: str, client_dir: str) -> List[str]:
    """The command line that starts the watchdog with this Python."""
    return [sys.executable, os.path.abspath(__file__), client_dir, base_url, job_id]


def start(base_url: str, job_id: str, client_dir: str, token: Optional[str] = None) -> Watchdog:
    """Start a watchdog for ``job_id``; on any failure return an inert one (cancel-on-kill is best effort)."""
    env = dict(os.environ)
    if token:
        env["SDEDIT_TOKEN"] = token
    kwargs = {}
    if os.name == "posix":
        # Its own session: GIMP may kill the plug-in's whole process group.
        kwargs["start_new_session"] = True
    else:
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    try:
        process = subprocess.Popen(command(base_url, job_id, client_dir), stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                   close_fds=True, **kwargs)
    except (OSError, ValueError):
        return Watchdog(None)
    return Watchdog(process)


def main(argv: List[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write("usage: watchdog.py CLIENT_DIR BASE_URL JOB_ID\n")
        return 2
    client_dir, base_url, job_id = argv
    try:
        line = sys.stdin.buffer.readline()
    except (OSError, ValueError):
        line = b""
    if line == DONE:
        return 0
    sys.path.insert(0, client_dir)
    try:
        from sdedit_client import Client, SDEditError
    except ImportError:
        return 1
    try:
        Client(base_url, token=os.environ.get("SDEDIT_TOKEN") or None, timeout=5.0).cancel(job_id)
    except SDEditError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
