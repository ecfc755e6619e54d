"""What a training run shows and records as it goes: its lines, its progress bar, TensorBoard, its loss curve.

Rank 0 speaks for a torchrun job, so the trainer makes one :class:`TrainLog` there and a
:class:`SilentLog` (the same calls, doing nothing) on every other rank: the loop logs
unconditionally and never asks which rank it is on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from fast_style.config import dump_yaml
from fast_style.losses import TERM_NAMES
from fast_style.runtime import progress

PROGRESS_LINE_EVERY_S = 30.0  # a log line at most this often when the progress bar is hidden

# Validation's result: its loss terms and the stylized held-out photos, or None where there is nothing to score.
Validation = tuple[dict[str, float], torch.Tensor] | None


def duration(seconds: float) -> str:
    """``2 h 13 min``, ``4 min 05 s``, ``12 s``: a remaining time to read at a glance."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


class TrainLog:
    """Rank 0's log of a run of ``steps`` steps of ``images_per_step`` photos (the global batch, all
    ranks together).

    ``history`` is the loss curve as logged (training losses at logged steps, validation results):
    the log writes it, checkpoints carry it, and model.json keeps it as ``loss_history``.
    """

    def __init__(self, steps: int, images_per_step: int):
        self.steps, self.images_per_step = steps, images_per_step
        self.history: list[dict[str, float]] = []
        self._writer: Any = None  # TensorBoard's SummaryWriter, from open() on
        self._bar: Any = None  # the progress bar, while progress() is entered
        self._last_line = 0.0  # when the last progress line was printed

    def say(self, text: str) -> None:
        print(f"fast-style train: {text}", flush=True)

    def warning(self, text: str) -> None:
        self.say(f"warning: {text}")

    def open(self, output_dir: Path, config: Any, step: int, start_line: str) -> None:
        """Start TensorBoard in ``output_dir`` (the config as its first text), then print the start line."""
        from torch.utils.tensorboard import SummaryWriter

        output_dir.mkdir(parents=True, exist_ok=True)
        self._writer = SummaryWriter(str(output_dir))
        self._writer.add_text("config", "```\n" + dump_yaml(config) + "\n```", step)
        self.say(start_line)

    @contextmanager
    def progress(self, step: int) -> Iterator[None]:
        """The progress bar from ``step`` while the loop runs (hidden where stderr is not a terminal,
        and progress lines printed instead)."""
        self._bar = progress(total=self.steps, desc="train", unit="step")
        self._bar.update(step)
        self._last_line = time.perf_counter()
        try:
            yield
        finally:
            self._bar.close()
            self._bar = None

    def advance(self) -> None:
        """One step done, applied or skipped."""
        self._bar.update(1)

    def losses(self, step: int, mean: dict[str, float], rate: float) -> None:
        """A logged step's mean losses and ``rate`` (images/s): into the history and TensorBoard, onto
        the bar, and, where no bar shows, a progress line at most every PROGRESS_LINE_EVERY_S."""
        self.history.append({"step": step, **mean, "images_per_second": rate})
        for key, value in mean.items():
            self._writer.add_scalar(f"train/{key}", value, step)
        self._writer.add_scalar("train/images_per_second", rate, step)
        self._bar.set_postfix(loss=f"{mean['loss']:.4g}", img_s=f"{rate:.0f}", refresh=False)
        if self._bar.disable and time.perf_counter() - self._last_line >= PROGRESS_LINE_EVERY_S:
            self.say(self._progress_line(step, mean, rate))
            self._last_line = time.perf_counter()

    def _progress_line(self, step: int, mean: dict[str, float], rate: float) -> str:
        """``step 1200/40000 (3%): loss 1.758 (content 0.983, style 0.607, tv 0.167), 36 images/s, about
        2 h 13 min left`` for log files, where no progress bar shows."""
        left_s = (self.steps - step) * self.images_per_step / max(rate, 1e-9)
        terms = ", ".join(f"{name} {mean[name]:.4g}" for name in TERM_NAMES if name in mean)
        return (f"step {step}/{self.steps} ({100 * step / self.steps:.0f}%): loss {mean['loss']:.4g} ({terms}), "
                f"{rate:.3g} images/s, about {duration(left_s)} left")

    def validation(self, step: int, validate: Callable[[], Validation]) -> dict[str, float] | None:
        """Run ``validate`` and log its terms and pictures at ``step``; returns the terms.

        Takes the function rather than its result because only rank 0 shows validation, so only
        rank 0 spends the time on it.
        """
        result = validate()
        if result is None:
            return None
        terms, images = result
        for key, value in terms.items():
            self._writer.add_scalar(f"validation/{key}", value, step)
        self._writer.add_images("validation/stylized", images, step)
        self.history.append({"step": step, **{f"validation_{k}": v for k, v in terms.items()}})
        return terms

    def close(self) -> None:
        """Flush and close TensorBoard (safe to call again, and before open())."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class SilentLog(TrainLog):
    """The log of any rank but 0: every call accepted, nothing shown, written or validated."""

    def say(self, text: str) -> None:
        pass

    def open(self, output_dir: Path, config: Any, step: int, start_line: str) -> None:
        pass

    @contextmanager
    def progress(self, step: int) -> Iterator[None]:
        yield

    def advance(self) -> None:
        pass

    def losses(self, step: int, mean: dict[str, float], rate: float) -> None:
        pass

    def validation(self, step: int, validate: Callable[[], Validation]) -> dict[str, float] | None:
        return None


def train_log(main: bool, steps: int, images_per_step: int) -> TrainLog:
    """Rank 0's log (``main``), or a silent one for the other ranks."""
    return (TrainLog if main else SilentLog)(steps, images_per_step)
