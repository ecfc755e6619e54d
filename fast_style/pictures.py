"""Labelled pictures: the one place that captions images and lays them out side by side.

Every picture fast_style shows a person (``compare``'s grid, ``sweep``'s strip and animation,
``demo``'s photo-and-result pair, the README gallery) is built from these helpers, so labels read
the same everywhere and a layout fix lands in all of them at once.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from fast_style.images import atomic_output

ROW_HEIGHT = 256  # every grid row is scaled to this height, so photos of any size line up
FONT_SIZE = 16
PAD = 4  # pixels around label text
GIF_FRAME_MS = 900


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` px (older Pillows have only the small bitmap font)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def band_height(font_size: int = FONT_SIZE) -> int:
    """Height of one line of label text with its padding; fixed, so rows line up."""
    return font_size + 3 * PAD


def text_width(text: str, font_size: int = FONT_SIZE) -> int:
    """Width of ``text`` plus its padding: how wide a cell must be to hold the label."""
    left, _, right, _ = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font(font_size))
    return right - left + 2 * PAD


def caption(image: Image.Image | None, text: str, *, width: int | None = None,
            font_size: int = FONT_SIZE) -> Image.Image:
    """``image`` centred above a white band holding ``text``; ``None`` gives the band alone.

    ``width`` (default: wide enough for both) lets callers give every cell of a grid or every
    frame of an animation the same size.
    """
    inner = image.width if image is not None else 0
    width = width or max(inner, text_width(text, font_size))
    height = image.height if image is not None else 0
    canvas = Image.new("RGB", (width, height + band_height(font_size)), "white")
    if image is not None:
        canvas.paste(image.convert("RGB"), ((width - image.width) // 2, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((width // 2, height + band_height(font_size) // 2), text, fill="black",
              font=font(font_size), anchor="mm")
    return canvas


def scale_to_height(image: Image.Image, height: int) -> Image.Image:
    """Resize keeping the aspect ratio, so every image in a row has the same height."""
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def hstack(images: Sequence[Image.Image]) -> Image.Image:
    """Images side by side, top-aligned on white (as tall as the tallest)."""
    strip = Image.new("RGB", (sum(image.width for image in images), max(image.height for image in images)), "white")
    x = 0
    for image in images:
        strip.paste(image, (x, 0))
        x += image.width
    return strip


def vstack(images: Sequence[Image.Image]) -> Image.Image:
    """Images one above the other, left-aligned on white (as wide as the widest)."""
    column = Image.new("RGB", (max(image.width for image in images), sum(image.height for image in images)), "white")
    y = 0
    for image in images:
        column.paste(image, (0, y))
        y += image.height
    return column


def make_grid(columns: Sequence[str], rows: Sequence[Sequence[tuple[Image.Image, str]]], *,
              row_height: int = ROW_HEIGHT, font_size: int = FONT_SIZE) -> Image.Image:
    """A header row of column names, then one row per entry of ``(image, caption)`` cells.

    Every image is scaled to ``row_height`` and every cell has one width (the widest image
    or label, plus a gutter), so the grid is ``len(columns)`` cells wide and ``1 + len(rows)``
    bands tall.
    """
    scaled = [[(scale_to_height(image, row_height), text) for image, text in row] for row in rows]
    width = 2 * PAD + max([text_width(name, font_size) for name in columns]
                          + [max(image.width, text_width(text, font_size)) for row in scaled for image, text in row])
    header = hstack([caption(None, name, width=width, font_size=font_size) for name in columns])
    body = [hstack([caption(image, text, width=width, font_size=font_size) for image, text in row]) for row in scaled]
    return vstack([header, *body])


def label_frames(images: Sequence[Image.Image], texts: Sequence[str]) -> list[Image.Image]:
    """Each image captioned, all the same size (as an animation's frames must be)."""
    font_size = max(10, min(24, images[0].width // 24))
    width = 2 * PAD + max(max(image.width for image in images), *(text_width(text, font_size) for text in texts))
    return [caption(image, text, width=width, font_size=font_size) for image, text in zip(images, texts)]


def png_bytes(image: Image.Image) -> bytes:
    """The image encoded as PNG, for embedding (in HTML) or writing atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_gif(frames: Sequence[Image.Image], path: Path) -> None:
    """An endlessly looping animation, one frame per image, written atomically."""
    with atomic_output(path) as temp:
        frames[0].save(temp, format="GIF", save_all=True, append_images=list(frames[1:]),
                       duration=GIF_FRAME_MS, loop=0)
