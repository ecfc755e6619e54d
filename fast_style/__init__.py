"""fast_style: fast neural style transfer (Johnson et al. 2016) with the Gatys baseline built in."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fast_style.stylize import Stylizer

__version__ = "0.1.0"


def load_model(path: str | os.PathLike, *, device: str = "auto", precision: str = "auto") -> Stylizer:
    """Load a trained model file as a :class:`fast_style.stylize.Stylizer`.

    ``fast_style.load_model("model.safetensors").stylize(photo)`` returns the stylized PIL image; a model that
    takes any painting also wants it: ``load_model("arbitrary").stylize(photo, style="painting.jpg", alpha=0.8)``.
    Imported lazily so that ``import fast_style`` stays light (no torch until a model is loaded).
    """
    from fast_style.stylize import load_stylizer

    return load_stylizer(str(path), device=device, precision=precision)
