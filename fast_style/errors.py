"""The one exception type users see.

Every failure caused by the user's input (a file, a flag, a config value, missing weights)
is raised as :class:`FastStyleError` with a single-line message that names the offending
thing and says how to fix it. The CLI prints that line and exits non-zero; anything else
that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class FastStyleError(Exception):
    """A user-facing error: ``str(error)`` is one line naming the culprit and the fix."""


@contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Prefix errors raised inside with the file they concern (e.g. the loss network finding an
    image too small, which knows the tensor but not where it came from)."""
    try:
        yield
    except FastStyleError as error:
        raise FastStyleError(f"{path}: {error}") from None


def show(value: Any, limit: int = 40) -> str:
    """A bounded repr for messages: a value from a config or model file may be huge (a YAML anchor bomb
    expands to billions of items), and an error must never render it whole."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxdict = short.maxtuple = short.maxset = 4
    short.maxlevel = 2
    return short.repr(value)


def one_line(text: object) -> str:
    """``text`` on one line: newlines and other control characters (e.g. in a file's name) escaped, so
    every error and warning stays the single line the contract promises."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in str(text))
