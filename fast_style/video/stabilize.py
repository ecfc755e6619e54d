"""Temporal stability at inference, for any model: carry the previous output along the motion.

Measured on slow synthetic pans (issue 19, docs/performance.md): the flicker of frame-by-frame
stylization is not in the instance norms' statistics nor in the input's noise, but in the network
painting different strokes whenever content moves by anything but a multiple of its stride of 4, so
it cannot be fixed inside the network at inference. Instead the previous *output* is warped onto
the current frame and mixed with the new stylization ``S_t``::

    O_t = S_t + w * m * (warp(O_{t-1}) - S_t)

where ``m`` is the trust mask of the input's flow (softened at its edges so no seam shows). With
``hold`` 1, ``w = stability`` on every frame: an exponential moving average along the motion, which
also averages differing strokes into softer ones. With ``hold`` N, ``w = 1`` (the carried texture,
unblended) on N-1 frames out of N and ``w = stability`` on the N-th, when the texture is renewed:
the strokes follow the motion and stay as sharp as one stylization, renewed N times less often.
Where the flow is not trusted (occlusions, new content) ``O_t = S_t``; at a scene cut (few trusted
pixels) the history is dropped, so the first frame of a new shot is exactly its frame-by-frame
stylization and no ghost of the previous shot remains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fast_style.errors import FastStyleError
from fast_style.video import require
from fast_style.video.flow import FlowEstimator, Motion, warp

# Measured with scripts/measure_video.py (wave, 256x192, docs/performance.md "Video"). Blending every
# frame (hold 1) needed stability 0.6 to bring flicker to <= 0.5x frame-by-frame on every slow pan and
# zoom, and that softened the strokes: per-frame perceptual loss +16-20 %. Carrying the texture
# unblended and renewing it every 4th frame with 15 % of the carried one blended in gave the same
# bar (0.45x on a sub-pixel diagonal pan, 0.49x on a zoom) at +2.8 % and +4.0 %.
DEFAULT_STABILITY = 0.15
DEFAULT_HOLD = 4

# Below this fraction of trusted pixels the frame is taken as a new shot: on synthetic clips
# (scripts/measure_video.py) a cut between two photos left 0 % trusted, slow pans and zooms 91-99 %.
CUT_TRUSTED = 0.4
MASK_SOFTEN = 5  # Gaussian kernel (pixels) that fades the blend weight in at the edges of trusted areas


def check_stability(stability: float) -> float:
    """The share of the carried output blended into renewed frames: 1 would freeze texture forever."""
    if not 0.0 <= stability < 1.0:
        raise FastStyleError(f"--stability {stability}: must be at least 0 and below 1 "
                             "(1 would never let new texture in)")
    return stability


def soften(mask: np.ndarray) -> np.ndarray:
    """Blend weights in [0, 1]: 1 inside the trusted area, fading to 0 at its edges (never outside)."""
    cv2 = require("cv2")
    weights = mask.astype(np.float32)
    return cv2.GaussianBlur(weights, (MASK_SOFTEN, MASK_SOFTEN), 0) * weights


def check_hold(hold: int) -> int:
    """Renew the texture every ``hold`` frames: 1 is every frame, 0 or less would never start."""
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

    ``hold`` > 1 is like animation drawn "on twos/threes", but with the strokes following the motion
    (see the module docstring). Holds only the previous input and output frame, so memory does not
    depend on the clip's length.
    """

    def __init__(self, stability: float = DEFAULT_STABILITY, hold: int = DEFAULT_HOLD,
                 flow: FlowEstimator | None = None) -> None:
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
