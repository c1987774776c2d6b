"""Standard-library-only client for the SDEdit server, shared by the Krita and GIMP plugins.

    from sdedit_client import Client, SDEditError
    images, seeds = Client("http://127.0.0.1:8765").run(png_bytes, mask_png, t0=0.5, samples=2)

Works on Python 3.8+ with nothing outside the standard library, because editors ship their own Python.
"""

from .errors import (
    InvalidParameter,
    JobCancelled,
    JobFailed,
    RequestRejected,
    SDEditError,
    ServerStopped,
    ServerUnavailable,
)
from .client import Client
from .settings import DEFAULT_URL
from .params import DEFAULTS, EditParams, group_name, layer_name, validate_params

__all__ = [
    "Client",
    "DEFAULT_URL",
    "DEFAULTS",
    "EditParams",
    "InvalidParameter",
    "JobCancelled",
    "JobFailed",
    "RequestRejected",
    "SDEditError",
    "ServerStopped",
    "ServerUnavailable",
    "group_name",
    "layer_name",
    "validate_params",
]

__version__ = "0.1.0"
