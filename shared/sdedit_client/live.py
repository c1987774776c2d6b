"""When a live-mode client sends the newest canvas: now (superseding the job in flight) or after its result.

The server lets a newer job of a session supersede the older one, so the queue never grows. Superseding on
every change, though, shows nothing at all while the artist keeps painting faster than a job takes: each
job is cancelled before it ends. So a client supersedes only a job that costs little to throw away (still
queued, or running but less than half done) and only once in a row; otherwise it holds the newest canvas and
sends it the moment the current result is in. A stroke then waits at most about two jobs' time for its
preview, and a preview comes at least every job or two while painting goes on. benchmarks/live.py measures it.
"""

from typing import Optional

YOUNG = 0.5  # a running job less than this far along is cheap enough to throw away for a newer canvas
FINAL = ("done", "failed", "cancelled")


def send_now(state: Optional[str], progress: float, restarts: int) -> bool:
    """Whether to send a newer canvas now.

    ``state``/``progress``: the job in flight's last known status (None: there is none); ``restarts``: how
    many jobs in a row were superseded since the last result was shown.
    """
    if state is None or state in FINAL or state == "queued":
        return True
    return restarts == 0 and progress < YOUNG
