"""Motion between consecutive input frames: where each pixel came from, and whether to believe it.

Flow is computed on the *input* frames (the stylized ones are full of the very texture noise we want
to remove) with OpenCV's DIS (Kroeger et al. 2016): classical, a few milliseconds a frame, no
weights to download. A pixel's flow is trusted where the forward and backward flows agree
(Sundaram et al. 2010, as used for video style transfer by Ruder et al. 2016: occlusions and
disocclusions fail the check), where it stays inside the previous frame, and where the warped
previous input matches the current one in colour (which catches flow that is consistent but wrong,
e.g. across a scene cut or a lighting change).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fast_style.video import require

# Forward-backward check |b + f(x+b)|^2 <= A (|b|^2 + |f(x+b)|^2) + B, with Sundaram et al.'s constants.
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5
# A pixel whose warped previous input differs from the current input by more than this (levels of
# 255, max over channels) is not trusted: camera noise is a few levels, a wrong match tens.
COLOUR_TOLERANCE = 24.0
# OpenCV's DIS (5.x, the "fast" preset) refuses frames with both sides under 12 px, and frames under
# 32 px high but wider than about 40 px crashed the whole process (a segmentation fault, measured
# for heights 8-31 at widths 40-400); from 32 px a side up to 16000 px it ran. Smaller frames get no flow.
MIN_FLOW_SIDE = 32


@dataclass
class Motion:
    """Backward motion of one frame: ``back[y, x]`` is the (dx, dy) to the same point in the previous
    frame, ``valid`` where that correspondence is trusted."""

    back: np.ndarray  # (H, W, 2) float32
    valid: np.ndarray  # (H, W) bool

    @property
    def trusted(self) -> float:
        """Fraction of pixels with a trusted correspondence (low at scene cuts)."""
        return float(self.valid.mean())


def sampling_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute sampling coordinates (map_x, map_y) for ``cv2.remap`` from a displacement field."""
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def inside(flow: np.ndarray) -> np.ndarray:
    """Where ``x + flow(x)`` lands inside the frame (a warp from outside would only replicate borders)."""
    map_x, map_y = sampling_grid(flow)
    height, width = flow.shape[:2]
    return (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)


def warp(image: np.ndarray, flow: np.ndarray, *, sharp: bool = False) -> np.ndarray:
    """Sample ``image`` (H, W[, C]) at ``x + flow(x)`` (the previous frame seen from this one).

    Bilinear by default; ``sharp`` uses Lanczos, for images that are warped again and again (the
    stabiliser's output): bilinear's blur compounds, and on a sub-pixel pan it raised the per-frame
    perceptual loss by 14 % against 10 % with Lanczos (bicubic's overshoot compounded worse, 23 %).
    """
    cv2 = require("cv2")
    map_x, map_y = sampling_grid(flow)
    interpolation = cv2.INTER_LANCZOS4 if sharp else cv2.INTER_LINEAR
    return cv2.remap(image, map_x, map_y, interpolation=interpolation, borderMode=cv2.BORDER_REPLICATE)


def consistent(back: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Forward-backward check: following ``back`` and then ``forward`` should return to the start."""
    forward_there = warp(forward, back)
    loop = back + forward_there
    bound = CONSISTENCY_RELATIVE * ((back ** 2).sum(-1) + (forward_there ** 2).sum(-1)) + CONSISTENCY_ABSOLUTE
    return (loop ** 2).sum(-1) <= bound


def colour_match(previous: np.ndarray, current: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Where the previous input frame, warped by ``back``, looks like the current one."""
    warped = warp(previous.astype(np.float32), back)
    return np.abs(warped - current.astype(np.float32)).max(-1) <= COLOUR_TOLERANCE


class FlowEstimator:
    """DIS optical flow between consecutive RGB uint8 frames, with the trust mask.

    The "fast" preset: at 512x384 the pair of flows (forward and backward) costs a few percent of
    one stylization on CPU, and finer presets did not lower the measured flicker further.
    """

    def __init__(self) -> None:
        cv2 = require("cv2")
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._cv2 = cv2

    def gray(self, frame: np.ndarray) -> np.ndarray:
        return self._cv2.cvtColor(frame, self._cv2.COLOR_RGB2GRAY)

    def motion(self, previous: np.ndarray, current: np.ndarray) -> Motion:
        """Backward flow from ``current`` to ``previous`` (both (H, W, 3) uint8) and where it holds."""
        old, new = self.gray(previous), self.gray(current)
        back = self._dis.calc(new, old, None)
        forward = self._dis.calc(old, new, None)
        valid = consistent(back, forward) & inside(back) & colour_match(previous, current, back)
        return Motion(back, valid)
