"""Paintings given at stylize time (``--style``): parsing, loading and checking, one clear line per mistake.

Only kinds of network that take any painting (``adain``) use these; ``--style a.jpg=0.5,b.jpg=0.5``
names several paintings with interpolation weights (normalised to sum to 1 by the network).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.images import ImageError, image_to_tensor, load_image, resize_longer_side

MIN_PAINTING_SIDE = 32  # below this a painting has too few relu4_1 positions (4x4) for meaningful statistics


def check_alpha(alpha: float) -> float:
    """``alpha`` must lie in [0, 1]: 0 keeps the photo's features, 1 is the full style."""
    if not 0.0 <= alpha <= 1.0:
        raise FastStyleError(f"--alpha {alpha:g}: must be between 0 (the photo's features) and 1 (full style)")
    return alpha


def parse_weighted(text: str, example: str) -> list[tuple[str, float]]:
    """``"a"`` -> ``[("a", 1.0)]``; ``"a=0.5, b=0.5"`` -> each name with its weight (``--style``'s syntax for
    paintings and for a multi-style model's styles); a weight that is not a number is one line using ``example``."""
    pairs = []
    for part in (item.strip() for item in text.split(",")):
        if not part:
            continue
        name, sep, weight = part.rpartition("=")
        if not sep:
            name, weight = part, "1"
        try:
            pairs.append((name.strip(), float(weight)))
        except ValueError:
            raise FastStyleError(f"--style {text}: '{weight}' is not a weight; write {example}") from None
    return pairs


def parse_styles(text: str) -> list[tuple[Path, float]]:
    """``"a.jpg"`` -> ``[(a.jpg, 1.0)]``; ``"a.jpg=0.5,b.jpg=0.5"`` -> both with their weights."""
    styles = [(Path(name), value) for name, value in parse_weighted(text, "PAINTING or a.jpg=0.5,b.jpg=0.5")]
    if any(value < 0 for _, value in styles):
        raise FastStyleError(f"--style {text}: weights must be 0 or more")
    if not styles or sum(weight for _, weight in styles) <= 0:
        raise FastStyleError(f"--style {text}: give a painting (weights must not all be 0)")
    return styles


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
        if not Path(painting).is_file():
            raise ImageError(f"{painting}: painting not found; pass an image file to --style")
        original = load_image(painting)
        check_painting_size(original, name)
        tensor = load_image(painting, size=size) if size else original
    check_painting_size(tensor, name)
    return tensor[:3]
