"""Exceptions of the SDEdit client.

Every error is an :class:`SDEditError` whose ``str()`` is one sentence a painter can act on, so the
editor plugins can show it in a message box as is, never a traceback.
"""


class SDEditError(Exception):
    """Base class: something the user should be told about in one sentence."""


class ServerUnavailable(SDEditError):
    """The server could not be reached (not running, wrong URL, or it did not answer in time)."""


class ServerStopped(ServerUnavailable):
    """The local server stopped while it worked on the edit; starting it again (and repeating the edit) may
    help. ``log_line`` is the last line of its log when the editor started it (else "")."""

    def __init__(self, message: str, log_line: str = "", log_path: str = "") -> None:
        super().__init__(message)
        self.log_line = log_line
        self.log_path = log_path


class RequestRejected(SDEditError):
    """The server refused the request (HTTP 4xx); ``str()`` carries the server's own message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class JobFailed(SDEditError):
    """The job ran on the server and failed there (engine error, out of memory, ...)."""


class JobCancelled(SDEditError):
    """The job was cancelled (by the user, or on the server)."""


class InvalidParameter(SDEditError, ValueError):
    """A request parameter is out of range before it is even sent."""
