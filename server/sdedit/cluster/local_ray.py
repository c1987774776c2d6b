"""A local Ray (`sdedit serve --ray` without an address) that only this user on this machine can reach.

Ray resolves "127.0.0.1" to the machine's LAN address on purpose (so other nodes can join), and then its GCS,
raylet and dashboard agent listen there and on all interfaces; its token file ~/.ray/auth_token is written
with the default umask (0644). A local pool needs no other node, so Ray is told to use the loopback address
(its own switch for single-machine setups, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which makes the node address
127.0.0.1 and every server bind there), and it starts under umask 077 with its token file made private.
With an address (a real cluster) nothing is changed.
"""
from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path
from typing import Iterator

SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # ray._private.ray_constants.ENABLE_RAY_CLUSTER


def keep_on_loopback() -> None:
    """Make this process's (and its children's) Ray use 127.0.0.1 as the node address."""
    os.environ[SINGLE_MACHINE_ENV] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:  # Ray already imported: it read the switch then
        constants.ENABLE_RAY_CLUSTER = False


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Files Ray creates meanwhile are this user's only (umask 077); ~/.ray and its token made private."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
        make_private(Path.home() / ".ray", 0o700)
        make_private(Path.home() / ".ray" / "auth_token", 0o600)


def make_private(path: Path, mode: int) -> None:
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(mode)
    except OSError:
        pass
