"""Clips with exactly known motion, for the flicker measure and the tests: pans, zooms and hard cuts.

Frame ``t`` samples a photo through an affine map ``A_t`` (frame pixel -> photo pixel), plus a little
Gaussian noise as a camera would add. The point that frame ``t`` shows at ``x`` is shown by frame
``t-1`` at ``A_{t-1}^-1 A_t x``, so the backward motion is known exactly, and the flicker of a
stylization can be measured without trusting any flow estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from fast_style.video import require
from fast_style.video.flow import Motion, inside

Affine = np.ndarray  # (2, 3): frame (x, y, 1) -> photo (x, y)


def pan_maps(count: int, start: tuple[float, float], speed: tuple[float, float]) -> list[Affine]:
    """A camera moving ``speed`` photo pixels a frame from ``start`` (the frame's top-left corner)."""
    return [np.array([[1, 0, start[0] + t * speed[0]], [0, 1, start[1] + t * speed[1]]], np.float64)
            for t in range(count)]


def zoom_maps(count: int, size: tuple[int, int], centre: tuple[float, float], zoom: float) -> list[Affine]:
    """A camera zooming in by ``zoom`` per frame (e.g. 1.01) on ``centre`` of the photo."""
    width, height = size
    maps = []
    for t in range(count):
        scale = 1.0 / zoom ** t
        maps.append(np.array([[scale, 0, centre[0] - scale * width / 2],
                              [0, scale, centre[1] - scale * height / 2]], np.float64))
    return maps


def render(photo: np.ndarray, maps: Sequence[Affine], size: tuple[int, int], noise: float,
           seed: int = 0) -> list[np.ndarray]:
    """The frames (H, W, 3) uint8 of ``photo`` (H', W', 3) uint8 seen through ``maps``."""
    cv2 = require("cv2")
    rng = np.random.default_rng(seed)
    frames = []
    for affine in maps:
        frame = cv2.warpAffine(photo.astype(np.float32), affine, size,
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
        frame = frame + rng.normal(0.0, noise, frame.shape)
        frames.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    return frames


def exact_motions(maps: Sequence[Affine], size: tuple[int, int]) -> list[Motion | None]:
    """The true backward motion of each frame (None for the first), valid where it stays in the frame."""
    width, height = size
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    points = np.stack([xs, ys, np.ones_like(xs)], -1)
    motions: list[Motion | None] = [None]
    for before, now in zip(maps, maps[1:]):
        square = np.vstack([before, [0, 0, 1]])
        to_previous = np.linalg.inv(square)[:2] @ np.vstack([now, [0, 0, 1]])
        back = (points @ to_previous.T - points[..., :2]).astype(np.float32)
        motions.append(Motion(back, inside(back)))
    return motions


def write_clip(path: str | Path, frames: Sequence[np.ndarray], rate: int = 12, *, audio_hz: float | None = None,
               rotation: int = 0, faststart: bool = False) -> Path:
    """Encode frames as an H.264 video (an ``.m4a``-style audio-only file when ``frames`` is empty),
    with an optional sine tone as AAC audio, an optional display rotation, and optionally the index
    at the start of the file (``faststart``, as streaming sites write it)."""
    av = require("av")
    path = Path(path)
    sample_rate = 16000
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = None
        if frames:
            video = container.add_stream("libx264", rate=rate)
            video.height, video.width = frames[0].shape[:2]
            video.pix_fmt = "yuv420p" if video.width % 2 == 0 and video.height % 2 == 0 else "yuv444p"
            if rotation:
                video.set_display_rotation(rotation)
        audio = container.add_stream("aac", rate=sample_rate, layout="mono") if audio_hz else None
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            container.mux(video.encode(picture))
        if video is not None:
            container.mux(video.encode())
        if audio is not None:
            seconds = Fraction(len(frames), rate) if frames else Fraction(1)
            for start in range(0, int(seconds * sample_rate), 1024):
                times = (np.arange(1024) + start) / sample_rate
                tone = (0.3 * np.sin(2 * np.pi * audio_hz * times)).astype(np.float32)[None]
                chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = sample_rate, start
                container.mux(audio.encode(chunk))
            container.mux(audio.encode())
    return path

