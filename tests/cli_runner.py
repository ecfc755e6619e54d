"""Running ``fast-style`` in-process from tests: exit status, stdout and stderr in one result."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from fast_style import cli


class Result(NamedTuple):
    status: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture, *args: object) -> Result:
    """``fast-style ARGS`` in-process: exit status, stdout, stderr."""
    capsys.readouterr()
    try:
        status = cli.main([str(arg) for arg in args])
    except SystemExit as exit_:  # argparse: unknown command or flag
        status = exit_.code
    captured = capsys.readouterr()
    return Result(status, captured.out, captured.err)
