"""Where and how computations run: device choice, seeding, torch's global flags, progress bars, and
stopping a long loop cleanly on Ctrl-C or SIGTERM.

Kept in one place so every command resolves ``--device auto`` and shows progress the same
way, and a missing GPU is one clear line rather than a CUDA traceback. (A torchrun job's
process group is :mod:`fast_style.training.distributed`; precision rules are :mod:`fast_style.precision`.)
"""

from __future__ import annotations

import os
import random
import signal
import sys
from types import FrameType, TracebackType
from typing import Any, Iterable, Literal, TypeVar

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


def set_determinism(deterministic: bool) -> None:
    """torch's process-wide kernel choice: deterministic algorithms (runs repeat bit for bit, a little
    slower), or cuDNN benchmarking (the fastest convolution per shape, chosen by timing, so not repeatable).

    Process-wide, so set once by the command that runs, never by a library call in passing.
    """
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", disable: bool | None = None, delay: float = 0.0):
    """A tqdm bar on stderr; hidden when stderr is not a terminal unless FAST_STYLE_PROGRESS=1, and for
    the first ``delay`` seconds (work that ends sooner shows none)."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = not (sys.stderr.isatty() or os.environ.get("FAST_STYLE_PROGRESS") == "1")
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, leave=False,
                delay=delay)


class StopAtStepBoundary:
    """While entered, Ctrl-C and SIGTERM (schedulers, ``timeout``) ask a loop to stop at its next
    :meth:`check`, i.e. between two steps; a second signal stops it at once. Leaving puts the previous
    handlers back.

    Raising at the signal could land between an optimiser's in-place updates, and a checkpoint written
    on the way out would then hold a half-applied step that no uninterrupted run ever had. Installed
    explicitly because a process started in the background of a shell inherits SIGINT as *ignored*,
    and SIGTERM would otherwise kill it without a checkpoint.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopAtStepBoundary:
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._request)
            except ValueError:  # not the main thread (e.g. called from a worker thread): leave as is
                pass
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _request(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        """Raise KeyboardInterrupt if a signal came since the last check (the loop is between steps)."""
        if self.requested:
            self.requested = False
            raise KeyboardInterrupt
