"""The flicker measure: how much consecutive output frames differ once motion is taken out.

For each pair of consecutive frames, the previous output is warped onto the current one along the
motion of the *input* (exact for synthetic clips, DIS flow for real ones) and the mean absolute
difference is taken over the pixels whose correspondence is trusted, in levels of 255 (the
"warping error" of Lai et al. 2018). A still scene stylized perfectly stably scores 0; camera noise
in the input alone scores a few levels. The number that means something is the *ratio* of a
stabilised output's flicker to that of plain frame-by-frame stylization of the same clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fast_style.video.flow import Motion, warp

MIN_TRUSTED = 0.01  # pairs with fewer trusted pixels (scene cuts) carry no flicker information


def warping_error(previous: np.ndarray, current: np.ndarray, motion: Motion) -> float | None:
    """Mean |current - warp(previous)| over trusted pixels, in levels of 255 (frames in [0, 1],
    (H, W, 3)); None where almost nothing is trusted."""
    if motion.trusted < MIN_TRUSTED:
        return None
    difference = np.abs(current - warp(previous, motion.back)).mean(-1)
    return float(difference[motion.valid].mean() * 255.0)


@dataclass
class FlickerMeter:
    """Running mean of :func:`warping_error` over a clip, fed one frame at a time (streaming)."""

    errors: list[float] = field(default_factory=list)
    _previous: np.ndarray | None = None

    def add(self, frame: np.ndarray, motion: Motion | None) -> None:
        """Record ``frame`` (float (H, W, 3) in [0, 1]); ``motion`` links it to the previous frame
        (None for the first frame or after a cut)."""
        if self._previous is not None and motion is not None:
            error = warping_error(self._previous, frame, motion)
            if error is not None:
                self.errors.append(error)
        self._previous = frame

    @property
    def value(self) -> float:
        """Mean warping error in levels of 255 (NaN before two linked frames)."""
        return float(np.mean(self.errors)) if self.errors else float("nan")

    @property
    def worst(self) -> float:
        """The largest warping error of any pair: where a mean hides periodic jumps (``--hold``)."""
        return float(np.max(self.errors)) if self.errors else float("nan")


def flicker(frames: list[np.ndarray], motions: list[Motion | None]) -> float:
    """Flicker of a whole clip held in memory; ``motions[i]`` links frame i to frame i-1."""
    meter = FlickerMeter()
    for frame, motion in zip(frames, motions):
        meter.add(frame, motion)
    return meter.value
