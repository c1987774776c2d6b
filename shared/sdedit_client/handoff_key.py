"""Proof that a local server is this user's own `sdedit serve`, without giving anything away to an impostor.

A program that listens on the server's port first (a fake server, another user's process) must not receive
the user's picture or access token. Both sides read a per-user secret from a private file (0600, in the
user's 0700 sdedit folder); the client sends a fresh random nonce and the server answers with
HMAC-SHA256(secret, nonce, the address and port the request reached). The secret itself never travels, the
client's token is sent only after the proof checked out, and a proof is useless elsewhere: a fake server that
relays the nonce to the real one gets a proof naming the real server's address, and the client then talks to
that address, not to the fake.

Standard library only (the plugins' embedded Pythons, install.py).
"""

import hashlib
import hmac
import os
import secrets
import stat
import sys
from typing import Optional

from .server_record import cache_dir, private_dir

KEY_ENV = "SDEDIT_HANDOFF_KEY"  # overrides the key file's path (tests, portable setups)
KEY_BYTES = 32
NONCE_BYTES = 32
_DOMAIN = b"sdedit-handoff-proof-v1"


class KeyProblem(Exception):
    """The secret is missing or not private; ``str()`` says why in a few words."""


def key_path() -> str:
    """$SDEDIT_HANDOFF_KEY, else ``handoff.key`` in the user's sdedit cache folder."""
    return os.environ.get(KEY_ENV) or os.path.join(cache_dir(), "handoff.key")


def load_key(path: Optional[str] = None, create: bool = False) -> bytes:
    """The secret; with ``create`` a new one is written (0600) when there is none. KeyProblem if unusable."""
    path = path or key_path()
    if create and not os.path.exists(path):
        _create(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise KeyProblem("there is no key file %s" % path)
    except OSError as error:
        raise KeyProblem("the key file %s cannot be read (%s)" % (path, error.strerror or error))
    with os.fdopen(fd, "rb") as handle:
        problem = _not_private(os.fstat(handle.fileno()))
        if problem:
            raise KeyProblem("the key file %s %s" % (path, problem))
        raw = handle.read(4 * KEY_BYTES + 16).strip()
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) < KEY_BYTES // 2:
        raise KeyProblem("the key file %s is damaged" % path)
    return key


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def proof(key: bytes, nonce: str, host: str, port: int) -> str:
    """HMAC-SHA256 over the nonce and the server address the request reached, as hex."""
    message = b"\0".join((_DOMAIN, nonce.encode("ascii", "replace"), normal_host(host).encode("ascii", "replace"),
                          str(int(port)).encode("ascii")))
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def proof_matches(key: bytes, nonce: str, host: str, port: int, offered: object) -> bool:
    if not isinstance(offered, str):
        return False
    return hmac.compare_digest(proof(key, nonce, host, port).encode(), offered.encode("ascii", "replace"))


def normal_host(host: str) -> str:
    """'[::1]' / '::1' / '127.0.0.1' -> the bare lower-case address."""
    return (host or "").strip().strip("[]").lower()


def valid_nonce(nonce: object) -> bool:
    return isinstance(nonce, str) and 32 <= len(nonce) <= 128 and all(c in "0123456789abcdef" for c in nonce)


# -- the file ------------------------------------------------------------------------------------------------
def _create(path: str) -> None:
    """Write a new key so that no reader ever sees a partial or public one; a key another process wrote in the
    meantime wins (os.link does not replace)."""
    folder = os.path.dirname(os.path.abspath(path))
    private_dir(folder)
    tmp = "%s.%d.%s.tmp" % (path, os.getpid(), secrets.token_hex(4))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(KEY_BYTES) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except (AttributeError, NotImplementedError, PermissionError):  # no hard links (some Windows file systems)
            if not os.path.exists(path):
                os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _not_private(info: os.stat_result) -> str:
    """'' when only this user can read the file, else what is wrong."""
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if sys.platform.startswith("win"):
        return ""  # the profile folder's ACLs keep it private; modes mean little there
    if info.st_uid != os.getuid():
        return "belongs to another user"
    if info.st_mode & 0o077:
        return "can be read by other users (mode %o; it must be 600)" % stat.S_IMODE(info.st_mode)
    return ""
