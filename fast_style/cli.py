"""``fast-style``: one console command, one small module per subcommand.

Each module in :mod:`fast_style.commands` defines ``HELP``, ``add_arguments(parser)`` and
``main(args) -> int`` and imports torch only inside ``main``, so ``--help`` is instant.
Errors caused by the user (:class:`~fast_style.errors.FastStyleError`) become one line on
stderr and exit status 2; Ctrl-C exits with 130 and SIGTERM with 143, both after the command has
cleaned up (SIGTERM is raised as :class:`Terminated`, a KeyboardInterrupt, so every temp file is
removed on the way out exactly as for Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from fast_style.errors import FastStyleError, one_line
from fast_style.memory import keep_freed_memory

COMMANDS = ["optimize", "train", "stylize", "video", "export", "compare", "sweep", "bench", "demo", "models"]


class DefaultsOnceFormatter(argparse.HelpFormatter):
    """Shows an option's default once: only where its help text does not already say it, and never
    an absent (None) or off (False) one, which reads as noise: ``(default: None)``."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if ("default" in help_text or action.default in (None, False, argparse.SUPPRESS)
                or action.option_strings == [] and action.nargs in ("*", "+")):
            return help_text
        return f"{help_text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fast-style",
        description="Fast neural style transfer: train a network per painting, stylize photos in "
                    "milliseconds, and compare with Gatys optimisation.",
        epilog="Run `fast-style COMMAND --help` for a command's options. Config keys can be "
               "overridden as key=value (e.g. loss.style_weight=20).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"fast_style.commands.{name}")
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP,
                                  formatter_class=DefaultsOnceFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.main)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a scheduler), raised where Python's default would end the process at
    once: as a KeyboardInterrupt it unwinds through every ``finally`` and atomic write, so no temp file
    is left in the user's folder. (SIGKILL cannot be caught: the next run's sweep removes its debris.)"""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While entered, SIGTERM raises :class:`Terminated`; the previous handler is put back after."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"fast-style: warning: {one_line(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warnings
    keep_freed_memory()
    try:
        with sigterm_unwinds():
            return int(args.run(args) or 0)
    except FastStyleError as error:
        print(f"fast-style {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"fast-style {args.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"fast-style {args.command}: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as error:
        if not out_of_memory(error):
            raise
        print(f"fast-style {args.command}: error: out of memory ({' '.join(str(error).split())[:120]}); "
              "use a smaller size (--size, image_size or batch_size) or --tile", file=sys.stderr)
        return 2


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation failure (Python's, torch's CPU allocator's, or CUDA's): a size
    the user chose that this machine cannot hold, not a bug."""
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in str(error))


if __name__ == "__main__":
    sys.exit(main())
