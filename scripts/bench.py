"""Run ``fast-style bench`` without installing the package: ``python3 scripts/bench.py --device cuda``.

The same code and flags as the subcommand (see ``fast_style/bench/``); JSON goes to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fast_style.cli import main  # noqa: E402  (after the path is set)

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
