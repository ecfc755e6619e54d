"""Video: stylize a clip frame by frame with flow-guided temporal stability, streaming, with its sound.

* :mod:`~fast_style.video.io`: decoding and encoding (PyAV for real videos, Pillow for animated
  GIF/WebP), keeping frame count, timing, orientation and the audio stream.
* :mod:`~fast_style.video.flow`: optical flow between input frames (OpenCV's DIS: classical, no
  weights), its forward-backward consistency and warping.
* :mod:`~fast_style.video.stabilize`: blending the warped previous output into each new stylization.
* :mod:`~fast_style.video.flicker`: the motion-compensated flicker measure.
* :mod:`~fast_style.video.pipeline`: decode -> stylize in small batches -> stabilise -> encode.
* :mod:`~fast_style.video.synthetic`: test clips with exactly known motion (pans, zooms, cuts).

PyAV and OpenCV are the optional ``video`` extra: :func:`require` turns their absence into one line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from fast_style.errors import FastStyleError

INSTALL_HINT = "pip install 'fast_style[video]'"


def require(module: str) -> ModuleType:
    """Import ``av`` or ``cv2``, or say in one line how to install them."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"av": "PyAV", "cv2": "OpenCV"}.get(module, module)
        raise FastStyleError(f"video needs {package}, which is not installed: {INSTALL_HINT}") from None
