"""``fast-style``: one console command, one small module per subcommand.

Each module in :mod:`fast_style.commands` defines ``HELP``, ``add_arguments(parser)`` and
``main(args) -> int`` and imports torch only inside ``main``, so ``--help`` is instant.
Errors caused by the user (:class:`~fast_style.errors.FastStyleError`) become one line on
stderr and exit status 2; Ctrl-C exits with 130 after the command has cleaned up.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import sys
import warnings

from fast_style.errors import FastStyleError, one_line

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


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"fast-style: warning: {one_line(message)}", file=sys.stderr)


# glibc mallopt() parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse; True if it took effect (Linux with glibc).

    PyTorch's CPU tensors come from malloc, and glibc serves large blocks with fresh mmaps that go
    back to the kernel when freed, so every big activation of every forward pass faults its pages in
    again (a large share of a CPU pass: docs/performance.md). With
    mmap off and trimming raised, freed blocks are reused instead: the process keeps its peak memory
    until it exits, which suits a command-line run. Called first by every ``fast-style`` subcommand;
    library users may call it themselves.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): keep the platform's default
        return False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warnings
    keep_freed_memory()
    try:
        return int(args.run(args) or 0)
    except FastStyleError as error:
        print(f"fast-style {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
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
