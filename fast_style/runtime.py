"""Where and how computations run: device choice, seeding, progress bars.

Kept in one place so every command resolves ``--device auto`` and shows progress the same
way, and a missing GPU is one clear line rather than a CUDA traceback.
"""

from __future__ import annotations

import os
import random
import sys
from typing import Iterable, Literal, TypeVar

import torch

from fast_style.errors import FastStyleError

Device = Literal["auto", "cpu", "cuda"]
T = TypeVar("T")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FastStyleError(f"--device {name}: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise FastStyleError(f"--device {name}: not a device; use cpu, cuda or auto") from None


def seed_everything(seed: int) -> None:
    """Seed Python and torch (all devices) so runs repeat."""
    random.seed(seed)
    torch.manual_seed(seed)


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", disable: bool | None = None):
    """A tqdm bar on stderr; hidden when stderr is not a terminal unless FAST_STYLE_PROGRESS=1."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = not (sys.stderr.isatty() or os.environ.get("FAST_STYLE_PROGRESS") == "1")
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, leave=False)
