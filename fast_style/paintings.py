"""Paintings given at stylize time (``--style``): parsing, loading and checking, one clear line per mistake.

Only kinds of network that take any painting (``adain``) use these; ``--style a.jpg=0.5,b.jpg=0.5``
names several paintings with interpolation weights, normalised here to sum to 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.images import ImageError, image_to_tensor, load_image, resize_longer_side
from fast_style.safety import kind_of

MIN_PAINTING_SIDE = 32  # below this a painting has too few relu4_1 positions (4x4) for meaningful statistics
MESSAGE_CHARS = 80  # the most of a --style value an error message quotes


def check_alpha(alpha: float) -> float:
    """``alpha`` must lie in [0, 1]: 0 keeps the photo's features, 1 is the full style. The refusal echoes
    the number as typed (``repr``: 1.0000001 stays 1.0000001, where ``:g`` would print 1)."""
    if not 0.0 <= alpha <= 1.0:
        raise FastStyleError(f"--alpha {alpha!r}: must be between 0 (the photo's features) and 1 (full style)")
    return alpha


def clipped(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` for a message: whole when short, else its start and its length, so a 100,000-character
    ``--style`` gives one readable line instead of a 200 KB one."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def normalised_weights(weights: Sequence[float], text: str) -> list[float]:
    """Weights scaled to sum to 1 without overflow: divided by the largest first, so ``3e38`` twice (whose
    float32 sum is infinite) or ``1e308`` twice (float64) are an even mix, and a lone ``1e-46`` (0 in
    float32) is a whole one. Non-finite or negative weights, or none above 0, are one line quoting ``text``."""
    shown = clipped(text)
    for weight in weights:
        if not math.isfinite(weight):
            raise FastStyleError(f"--style {shown}: weight {weight!r} is not a finite number; give weights such "
                                 "as a=0.7,b=0.3")
        if weight < 0:
            raise FastStyleError(f"--style {shown}: weight {weight!r} is negative; weights must be 0 or more")
    largest = max(weights, default=0.0)
    if not largest > 0:
        raise FastStyleError(f"--style {shown}: give at least one style with a weight above 0 (weights must not "
                             "all be 0)")
    scaled = [weight / largest for weight in weights]
    total = math.fsum(scaled)
    return [weight / total for weight in scaled]


def parse_weighted(text: str, example: str, is_name: Callable[[str], bool] | None = None) -> list[tuple[str, float]]:
    """``"a"`` -> ``[("a", 1.0)]``; ``"a=0.5, b=0.5"`` -> each name with its weight, normalised to sum to 1
    (``--style``'s syntax for paintings and for a multi-style model's styles), parsed once here.

    ``is_name`` says whether a text is a name as it stands (an existing painting file, or one of a model's
    styles): the whole ``text``, or a part, that is one is taken with weight 1 even where it holds ``,`` or
    ``=`` (``x=1.jpg``, or a style named ``a,b``); ``x=1.jpg=0.5`` splits at the last ``=``. A weight that
    is not a finite number of 0 or more is one line using ``example``.
    """
    shown = clipped(text)
    if is_name is not None and text.strip() and is_name(text.strip()):
        return [(text.strip(), 1.0)]
    pairs = []
    for part in (item.strip() for item in text.split(",")):
        if not part:
            continue
        name, sep, weight = part.rpartition("=")
        if not sep or (is_name is not None and is_name(part)):
            name, weight = part, "1"
        try:
            value = float(weight)
        except ValueError:
            raise FastStyleError(f"--style {shown}: {clipped(weight)!r} is not a weight; write {example}") from None
        if not math.isfinite(value):  # quoted as typed: 1e309 is what the user wrote, inf what it became
            raise FastStyleError(f"--style {shown}: weight {clipped(weight.strip())} is not a finite number; give "
                                 "weights such as a=0.7,b=0.3")
        pairs.append((name.strip(), value))
    weights = normalised_weights([value for _, value in pairs], text)
    return [(name, weight) for (name, _), weight in zip(pairs, weights)]


def parse_styles(text: str) -> list[tuple[Path, float]]:
    """``"a.jpg"`` -> ``[(a.jpg, 1.0)]``; ``"a.jpg=0.5,b.jpg=0.5"`` -> both with their weights (normalised);
    a painting file whose name holds ``,`` or ``=`` is taken as it stands."""
    return [(Path(name), value) for name, value in
            parse_weighted(text, "PAINTING or a.jpg=0.5,b.jpg=0.5", lambda name: os.path.lexists(name))]


def check_painting_size(painting: torch.Tensor, name: Path | str) -> None:
    """Refuse a painting whose shorter side is under :data:`MIN_PAINTING_SIDE` pixels."""
    if min(painting.shape[-2:]) < MIN_PAINTING_SIDE:
        raise FastStyleError(f"{name}: painting of {painting.shape[-1]}x{painting.shape[-2]} px is too small "
                             f"(needs at least {MIN_PAINTING_SIDE} px on each side); use a larger image")


def load_painting(painting: str | Path | Image.Image | torch.Tensor, size: int | None) -> torch.Tensor:
    """A painting file, PIL image or (3,H,W) tensor in [0, 1] -> (3,H,W) float tensor with longer side ``size``
    (the size the model's statistics were trained at); missing, unreadable or tiny files are one line."""
    if isinstance(painting, torch.Tensor):
        tensor, name = painting.float(), "the painting"
    elif isinstance(painting, Image.Image):
        tensor, name = image_to_tensor(resize_longer_side(painting.convert("RGB"), size) if size else
                                       painting.convert("RGB")), "the painting"
    else:
        name = painting
        kind = kind_of(Path(painting))
        if kind is not None:
            raise ImageError(f"{painting}: is {kind}, not a painting; pass an image file to --style")
        if not Path(painting).is_file():
            raise ImageError(f"{painting}: painting not found; pass an image file to --style")
        original = load_image(painting)
        check_painting_size(original, name)
        tensor = load_image(painting, size=size) if size else original
    check_painting_size(tensor, name)
    return tensor[:3]
