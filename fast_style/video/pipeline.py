"""decode -> stylize in small batches -> stabilise -> encode, one bounded window of frames at a time.

Nothing here holds more than ``batch_size`` frames plus the stabiliser's previous frame (and the
encoder's own look-ahead), so memory does not grow with the clip. The output is written under a
temporary name beside the target and renamed only after the encoder's trailer is written: an error
or Ctrl-C leaves no file behind (:func:`fast_style.images.atomic_output`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fast_style.images import atomic_output
from fast_style.runtime import progress
from fast_style.stylize import Options, Stylizer, stylize_batch
from fast_style.video.flicker import FlickerMeter
from fast_style.video.flow import MIN_FLOW_SIDE
from fast_style.video.io import Frame, check_output, check_output_size, open_video, open_writer, output_size
from fast_style.video.stabilize import DEFAULT_HOLD, DEFAULT_STABILITY, Stabilizer


@dataclass
class VideoSummary:
    """What a run did, for the final line and ``--report``."""

    frames: int = 0
    seconds: float = 0.0
    size: tuple[int, int] = (0, 0)
    rate: float = 0.0
    audio: str = "none"
    cuts: int = 0
    stabilised: FlickerMeter = field(default_factory=FlickerMeter)
    frame_by_frame: FlickerMeter = field(default_factory=FlickerMeter)

    def report(self) -> dict[str, Any]:
        """The ``--report`` document: flicker (motion-compensated, along the input's DIS flow) of the
        output and of plain frame-by-frame stylization, their ratio, and the run's speed. Values that
        need two linked frames are null for shorter clips."""
        stable, plain = self.stabilised.value, self.frame_by_frame.value
        flicker = {"output": stable, "frame_by_frame": plain, "ratio": stable / plain if plain > 0 else None,
                   "output_worst_pair": self.stabilised.worst, "frame_by_frame_worst_pair": self.frame_by_frame.worst}
        return {"frames": self.frames, "size": list(self.size), "fps": rounded(self.rate), "audio": self.audio,
                "scene_cuts": self.cuts,
                "flicker": {**{key: rounded(value) for key, value in flicker.items()},
                            "motion": "DIS optical flow of the input", "unit": "mean |difference| in levels of 255"},
                "seconds": rounded(self.seconds),
                "frames_per_second": rounded(self.frames / self.seconds) if self.seconds > 0 else None}


def rounded(value: float | None) -> float | None:
    """3 decimals for the report; NaN (nothing measured) as null, so the report stays valid JSON."""
    return None if value is None or np.isnan(value) else round(float(value), 3)


def resized(frame: Frame, size: tuple[int, int]) -> Frame:
    """The frame at the output size (``--size``, or a frame whose size changed mid-stream)."""
    height, width = frame.image.shape[:2]
    if (width, height) == size:
        return frame
    image = np.array(Image.fromarray(frame.image).resize(size, Image.Resampling.LANCZOS))
    return Frame(image, frame.pts, frame.time_base, frame.duration_ms)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


class FrameStylizer:
    """Stylizes batches of frames and stabilises them in order; keeps the flicker meters."""

    def __init__(self, stylizer: Stylizer, options: Options, stability: float, measure: bool,
                 summary: VideoSummary, hold: int = DEFAULT_HOLD) -> None:
        self.stylizer, self.options, self.summary = stylizer, options, summary
        # Without stabilisation and without a report, no flow is computed at all.
        stabilised = stability > 0 or hold > 1
        self.stabilizer = Stabilizer(stability, hold=hold) if stabilised or measure else None
        self.measure = measure

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        photos = [torch.from_numpy(frame.image).permute(2, 0, 1).float().div_(255.0) for frame in frames]
        results = stylize_batch(self.stylizer, photos, self.options)
        finished = []
        for frame, result in zip(frames, results):
            styled = result.permute(1, 2, 0).numpy()
            output = styled
            if self.stabilizer is not None:
                step = self.stabilizer(frame.image, styled)
                output = step.output
                self.summary.cuts += int(step.cut and self.summary.frames > 0)
                if self.measure:
                    self.summary.stabilised.add(output, step.motion)
                    self.summary.frame_by_frame.add(styled, step.motion)
            self.summary.frames += 1
            finished.append(Frame(to_uint8(output), frame.pts, frame.time_base, frame.duration_ms))
        return finished


def stylized_items(items: Iterable[Frame | Any], stylize: FrameStylizer, size: tuple[int, int],
                   batch_size: int) -> Iterator[Frame | Any]:
    """Stylized frames and untouched audio packets, in order, reading ahead at most ``batch_size`` frames."""
    pending: list[Frame] = []
    for item in items:
        if not isinstance(item, Frame):
            yield item
            continue
        pending.append(resized(item, size))
        if len(pending) == batch_size:
            yield from stylize(pending)
            pending = []
    if pending:
        yield from stylize(pending)


def stylize_video(stylizer: Stylizer, source: str | Path, target: str | Path, options: Options, *,
                  stability: float = DEFAULT_STABILITY, hold: int = DEFAULT_HOLD,
                  measure: bool = False) -> VideoSummary:
    """Stylize the clip ``source`` into ``target`` (format from its suffix), keeping frame count,
    timing, orientation and audio; ``stability`` and ``hold`` as in :class:`Stabilizer`; ``measure``
    fills the flicker meters of the summary."""
    source, target = Path(source), Path(target)
    check_output(source, target, overwrite=options.overwrite)
    summary = VideoSummary()
    start = time.perf_counter()
    reader = open_video(source)
    try:
        info = reader.info
        size = output_size(info, options.size)
        check_output_size(target, size)  # a huge --size: refused before anything is stylized or encoded
        summary.size, summary.rate = size, float(info.rate)
        if min(size) < MIN_FLOW_SIDE and (stability > 0 or hold > 1 or measure):
            warnings.warn(f"{source}: frames of {size[0]}x{size[1]} are too small for optical flow (under "
                          f"{MIN_FLOW_SIDE} px a side): stabilisation and the flicker report are off", stacklevel=2)
            stability, hold, measure = 0.0, 1, False
        stylize = FrameStylizer(stylizer, options, stability, measure, summary, hold)
        with atomic_output(target) as temp:
            writer = open_writer(temp, target.suffix.lower(), info, size)
            summary.audio = writer.audio_mode
            try:
                with progress(total=info.frames, desc=f"video {source.name}", unit="frame") as bar:
                    for item in stylized_items(reader.items(), stylize, size, options.batch_size):
                        if isinstance(item, Frame):
                            writer.write(item)
                            bar.update(1)
                        else:
                            writer.write_audio(item)
                writer.finish()
            except BaseException:
                writer.close()
                raise
    finally:
        reader.close()
    summary.seconds = time.perf_counter() - start
    return summary
