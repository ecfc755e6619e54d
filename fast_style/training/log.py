"""What a training run shows and records as it goes: its lines, its progress bar, TensorBoard, its loss curve,
and the validation picture.

A run on a laptop CPU lasts tens of minutes to hours, so the bar says what a person waiting needs: the
images seen and the time left (the time limit counted in, and the bar's end moved to the step the
limit will stop at), and every validation also writes ``OUTPUT/validation.jpg``, the held-out photos as
the network stylizes them now, replaced atomically so it can be opened at any moment while it trains.

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
from fast_style.images import save_image
from fast_style.losses import TERM_NAMES
from fast_style.runtime import progress

PROGRESS_LINE_EVERY_S = 30.0  # a log line at most this often when the progress bar is hidden
VALIDATION_PICTURE = "validation.jpg"  # in the output_dir, rewritten at every validation
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| step {n_fmt}{postfix}"  # tqdm's own ETA would ignore the time limit

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


def time_left(steps_left: int, seconds_per_step: float, limit_left_s: float | None = None) -> float:
    """Seconds until the run stops: its remaining steps at the measured pace, or the time limit if sooner."""
    left = steps_left * seconds_per_step
    return left if limit_left_s is None else max(0.0, min(left, limit_left_s))


def picture_grid(images: torch.Tensor, columns: int = 4) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> one (3, rows*H, columns*W) picture, row by row, white where a row is short."""
    count, channels, height, width = images.shape
    columns = min(columns, count)
    rows = -(-count // columns)
    grid = images.new_ones(rows * columns, channels, height, width)
    grid[:count] = images.clamp(0, 1)
    return grid.view(rows, columns, channels, height, width).permute(2, 0, 3, 1, 4).reshape(
        channels, rows * height, columns * width)


class TrainLog:
    """Rank 0's log of a run of ``steps`` steps of ``images_per_step`` photos (the global batch, all
    ranks together).

    ``history`` is the loss curve as logged (training losses at logged steps, validation results):
    the log writes it, checkpoints carry it, and model.json keeps it as ``loss_history``.
    """

    clock = staticmethod(time.perf_counter)  # seconds; the pace and the time left are measured with it

    def __init__(self, steps: int, images_per_step: int, time_limit_minutes: float = 0.0):
        self.steps, self.images_per_step = steps, images_per_step
        self.time_limit_s = 60.0 * time_limit_minutes  # 0: none
        self.history: list[dict[str, float]] = []
        self._writer: Any = None  # TensorBoard's SummaryWriter, from open() on
        self._output_dir: Path | None = None  # where the validation picture goes, from open() on
        self._bar: Any = None  # the progress bar, while progress() is entered
        self._last_line = 0.0  # when the last progress line was printed
        self._started, self._first_step = 0.0, 0  # this process's start of the loop: its pace and time limit
        self._last_loss: float | None = None

    def say(self, text: str) -> None:
        print(f"fast-style train: {text}", flush=True)

    def warning(self, text: str) -> None:
        self.say(f"warning: {text}")

    def open(self, output_dir: Path, config: Any, step: int, start_line: str) -> None:
        """Start TensorBoard in ``output_dir`` (the config as its first text), then print the start line."""
        from torch.utils.tensorboard import SummaryWriter

        output_dir.mkdir(parents=True, exist_ok=True)
        self._output_dir = output_dir
        self._writer = SummaryWriter(str(output_dir))
        self._writer.add_text("config", "```\n" + dump_yaml(config) + "\n```", step)
        self.say(start_line)

    @contextmanager
    def progress(self, step: int) -> Iterator[None]:
        """The progress bar from ``step`` while the loop runs (hidden where stderr is not a terminal,
        and progress lines printed instead)."""
        self._bar = progress(total=self.steps, desc="train", unit="step")
        self._bar.bar_format = BAR_FORMAT
        self._bar.update(step)
        self._first_step = step
        self._started = self._last_line = self.clock()
        try:
            yield
        finally:
            self._bar.close()
            self._bar = None

    def advance(self, step: int) -> None:
        """Step ``step`` done, applied or skipped: the bar's images seen, pace and time left."""
        left = self.seconds_left(step)
        if left is not None and self.time_limit_s:  # the bar ends where the run will stop
            self._bar.total = min(self.steps, step + round(left / self._seconds_per_step(step)))
        self._bar.set_postfix_str(self._status(step, left), refresh=False)
        self._bar.update(1)

    def _seconds_per_step(self, step: int) -> float:
        return (self.clock() - self._started) / max(step - self._first_step, 1)

    def seconds_left(self, step: int) -> float | None:
        """Until the run stops (its last step or its time limit), at this process's pace so far; None
        before the first step."""
        if step <= self._first_step:
            return None
        elapsed = self.clock() - self._started
        limit_left = self.time_limit_s - elapsed if self.time_limit_s else None
        return time_left(self.steps - step, self._seconds_per_step(step), limit_left)

    def _status(self, step: int, left: float | None) -> str:
        """``4,800 images, 2.4 images/s, loss 1.758, 12 min 05 s left``: the bar's text."""
        rate = self.images_per_step / self._seconds_per_step(step) if step > self._first_step else 0.0
        loss = f", loss {self._last_loss:.4g}" if self._last_loss is not None else ""
        ends = "" if left is None else f", {duration(left)} left"
        return f"{step * self.images_per_step:,} images, {rate:.3g} images/s{loss}{ends}"

    def losses(self, step: int, mean: dict[str, float], rate: float) -> None:
        """A logged step's mean losses and ``rate`` (images/s): into the history and TensorBoard, onto
        the bar, and, where no bar shows, a progress line at most every PROGRESS_LINE_EVERY_S."""
        self.history.append({"step": step, **mean, "images_per_second": rate})
        for key, value in mean.items():
            self._writer.add_scalar(f"train/{key}", value, step)
        self._writer.add_scalar("train/images_per_second", rate, step)
        self._last_loss = mean["loss"]
        if self._bar.disable and self.clock() - self._last_line >= PROGRESS_LINE_EVERY_S:
            self.say(self._progress_line(step, mean, rate))
            self._last_line = self.clock()

    def _progress_line(self, step: int, mean: dict[str, float], rate: float) -> str:
        """``step 1200/40000 (3%), 9,600 images: loss 1.758 (content 0.983, style 0.607, tv 0.167), 36 images/s,
        about 2 h 13 min left`` for log files, where no progress bar shows (the time left counts the time limit)."""
        left_s = self.seconds_left(step)
        if left_s is None:
            left_s = (self.steps - step) * self.images_per_step / max(rate, 1e-9)
        terms = ", ".join(f"{name} {mean[name]:.4g}" for name in TERM_NAMES if name in mean)
        return (f"step {step}/{self.steps} ({100 * step / self.steps:.0f}%), {step * self.images_per_step:,} images: "
                f"loss {mean['loss']:.4g} ({terms}), {rate:.3g} images/s, about {duration(left_s)} left")

    def validation(self, step: int, validate: Callable[[], Validation]) -> dict[str, float] | None:
        """Run ``validate`` and log its terms and pictures at ``step`` (TensorBoard, and the picture file a
        person can open while the run goes on); returns the terms.

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
        if self._output_dir is not None:
            picture = save_image(picture_grid(images), self._output_dir / VALIDATION_PICTURE)
            loss = f": loss {terms['loss']:.4g}" if "loss" in terms else ""
            loss += f", stylized {terms['stylized_loss']:.4g}" if "stylized_loss" in terms else ""
            self.say(f"validation at step {step}{loss}; the held-out photos as stylized now: {picture}")
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

    def advance(self, step: int) -> None:
        pass

    def losses(self, step: int, mean: dict[str, float], rate: float) -> None:
        pass

    def validation(self, step: int, validate: Callable[[], Validation]) -> dict[str, float] | None:
        return None


def train_log(main: bool, steps: int, images_per_step: int, time_limit_minutes: float = 0.0) -> TrainLog:
    """Rank 0's log (``main``), or a silent one for the other ranks."""
    return (TrainLog if main else SilentLog)(steps, images_per_step, time_limit_minutes)
