"""Temporal stability at inference, for any model: blend the previous output, carried along the motion.

Measured on a slow synthetic pan (issue 19): the flicker of frame-by-frame stylization is not in the
instance norms' statistics but in the network's sensitivity to noise and to sub-stride motion, so
it cannot be fixed inside the network at inference. Instead each new stylization ``S_t`` is blended
with the previous *output* warped onto the current frame::

    O_t = S_t + stability * m * (warp(O_{t-1}) - S_t)

where ``m`` is the trust mask of the input's flow (softened at its edges so no seam shows). Because
``O_{t-1}`` already holds the history, this is an exponential moving average along motion
trajectories. Where the flow is not trusted (occlusions, new content) ``O_t = S_t``; at a scene cut
(few trusted pixels) the history is dropped, so the first frame of a new shot is exactly its
frame-by-frame stylization and no ghost of the previous shot remains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fast_style.errors import FastStyleError
from fast_style.video import require
from fast_style.video.flow import FlowEstimator, Motion, warp

# The smallest of 0.4-0.7 that met the bar (flicker <= 0.5x frame-by-frame) on every slow pan and zoom
# measured by scripts/measure_video.py (wave, 256x192, docs/performance.md "Video"): 0.38-0.47x.
# It costs texture: the per-frame perceptual loss rose 16-20 % (style up, content and TV down);
# lower values trade flicker back for it (0.4: 0.57-0.64x flicker, +5-8 % loss).
DEFAULT_STABILITY = 0.6
DEFAULT_HOLD = 1

# Below this fraction of trusted pixels the frame is taken as a new shot: on synthetic clips
# (scripts/measure_video.py) a cut between two photos left 0 % trusted, slow pans and zooms 91-99 %.
CUT_TRUSTED = 0.4
MASK_SOFTEN = 5  # Gaussian kernel (pixels) that fades the blend weight in at the edges of trusted areas


def check_stability(stability: float) -> float:
    """0 turns stabilisation off; 1 would freeze texture forever, so stay below it."""
    if not 0.0 <= stability < 1.0:
        raise FastStyleError(f"--stability {stability}: must be at least 0 (off) and below 1 "
                             "(1 would never let new texture in)")
    return stability


def soften(mask: np.ndarray) -> np.ndarray:
    """Blend weights in [0, 1]: 1 inside the trusted area, fading to 0 at its edges (never outside)."""
    cv2 = require("cv2")
    weights = mask.astype(np.float32)
    return cv2.GaussianBlur(weights, (MASK_SOFTEN, MASK_SOFTEN), 0) * weights


def check_hold(hold: int) -> int:
    if hold < 1:
        raise FastStyleError(f"--hold {hold}: must be at least 1 (1: blend every frame)")
    return hold


@dataclass
class Step:
    """What stabilising one frame did: the output, the motion used (None for a first frame or a
    cut) and whether the frame was taken as a new shot."""

    output: np.ndarray
    motion: Motion | None
    cut: bool


class Stabilizer:
    """Feed it input frames and their stylizations in order; it returns the stabilised outputs.

    ``hold`` > 1 keeps the carried texture unblended (weight 1 where trusted) for ``hold - 1`` frames
    and blends with ``stability`` only on every ``hold``-th frame, like animation "on twos/threes"
    but with the strokes following the motion: the texture is renewed at 24/hold Hz instead of
    being averaged, so it stays as sharp as a single stylization.

    Holds only the previous input and output frame, so memory does not depend on the clip's length.
    """

    def __init__(self, stability: float, flow: FlowEstimator | None = None, hold: int = 1) -> None:
        self.stability = check_stability(stability)
        self.hold = check_hold(hold)
        self.flow = flow or FlowEstimator()
        self._previous_input: np.ndarray | None = None
        self._previous_output: np.ndarray | None = None
        self._since_refresh = 0

    def __call__(self, frame: np.ndarray, stylized: np.ndarray) -> Step:
        """``frame``: the input, (H, W, 3) uint8; ``stylized``: its frame-by-frame stylization,
        (H, W, 3) float32 in [0, 1]."""
        motion, cut = None, self._previous_input is None
        output = stylized
        if not cut:
            motion = self.flow.motion(self._previous_input, frame)
            cut = motion.trusted < CUT_TRUSTED
        if cut:
            motion, self._since_refresh = None, 0
        else:
            self._since_refresh = (self._since_refresh + 1) % self.hold
            strength = 1.0 if self._since_refresh else self.stability
            if strength > 0:
                weight = (strength * soften(motion.valid))[..., None]
                carried = warp(self._previous_output, motion.back, sharp=True)
                output = np.clip(stylized + weight * (carried - stylized), 0.0, 1.0)
        self._previous_input, self._previous_output = frame, output
        return Step(output, motion, cut)
