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

Device = Literal["auto", "cpu", "cuda", "mps", "xpu"]  # the same as commands.common.DEVICE_CHOICES
# What each device type is called in messages, and whether this PyTorch can see one.
DEVICE_LABELS = {"cuda": "CUDA GPU", "mps": "Apple GPU (MPS)", "xpu": "Intel GPU (XPU)"}
T = TypeVar("T")


def accelerator_available(kind: str) -> bool:
    """Whether this PyTorch build sees a device of this type (cpu always)."""
    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    backend = getattr(torch.backends, kind, None) if kind == "mps" else getattr(torch, kind, None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the machine's accelerator (``torch.accelerator``: CUDA, MPS, XPU, ...) when one is
    available, else cpu; a named accelerator that is not there is a clear error.

    MPS and XPU are selected like CUDA but untested here (no such hardware): precision ``auto`` keeps
    them in fp32 until measured.
    """
    if name == "auto":
        accelerator = getattr(torch, "accelerator", None)
        if accelerator is not None and accelerator.is_available():
            return accelerator.current_accelerator()
        return torch.device("cpu")
    kind = name.split(":", 1)[0]
    if kind in DEVICE_LABELS and not accelerator_available(kind):
        raise FastStyleError(f"--device {name}: no {DEVICE_LABELS[kind]} is visible to PyTorch; "
                             "use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise FastStyleError(f"--device {name}: not a device; use auto, cpu, cuda, mps or xpu") from None


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
