"""Error texts a client may see: one readable sentence, no server paths, nothing echoed at length.

The engine's and libraries' messages are written for the person at the server's console; over HTTP they go
to whoever sent the request, so absolute paths are cut to their last part and long texts are shortened.
"""
from __future__ import annotations

import re
from typing import Any, Optional

MAX_CHARS = 300
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"():,;]+)+/?")


def scrub_paths(text: str) -> str:
    """'/home/me/models/x.ckpt' -> 'x.ckpt': the client learns which file, not where the server keeps it."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or "/", text)


def public_error(err: BaseException, expected: bool) -> str:
    """The sentence a failed job reports. `expected`: an InputError, whose text is meant for the user."""
    text = str(err).strip()
    if not expected:
        first = text.splitlines()[0].strip() if text else ""
        text = f"{type(err).__name__}: {first}" if first else type(err).__name__
    return shorten(scrub_paths(" ".join(text.split())))


def shorten(text: str, limit: int = MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def shown_value(value: Any) -> str:
    """' (got X)' for a rejected field value, short: a 4,300-digit number is described, not repeated."""
    if isinstance(value, bool) or value is None:
        return f" (got {value!r})" if isinstance(value, bool) else ""
    if isinstance(value, int):
        if value.bit_length() <= 64:
            return f" (got {value})"
        return f" (got a number of about {int(value.bit_length() * 0.30103) + 1} digits)"
    if isinstance(value, float):
        return f" (got {value!r})"
    if isinstance(value, str) and len(value) <= 40:
        return f" (got {value!r})"
    return ""


def body_parse_problem(cause: Optional[BaseException]) -> str:
    """Why FastAPI could not parse a body, in words (it only says 'There was an error parsing the body')."""
    if isinstance(cause, RecursionError):
        return ("Invalid request: the body's JSON is nested too deeply to read; send one flat JSON object with an "
                "'image' field.")
    if isinstance(cause, UnicodeDecodeError):
        return "Invalid request: the body could not be read as UTF-8 JSON."
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return ("Invalid request: the body holds a number of more than 4300 digits; send numbers in their "
                "allowed ranges (see /docs).")
    return "Invalid request: the body could not be read as UTF-8 JSON."
